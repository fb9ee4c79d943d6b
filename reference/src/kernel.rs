//! The f32 dot-product kernels behind [`crate::linear::matmul`], with the plain version beside
//! the fast one.
//!
//! Every output is `Σ_i w[i]·x[i]` summed the same way: eight lanes (`acc[i % 8] += w[i]·x[i]`,
//! `i` ascending), then the fixed tree of [`reduce`]. [`dot`] is that definition written
//! plainly. [`block`] computes an `R × T` block of such dots at once (R weight rows against T
//! tokens), so each loaded weight chunk is used T times and each input chunk R times, and the
//! lanes map onto one 256-bit (or two 128-bit) vector register; the per-output arithmetic is
//! unchanged, so every output of [`block`] is bit-identical to [`dot`] of the same pair.
//!
//! [`rows_by_tokens`] runs [`block`] over a tile of rows and a batch of tokens. On x86_64 with
//! AVX2 it runs a copy of the same code compiled with AVX2 enabled (chosen once, at run time);
//! elsewhere the same code compiled for the baseline target. Rust never contracts `a·b + c` into
//! a fused multiply-add, so both copies round identically; tests pin them against [`dot`].

/// Accumulator lanes.
pub const LANES: usize = 8;

/// `Σ a[i]·b[i]` with eight interleaved partial sums and a fixed reduction tree: the definition
/// every kernel here must match bit for bit.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; LANES];
    let (a8, a_tail) = a.split_at(a.len() / LANES * LANES);
    let (b8, b_tail) = b.split_at(a8.len());
    for (x, y) in a8.chunks_exact(LANES).zip(b8.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    for (l, (x, y)) in a_tail.iter().zip(b_tail).enumerate() {
        acc[l] += x * y;
    }
    reduce(acc)
}

/// The reduction tree of the eight lanes.
#[inline(always)]
pub fn reduce(acc: [f32; LANES]) -> f32 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// `out[r][t] = dot(w[r], x[t])` for R rows and T tokens, all of length `n`.
#[inline(always)]
fn block<const R: usize, const T: usize>(w: [&[f32]; R], x: [&[f32]; T]) -> [[f32; T]; R] {
    let n = w[0].len();
    let n8 = n / LANES * LANES;
    let wc: [&[[f32; LANES]]; R] = w.map(|s| s[..n8].as_chunks::<LANES>().0);
    let xc: [&[[f32; LANES]]; T] = x.map(|s| s[..n8].as_chunks::<LANES>().0);
    let mut acc = [[[0f32; LANES]; T]; R];
    for i in 0..n8 / LANES {
        let wv: [[f32; LANES]; R] = std::array::from_fn(|r| wc[r][i]);
        let xv: [[f32; LANES]; T] = std::array::from_fn(|t| xc[t][i]);
        for r in 0..R {
            for t in 0..T {
                for l in 0..LANES {
                    acc[r][t][l] += wv[r][l] * xv[t][l];
                }
            }
        }
    }
    let mut out = [[0f32; T]; R];
    for r in 0..R {
        for t in 0..T {
            for (l, j) in (n8..n).enumerate() {
                acc[r][t][l] += w[r][j] * x[t][j];
            }
            out[r][t] = reduce(acc[r][t]);
        }
    }
    out
}

/// Rows per block: two rows × four tokens keeps eight 8-lane accumulators in registers.
const R_BLOCK: usize = 2;
/// Tokens per block.
const T_BLOCK: usize = 4;
/// Rows per block when there is a single token (decoding): four independent sums.
const R_BLOCK_ONE: usize = 4;

/// `out[r·n_tok + t] = dot(w[r], x[t])` for `w` `[rows, cols]` and `x` `[n_tok, cols]`.
#[inline(always)]
fn rows_by_tokens_body(w: &[f32], x: &[f32], cols: usize, out: &mut [f32]) {
    let rows = w.len() / cols;
    let n_tok = x.len() / cols;
    let wr = |r: usize| &w[r * cols..(r + 1) * cols];
    let xt = |t: usize| &x[t * cols..(t + 1) * cols];
    let mut r = 0;
    if n_tok == 1 {
        while r + R_BLOCK_ONE <= rows {
            let o = block::<R_BLOCK_ONE, 1>(std::array::from_fn(|k| wr(r + k)), [xt(0)]);
            for k in 0..R_BLOCK_ONE {
                out[r + k] = o[k][0];
            }
            r += R_BLOCK_ONE;
        }
    }
    while r + R_BLOCK <= rows {
        let ws: [&[f32]; R_BLOCK] = std::array::from_fn(|k| wr(r + k));
        let mut t = 0;
        while t + T_BLOCK <= n_tok {
            let o = block::<R_BLOCK, T_BLOCK>(ws, std::array::from_fn(|k| xt(t + k)));
            for k in 0..R_BLOCK {
                out[(r + k) * n_tok + t..(r + k) * n_tok + t + T_BLOCK].copy_from_slice(&o[k]);
            }
            t += T_BLOCK;
        }
        while t < n_tok {
            let o = block::<R_BLOCK, 1>(ws, [xt(t)]);
            for k in 0..R_BLOCK {
                out[(r + k) * n_tok + t] = o[k][0];
            }
            t += 1;
        }
        r += R_BLOCK;
    }
    while r < rows {
        let mut t = 0;
        while t + T_BLOCK <= n_tok {
            let o = block::<1, T_BLOCK>([wr(r)], std::array::from_fn(|k| xt(t + k)));
            out[r * n_tok + t..r * n_tok + t + T_BLOCK].copy_from_slice(&o[0]);
            t += T_BLOCK;
        }
        while t < n_tok {
            out[r * n_tok + t] = dot(wr(r), xt(t));
            t += 1;
        }
        r += 1;
    }
}

