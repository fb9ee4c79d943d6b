//! `y = W x (+ b)` for a batch of tokens, over any [`MatRef`] encoding.
//!
//! The weight is dequantized a tile of rows at a time into an f32 buffer, and each tile is used
//! for every token of the batch, so a weight (an expert, say) is decoded once per batch however
//! many tokens use it. Tiles are spread over threads with rayon.
//!
//! Determinism: every output element is one [`dot`] over the full input, with a fixed lane
//! structure and reduction tree (computed in register blocks by [`crate::kernel`], bit-identical
//! to [`dot`]). Nothing about it depends on the thread count, the tile size, the batch size, the
//! CPU's vector width or the storage encoding, so two weights with identical values give bit-identical
//! outputs, which is what lets `verify` demand a max |Δlogit| of exactly 0 for lossless variants.
//! [`matmul_naive`] is the plain triple loop the fast path is tested against.

use crate::kernel;
pub use crate::kernel::dot;
use crate::tensor::MatRef;
use rayon::prelude::*;

/// Rows of the weight dequantized together.
const TILE_ROWS: usize = 24;

/// Outputs computed per group of rows (see [`matmul`]): 4 MB, reused across groups.
const GROUP_FLOATS: usize = 1 << 20;

/// Outputs from which moving a group into place is worth splitting across threads.
const PARALLEL_MOVE: usize = 1 << 16;

