//! Rotary position embedding with YaRN scaling, as gpt-oss configures it.
//!
//! Mirrors transformers' `_compute_yarn_parameters` (and OpenAI's `RotaryEmbedding`, which gives
//! the same numbers; transformers `modeling_rope_utils.py`, openai/gpt-oss `gpt_oss/torch/model.py`):
//!
//! ```text
//! freq_j   = theta^(2j/d)                          (f32, j = 0 .. d/2)
//! extrap_j = 1/freq_j,   interp_j = 1/(factor·freq_j)
//! low/high = d·ln(orig_ctx / (beta·2π)) / (2·ln theta)  for beta_fast / beta_slow (f64),
//!            floored/ceiled only when `truncate`, clamped to [0, d-1]
//! ramp_j   = clamp((j - low)/(high - low), 0, 1)
//! inv_j    = interp_j·ramp_j + extrap_j·(1 - ramp_j)
//! cos, sin = cos(p·inv_j)·m, sin(p·inv_j)·m    with m = 0.1·ln(factor) + 1 (both of them)
//! ```
//!
//! Pairing is NeoX half-split: element `j` rotates with element `j + d/2`.

use crate::config::Config;

/// Precomputed inverse frequencies and the YaRN cos/sin multiplier.
#[derive(Clone, Debug)]
pub struct Rope {
    inv_freq: Vec<f32>,
    scaling: f32,
    head_dim: usize,
}

/// The YaRN correction range `(low, high)` in rotary-dimension units.
pub fn correction_range(cfg: &Config) -> (f64, f64) {
    let y = &cfg.rope_scaling;
    let d = cfg.head_dim as f64;
    let ctx = y.original_max_position_embeddings as f64;
    let dim_for = |rotations: f64| {
        d * (ctx / (rotations * 2.0 * std::f64::consts::PI)).ln() / (2.0 * cfg.rope_theta.ln())
    };
    let (mut low, mut high) = (dim_for(y.beta_fast), dim_for(y.beta_slow));
    if y.truncate {
        low = low.floor();
        high = high.ceil();
    }
    (low.max(0.0), high.min(d - 1.0))
}

impl Rope {
    /// Builds the tables for `cfg`.
    pub fn new(cfg: &Config) -> Rope {
        let half = cfg.head_dim / 2;
        let d = cfg.head_dim as f32;
        let factor = cfg.rope_scaling.factor as f32;
        let (low, mut high) = correction_range(cfg);
        if low == high {
            high += 0.001; // transformers' linear_ramp_factor guard
        }
        let inv_freq = (0..half)
            .map(|j| {
                let freq = (cfg.rope_theta as f32).powf((2 * j) as f32 / d);
                let extrap = 1.0 / freq;
                let interp = 1.0 / (factor * freq);
                let ramp = ((j as f32 - low as f32) / (high - low) as f32).clamp(0.0, 1.0);
                let extrap_factor = 1.0 - ramp;
                interp * (1.0 - extrap_factor) + extrap * extrap_factor
            })
            .collect();
        let scaling = match cfg.rope_scaling.attention_factor {
            Some(a) => a as f32,
            None if cfg.rope_scaling.factor > 1.0 => {
                (0.1 * cfg.rope_scaling.factor.ln() + 1.0) as f32
            }
            None => 1.0,
        };
        Rope {
            inv_freq,
            scaling,
            head_dim: cfg.head_dim,
        }
    }

    /// The inverse frequencies, one per rotated pair.
    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    /// The multiplier applied to cos and sin (`m`).
    pub fn scaling(&self) -> f32 {
        self.scaling
    }

    /// `(cos, sin)` tables for position `pos`, each `head_dim/2` long, multiplier included.
    pub fn cos_sin(&self, pos: usize) -> (Vec<f32>, Vec<f32>) {
        self.inv_freq
            .iter()
            .map(|&f| {
                let theta = (f * pos as f32) as f64;
                (
                    theta.cos() as f32 * self.scaling,
                    theta.sin() as f32 * self.scaling,
                )
            })
            .unzip()
    }

