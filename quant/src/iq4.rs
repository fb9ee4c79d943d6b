//! ggml's 4-bit non-linear quants: `block_iq4_nl` and `block_iq4_xs`.
//!
//! Both store 4-bit indices into the signed table [`KVALUES_IQ4NL`] (`kvalues_iq4nl`,
//! `ggml/src/ggml-common.h`). Layouts, little-endian:
//!
//! | type | values | bytes | layout | value `k` |
//! |---|---|---|---|---|
//! | IQ4_NL | 32 | 18 | `d` (f16), `qs[16]` | `d · kv[q_k]` |
//! | IQ4_XS | 256 | 136 | `d` (f16), `scales_h` (u16), `scales_l[4]`, `qs[128]` | `d · (ls_b - 32) · kv[q_k]` |
//!
//! Nibbles: in each run of 32 values `qs[j]` holds element `j` (low) and `j + 16` (high), as in
//! Q4_0. IQ4_XS has 8 sub-blocks of 32 with 6-bit scales `ls_b`: low 4 bits in `scales_l[b/2]`
//! (low nibble for even `b`), high 2 bits at bits `2b..2b+1` of `scales_h`.
//!
//! The encoders are what `llama-quantize` writes without an importance matrix:
//! `ggml_quantize_chunk` → `quantize_iq4_nl` / `quantize_iq4_xs` with `quant_weights == NULL`
//! → `quantize_row_iq4_nl_impl(.., qw = NULL, ntry = 7)` (not `quantize_row_iq4_nl_ref`,
//! which uses `ntry = -1`). With no importance matrix the weights are `w_j = x_j²` (ggml's
//! `sigma2` only enters with an importance matrix). Per 32-value sub-block:
//!
//! 1. `max` = the first element of largest magnitude, with its sign; `amax < 1e-15` gives scale
//!    0.
//! 2. `d = -max / kv[0]`, codes `l_j = best_index(x_j / d)` (nearest table entry; on an exact
//!    midpoint the upper one), then the weighted least-squares scale
//!    `d = Σ w q x / Σ w q²`, `best = d · Σ w q x`.
//! 3. For `itry` in `-7..=7`: `id = (itry + kv[0]) / max`, codes `best_index(id · x_j)`, and the
//!    least-squares scale replaces `d` when `sumqx² > best · sumq2` (strictly).
//!
//! IQ4_NL then stores `d` as f16 and re-picks every code with `1/d` (the f32 `d`). IQ4_XS sets
//! the super-block scale `D = -max_scale / 32` (`max_scale`: the sub-block scale of largest
//! magnitude, signed), `ls_b = clamp(nearest_int(d_b / D), -32, 31) + 32`, and re-picks every
//! code with `1 / (D · (ls_b - 32))`.
//!
//! Source: `ggml/src/ggml-quants.c` (`best_index_int8`, `nearest_int`,
//! `quantize_row_iq4_nl_impl`, `quantize_iq4_nl`, `quantize_iq4_xs`, `dequantize_row_iq4_nl`,
//! `dequantize_row_iq4_xs`) of llama.cpp as vendored in llama-cpp-python 0.3.36
//! (<https://github.com/ggml-org/llama.cpp>), ported operation by operation in the same f32
//! order, so bytes and values are bit-identical.
//!
//! Two encoders, same bytes: the `*_scalar` functions are the plain port (ggml's binary search
//! [`best_index`]); the others, which [`crate::Codec`] uses, differ only in picking the nearest
//! table entry with [`best_index_fast`] (no data-dependent branches, about 2x faster; equal to
//! [`best_index`] on every f32 input). Both take about 16 table look-ups per value (15 tries +
//! 2 passes per 32 values), so IQ4 encodes tens of times slower than Q4_0, as in ggml.

use crate::legacy::{ggml_fp16_to_fp32, ggml_fp32_to_fp16};

