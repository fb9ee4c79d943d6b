//! The f32 dot-product kernels behind [`crate::linear::matmul`], with the plain version beside
//! the fast one.
//!
//! Every output is `Σ_i w[i]·x[i]` summed the same way: eight lanes, each a chain of fused
//! multiply-adds over its own columns (`acc[i % 8] = fma(w[i], x[i], acc[i % 8])`, `i`
//! ascending, one rounding per step), then the fixed tree of [`reduce`]. [`dot_plain`] is that
//! definition written plainly, with [`f32::mul_add`] (IEEE `fusedMultiplyAdd`, correctly
//! rounded on every target: an instruction where the CPU has one, a libm routine otherwise).
//!
//! The fast kernels compute the same chains in another order of *work*, never of arithmetic:
//! [`rows_by_tokens`] takes an `R × T` register block (R weight rows against T tokens), so each
//! loaded weight chunk is used T times and each input chunk R times; rows wider than
//! [`K_BLOCK`] are walked in column blocks, between which each output's eight lane sums wait in
//! a scratch buffer, bit for bit. So every
//! output of every path is bit-identical to [`dot_plain`] of the same pair, whatever the batch,
//! the tile, the thread count or the CPU.
//!
//! On x86_64 with AVX2 and FMA the kernels run a copy of the same code compiled with those
//! features enabled (chosen once, at run time): the eight lanes map onto one 256-bit register
//! and `mul_add` onto `vfmadd`. Elsewhere the same code is compiled for the baseline target
//! (fast where FMA is an instruction, as on aarch64; slow but identical where `mul_add` is a
//! libm call). Tests pin every path against [`dot_plain`].

/// Accumulator lanes.
pub const LANES: usize = 8;

/// Columns per block of the blocked kernel (a multiple of [`LANES`]). Rows at least this wide
/// are walked in blocks, each output's lane sums waiting in scratch between blocks. gpt-oss's
/// widths (2880, 4096) fit in one block: measured on Zen 3 with 24-row tiles, blocks of 256 or
/// 720 columns were 10–14 % slower than none (the rows and tokens of a 3 × 4 block stream from
/// L2 fast enough, and the scratch round trips cost more than they save).
pub const K_BLOCK: usize = 4096;

/// Rows of a register block when there are several tokens.
const R_BLOCK: usize = 3;
/// Tokens of a register block.
const T_BLOCK: usize = 4;
/// Rows of a register block when there is a single token (decoding): six independent chains.
const R_BLOCK_ONE: usize = 6;

/// `Σ a[i]·b[i]` as eight interleaved chains of fused multiply-adds and a fixed reduction tree:
/// the definition every kernel here must match bit for bit.
pub fn dot_plain(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot of unequal lengths");
    let mut acc = [0f32; LANES];
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        acc[i % LANES] = x.mul_add(*y, acc[i % LANES]);
    }
    reduce(acc)
}

/// The reduction tree of the eight lanes.
#[inline(always)]
pub fn reduce(acc: [f32; LANES]) -> f32 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// [`dot_plain`] for one pair, written to vectorize.
#[inline(always)]
fn dot_body(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot of unequal lengths");
    let n8 = a.len() / LANES * LANES;
    let mut acc = [0f32; LANES];
    for (x, y) in a[..n8]
        .as_chunks::<LANES>()
        .0
        .iter()
        .zip(b[..n8].as_chunks::<LANES>().0)
    {
        for l in 0..LANES {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    for (l, (x, y)) in a[n8..].iter().zip(&b[n8..]).enumerate() {
        acc[l] = x.mul_add(*y, acc[l]);
    }
    reduce(acc)
}

/// `Σ a[i]·b[i]`, bit-identical to [`dot_plain`] (on the fastest path this machine has).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if fma::available() {
        return fma::dot(a, b);
    }
    dot_body(a, b)
}