    /// Rotates every head of every token in `x` (`[n_tok, heads·head_dim]`) in place; token `t`
    /// is at absolute position `pos0 + t`.
    pub fn apply(&self, x: &mut [f32], heads: usize, pos0: usize) {
        let d = self.head_dim;
        let half = d / 2;
        for (t, row) in x.chunks_exact_mut(heads * d).enumerate() {
            let (cos, sin) = self.cos_sin(pos0 + t);
            for head in row.chunks_exact_mut(d) {
                let (x1, x2) = head.split_at_mut(half);
                for j in 0..half {
                    let (a, b) = (x1[j], x2[j]);
                    x1[j] = a * cos[j] - b * sin[j];
                    x2[j] = b * cos[j] + a * sin[j];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg_20b() -> Config {
        Config::from_json_str(crate::config::tests_support::GPT_OSS_20B).unwrap()
    }

    /// The correction range for the real config (`_compute_yarn_parameters`, `truncate = false`).
    #[test]
    fn yarn_correction_range_for_the_20b_config() {
        let (low, high) = correction_range(&cfg_20b());
        assert!((low - 8.0927791).abs() < 1e-6, "{low}");
        assert!((high - 17.3980245).abs() < 1e-6, "{high}");
    }

    /// The spec's formula (§5.5) evaluated in f64, for comparison with the f32 tables.
    fn spec_inv_freq(j: usize) -> f64 {
        let freq = 150000f64.powf(2.0 * j as f64 / 64.0);
        let low = 32.0 * (4096f64 / (32.0 * 2.0 * std::f64::consts::PI)).ln() / 150000f64.ln();
        let high = 32.0 * (4096f64 / (2.0 * std::f64::consts::PI)).ln() / 150000f64.ln();
        let ramp = ((j as f64 - low) / (high - low)).clamp(0.0, 1.0);
        (1.0 / (32.0 * freq)) * ramp + (1.0 / freq) * (1.0 - ramp)
    }

    /// YaRN inverse frequencies for the real 20b config: within f32 rounding of the spec's
    /// formula for every j, within one printed digit of the values the spec lists for
    /// j = 0..17, exactly the "divided by 32" branch for j >= 18; m = 0.1·ln 32 + 1.
    #[test]
    fn yarn_inverse_frequencies_for_the_20b_config() {
        let rope = Rope::new(&cfg_20b());
        for j in 0..32 {
            let (got, want) = (rope.inv_freq()[j] as f64, spec_inv_freq(j));
            assert!(
                (got - want).abs() <= want * 2e-6,
                "j = {j}: {got} vs {want}"
            );
        }
        let listed = [
            "1",
            "0.68904",
            "0.47478",
            "0.32715",
            "0.22542",
            "0.15532",
            "0.10702",
            "0.073745",
            "0.050813",
            "3.17057e-2",
            "1.93350e-2",
            "1.15921e-2",
            "6.79496e-3",
            "3.86036e-3",
            "2.09379e-3",
            "1.05260e-3",
            "4.56484e-4",
            "1.29319e-4",
        ];
        for (j, text) in listed.iter().enumerate() {
            // One unit in the last printed digit: the listing is rounded, and its j = 11 entry
            // (1.15921e-2) is one unit above what the spec's own formula gives (1.159205e-2).
            let (mantissa, exp) = text
                .split_once('e')
                .map_or((*text, 0), |(m, e)| (m, e.parse::<i32>().unwrap()));
            let decimals = mantissa.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
            let tol = 10f64.powi(exp - decimals);
            let got = rope.inv_freq()[j] as f64;
            assert!(
                (got - text.parse::<f64>().unwrap()).abs() <= tol,
                "j = {j}: {got} vs {text}"
            );
        }
        for j in 18..32 {
            let want = 1.0 / (32.0 * 150000f64.powf(2.0 * j as f64 / 64.0));
            assert!(
                (rope.inv_freq()[j] as f64 - want).abs() <= want * 2e-6,
                "j = {j}"
            );
        }
        assert!((rope.scaling() as f64 - 1.3465736).abs() < 1e-6);
    }

    /// Half-split pairing: element j turns with element j + d/2, and m scales both cos and sin.
    #[test]
    fn rope_pairs_halves_and_scales_both_cos_and_sin() {
        let rope = Rope::new(&cfg_20b());
        let mut x = vec![0f32; 64];
        x[0] = 1.0;
        rope.apply(&mut x, 1, 1);
        let m = rope.scaling();
        let theta = rope.inv_freq()[0];
        assert!((x[0] - theta.cos() * m).abs() < 1e-6);
        assert!((x[32] - theta.sin() * m).abs() < 1e-6);
        assert!(
            x.iter()
                .enumerate()
                .all(|(i, &v)| i == 0 || i == 32 || v == 0.0)
        );
        // Position 0 only scales.
        let mut y = vec![0.5f32; 64];
        rope.apply(&mut y, 1, 0);
        assert!(y.iter().all(|&v| (v - 0.5 * m).abs() < 1e-6));
    }
}
