//! The element-wise and per-token operations of the gpt-oss block, one function each.
//! Each mirrors the transformers line named in its comment (`modeling_gpt_oss.py`).

use rayon::prelude::*;

use crate::linear::dot;

/// RMSNorm of each row of `x` (`[n, g.len()]`) into `out`:
/// `out = g · x / sqrt(mean(x²) + eps)` in f32 (`GptOssRMSNorm`: `hidden * rsqrt(var + eps)`,
/// then `weight * hidden`). No bias, no `1 + g`.
pub fn rmsnorm(x: &[f32], g: &[f32], eps: f32, out: &mut [f32]) {
    let h = g.len();
    for (xr, or) in x.chunks_exact(h).zip(out.chunks_exact_mut(h)) {
        let ms = dot(xr, xr) / h as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        for ((o, &v), &w) in or.iter_mut().zip(xr).zip(g) {
            *o = w * (v * inv);
        }
    }
}

/// Router: the indices of the `k` largest logits (ties: the lower expert index wins, as
/// triton_kernels' `routing_torch` does) and the softmax of those `k` logits only
/// (`GptOssTopKRouter`: `topk` then `softmax` over the selected values).
pub fn route(logits: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    idx.truncate(k);
    let max = logits[idx[0]];
    let exps: Vec<f32> = idx.iter().map(|&e| (logits[e] - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    idx.into_iter()
        .zip(exps)
        .map(|(e, x)| (e, x / sum))
        .collect()
}

/// SwiGLU with gpt-oss's clamp and `+1` (`GptOssExperts._apply_gate`):
/// `gate = min(gate, limit)`, `up = clamp(up, -limit, limit)`,
/// `out = (up + 1) · gate · sigmoid(alpha · gate)`.
pub fn swiglu(gate: &[f32], up: &[f32], limit: f32, alpha: f32, out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        let g = g.min(limit);
        let u = u.clamp(-limit, limit);
        let glu = g * (1.0 / (1.0 + (-(g * alpha)).exp()));
        *o = (u + 1.0) * glu;
    }
}

/// Shapes for [`attention`].
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
    /// `Some(w)`: a query at position p sees keys p-w+1 ..= p. `None`: all keys ≤ p.
    pub window: Option<usize>,
}