/// Advances the lane sums `acc[r][t]` of an `R × T` block over one column block: `w[r]` and
/// `x[t]` are the block's columns (a multiple of [`LANES`] long).
#[inline(always)]
fn block<const R: usize, const T: usize>(
    w: [&[f32]; R],
    x: [&[f32]; T],
    acc: &mut [[[f32; LANES]; T]; R],
) {
    let n = w[0].len() / LANES;
    let wc: [&[[f32; LANES]]; R] = w.map(|s| &s.as_chunks::<LANES>().0[..n]);
    let xc: [&[[f32; LANES]]; T] = x.map(|s| &s.as_chunks::<LANES>().0[..n]);
    let mut a = *acc;
    for i in 0..n {
        let wv: [[f32; LANES]; R] = std::array::from_fn(|r| wc[r][i]);
        for t in 0..T {
            let xv = xc[t][i];
            for r in 0..R {
                for l in 0..LANES {
                    a[r][t][l] = wv[r][l].mul_add(xv[l], a[r][t][l]);
                }
            }
        }
    }
    *acc = a;
}

/// Scratch of `rows_by_tokens_in`: one output's eight lane sums, `[rows, n_tok]`.
pub type Lanes = [f32; LANES];

/// Runs [`block`] for rows `r0 .. r0 + R` against every token of `tokens` (in blocks of
/// `T_BLOCK`, then one by one), over columns `k0 .. k1`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn rows_over_tokens<const R: usize>(
    w: &[f32],
    x: &[f32],
    cols: usize,
    n_tok: usize,
    r0: usize,
    tokens: std::ops::Range<usize>,
    (k0, k1): (usize, usize),
    lanes: &mut [Lanes],
) {
    let wr = |r: usize| &w[r * cols + k0..r * cols + k1];
    let xt = |t: usize| &x[t * cols + k0..t * cols + k1];
    let ws: [&[f32]; R] = std::array::from_fn(|k| wr(r0 + k));
    let mut t = tokens.start;
    while t < tokens.end {
        macro_rules! go {
            ($T:expr) => {{
                let mut acc: [[Lanes; $T]; R] = std::array::from_fn(|r| {
                    std::array::from_fn(|j| lanes[(r0 + r) * n_tok + t + j])
                });
                block::<R, $T>(ws, std::array::from_fn(|j| xt(t + j)), &mut acc);
                for (r, row) in acc.iter().enumerate() {
                    lanes[(r0 + r) * n_tok + t..(r0 + r) * n_tok + t + $T].copy_from_slice(row);
                }
                t += $T;
            }};
        }
        match tokens.end - t {
            T_BLOCK.. => go!(T_BLOCK),
            3 => go!(3),
            2 => go!(2),
            _ => go!(1),
        }
    }
}