/// `out[r·n_tok + t] = dot(w[r], x[t])` for a tile `w` of `[rows, cols]` and a batch `x` of
/// `[n_tok, cols]` (both row-major; `out` is `[rows, n_tok]`). Bit-identical to
/// [`rows_by_tokens_plain`] on every machine.
pub fn rows_by_tokens(w: &[f32], x: &[f32], cols: usize, out: &mut [f32]) {
    check(w, x, cols, out);
    if cols == 0 {
        out.fill(0.0);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        avx2::rows_by_tokens(w, x, cols, out);
        return;
    }
    rows_by_tokens_body(w, x, cols, out);
}

/// [`rows_by_tokens`] as one [`dot`] per output: what the fast path is tested against.
pub fn rows_by_tokens_plain(w: &[f32], x: &[f32], cols: usize, out: &mut [f32]) {
    check(w, x, cols, out);
    if cols == 0 {
        out.fill(0.0);
        return;
    }
    let n_tok = x.len() / cols;
    for (r, wr) in w.chunks_exact(cols).enumerate() {
        for (t, xt) in x.chunks_exact(cols).enumerate() {
            out[r * n_tok + t] = dot(wr, xt);
        }
    }
}

fn check(w: &[f32], x: &[f32], cols: usize, out: &mut [f32]) {
    if cols == 0 {
        return;
    }
    assert!(
        w.len().is_multiple_of(cols) && x.len().is_multiple_of(cols),
        "whole rows and tokens"
    );
    assert_eq!(
        out.len(),
        w.len() / cols * (x.len() / cols),
        "output is [rows, n_tok]"
    );
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::sync::OnceLock;

    /// Whether the CPU has AVX2 (checked once).
    pub fn available() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| std::arch::is_x86_feature_detected!("avx2"))
    }

    /// The portable body compiled with AVX2 enabled: the same operations in the same order,
    /// on 256-bit registers.
    #[target_feature(enable = "avx2")]
    fn body(w: &[f32], x: &[f32], cols: usize, out: &mut [f32]) {
        super::rows_by_tokens_body(w, x, cols, out);
    }

    pub fn rows_by_tokens(w: &[f32], x: &[f32], cols: usize, out: &mut [f32]) {
        assert!(available());
        // SAFETY: `body` only requires the AVX2 target feature, which `available()` just
        // confirmed this CPU has. It contains no other unsafe operation.
        #[allow(unsafe_code)]
        unsafe {
            body(w, x, cols, out)
        }
    }
}

/// Which code path [`rows_by_tokens`] takes on this machine (for the benchmark's report).
pub fn path() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        return "avx2";
    }
    "portable"
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic values in [-0.5, 0.5) (an LCG), for tests.
    pub(crate) fn pseudo(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    /// Every shape class (row and token remainders, column tails, a single token) gives the
    /// same bits as one `dot` per output, on whichever path this machine takes and on the
    /// portable path.
    #[test]
    fn blocks_are_bit_identical_to_dot() {
        for (rows, cols, n_tok) in [
            (1, 8, 1),
            (7, 29, 1),
            (9, 64, 1),
            (5, 96, 4),
            (6, 2880 / 8, 9),
            (3, 13, 7),
            (16, 200, 64),
            (2, 5, 3),
        ] {
            let w = pseudo(rows * cols, rows as u64);
            let x = pseudo(n_tok * cols, cols as u64);
            let mut plain = vec![0f32; rows * n_tok];
            rows_by_tokens_plain(&w, &x, cols, &mut plain);
            let mut fast = vec![1f32; rows * n_tok];
            rows_by_tokens(&w, &x, cols, &mut fast);
            let mut portable = vec![2f32; rows * n_tok];
            rows_by_tokens_body(&w, &x, cols, &mut portable);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&plain), "{rows}x{cols} by {n_tok}");
            assert_eq!(bits(&portable), bits(&plain), "{rows}x{cols} by {n_tok}");
        }
    }
}