/// Causal attention with per-head sinks (`eager_attention_forward` of gpt-oss).
///
/// `q` is `[n_tok, heads·d]` for positions `pos0 ..`; `k`, `v` are the cache, `[pos0 + n_tok,
/// kv_heads·d]`. For query position p and head h (kv head `h / (heads/kv_heads)`):
/// `s_u = (q·k_u)/sqrt(d)` for the allowed u, then a softmax over `[s_u..., sink_h]` whose sink
/// column is dropped, so the weights over real keys sum to less than one. The sink is a raw
/// logit: it is not scaled by 1/sqrt(d).
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    sinks: &[f32],
    pos0: usize,
    shape: AttnShape,
    out: &mut [f32],
) {
    let AttnShape {
        heads,
        kv_heads,
        head_dim: d,
        window,
    } = shape;
    let group = heads / kv_heads;
    let scale = 1.0 / (d as f32).sqrt();
    let (qw, kvw) = (heads * d, kv_heads * d);
    out.par_chunks_mut(qw)
        .zip(q.par_chunks(qw))
        .enumerate()
        .for_each(|(t, (o, qt))| {
            let p = pos0 + t;
            let lo = match window {
                Some(w) => (p + 1).saturating_sub(w),
                None => 0,
            };
            let mut scores = vec![0f32; p + 1 - lo];
            for h in 0..heads {
                let g = h / group;
                let qh = &qt[h * d..(h + 1) * d];
                for (s, u) in scores.iter_mut().zip(lo..=p) {
                    *s = dot(qh, &k[u * kvw + g * d..u * kvw + (g + 1) * d]) * scale;
                }
                let sink = sinks[h];
                let max = scores.iter().fold(sink, |m, &s| m.max(s));
                let mut denom = (sink - max).exp();
                for s in scores.iter_mut() {
                    *s = (*s - max).exp();
                    denom += *s;
                }
                let oh = &mut o[h * d..(h + 1) * d];
                oh.fill(0.0);
                for (&s, u) in scores.iter().zip(lo..=p) {
                    let pw = s / denom;
                    let vu = &v[u * kvw + g * d..u * kvw + (g + 1) * d];
                    for (a, &b) in oh.iter_mut().zip(vu) {
                        *a += pw * b;
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_takes_top_k_then_softmax_over_k_and_breaks_ties_low() {
        let logits = [0.5, 2.0, -1.0, 2.0, 1.0];
        let r = route(&logits, 3);
        assert_eq!(r.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 3, 4]);
        let e = [1.0f32, 1.0, (-1.0f32).exp()];
        let s: f32 = e.iter().sum();
        for (got, want) in r.iter().zip(e) {
            assert!((got.1 - want / s).abs() < 1e-7);
        }
    }

    /// The clamp is asymmetric (gate above only, up both sides) and `(up + 1)` multiplies.
    #[test]
    fn swiglu_clamps_gate_above_only_and_adds_one_to_up() {
        let mut out = [0f32; 4];
        swiglu(
            &[10.0, -10.0, 1.0, 0.0],
            &[0.0, 0.0, 10.0, 3.0],
            7.0,
            1.702,
            &mut out,
        );
        let sig = |x: f32| 1.0 / (1.0 + (-x).exp());
        assert!(
            (out[0] - 7.0 * sig(7.0 * 1.702)).abs() < 1e-6,
            "gate clamped to 7"
        );
        assert!(
            (out[1] - (-10.0 * sig(-17.02))).abs() < 1e-9,
            "gate not clamped below"
        );
        assert!(
            (out[2] - 8.0 * sig(1.702)).abs() < 1e-6,
            "up clamped to 7, then +1"
        );
        assert_eq!(out[3], 0.0);
    }

    fn run(window: Option<usize>, sinks: f32, n: usize) -> Vec<f32> {
        let shape = AttnShape {
            heads: 1,
            kv_heads: 1,
            head_dim: 2,
            window,
        };
        let q = vec![0f32; n * 2];
        let k = vec![0f32; n * 2];
        // v_u = (u, 1): the output's first component is the weighted mean position.
        let v: Vec<f32> = (0..n).flat_map(|u| [u as f32, 1.0]).collect();
        let mut out = vec![0f32; n * 2];
        attention(&q, &k, &v, &[sinks], 0, shape, &mut out);
        out
    }

    /// A key exactly `sliding_window` positions back is excluded: with window 3, position 5
    /// sees keys 3, 4, 5 only.
    #[test]
    fn sliding_window_edge_excludes_the_key_window_positions_back() {
        let out = run(Some(3), f32::NEG_INFINITY, 6);
        assert!((out[10] - 4.0).abs() < 1e-6, "mean of 3, 4, 5: {}", out[10]);
        assert!((out[11] - 1.0).abs() < 1e-6);
        let full = run(None, f32::NEG_INFINITY, 6);
        assert!((full[10] - 2.5).abs() < 1e-6, "mean of 0..=5");
    }

    /// The sink is one extra softmax column with no value: with equal scores over n keys and a
    /// sink logit of 0, the real weights sum to n/(n+1).
    #[test]
    fn sink_takes_probability_mass_without_a_value() {
        let out = run(None, 0.0, 4);
        assert!((out[7] - 4.0 / 5.0).abs() < 1e-6, "{}", out[7]);
        let no_sink = run(None, f32::NEG_INFINITY, 4);
        assert!((no_sink[7] - 1.0).abs() < 1e-6);
        // The sink is not scaled by 1/sqrt(d): a sink of ln 4 against 4 zero scores gives 1/2.
        let shape = AttnShape {
            heads: 1,
            kv_heads: 1,
            head_dim: 4,
            window: None,
        };
        let v: Vec<f32> = (0..4).flat_map(|_| [1.0, 0.0, 0.0, 0.0]).collect();
        let mut out = vec![0f32; 16];
        attention(
            &[0f32; 16],
            &[0f32; 16],
            &v,
            &[4f32.ln()],
            0,
            shape,
            &mut out,
        );
        assert!((out[12] - 0.5).abs() < 1e-6, "{}", out[12]);
    }

    #[test]
    fn grouped_query_heads_share_kv_heads() {
        // 4 query heads, 2 kv heads: heads 0,1 read kv head 0; heads 2,3 read kv head 1.
        let shape = AttnShape {
            heads: 4,
            kv_heads: 2,
            head_dim: 2,
            window: None,
        };
        let v = vec![1.0, 1.0, 5.0, 5.0];
        let mut out = vec![0f32; 8];
        attention(
            &[0f32; 8],
            &[0f32; 4],
            &v,
            &[f32::NEG_INFINITY; 4],
            0,
            shape,
            &mut out,
        );
        assert_eq!(out, vec![1.0, 1.0, 1.0, 1.0, 5.0, 5.0, 5.0, 5.0]);
    }

    #[test]
    fn rmsnorm_multiplies_after_normalising() {
        let mut out = [0f32; 2];
        rmsnorm(&[3.0, 4.0], &[2.0, 0.5], 0.0, &mut out);
        let rms = (12.5f32).sqrt();
        assert!((out[0] - 2.0 * 3.0 / rms).abs() < 1e-6);
        assert!((out[1] - 0.5 * 4.0 / rms).abs() < 1e-6);
    }
}