thread_local! {
    /// Each thread's decoded tile and lane sums, kept between calls (a fresh 300 KB buffer per
    /// tile would cost page faults and zeroing).
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<kernel::Lanes>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// `y[t, o] = Σ_i W[o, i]·x[t, i] + bias[o]` for `n_tok` tokens.
///
/// `x` is `[n_tok, W.cols]`, `y` is `[n_tok, W.rows]`, both row-major.
pub fn matmul(w: &MatRef<'_>, x: &[f32], n_tok: usize, bias: Option<&[f32]>, y: &mut [f32]) {
    let (rows, cols) = (w.rows(), w.cols());
    assert_eq!(x.len(), n_tok * cols, "matmul input shape");
    assert_eq!(y.len(), n_tok * rows, "matmul output shape");
    if let Some(b) = bias {
        assert_eq!(b.len(), rows, "matmul bias length");
    }
    if n_tok == 0 || rows == 0 {
        return;
    }
    matmul_in_groups(w, x, n_tok, bias, y, GROUP_FLOATS);
}

/// [`matmul`] with groups of about `group_floats` outputs (shapes already checked).
fn matmul_in_groups(
    w: &MatRef<'_>,
    x: &[f32],
    n_tok: usize,
    bias: Option<&[f32]>,
    y: &mut [f32],
    group_floats: usize,
) {
    let (rows, cols) = (w.rows(), w.cols());
    // Output rows in groups: each group's output is computed transposed ([rows, n_tok], so
    // each tile of rows owns a contiguous slab) in a buffer of at most about GROUP_FLOATS,
    // then moved into `y`. A buffer the size of the whole output (the unembedding's is
    // n_tok × 201088) would be fresh memory for the kernel to zero on every call.
    let group = (group_floats / n_tok).max(1).div_ceil(TILE_ROWS) * TILE_ROWS;
    let mut yt = vec![0f32; group.min(rows) * n_tok];
    for g0 in (0..rows).step_by(group) {
        let g1 = (g0 + group).min(rows);
        let yt = &mut yt[..(g1 - g0) * n_tok];
        yt.par_chunks_mut(TILE_ROWS * n_tok)
            .enumerate()
            .for_each(|(ci, slab)| {
                SCRATCH.with_borrow_mut(|(tile, lanes)| {
                    let r0 = g0 + ci * TILE_ROWS;
                    let n_rows = slab.len() / n_tok;
                    tile.resize(n_rows * cols, 0.0);
                    w.dequant_rows(r0, &mut tile[..n_rows * cols]);
                    let ahead = w.rows_storage(r0 + n_rows, r0 + 2 * n_rows);
                    kernel::rows_by_tokens(&tile[..n_rows * cols], x, cols, slab, lanes, ahead);
                })
            });
        let yt = &*yt;
        let move_out = |t: usize, yrow: &mut [f32]| {
            for (o, v) in yrow[g0..g1].iter_mut().enumerate() {
                *v = yt[o * n_tok + t] + bias.map_or(0.0, |b| b[g0 + o]);
            }
        };
        if yt.len() >= PARALLEL_MOVE {
            y.par_chunks_mut(rows)
                .enumerate()
                .for_each(|(t, yrow)| move_out(t, yrow));
        } else {
            for (t, yrow) in y.chunks_mut(rows).enumerate() {
                move_out(t, yrow);
            }
        }
    }
}

/// The plain triple loop: the algorithmic reference [`matmul`] is tested against.
pub fn matmul_naive(w: &MatRef<'_>, x: &[f32], n_tok: usize, bias: Option<&[f32]>, y: &mut [f32]) {
    let (rows, cols) = (w.rows(), w.cols());
    let wf = w.to_f32();
    for t in 0..n_tok {
        for o in 0..rows {
            let mut s = 0f32;
            for i in 0..cols {
                s += wf[o * cols + i] * x[t * cols + i];
            }
            y[t * rows + o] = s + bias.map_or(0.0, |b| b[o]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::tests::pseudo;
    use crate::tensor::{DenseType, Encoding};
    use quant::float;

    #[test]
    fn fast_matmul_agrees_with_the_naive_loop() {
        for (rows, cols, n_tok) in [(37, 64, 1), (16, 96, 5), (50, 200, 9), (3, 8, 4)] {
            let wf = pseudo(rows * cols, 1);
            let x = pseudo(n_tok * cols, 2);
            let bias = pseudo(rows, 3);
            let mut wb = vec![0u8; wf.len() * 4];
            float::f32_row_to_le(&wf, &mut wb);
            let w = MatRef::dense(DenseType::F32, &wb, rows, cols).unwrap();
            let mut fast = vec![0f32; n_tok * rows];
            let mut slow = vec![0f32; n_tok * rows];
            matmul(&w, &x, n_tok, Some(&bias), &mut fast);
            matmul_naive(&w, &x, n_tok, Some(&bias), &mut slow);
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }

    /// The property `verify` relies on: equal values in, bit-identical outputs out, whatever the
    /// encoding, the batch size or the thread count.
    #[test]
    fn outputs_do_not_depend_on_layout_batch_or_threads() {
        let (rows, cols) = (60, 96);
        let wf: Vec<f32> = pseudo(rows * cols, 7)
            .iter()
            .map(|v| float::bf16_bits_to_f32(float::f32_to_bf16_bits(*v)))
            .collect();
        let mut row_major = vec![0u8; rows * cols * 2];
        float::f32_row_to_bf16(&wf, &mut row_major);
        // The same values stored in-major ([cols, rows]), as transformers stores experts.
        let mut t = vec![0f32; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = wf[r * cols + c];
            }
        }
        let mut in_major = vec![0u8; rows * cols * 4];
        float::f32_row_to_le(&t, &mut in_major);
        let a = MatRef::dense(DenseType::BF16, &row_major, rows, cols).unwrap();
        let b = MatRef::new(
            rows,
            cols,
            Encoding::Dense {
                dtype: DenseType::F32,
                data: &in_major,
                row_stride: 1,
                col_stride: rows,
            },
        )
        .unwrap();
        let x = pseudo(7 * cols, 9);
        let mut ya = vec![0f32; 7 * rows];
        let mut yb = vec![0f32; 7 * rows];
        matmul(&a, &x, 7, None, &mut ya);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        pool.install(|| matmul(&b, &x, 7, None, &mut yb));
        assert_eq!(ya, yb);
        // Groups of one tile, of several tiles and of all rows give the same bits.
        for group_floats in [1, 24 * 7 * 2, 1 << 20] {
            let mut yg = vec![0f32; 7 * rows];
            matmul_in_groups(&a, &x, 7, None, &mut yg, group_floats);
            assert_eq!(ya, yg);
        }
        // Token 5 alone gives the same bits as inside the batch.
        let mut one = vec![0f32; rows];
        matmul(&a, &x[5 * cols..6 * cols], 1, None, &mut one);
        assert_eq!(&one[..], &ya[5 * rows..6 * rows]);
    }
}