/// `out[r·n_tok + t] = dot(w[r], x[t])` for `w` `[rows, cols]` and `x` `[n_tok, cols]`, with
/// `lanes` as scratch (`rows · n_tok` long).
#[inline(always)]
fn rows_by_tokens_body(
    w: &[f32],
    x: &[f32],
    cols: usize,
    out: &mut [f32],
    lanes: &mut [Lanes],
    ahead: [&[u8]; 2],
    prefetch: impl Fn(&[u8]),
) {
    let rows = w.len() / cols;
    let n_tok = x.len() / cols;
    let n8 = cols / LANES * LANES;
    lanes.fill([0.0; LANES]);
    let (r_block, t_span) = if n_tok == 1 {
        (R_BLOCK_ONE, 1)
    } else {
        (R_BLOCK, T_BLOCK)
    };
    // The prefetch of `ahead`, spread over the (column block, token block) steps.
    let steps = n8.div_ceil(K_BLOCK) * n_tok.div_ceil(t_span);
    let mut step = 0;
    let mut k0 = 0;
    while k0 < n8 {
        let k1 = (k0 + K_BLOCK).min(n8);
        // Tokens outer, rows inner: a block of T tokens stays in L1 while the rows pass.
        let mut t0 = 0;
        while t0 < n_tok {
            for a in ahead {
                let (lo, hi) = (a.len() * step / steps, a.len() * (step + 1) / steps);
                prefetch(&a[lo..hi]);
            }
            step += 1;
            let tokens = t0..(t0 + t_span).min(n_tok);
            let mut r = 0;
            while r < rows {
                let ks = (k0, k1);
                let tk = tokens.clone();
                match (rows - r).min(r_block) {
                    R_BLOCK_ONE => {
                        rows_over_tokens::<R_BLOCK_ONE>(w, x, cols, n_tok, r, tk, ks, lanes)
                    }
                    5 => rows_over_tokens::<5>(w, x, cols, n_tok, r, tk, ks, lanes),
                    4 => rows_over_tokens::<4>(w, x, cols, n_tok, r, tk, ks, lanes),
                    3 => rows_over_tokens::<3>(w, x, cols, n_tok, r, tk, ks, lanes),
                    2 => rows_over_tokens::<2>(w, x, cols, n_tok, r, tk, ks, lanes),
                    _ => rows_over_tokens::<1>(w, x, cols, n_tok, r, tk, ks, lanes),
                }
                r += (rows - r).min(r_block);
            }
            t0 = tokens.end;
        }
        k0 = k1;
    }
    for r in 0..rows {
        for t in 0..n_tok {
            let mut acc = lanes[r * n_tok + t];
            let (wt, xt) = (
                &w[r * cols + n8..(r + 1) * cols],
                &x[t * cols + n8..(t + 1) * cols],
            );
            for (l, (a, b)) in wt.iter().zip(xt).enumerate() {
                acc[l] = a.mul_add(*b, acc[l]);
            }
            out[r * n_tok + t] = reduce(acc);
        }
    }
}

/// `out[r·n_tok + t] = dot(w[r], x[t])` for a tile `w` of `[rows, cols]` and a batch `x` of
/// `[n_tok, cols]` (both row-major; `out` is `[rows, n_tok]`), with `lanes` as scratch (resized
/// to `rows · n_tok`; reuse it across calls). Bit-identical to [`rows_by_tokens_plain`] on every
/// machine. `ahead` (the storage of the next tile, say) is prefetched into the caches while
/// this one computes; it does not affect the result.
pub fn rows_by_tokens(
    w: &[f32],
    x: &[f32],
    cols: usize,
    out: &mut [f32],
    lanes: &mut Vec<Lanes>,
    ahead: [&[u8]; 2],
) {
    check(w, x, cols, out);
    if cols == 0 {
        out.fill(0.0);
        return;
    }
    lanes.resize(out.len(), [0.0; LANES]);
    #[cfg(target_arch = "x86_64")]
    if fma::available() {
        fma::rows_by_tokens(w, x, cols, out, lanes, ahead);
        return;
    }
    rows_by_tokens_body(w, x, cols, out, lanes, ahead, |_| {});
}

/// [`rows_by_tokens`] as one [`dot_plain`] per output: what the fast path is tested against.
pub fn rows_by_tokens_plain(w: &[f32], x: &[f32], cols: usize, out: &mut [f32]) {
    check(w, x, cols, out);
    if cols == 0 {
        out.fill(0.0);
        return;
    }
    let n_tok = x.len() / cols;
    for (r, wr) in w.chunks_exact(cols).enumerate() {
        for (t, xt) in x.chunks_exact(cols).enumerate() {
            out[r * n_tok + t] = dot_plain(wr, xt);
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

/// The AVX2 + FMA copies (x86_64 only).
#[cfg(target_arch = "x86_64")]
pub(crate) mod fma {
    use super::Lanes;
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    use std::sync::OnceLock;

    /// Whether the CPU has AVX2 and FMA (checked once).
    pub fn available() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }

    /// The portable bodies compiled with AVX2 and FMA enabled: the same operations in the
    /// same order, on 256-bit registers.
    #[target_feature(enable = "avx2,fma")]
    fn rows_by_tokens_fma(
        w: &[f32],
        x: &[f32],
        cols: usize,
        out: &mut [f32],
        lanes: &mut [Lanes],
        ahead: [&[u8]; 2],
    ) {
        // A hint: never faults, never changes a result.
        let prefetch = |bytes: &[u8]| {
            for line in bytes.chunks(64) {
                _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast());
            }
        };
        super::rows_by_tokens_body(w, x, cols, out, lanes, ahead, prefetch);
    }

    #[target_feature(enable = "avx2,fma")]
    fn dot_fma(a: &[f32], b: &[f32]) -> f32 {
        super::dot_body(a, b)
    }

    pub fn rows_by_tokens(
        w: &[f32],
        x: &[f32],
        cols: usize,
        out: &mut [f32],
        lanes: &mut [Lanes],
        ahead: [&[u8]; 2],
    ) {
        assert!(available());
        // SAFETY: `rows_by_tokens_fma` only requires the AVX2 and FMA target features, which
        // `available()` just confirmed this CPU has. It contains no other unsafe operation.
        #[allow(unsafe_code)]
        unsafe {
            rows_by_tokens_fma(w, x, cols, out, lanes, ahead)
        }
    }

    #[inline]
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        debug_assert!(available());
        // SAFETY: as above; callers check `available()` first.
        #[allow(unsafe_code)]
        unsafe {
            dot_fma(a, b)
        }
    }
}