/// ggml's `kvalues_iq4nl`: the 16 levels of the non-linear 4-bit grid.
pub const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// Elements per IQ4_NL block (ggml `QK4_NL`).
pub const IQ4_NL_BLOCK: usize = 32;
/// Bytes of one `block_iq4_nl`.
pub const IQ4_NL_BYTES: usize = 18;
/// Elements per IQ4_XS super-block (ggml `QK_K`).
pub const IQ4_XS_BLOCK: usize = 256;
/// Bytes of one `block_iq4_xs`.
pub const IQ4_XS_BYTES: usize = 136;

/// Sub-block size of both encoders.
const SUB: usize = 32;
/// Sub-blocks per IQ4_XS super-block.
const NSUB_XS: usize = IQ4_XS_BLOCK / SUB;
/// `ntry` of `quantize_iq4_nl` / `quantize_iq4_xs`.
const NTRY: i32 = 7;
/// ggml's `GROUP_MAX_EPS`.
const GROUP_MAX_EPS: f32 = 1e-15;

/// The table as f32, as C promotes `int8_t` in `float` arithmetic.
const KV_F32: [f32; 16] = {
    let mut t = [0f32; 16];
    let mut i = 0;
    while i < 16 {
        t[i] = KVALUES_IQ4NL[i] as f32;
        i += 1;
    }
    t
};

/// ggml's `best_index_int8(16, kvalues_iq4nl, x)`: the index of the nearest table value,
/// by the same comparisons in the same order (the upper index on an exact midpoint, 15 for NaN).
#[inline]
pub fn best_index(x: f32) -> u8 {
    let val = &KV_F32;
    if x <= val[0] {
        return 0;
    }
    if x >= val[15] {
        return 15;
    }
    let mut ml = 0usize;
    let mut mu = 15usize;
    while mu - ml > 1 {
        let mav = (ml + mu) / 2;
        if x < val[mav] {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - val[mu - 1] < val[mu] - x {
        (mu - 1) as u8
    } else {
        mu as u8
    }
}

/// [`best_index`] without the binary search (whose branches the CPU mispredicts). The search
/// converges on the bracket `val[mu-1] <= x < val[mu]`, so `mu` is the number of table values
/// `<= x` (the table is strictly increasing), counted here with plain comparisons; then the same
/// midpoint test on the same f32 differences. Equal to [`best_index`] for every f32 input
/// (checked on all 2^32 bit patterns when written; the unit tests sweep every table value and
/// midpoint and a stride of bit patterns).
#[inline(always)]
pub fn best_index_fast(x: f32) -> u8 {
    let val = &KV_F32;
    let mut mu = 1usize;
    for &v in &val[1..15] {
        mu += (v <= x) as usize;
    }
    let i = if x - val[mu - 1] < val[mu] - x {
        mu - 1
    } else {
        mu
    };
    if x <= val[0] {
        0
    } else if x >= val[15] || x.is_nan() {
        15
    } else {
        i as u8
    }
}

/// ggml's `nearest_int`: round half to even through the `1.5·2^23` trick, valid for
/// `|x| <= 4194303` (as ggml asserts only in debug builds, the bits are kept for any input).
#[inline]
fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12_582_912.0;
    let i = val.to_bits() as i32;
    (i & 0x007f_ffff) - 0x0040_0000
}

/// Step 1 of the module docs for one 32-value sub-block: the importance weights `x²` and the
/// value of largest magnitude (the first of equal magnitudes); `None` when that magnitude is
/// below `GROUP_MAX_EPS` (the sub-block's scale is then 0).
#[inline(always)]
fn weights_and_max(xb: &[f32; SUB]) -> Option<([f32; SUB], f32)> {
    let mut weight = [0f32; SUB];
    for (w, &x) in weight.iter_mut().zip(xb) {
        *w = x * x;
    }
    let mut amax = 0f32;
    let mut max = 0f32;
    for &x in xb {
        let ax = x.abs();
        if ax > amax {
            amax = ax;
            max = x;
        }
    }
    (amax >= GROUP_MAX_EPS).then_some((weight, max))
}

/// Steps 1-3 of the module docs for one 32-value sub-block: the f32 scale (0 for a block
/// below `GROUP_MAX_EPS`). The first pass's codes are not returned: both callers re-pick them.
#[inline(always)]
fn sub_block_scale(xb: &[f32; SUB], index: impl Fn(f32) -> u8 + Copy) -> f32 {
    let Some((weight, max)) = weights_and_max(xb) else {
        return 0.0;
    };
    let kv0 = KV_F32[0];
    let mut d = -max / kv0;
    let mut id = 1.0 / d;
    let mut sumqx = 0f32;
    let mut sumq2 = 0f32;
    for j in 0..SUB {
        let al = id * xb[j];
        let q = KV_F32[index(al) as usize];
        let w = weight[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
    }
    d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
    let mut best = d * sumqx;
    for itry in -NTRY..=NTRY {
        id = (itry + KVALUES_IQ4NL[0] as i32) as f32 / max;
        sumqx = 0.0;
        sumq2 = 0.0;
        for j in 0..SUB {
            let al = id * xb[j];
            let q = KV_F32[index(al) as usize];
            let w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    d
}

/// The inverse scales [`sub_block_scale`] tries: the first pass's, then `itry = -NTRY..=NTRY`.
const TRIALS: usize = 2 * NTRY as usize + 2;

/// [`sub_block_scale`] with its 16 trial scales side by side: every trial's sums run over the
/// values in the same order with the same f32 operations (only the trials, which do not depend
/// on each other, are interleaved, in lanes the compiler vectorizes), and the trials are then
/// compared in ggml's order, so the scale is bit-identical.
#[inline(always)]
fn sub_block_scale_lanes(xb: &[f32; SUB]) -> f32 {
    let Some((weight, max)) = weights_and_max(xb) else {
        return 0.0;
    };
    let mut ids = [0f32; TRIALS];
    ids[0] = 1.0 / (-max / KV_F32[0]);
    for (id, itry) in ids[1..].iter_mut().zip(-NTRY..=NTRY) {
        *id = (itry + KVALUES_IQ4NL[0] as i32) as f32 / max;
    }
    let mut sumqx = [0f32; TRIALS];
    let mut sumq2 = [0f32; TRIALS];
    let (kv_lo, kv_hi) = (KV_F32[0], KV_F32[15]);
    for (&x, &w) in xb.iter().zip(&weight) {
        // `KV_F32[best_index_fast(al)]` for every trial, by selects only: `lo`, the largest
        // table value `<= al`, unless `hi`, the smallest `> al`, is strictly nearer by the same
        // f32 differences; the first entry at or below the table, the last at or above it and
        // for NaN.
        let mut al = [0f32; TRIALS];
        for t in 0..TRIALS {
            al[t] = ids[t] * x;
        }
        let mut lo = [kv_lo; TRIALS];
        for &v in &KV_F32[1..15] {
            for t in 0..TRIALS {
                lo[t] = if v <= al[t] { v } else { lo[t] };
            }
        }
        let mut hi = [kv_hi; TRIALS];
        for &v in KV_F32[1..15].iter().rev() {
            for t in 0..TRIALS {
                hi[t] = if v > al[t] { v } else { hi[t] };
            }
        }
        for t in 0..TRIALS {
            let a = al[t];
            let q = if a - lo[t] < hi[t] - a { lo[t] } else { hi[t] };
            let q = if a >= kv_hi || a.is_nan() { kv_hi } else { q };
            let q = if a <= kv_lo { kv_lo } else { q };
            sumqx[t] += w * q * x;
            sumq2[t] += w * q * q;
        }
    }
    let mut d = if sumq2[0] > 0.0 {
        sumqx[0] / sumq2[0]
    } else {
        0.0
    };
    let mut best = d * sumqx[0];
    for t in 1..TRIALS {
        if sumq2[t] > 0.0 && sumqx[t] * sumqx[t] > best * sumq2[t] {
            d = sumqx[t] / sumq2[t];
            best = d * sumqx[t];
        }
    }
    d
}

/// The code of `x`: [`best_index_fast`] on the fast path, ggml's binary search ([`best_index`])
/// on the plain port.
#[inline(always)]
fn index_fn<const FAST: bool>(x: f32) -> u8 {
    if FAST {
        best_index_fast(x)
    } else {
        best_index(x)
    }
}

/// A sub-block's scale: [`sub_block_scale_lanes`] on the fast path, the plain port
/// [`sub_block_scale`] with ggml's binary search otherwise.
#[inline(always)]
fn sub_scale<const FAST: bool>(xb: &[f32; SUB]) -> f32 {
    if FAST {
        sub_block_scale_lanes(xb)
    } else {
        sub_block_scale(xb, best_index)
    }
}

/// Packs 32 codes into 16 bytes: `qs[j] = L[j] | L[j + 16] << 4`.
#[inline]
fn pack_codes(l: &[u8; SUB], qs: &mut [u8]) {
    for j in 0..SUB / 2 {
        qs[j] = l[j] | (l[16 + j] << 4);
    }
}

// ---------------------------------------------------------------------------------------------
// IQ4_NL

/// `quantize_row_iq4_nl_impl(32, 32, .., qw = NULL, ntry = 7)` for one block: 32 values → 18
/// bytes. Uses [`best_index_fast`]; the same bytes as [`quantize_block_iq4_nl_scalar`].
pub fn quantize_block_iq4_nl(x: &[f32; IQ4_NL_BLOCK], y: &mut [u8; IQ4_NL_BYTES]) {
    iq4_nl_block::<true>(x, y);
}

/// The plain port of `quantize_row_iq4_nl_impl(32, 32, .., qw = NULL, ntry = 7)` for one
/// block, with ggml's binary search ([`best_index`]).
pub fn quantize_block_iq4_nl_scalar(x: &[f32; IQ4_NL_BLOCK], y: &mut [u8; IQ4_NL_BYTES]) {
    iq4_nl_block::<false>(x, y);
}

#[inline(always)]
fn iq4_nl_block<const FAST: bool>(x: &[f32; IQ4_NL_BLOCK], y: &mut [u8; IQ4_NL_BYTES]) {
    let index = index_fn::<FAST>;
    let scale = sub_scale::<FAST>(x);
    y[..2].copy_from_slice(&ggml_fp32_to_fp16(scale).to_le_bytes());
    let id = if scale != 0.0 { 1.0 / scale } else { 0.0 };
    let mut l = [0u8; SUB];
    for (lj, &xj) in l.iter_mut().zip(x) {
        *lj = index(id * xj);
    }
    pack_codes(&l, &mut y[2..]);
}

/// ggml's `dequantize_row_iq4_nl` for one block: 18 bytes → 32 values.
pub fn dequantize_block_iq4_nl(x: &[u8; IQ4_NL_BYTES], y: &mut [f32; IQ4_NL_BLOCK]) {
    let d = ggml_fp16_to_fp32(u16::from_le_bytes([x[0], x[1]]));
    for j in 0..16 {
        y[j] = d * KV_F32[(x[2 + j] & 0xf) as usize];
        y[j + 16] = d * KV_F32[(x[2 + j] >> 4) as usize];
    }
}

/// Quantizes a row to IQ4_NL, bit-identical to `llama-quantize` without an importance matrix
/// (`quantize_iq4_nl(.., NULL)`). `x.len()` is a multiple of 32; `y.len() == x.len() / 32 * 18`.
///
/// Panics if the lengths disagree (a caller bug).
pub fn quantize_row_iq4_nl(x: &[f32], y: &mut [u8]) {
    check_row("IQ4_NL", x.len(), y.len(), IQ4_NL_BLOCK, IQ4_NL_BYTES);
    iq4_nl_row(x, y);
}

crate::avx2::dispatch_row!(
    /// The blocks of [`quantize_row_iq4_nl`], with AVX2 where the CPU has it.
    iq4_nl_row => iq4_nl_row_body
);

#[inline(always)]
fn iq4_nl_row_body(x: &[f32], y: &mut [u8]) {
    for (xb, yb) in x
        .chunks_exact(IQ4_NL_BLOCK)
        .zip(y.chunks_exact_mut(IQ4_NL_BYTES))
    {
        iq4_nl_block::<true>(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

/// [`quantize_row_iq4_nl`] through the plain port ([`quantize_block_iq4_nl_scalar`]).
///
/// Panics if the lengths disagree (a caller bug).
pub fn quantize_row_iq4_nl_scalar(x: &[f32], y: &mut [u8]) {
    check_row("IQ4_NL", x.len(), y.len(), IQ4_NL_BLOCK, IQ4_NL_BYTES);
    for (xb, yb) in x
        .chunks_exact(IQ4_NL_BLOCK)
        .zip(y.chunks_exact_mut(IQ4_NL_BYTES))
    {
        quantize_block_iq4_nl_scalar(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

/// Decodes an IQ4_NL row, bit-identical to ggml's `dequantize_row_iq4_nl`. `y.len()` is a
/// multiple of 32; `x.len() == y.len() / 32 * 18`.
///
/// Panics if the lengths disagree (a caller bug).
pub fn dequantize_row_iq4_nl(x: &[u8], y: &mut [f32]) {
    check_row("IQ4_NL", y.len(), x.len(), IQ4_NL_BLOCK, IQ4_NL_BYTES);
    for (xb, yb) in x
        .chunks_exact(IQ4_NL_BYTES)
        .zip(y.chunks_exact_mut(IQ4_NL_BLOCK))
    {
        dequantize_block_iq4_nl(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

// ---------------------------------------------------------------------------------------------
// IQ4_XS

/// `quantize_row_iq4_nl_impl(256, 32, .., qw = NULL, ntry = 7)` for one super-block: 256
/// values → 136 bytes. Uses [`best_index_fast`]; the same bytes as
/// [`quantize_block_iq4_xs_scalar`].
pub fn quantize_block_iq4_xs(x: &[f32; IQ4_XS_BLOCK], y: &mut [u8; IQ4_XS_BYTES]) {
    iq4_xs_block::<true>(x, y);
}

/// The plain port of `quantize_row_iq4_nl_impl(256, 32, .., qw = NULL, ntry = 7)` for one
/// super-block, with ggml's binary search ([`best_index`]).
pub fn quantize_block_iq4_xs_scalar(x: &[f32; IQ4_XS_BLOCK], y: &mut [u8; IQ4_XS_BYTES]) {
    iq4_xs_block::<false>(x, y);
}

#[inline(always)]
fn iq4_xs_block<const FAST: bool>(x: &[f32; IQ4_XS_BLOCK], y: &mut [u8; IQ4_XS_BYTES]) {
    let index = index_fn::<FAST>;
    let mut scales = [0f32; NSUB_XS];
    let mut max_scale = 0f32;
    let mut amax_scale = 0f32;
    for (ib, s) in scales.iter_mut().enumerate() {
        let d = sub_scale::<FAST>(x[ib * SUB..(ib + 1) * SUB].try_into().unwrap());
        *s = d;
        let abs_d = d.abs();
        if abs_d > amax_scale {
            amax_scale = abs_d;
            max_scale = d;
        }
    }
    let d = -max_scale / 32.0;
    y[..2].copy_from_slice(&ggml_fp32_to_fp16(d).to_le_bytes());
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut scales_h: u16 = 0;
    let mut scales_l = [0u8; NSUB_XS / 2];
    for (ib, &s) in scales.iter().enumerate() {
        let mut l = nearest_int(id * s);
        l = l.clamp(-32, 31);
        let dl = d * l as f32;
        let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
        let xb = &x[ib * SUB..(ib + 1) * SUB];
        let mut codes = [0u8; SUB];
        for (c, &xj) in codes.iter_mut().zip(xb) {
            *c = index(idl * xj);
        }
        pack_codes(&codes, &mut y[8 + 16 * ib..8 + 16 * (ib + 1)]);
        let l = (l + 32) as u8;
        let l_l = l & 0xf;
        let l_h = l >> 4;
        if ib % 2 == 0 {
            scales_l[ib / 2] = l_l;
        } else {
            scales_l[ib / 2] |= l_l << 4;
        }
        scales_h |= (l_h as u16) << (2 * (ib % 8));
    }
    y[2..4].copy_from_slice(&scales_h.to_le_bytes());
    y[4..8].copy_from_slice(&scales_l);
}

/// ggml's `dequantize_row_iq4_xs` for one super-block: 136 bytes → 256 values.
pub fn dequantize_block_iq4_xs(x: &[u8; IQ4_XS_BYTES], y: &mut [f32; IQ4_XS_BLOCK]) {
    let d = ggml_fp16_to_fp32(u16::from_le_bytes([x[0], x[1]]));
    let scales_h = u16::from_le_bytes([x[2], x[3]]);
    let scales_l = &x[4..8];
    for ib in 0..NSUB_XS {
        let ls = ((scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf) as i32
            | ((((scales_h >> (2 * ib)) & 3) as i32) << 4);
        let dl = d * (ls - 32) as f32;
        let qs = &x[8 + 16 * ib..8 + 16 * (ib + 1)];
        let yb = &mut y[SUB * ib..SUB * (ib + 1)];
        for j in 0..16 {
            yb[j] = dl * KV_F32[(qs[j] & 0xf) as usize];
            yb[j + 16] = dl * KV_F32[(qs[j] >> 4) as usize];
        }
    }
}

/// Quantizes a row to IQ4_XS, bit-identical to `llama-quantize` without an importance matrix
/// (`quantize_iq4_xs(.., NULL)`). `x.len()` is a multiple of 256;
/// `y.len() == x.len() / 256 * 136`.
///
/// Panics if the lengths disagree (a caller bug).
pub fn quantize_row_iq4_xs(x: &[f32], y: &mut [u8]) {
    check_row("IQ4_XS", x.len(), y.len(), IQ4_XS_BLOCK, IQ4_XS_BYTES);
    iq4_xs_row(x, y);
}

crate::avx2::dispatch_row!(
    /// The super-blocks of [`quantize_row_iq4_xs`], with AVX2 where the CPU has it.
    iq4_xs_row => iq4_xs_row_body
);

#[inline(always)]
fn iq4_xs_row_body(x: &[f32], y: &mut [u8]) {
    for (xb, yb) in x
        .chunks_exact(IQ4_XS_BLOCK)
        .zip(y.chunks_exact_mut(IQ4_XS_BYTES))
    {
        iq4_xs_block::<true>(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

/// [`quantize_row_iq4_xs`] through the plain port ([`quantize_block_iq4_xs_scalar`]).
///
/// Panics if the lengths disagree (a caller bug).
pub fn quantize_row_iq4_xs_scalar(x: &[f32], y: &mut [u8]) {
    check_row("IQ4_XS", x.len(), y.len(), IQ4_XS_BLOCK, IQ4_XS_BYTES);
    for (xb, yb) in x
        .chunks_exact(IQ4_XS_BLOCK)
        .zip(y.chunks_exact_mut(IQ4_XS_BYTES))
    {
        quantize_block_iq4_xs_scalar(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

/// Decodes an IQ4_XS row, bit-identical to ggml's `dequantize_row_iq4_xs`. `y.len()` is a
/// multiple of 256; `x.len() == y.len() / 256 * 136`.
///
/// Panics if the lengths disagree (a caller bug).
pub fn dequantize_row_iq4_xs(x: &[u8], y: &mut [f32]) {
    check_row("IQ4_XS", y.len(), x.len(), IQ4_XS_BLOCK, IQ4_XS_BYTES);
    for (xb, yb) in x
        .chunks_exact(IQ4_XS_BYTES)
        .zip(y.chunks_exact_mut(IQ4_XS_BLOCK))
    {
        dequantize_block_iq4_xs(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

fn check_row(name: &str, values: usize, bytes: usize, block: usize, block_bytes: usize) {
    assert_eq!(
        values % block,
        0,
        "{name} row length must be a multiple of {block}"
    );
    assert_eq!(bytes, values / block * block_bytes, "{name} row bytes");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::legacy::test_data::{check, golden};

    #[test]
    fn iq4_nl_matches_llama_quantize_and_ggml() {
        let g = golden!("IQ4_NL");
        check("IQ4_NL", quantize_row_iq4_nl, dequantize_row_iq4_nl, g);
        check(
            "IQ4_NL scalar",
            quantize_row_iq4_nl_scalar,
            dequantize_row_iq4_nl,
            g,
        );
    }

    #[test]
    fn iq4_xs_matches_llama_quantize_and_ggml() {
        let g = golden!("IQ4_XS");
        check("IQ4_XS", quantize_row_iq4_xs, dequantize_row_iq4_xs, g);
        check(
            "IQ4_XS scalar",
            quantize_row_iq4_xs_scalar,
            dequantize_row_iq4_xs,
            g,
        );
    }

    #[test]
    fn best_index_fast_equals_best_index() {
        let mut probes: Vec<f32> = vec![f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        for w in KVALUES_IQ4NL.windows(2) {
            let (a, b) = (w[0] as f32, w[1] as f32);
            for m in [a, b, (a + b) / 2.0] {
                for k in -4i32..=4 {
                    let p = f32::from_bits((m.to_bits() as i32 + k) as u32);
                    probes.extend([p, -p]);
                }
            }
        }
        let mut bits = 0u32;
        loop {
            probes.push(f32::from_bits(bits));
            match bits.checked_add(997) {
                Some(b) => bits = b,
                None => break,
            }
        }
        for x in probes {
            assert_eq!(
                best_index_fast(x),
                best_index(x),
                "{x:e} ({:#010x})",
                x.to_bits()
            );
        }
    }

    /// Pseudo-random rows with every kind of block the golden edge rows have, at many scales:
    /// the fast encoders write the scalar port's bytes.
    #[test]
    fn fast_encoders_equal_the_scalar_port() {
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut x = vec![0f32; 512 * IQ4_XS_BLOCK];
        for (b, blk) in x.chunks_mut(SUB).enumerate() {
            let scale = f32::powi(2.0, (next() % 300) as i32 - 150);
            for v in blk.iter_mut() {
                let u = (next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                *v = match b % 6 {
                    0 => u * scale,
                    1 => (u * 16.0).round() * scale, // many exact ties
                    2 => 0.0,
                    3 => u * 0.05,
                    4 => KVALUES_IQ4NL[(next() % 16) as usize] as f32 * scale,
                    _ => f32::from_bits(next() as u32),
                };
            }
        }
        x.extend(crate::legacy::test_data::edge_rows());
        let mut fast = vec![0u8; x.len() / 32 * IQ4_NL_BYTES];
        let mut scalar = fast.clone();
        quantize_row_iq4_nl(&x, &mut fast);
        quantize_row_iq4_nl_scalar(&x, &mut scalar);
        assert_eq!(fast, scalar);
        let mut fast = vec![0u8; x.len() / 256 * IQ4_XS_BYTES];
        let mut scalar = fast.clone();
        quantize_row_iq4_xs(&x, &mut fast);
        quantize_row_iq4_xs_scalar(&x, &mut scalar);
        assert_eq!(fast, scalar);
        // The portable bodies as built for the baseline target (the rows above take the AVX2
        // copies where this CPU has AVX2).
        let mut base = vec![0u8; x.len() / 256 * IQ4_XS_BYTES];
        iq4_xs_row_body(&x, &mut base);
        assert_eq!(base, scalar);
        let mut base = vec![0u8; x.len() / 32 * IQ4_NL_BYTES];
        let mut scalar = base.clone();
        iq4_nl_row_body(&x, &mut base);
        quantize_row_iq4_nl_scalar(&x, &mut scalar);
        assert_eq!(base, scalar);
    }

    #[test]
    fn best_index_is_ggmls_nearest_with_ties_up() {
        assert_eq!(best_index(-1000.0), 0);
        assert_eq!(best_index(-127.0), 0);
        assert_eq!(best_index(113.0), 15);
        assert_eq!(best_index(1e9), 15);
        assert_eq!(best_index(f32::NAN), 15);
        assert_eq!(best_index(0.0), 8); // -10 and 1: 1 is nearer
        assert_eq!(best_index(-4.5), 8); // midpoint of -10 and 1: the upper one
        assert_eq!(best_index(-4.50001), 7);
        assert_eq!(best_index(101.0), 15); // midpoint of 89 and 113
        for (i, &v) in KVALUES_IQ4NL.iter().enumerate() {
            assert_eq!(best_index(v as f32), i as u8);
        }
    }

    #[test]
    fn nearest_int_rounds_half_to_even() {
        for (x, n) in [
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (31.49, 31),
            (-32.0, -32),
        ] {
            assert_eq!(nearest_int(x), n, "{x}");
        }
    }

    #[test]
    fn all_zero_blocks() {
        // IQ4_NL: scale 0 → d = +0, every code re-picked from 0·x = 0 → index 8 (value 1).
        let mut q = [0xAAu8; IQ4_NL_BYTES];
        quantize_block_iq4_nl(&[0.0; IQ4_NL_BLOCK], &mut q);
        assert_eq!(&q[..2], &[0, 0]);
        assert!(q[2..].iter().all(|&b| b == 0x88));
        // IQ4_XS: max_scale 0 → D = -0/32 = -0.0 (f16 0x8000); every ls = 0 + 32, so
        // scales_l nibbles 0 and scales_h pairs 0b10.
        let mut q = [0x55u8; IQ4_XS_BYTES];
        quantize_block_iq4_xs(&[0.0; IQ4_XS_BLOCK], &mut q);
        assert_eq!(&q[..8], &[0x00, 0x80, 0xAA, 0xAA, 0, 0, 0, 0]);
        assert!(q[8..].iter().all(|&b| b == 0x88));
        let mut y = [1f32; IQ4_XS_BLOCK];
        dequantize_block_iq4_xs(&q, &mut y);
        assert!(y.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn negative_max_and_exact_grid() {
        // A block on the grid with the most negative level at its largest magnitude: the
        // first guess d = -max/kv[0] = 1/32 is exact, every code is recovered.
        let x: [f32; 32] = std::array::from_fn(|i| KVALUES_IQ4NL[i % 16] as f32 / 32.0);
        let mut q = [0u8; IQ4_NL_BYTES];
        quantize_block_iq4_nl(&x, &mut q);
        assert_eq!(
            ggml_fp16_to_fp32(u16::from_le_bytes([q[0], q[1]])),
            1.0 / 32.0
        );
        let mut y = [0f32; 32];
        dequantize_block_iq4_nl(&q, &mut y);
        assert_eq!(y, x);
    }

    #[test]
    fn one_huge_value_gives_a_nan_scale_like_ggml() {
        // x² overflows: the weighted sums become inf/inf = NaN, no try can beat a NaN `best`,
        // the f16 scale is NaN (ggml's 0xFE00: x86's default NaN is negative) and NaN·x picks
        // index 15 everywhere. The golden edge rows hold the same case as ggml computes it.
        let mut x: [f32; 32] = std::array::from_fn(|i| (i as f32 - 15.5) / 64.0);
        x[5] = 1e30;
        let mut q = [0u8; IQ4_NL_BYTES];
        quantize_block_iq4_nl(&x, &mut q);
        assert_eq!(u16::from_le_bytes([q[0], q[1]]), 0xFE00);
        assert!(q[2..].iter().all(|&b| b == 0xFF));
    }

    #[test]
    fn sub_blocks_below_group_max_eps_get_scale_zero() {
        let mut x = [0f32; IQ4_XS_BLOCK];
        for (i, v) in x.iter_mut().enumerate() {
            *v = ((i % 13) as f32 - 6.0) * if i < 32 { 1e-17 } else { 0.01 };
        }
        let mut q = [0u8; IQ4_XS_BYTES];
        quantize_block_iq4_xs(&x, &mut q);
        // Sub-block 0's 6-bit scale is 0 + 32: low nibble 0, high bits 0b10.
        assert_eq!(q[4] & 0x0F, 0);
        assert_eq!(q[2] & 0b11, 0b10);
        let mut y = [0f32; IQ4_XS_BLOCK];
        dequantize_block_iq4_xs(&q, &mut y);
        assert!(y[..32].iter().all(|&v| v == 0.0));
        assert!(y[32..].iter().any(|&v| v != 0.0));
    }
}