/// Which code path [`rows_by_tokens`] takes on this machine (for the benchmark's report).
pub fn path() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if fma::available() {
        return "avx2+fma";
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

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|f| f.to_bits()).collect()
    }

    /// Every shape class (row and token remainders, column tails, several column blocks, a
    /// single token) gives the same bits as one `dot_plain` per output, on whichever path this
    /// machine takes and on the portable path.
    #[test]
    fn blocks_are_bit_identical_to_dot_plain() {
        for (rows, cols, n_tok) in [
            (1, 8, 1),
            (7, 29, 1),
            (9, 64, 1),
            (13, 2880, 1),
            (5, 96, 4),
            (6, 2880 / 8, 9),
            (3, 13, 7),
            (16, 200, 64),
            (2, 5, 3),
            (25, 2880, 11),
            (4, 3 * K_BLOCK + 5, 6),
            (3, 7, 2),
        ] {
            let w = pseudo(rows * cols, rows as u64);
            let x = pseudo(n_tok * cols, cols as u64);
            let mut plain = vec![0f32; rows * n_tok];
            rows_by_tokens_plain(&w, &x, cols, &mut plain);
            let mut lanes = Vec::new();
            let mut fast = vec![1f32; rows * n_tok];
            rows_by_tokens(&w, &x, cols, &mut fast, &mut lanes, [&[1, 2], &[]]);
            let mut portable = vec![2f32; rows * n_tok];
            rows_by_tokens_body(&w, &x, cols, &mut portable, &mut lanes, [&[3], &[]], |_| {});
            assert_eq!(bits(&fast), bits(&plain), "{rows}x{cols} by {n_tok}");
            assert_eq!(bits(&portable), bits(&plain), "{rows}x{cols} by {n_tok}");
            for r in 0..rows {
                let (a, b) = (&w[r * cols..(r + 1) * cols], &x[..cols]);
                assert_eq!(dot(a, b).to_bits(), plain[r * n_tok].to_bits());
                assert_eq!(dot_body(a, b).to_bits(), plain[r * n_tok].to_bits());
            }
        }
    }

    /// The lanes are fused: one rounding per step, not two. `(1 + ε)(1 − ε) = 1 − ε²` rounds to
    /// 1 as a product, so a separate multiply and add would leave `−1 + 1 = 0` in lane 0.
    #[test]
    fn lanes_are_fused_multiply_adds() {
        let e = f32::EPSILON;
        let a = [1.0, 0., 0., 0., 0., 0., 0., 0., 1.0 + e];
        let b = [-1.0, 0., 0., 0., 0., 0., 0., 0., 1.0 - e];
        assert_eq!(dot_plain(&a, &b), -e * e);
        assert_eq!(dot(&a, &b), -e * e);
        let mut out = [0f32];
        rows_by_tokens(&a, &b, 9, &mut out, &mut Vec::new(), [&[], &[]]);
        assert_eq!(out[0], -e * e);
    }
}
