//! ggml's "legacy" block quants: `block_q4_0`, `block_q4_1`, `block_q5_0`, `block_q5_1`.
//!
//! Every block holds 32 values. Layouts (`ggml/src/ggml-common.h`), all little-endian:
//!
//! | type | bytes | layout | value `k` |
//! |---|---|---|---|
//! | Q4_0 | 18 | `d` (f16), `qs[16]` | `(q_k - 8) · d` |
//! | Q4_1 | 20 | `d` (f16), `m` (f16), `qs[16]` | `q_k · d + m` |
//! | Q5_0 | 22 | `d` (f16), `qh` (u32), `qs[16]` | `(q_k - 16) · d` |
//! | Q5_1 | 24 | `d` (f16), `m` (f16), `qh` (u32), `qs[16]` | `q_k · d + m` |
//!
//! `qs[j]` holds the low 4 bits of element `j` (low nibble) and of element `j + 16` (high
//! nibble); for the 5-bit types bit `k` of `qh` is bit 4 of element `k`.
//!
//! The encoders are ggml's `quantize_row_q{4,5}_{0,1}_ref`, which is what `llama-quantize`
//! writes without an importance matrix (`ggml_quantize_chunk` → `quantize_q4_0(.., NULL)` →
//! `quantize_row_q4_0_ref`, and the same for the other three). The decoders are ggml's
//! `dequantize_row_*`. Source: `ggml/src/ggml-quants.c` of llama.cpp as vendored in
//! llama-cpp-python 0.3.36 (<https://github.com/ggml-org/llama.cpp>), ported operation by
//! operation in the same f32 order, so the bytes and values are bit-identical:
//!
//! - Q4_0 / Q5_0 take the element of largest magnitude *with its sign* (the first one on ties)
//!   and set `d = max / -8` (`/ -16`), so `max` itself lands on code 0 and the other side can
//!   reach one step further (clamped to 15 / 31).
//! - Q4_1 / Q5_1 set `d = (max - min) / 15` (`/ 31`) and `m = min`.
//! - `id = 1/d` is taken from the f32 `d` before `d` is rounded to f16; codes are
//!   `(int8_t)(x·id + 8.5f)` (truncation), not a round-to-nearest.
//! - When `1/d` overflows (a block whose largest magnitude is below about `2^-125`, e.g. all
//!   subnormal) C converts `±inf` / NaN to an integer, which is undefined behaviour; the x86-64
//!   build of ggml (`cvttss2si`, then the low byte) gives code 0 there, and so does this port
//!   (an AArch64 build, whose conversion saturates, would write other codes for these blocks).
//!
//! f16 conversions are ports of ggml's own `ggml_compute_fp32_to_fp16` / `_fp16_to_fp32`
//! (round to nearest even; NaN becomes `sign | 0x7E00`), see [`ggml_fp32_to_fp16`].
//!
//! Two encoders per type: `quantize_block_*`, the plain port above, and the row functions
//! `quantize_row_*`, which take a fast path per block that the compiler vectorizes (the
//! extremes over 8 lanes, then every code in one loop, then the packing) and fall back to the
//! plain port for the blocks where the two could differ: a NaN or infinite value, an infinite
//! `1/d` or `d`, a tie between `+a` and `-a` for the signed maximum, or an extreme that is
//! zero (where the first element's sign of zero decides). Elsewhere they give the same bytes
//! by construction (the same f32 operations on the same values; a code is `trunc(x·id + c)`
//! of a value that the scale bounds to `(-1, 2^7)`, where C's and Rust's casts agree), and the
//! tests compare both on every golden row and on random blocks of every magnitude.

/// Elements per block (ggml `QK4_0`, `QK4_1`, `QK5_0`, `QK5_1`).
pub const BLOCK: usize = 32;
/// Bytes of one `block_q4_0`.
pub const Q4_0_BYTES: usize = 18;
/// Bytes of one `block_q4_1`.
pub const Q4_1_BYTES: usize = 20;
/// Bytes of one `block_q5_0`.
pub const Q5_0_BYTES: usize = 22;
/// Bytes of one `block_q5_1`.
pub const Q5_1_BYTES: usize = 24;

const HALF: usize = BLOCK / 2;

// ---------------------------------------------------------------------------------------------
// Shared helpers (also used by `crate::iq4`).

/// ggml's `ggml_compute_fp32_to_fp16` (`ggml/src/ggml-impl.h`, after Maratyszcza's FP16
/// library): f32 → f16 bits, round to nearest even, overflow to ±inf, NaN → `sign | 0x7E00`.
/// Equal to IEEE round-to-nearest-even on every non-NaN input.
#[inline(always)]
pub fn ggml_fp32_to_fp16(f: f32) -> u16 {
    let scale_to_inf = f32::from_bits(0x7780_0000); // 0x1.0p+112f
    let scale_to_zero = f32::from_bits(0x0880_0000); // 0x1.0p-110f
    let mut base = (f.abs() * scale_to_inf) * scale_to_zero;
    let w = f.to_bits();
    let shl1_w = w.wrapping_add(w);
    let sign = w & 0x8000_0000;
    let mut bias = shl1_w & 0xFF00_0000;
    if bias < 0x7100_0000 {
        bias = 0x7100_0000;
    }
    base += f32::from_bits((bias >> 1) + 0x0780_0000);
    let bits = base.to_bits();
    let exp_bits = (bits >> 13) & 0x0000_7C00;
    let mantissa_bits = bits & 0x0000_0FFF;
    let nonsign = exp_bits + mantissa_bits;
    ((sign >> 16)
        | if shl1_w > 0xFF00_0000 {
            0x7E00
        } else {
            nonsign
        }) as u16
}

/// ggml's `ggml_compute_fp16_to_fp32` (`ggml/src/ggml-impl.h`): f16 bits → f32, exact.
#[inline]
pub fn ggml_fp16_to_fp32(h: u16) -> f32 {
    let w = (h as u32) << 16;
    let sign = w & 0x8000_0000;
    let two_w = w.wrapping_add(w);
    let exp_offset: u32 = 0xE0 << 23;
    let exp_scale = f32::from_bits(0x0780_0000); // 0x1.0p-112f
    let normalized_value = f32::from_bits((two_w >> 4) + exp_offset) * exp_scale;
    let magic_mask: u32 = 126 << 23;
    let magic_bias = 0.5f32;
    let denormalized_value = f32::from_bits((two_w >> 17) | magic_mask) - magic_bias;
    let denormalized_cutoff: u32 = 1 << 27;
    let result = sign
        | if two_w < denormalized_cutoff {
            denormalized_value.to_bits()
        } else {
            normalized_value.to_bits()
        };
    f32::from_bits(result)
}

/// A C cast of `float` to `int8_t` / `uint8_t` as ggml's x86-64 build performs it: `cvttss2si`
/// (truncate toward zero; NaN and values outside the `int32` range give `INT32_MIN`), then the
/// low 8 bits. In range this is plain truncation; outside it C leaves the result undefined and
/// this is what the shipped binaries do (code 0 for NaN and ±inf).
#[inline]
pub(crate) fn c_float_to_u8(v: f32) -> u8 {
    let i = if (-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        v as i32
    } else {
        i32::MIN
    };
    i as u8
}

#[inline]
fn put_f16(out: &mut [u8], at: usize, v: f32) {
    out[at..at + 2].copy_from_slice(&ggml_fp32_to_fp16(v).to_le_bytes());
}

#[inline]
fn get_f16(b: &[u8], at: usize) -> f32 {
    ggml_fp16_to_fp32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// The first element of largest magnitude, with its sign (`0.0` for an all-zero block);
/// ggml's `if (amax < fabsf(v)) { amax = fabsf(v); max = v; }` loop, so NaN is never picked.
#[inline]
fn signed_absmax(x: &[f32; BLOCK]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// ggml's min/max loop (`min = FLT_MAX`, `max = -FLT_MAX`, strict comparisons).
#[inline]
fn min_max(x: &[f32; BLOCK]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

#[inline]
fn inverse(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

// ---------------------------------------------------------------------------------------------
// Fast-path helpers: branch-free over 8 lanes, so the loops vectorize.

/// True if no value of the block is NaN or infinite.
#[inline(always)]
pub(crate) fn block_finite(x: &[f32; BLOCK]) -> bool {
    let mut bad = 0u32;
    for &v in x {
        bad |= ((v.to_bits() & 0x7f80_0000) == 0x7f80_0000) as u32;
    }
    bad == 0
}

/// Four lanes of a block, for the reductions below: written as trees of 4-lane operations so
/// that the compiler emits packed `maxps`/`minps` (a loop of scalar selects stays scalar).
type Lanes = [f32; 4];

#[inline(always)]
fn lanes(x: &[f32; BLOCK], k: usize, f: impl Fn(f32) -> f32) -> Lanes {
    std::array::from_fn(|i| f(x[4 * k + i]))
}

#[inline(always)]
fn lanes_max(a: Lanes, b: Lanes) -> Lanes {
    std::array::from_fn(|i| if a[i] > b[i] { a[i] } else { b[i] })
}

#[inline(always)]
fn lanes_min(a: Lanes, b: Lanes) -> Lanes {
    std::array::from_fn(|i| if a[i] < b[i] { a[i] } else { b[i] })
}

/// The largest of `f(x)` over a block of finite values.
#[inline(always)]
fn block_max_of(x: &[f32; BLOCK], f: impl Fn(f32) -> f32 + Copy) -> f32 {
    let v = |k| lanes(x, k, f);
    let m = lanes_max(
        lanes_max(lanes_max(v(0), v(1)), lanes_max(v(2), v(3))),
        lanes_max(lanes_max(v(4), v(5)), lanes_max(v(6), v(7))),
    );
    let m = lanes_max(m, [m[2], m[3], m[0], m[1]]);
    if m[0] > m[1] { m[0] } else { m[1] }
}

/// The largest magnitude of a block of finite values (`+0.0` for an all-zero block).
#[inline(always)]
pub(crate) fn block_absmax(x: &[f32; BLOCK]) -> f32 {
    block_max_of(x, f32::abs)
}

/// The largest and the smallest value of a block of finite values (`+0.0` and `-0.0` are
/// equal here, so a zero result says nothing about its sign).
#[inline(always)]
pub(crate) fn block_max_min(x: &[f32; BLOCK]) -> (f32, f32) {
    let v = |k| lanes(x, k, |a| a);
    let mn = lanes_min(
        lanes_min(lanes_min(v(0), v(1)), lanes_min(v(2), v(3))),
        lanes_min(lanes_min(v(4), v(5)), lanes_min(v(6), v(7))),
    );
    let mn = lanes_min(mn, [mn[2], mn[3], mn[0], mn[1]]);
    (
        block_max_of(x, |a| a),
        if mn[0] < mn[1] { mn[0] } else { mn[1] },
    )
}

/// [`signed_absmax`] of a finite block by its extremes: the extreme of larger magnitude, or
/// where `+a` and `-a` tie, the first element of magnitude `a` (`0.0` for an all-zero block, as
/// the plain loop leaves it).
#[inline(always)]
fn signed_absmax_fast(x: &[f32; BLOCK]) -> f32 {
    let (mx, mn) = block_max_min(x);
    if mx > -mn {
        mx
    } else if -mn > mx {
        mn
    } else if mx == 0.0 {
        0.0
    } else {
        x.iter().copied().find(|v| v.abs() == mx).unwrap_or(mx)
    }
}

/// [`min_max`] of a finite block by its extremes; `None` where an extreme is zero (the first
/// zero's sign decides there).
#[inline]
fn min_max_fast(x: &[f32; BLOCK]) -> Option<(f32, f32)> {
    let (mx, mn) = block_max_min(x);
    (mx != 0.0 && mn != 0.0).then_some((mn, mx))
}

/// `trunc(y)` (toward zero) of a finite `|y| < 2^22` in f32 operations only, so that loops of it
/// vectorize without the per-lane NaN and saturation fix-ups of `as i32`: adding `1.5·2^23`
/// rounds to the nearest integer (its bits minus the constant's are that integer), and one
/// comparison steps back toward zero where the rounding went away from it.
#[inline(always)]
pub(crate) fn trunc_small(y: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    let t = y + MAGIC;
    let r = t - MAGIC; // y rounded to the nearest integer, exactly
    let ri = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    ri - ((r > y) & (y >= 0.0)) as i32 + ((r < y) & (y < 0.0)) as i32
}

/// `trunc(y)` of a finite `0 <= y < 2^22` ([`trunc_small`] without the step for negative `y`).
#[inline(always)]
fn trunc_pos(y: f32) -> u32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    let t = y + MAGIC;
    let r = t - MAGIC;
    t.to_bits().wrapping_sub(MAGIC.to_bits()) - (r > y) as u32
}

/// Codes `trunc(min(y, max))` of the values `y` of a block, `y >= 0` (the plain encoders'
/// `MIN((int8_t)y, max)`: for `y >= 0` capping before or after the truncation is the same).
#[inline(always)]
fn codes_of(x: &[f32; BLOCK], y: impl Fn(f32) -> f32, max: f32) -> [u8; BLOCK] {
    let mut q = [0u8; BLOCK];
    for (q, &v) in q.iter_mut().zip(x) {
        let y = y(v);
        *q = trunc_pos(if y < max { y } else { max }) as u8;
    }
    q
}

/// Codes `trunc(x·id + add)` capped at `max`, for values the scale bounds to `(0, 2^7)` (`add`
/// is 8.5 or 16.5 and `|x·id| <= 8.01` or `16.01`), as the plain encoders compute them
/// (`(int8_t)` of the sum, then `MIN`).
#[inline(always)]
fn codes_sym(x: &[f32; BLOCK], id: f32, add: f32, max: f32) -> [u8; BLOCK] {
    codes_of(x, |v| v * id + add, max)
}

/// Codes `trunc((x - min)·id + 0.5)` capped at `max`, as [`codes_sym`] (the values are in
/// `[0.5, 15.5]` or `[0.5, 31.5]` up to rounding).
#[inline(always)]
fn codes_affine(x: &[f32; BLOCK], min: f32, id: f32, max: f32) -> [u8; BLOCK] {
    codes_of(x, |v| (v - min) * id + 0.5, max)
}

/// Packs 4-bit codes: element `j` in the low nibble of byte `j`, element `j + 16` in the high.
#[inline]
fn pack_nibbles(q: &[u8; BLOCK], out: &mut [u8]) {
    for (j, o) in out[..HALF].iter_mut().enumerate() {
        *o = (q[j] & 0x0F) | ((q[j + HALF] & 0x0F) << 4);
    }
}

/// Bit 4 of every 5-bit code, bit `k` for element `k`: eight codes at a time as the bytes of a
/// `u64`, their bits 4 moved to bit 0 of each byte and gathered into one byte by a multiply
/// (byte `i` lands on bit `56 + i`, with no carries: checked for all 256 patterns in the tests).
#[inline(always)]
fn high_bits(q: &[u8; BLOCK]) -> u32 {
    let mut qh = 0u32;
    for (k, c) in q.chunks_exact(8).enumerate() {
        let v = u64::from_le_bytes(c.try_into().unwrap());
        let bits = (v >> 4) & 0x0101_0101_0101_0101;
        qh |= ((bits.wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32) << (8 * k);
    }
    qh
}

/// The fast path of [`quantize_block_q4_0`] (same bytes).
#[inline]
fn quantize_block_q4_0_fast(x: &[f32; BLOCK], y: &mut [u8; Q4_0_BYTES]) {
    if !block_finite(x) {
        return quantize_block_q4_0(x, y);
    }
    let max = signed_absmax_fast(x);
    let d = max / -8.0;
    let id = inverse(d);
    if !id.is_finite() {
        return quantize_block_q4_0(x, y);
    }
    put_f16(y, 0, d);
    pack_nibbles(&codes_sym(x, id, 8.5, 15.0), &mut y[2..]);
}

/// The fast path of [`quantize_block_q4_1`] (same bytes).
#[inline]
fn quantize_block_q4_1_fast(x: &[f32; BLOCK], y: &mut [u8; Q4_1_BYTES]) {
    let Some((min, max)) = block_finite(x).then(|| min_max_fast(x)).flatten() else {
        return quantize_block_q4_1(x, y);
    };
    let d = (max - min) / 15.0;
    let id = inverse(d);
    if !d.is_finite() || !id.is_finite() {
        return quantize_block_q4_1(x, y);
    }
    put_f16(y, 0, d);
    put_f16(y, 2, min);
    pack_nibbles(&codes_affine(x, min, id, 15.0), &mut y[4..]);
}

/// The fast path of [`quantize_block_q5_0`] (same bytes).
#[inline]
fn quantize_block_q5_0_fast(x: &[f32; BLOCK], y: &mut [u8; Q5_0_BYTES]) {
    if !block_finite(x) {
        return quantize_block_q5_0(x, y);
    }
    let max = signed_absmax_fast(x);
    let d = max / -16.0;
    let id = inverse(d);
    if !id.is_finite() {
        return quantize_block_q5_0(x, y);
    }
    put_f16(y, 0, d);
    let q = codes_sym(x, id, 16.5, 31.0);
    y[2..6].copy_from_slice(&high_bits(&q).to_le_bytes());
    pack_nibbles(&q, &mut y[6..]);
}

/// The fast path of [`quantize_block_q5_1`] (same bytes).
#[inline]
fn quantize_block_q5_1_fast(x: &[f32; BLOCK], y: &mut [u8; Q5_1_BYTES]) {
    let Some((min, max)) = block_finite(x).then(|| min_max_fast(x)).flatten() else {
        return quantize_block_q5_1(x, y);
    };
    let d = (max - min) / 31.0;
    let id = inverse(d);
    if !d.is_finite() || !id.is_finite() {
        return quantize_block_q5_1(x, y);
    }
    put_f16(y, 0, d);
    put_f16(y, 2, min);
    // No cap in ggml; the codes stay below 32 here, so a cap of 255 changes nothing.
    let q = codes_affine(x, min, id, 255.0);
    y[4..8].copy_from_slice(&high_bits(&q).to_le_bytes());
    pack_nibbles(&q, &mut y[8..]);
}

fn check_row(name: &str, values: usize, bytes: usize, block_bytes: usize) {
    assert_eq!(
        values % BLOCK,
        0,
        "{name} row length must be a multiple of {BLOCK}"
    );
    assert_eq!(bytes, values / BLOCK * block_bytes, "{name} row bytes");
}

// ---------------------------------------------------------------------------------------------
// Q4_0

/// ggml's `quantize_row_q4_0_ref` for one block: 32 values → 18 bytes.
pub fn quantize_block_q4_0(x: &[f32; BLOCK], y: &mut [u8; Q4_0_BYTES]) {
    let max = signed_absmax(x);
    let d = max / -8.0;
    let id = inverse(d);
    put_f16(y, 0, d);
    for j in 0..HALF {
        let x0 = x[j] * id;
        let x1 = x[HALF + j] * id;
        let xi0 = (c_float_to_u8(x0 + 8.5) as i8).min(15) as u8;
        let xi1 = (c_float_to_u8(x1 + 8.5) as i8).min(15) as u8;
        y[2 + j] = xi0 | (xi1 << 4);
    }
}

/// ggml's `dequantize_row_q4_0` for one block: 18 bytes → 32 values.
pub fn dequantize_block_q4_0(x: &[u8; Q4_0_BYTES], y: &mut [f32; BLOCK]) {
    let d = get_f16(x, 0);
    for j in 0..HALF {
        let x0 = (x[2 + j] & 0x0F) as i32 - 8;
        let x1 = (x[2 + j] >> 4) as i32 - 8;
        y[j] = x0 as f32 * d;
        y[j + HALF] = x1 as f32 * d;
    }
}

/// Quantizes a row to Q4_0, bit-identical to `llama-quantize` without an importance matrix
/// (`quantize_row_q4_0_ref`). `x.len()` is a multiple of 32; `y.len() == x.len() / 32 * 18`.
///
/// Panics if the lengths disagree (a caller bug).
pub fn quantize_row_q4_0(x: &[f32], y: &mut [u8]) {
    check_row("Q4_0", x.len(), y.len(), Q4_0_BYTES);
    for (xb, yb) in x.chunks_exact(BLOCK).zip(y.chunks_exact_mut(Q4_0_BYTES)) {
        quantize_block_q4_0_fast(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

/// [`quantize_row_q4_0`] by the plain port alone, block by block (for the tests, and as the
/// readable statement of what the fast path computes).
pub fn quantize_row_q4_0_plain(x: &[f32], y: &mut [u8]) {
    check_row("Q4_0", x.len(), y.len(), Q4_0_BYTES);
    for (xb, yb) in x.chunks_exact(BLOCK).zip(y.chunks_exact_mut(Q4_0_BYTES)) {
        quantize_block_q4_0(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

/// Decodes a Q4_0 row, bit-identical to ggml's `dequantize_row_q4_0`. `y.len()` is a
/// multiple of 32; `x.len() == y.len() / 32 * 18`.
///
/// Panics if the lengths disagree (a caller bug).
pub fn dequantize_row_q4_0(x: &[u8], y: &mut [f32]) {
    check_row("Q4_0", y.len(), x.len(), Q4_0_BYTES);
    for (xb, yb) in x.chunks_exact(Q4_0_BYTES).zip(y.chunks_exact_mut(BLOCK)) {
        dequantize_block_q4_0(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

// ---------------------------------------------------------------------------------------------
// Q4_1

/// ggml's `quantize_row_q4_1_ref` for one block: 32 values → 20 bytes.
pub fn quantize_block_q4_1(x: &[f32; BLOCK], y: &mut [u8; Q4_1_BYTES]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inverse(d);
    put_f16(y, 0, d);
    put_f16(y, 2, min);
    for j in 0..HALF {
        let x0 = (x[j] - min) * id;
        let x1 = (x[HALF + j] - min) * id;
        let xi0 = (c_float_to_u8(x0 + 0.5) as i8).min(15) as u8;
        let xi1 = (c_float_to_u8(x1 + 0.5) as i8).min(15) as u8;
        y[4 + j] = xi0 | (xi1 << 4);
    }
}

/// ggml's `dequantize_row_q4_1` for one block: 20 bytes → 32 values.
pub fn dequantize_block_q4_1(x: &[u8; Q4_1_BYTES], y: &mut [f32; BLOCK]) {
    let d = get_f16(x, 0);
    let m = get_f16(x, 2);
    for j in 0..HALF {
        let x0 = (x[4 + j] & 0x0F) as i32;
        let x1 = (x[4 + j] >> 4) as i32;
        y[j] = x0 as f32 * d + m;
        y[j + HALF] = x1 as f32 * d + m;
    }
}

/// Quantizes a row to Q4_1, bit-identical to `llama-quantize` without an importance matrix
/// (`quantize_row_q4_1_ref`). `x.len()` is a multiple of 32; `y.len() == x.len() / 32 * 20`.
///
/// Panics if the lengths disagree (a caller bug).
pub fn quantize_row_q4_1(x: &[f32], y: &mut [u8]) {
    check_row("Q4_1", x.len(), y.len(), Q4_1_BYTES);
    for (xb, yb) in x.chunks_exact(BLOCK).zip(y.chunks_exact_mut(Q4_1_BYTES)) {
        quantize_block_q4_1_fast(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

/// [`quantize_row_q4_1`] by the plain port alone, block by block (for the tests, and as the
/// readable statement of what the fast path computes).
pub fn quantize_row_q4_1_plain(x: &[f32], y: &mut [u8]) {
    check_row("Q4_1", x.len(), y.len(), Q4_1_BYTES);
    for (xb, yb) in x.chunks_exact(BLOCK).zip(y.chunks_exact_mut(Q4_1_BYTES)) {
        quantize_block_q4_1(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

/// Decodes a Q4_1 row, bit-identical to ggml's `dequantize_row_q4_1`. `y.len()` is a
/// multiple of 32; `x.len() == y.len() / 32 * 20`.
///
/// Panics if the lengths disagree (a caller bug).
pub fn dequantize_row_q4_1(x: &[u8], y: &mut [f32]) {
    check_row("Q4_1", y.len(), x.len(), Q4_1_BYTES);
    for (xb, yb) in x.chunks_exact(Q4_1_BYTES).zip(y.chunks_exact_mut(BLOCK)) {
        dequantize_block_q4_1(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

// ---------------------------------------------------------------------------------------------
// Q5_0

/// ggml's `quantize_row_q5_0_ref` for one block: 32 values → 22 bytes.
pub fn quantize_block_q5_0(x: &[f32; BLOCK], y: &mut [u8; Q5_0_BYTES]) {
    let max = signed_absmax(x);
    let d = max / -16.0;
    let id = inverse(d);
    put_f16(y, 0, d);
    let mut qh: u32 = 0;
    for j in 0..HALF {
        let x0 = x[j] * id;
        let x1 = x[HALF + j] * id;
        let xi0 = (c_float_to_u8(x0 + 16.5) as i8).min(31) as u8;
        let xi1 = (c_float_to_u8(x1 + 16.5) as i8).min(31) as u8;
        y[6 + j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
        qh |= (((xi0 & 0x10) >> 4) as u32) << j;
        qh |= (((xi1 & 0x10) >> 4) as u32) << (j + HALF);
    }
    y[2..6].copy_from_slice(&qh.to_le_bytes());
}

/// ggml's `dequantize_row_q5_0` for one block: 22 bytes → 32 values.
pub fn dequantize_block_q5_0(x: &[u8; Q5_0_BYTES], y: &mut [f32; BLOCK]) {
    let d = get_f16(x, 0);
    let qh = u32::from_le_bytes([x[2], x[3], x[4], x[5]]);
    for j in 0..HALF {
        let xh_0 = (((qh >> j) << 4) & 0x10) as u8;
        let xh_1 = ((qh >> (j + 12)) & 0x10) as u8;
        let x0 = ((x[6 + j] & 0x0F) | xh_0) as i32 - 16;
        let x1 = ((x[6 + j] >> 4) | xh_1) as i32 - 16;
        y[j] = x0 as f32 * d;
        y[j + HALF] = x1 as f32 * d;
    }
}

/// Quantizes a row to Q5_0, bit-identical to `llama-quantize` without an importance matrix
/// (`quantize_row_q5_0_ref`). `x.len()` is a multiple of 32; `y.len() == x.len() / 32 * 22`.
///
/// Panics if the lengths disagree (a caller bug).
pub fn quantize_row_q5_0(x: &[f32], y: &mut [u8]) {
    check_row("Q5_0", x.len(), y.len(), Q5_0_BYTES);
    for (xb, yb) in x.chunks_exact(BLOCK).zip(y.chunks_exact_mut(Q5_0_BYTES)) {
        quantize_block_q5_0_fast(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

/// [`quantize_row_q5_0`] by the plain port alone, block by block (for the tests, and as the
/// readable statement of what the fast path computes).
pub fn quantize_row_q5_0_plain(x: &[f32], y: &mut [u8]) {
    check_row("Q5_0", x.len(), y.len(), Q5_0_BYTES);
    for (xb, yb) in x.chunks_exact(BLOCK).zip(y.chunks_exact_mut(Q5_0_BYTES)) {
        quantize_block_q5_0(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

/// Decodes a Q5_0 row, bit-identical to ggml's `dequantize_row_q5_0`. `y.len()` is a
/// multiple of 32; `x.len() == y.len() / 32 * 22`.
///
/// Panics if the lengths disagree (a caller bug).
pub fn dequantize_row_q5_0(x: &[u8], y: &mut [f32]) {
    check_row("Q5_0", y.len(), x.len(), Q5_0_BYTES);
    for (xb, yb) in x.chunks_exact(Q5_0_BYTES).zip(y.chunks_exact_mut(BLOCK)) {
        dequantize_block_q5_0(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

// ---------------------------------------------------------------------------------------------
// Q5_1

/// ggml's `quantize_row_q5_1_ref` for one block: 32 values → 24 bytes.
pub fn quantize_block_q5_1(x: &[f32; BLOCK], y: &mut [u8; Q5_1_BYTES]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inverse(d);
    put_f16(y, 0, d);
    put_f16(y, 2, min);
    let mut qh: u32 = 0;
    for j in 0..HALF {
        let x0 = (x[j] - min) * id;
        let x1 = (x[HALF + j] - min) * id;
        // ggml has no clamp here: `(uint8_t)(x0 + 0.5f)`.
        let xi0 = c_float_to_u8(x0 + 0.5);
        let xi1 = c_float_to_u8(x1 + 0.5);
        y[8 + j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
        qh |= (((xi0 & 0x10) >> 4) as u32) << j;
        qh |= (((xi1 & 0x10) >> 4) as u32) << (j + HALF);
    }
    y[4..8].copy_from_slice(&qh.to_le_bytes());
}

/// ggml's `dequantize_row_q5_1` for one block: 24 bytes → 32 values.
pub fn dequantize_block_q5_1(x: &[u8; Q5_1_BYTES], y: &mut [f32; BLOCK]) {
    let d = get_f16(x, 0);
    let m = get_f16(x, 2);
    let qh = u32::from_le_bytes([x[4], x[5], x[6], x[7]]);
    for j in 0..HALF {
        let xh_0 = (((qh >> j) << 4) & 0x10) as u8;
        let xh_1 = ((qh >> (j + 12)) & 0x10) as u8;
        let x0 = ((x[8 + j] & 0x0F) | xh_0) as i32;
        let x1 = ((x[8 + j] >> 4) | xh_1) as i32;
        y[j] = x0 as f32 * d + m;
        y[j + HALF] = x1 as f32 * d + m;
    }
}

/// Quantizes a row to Q5_1, bit-identical to `llama-quantize` without an importance matrix
/// (`quantize_row_q5_1_ref`). `x.len()` is a multiple of 32; `y.len() == x.len() / 32 * 24`.
///
/// Panics if the lengths disagree (a caller bug).
pub fn quantize_row_q5_1(x: &[f32], y: &mut [u8]) {
    check_row("Q5_1", x.len(), y.len(), Q5_1_BYTES);
    for (xb, yb) in x.chunks_exact(BLOCK).zip(y.chunks_exact_mut(Q5_1_BYTES)) {
        quantize_block_q5_1_fast(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

/// [`quantize_row_q5_1`] by the plain port alone, block by block (for the tests, and as the
/// readable statement of what the fast path computes).
pub fn quantize_row_q5_1_plain(x: &[f32], y: &mut [u8]) {
    check_row("Q5_1", x.len(), y.len(), Q5_1_BYTES);
    for (xb, yb) in x.chunks_exact(BLOCK).zip(y.chunks_exact_mut(Q5_1_BYTES)) {
        quantize_block_q5_1(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

/// Decodes a Q5_1 row, bit-identical to ggml's `dequantize_row_q5_1`. `y.len()` is a
/// multiple of 32; `x.len() == y.len() / 32 * 24`.
///
/// Panics if the lengths disagree (a caller bug).
pub fn dequantize_row_q5_1(x: &[u8], y: &mut [f32]) {
    check_row("Q5_1", y.len(), x.len(), Q5_1_BYTES);
    for (xb, yb) in x.chunks_exact(Q5_1_BYTES).zip(y.chunks_exact_mut(BLOCK)) {
        dequantize_block_q5_1(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

/// Golden data shared by the tests of this module and [`crate::iq4`] (`quant/tests/data/`,
/// see its README for how it was made).
#[cfg(test)]
pub(crate) mod test_data {
    /// Values per row of every data file.
    pub const COLS: usize = 256;

    /// Three BF16 rows of `wide-gpt-oss-ft` as `llama-quantize` read them, widened to f32.
    pub fn fixture_rows() -> Vec<f32> {
        include_bytes!("../tests/data/wide-ft-rows.bf16")
            .chunks_exact(2)
            .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
            .collect()
    }

    /// Seven hand-made f32 rows: zeros, huge values, negative maxima, subnormals, mixed scales,
    /// non-finite values, the IQ4 grid with exact midpoints.
    pub fn edge_rows() -> Vec<f32> {
        f32s(include_bytes!("../tests/data/edge-rows.f32"))
    }

    /// Little-endian f32 bytes as values.
    pub fn f32s(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    /// Blocks of every kind the fast path must agree on or hand back: random values at scales
    /// from f32 subnormals to near f32::MAX, one-signed blocks, ties of `+a`/`-a`, zeros of
    /// both signs as extremes, constant blocks, and NaN/Inf.
    pub fn stress_blocks() -> Vec<f32> {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut rnd = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut out = Vec::new();
        for k in 0..6000i32 {
            let exp = k % 280 - 150;
            let scale = 2f32.powi(exp);
            let mut b: [f32; super::BLOCK] = std::array::from_fn(|_| {
                let u = (rnd() >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
                (u * 2.0 - 1.0) * scale
            });
            match k % 11 {
                0 => b.iter_mut().for_each(|v| *v = v.abs()),
                1 => b.iter_mut().for_each(|v| *v = -v.abs()),
                2 => {
                    let a = b[(rnd() % 32) as usize].abs() * 2.0;
                    b[(rnd() % 32) as usize] = a;
                    b[(rnd() % 32) as usize] = -a;
                }
                3 => {
                    b.iter_mut().for_each(|v| *v = v.abs());
                    b[(rnd() % 32) as usize] = 0.0;
                    b[(rnd() % 32) as usize] = -0.0;
                }
                4 => b = [b[0]; super::BLOCK],
                5 => b[(rnd() % 32) as usize] = f32::NAN,
                6 => b[(rnd() % 32) as usize] = f32::INFINITY,
                7 => b.iter_mut().for_each(|v| *v = (*v * 8.0).round() / 8.0),
                _ => {}
            }
            out.extend_from_slice(&b);
        }
        out.extend_from_slice(&[0.0; super::BLOCK]);
        out.extend_from_slice(&[-0.0; super::BLOCK]);
        out.extend_from_slice(&[f32::MAX; super::BLOCK]);
        out.extend_from_slice(&[-f32::MAX; super::BLOCK]);
        let mut mixed = [f32::MAX; super::BLOCK];
        mixed[7] = -f32::MAX;
        out.extend_from_slice(&mixed);
        out
    }

    /// `(fixture bytes, fixture dequantization, edge bytes, edge dequantization)` of a type.
    macro_rules! golden {
        ($t:literal) => {
            (
                &include_bytes!(concat!("../tests/data/wide-ft-rows.", $t, ".bin"))[..],
                &include_bytes!(concat!("../tests/data/wide-ft-rows.", $t, ".deq.f32"))[..],
                &include_bytes!(concat!("../tests/data/edge-rows.", $t, ".bin"))[..],
                &include_bytes!(concat!("../tests/data/edge-rows.", $t, ".deq.f32"))[..],
            )
        };
    }
    pub(crate) use golden;

    type Golden = (&'static [u8], &'static [u8], &'static [u8], &'static [u8]);

    /// Quantizes the fixture and edge rows row by row and decodes the expected bytes, comparing
    /// bytes and f32 bit patterns (NaN included) with the golden files.
    pub fn check(
        name: &str,
        quantize: fn(&[f32], &mut [u8]),
        dequantize: fn(&[u8], &mut [f32]),
        golden: Golden,
    ) {
        let (fx_q, fx_deq, edge_q, edge_deq) = golden;
        for (what, x, want_q, want_deq) in [
            ("fixture", fixture_rows(), fx_q, f32s(fx_deq)),
            ("edge", edge_rows(), edge_q, f32s(edge_deq)),
        ] {
            let rows = x.len() / COLS;
            let row_bytes = want_q.len() / rows;
            assert_eq!(want_deq.len(), x.len());
            let mut q = vec![0u8; row_bytes];
            let mut y = vec![0f32; COLS];
            for r in 0..rows {
                quantize(&x[r * COLS..(r + 1) * COLS], &mut q);
                let want = &want_q[r * row_bytes..(r + 1) * row_bytes];
                assert_eq!(q, want, "{name} {what} row {r}: bytes");
                dequantize(want, &mut y);
                for (k, (a, b)) in y.iter().zip(&want_deq[r * COLS..]).enumerate() {
                    assert_eq!(a.to_bits(), b.to_bits(), "{name} {what} row {r} value {k}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_data::{check, golden, stress_blocks};
    use super::*;

    #[test]
    fn q4_0_matches_llama_quantize_and_ggml() {
        check(
            "Q4_0",
            quantize_row_q4_0,
            dequantize_row_q4_0,
            golden!("Q4_0"),
        );
    }

    #[test]
    fn q4_1_matches_llama_quantize_and_ggml() {
        check(
            "Q4_1",
            quantize_row_q4_1,
            dequantize_row_q4_1,
            golden!("Q4_1"),
        );
    }

    #[test]
    fn q5_0_matches_llama_quantize_and_ggml() {
        check(
            "Q5_0",
            quantize_row_q5_0,
            dequantize_row_q5_0,
            golden!("Q5_0"),
        );
    }

    #[test]
    fn q5_1_matches_llama_quantize_and_ggml() {
        check(
            "Q5_1",
            quantize_row_q5_1,
            dequantize_row_q5_1,
            golden!("Q5_1"),
        );
    }

    /// The fixture rows exercise both signs of the Q4_0 / Q5_0 scale (a negative `d` is a
    /// positive signed maximum).
    #[test]
    fn fixture_rows_have_both_signs_of_max() {
        for (bytes, block) in [
            (golden!("Q4_0").0, Q4_0_BYTES),
            (golden!("Q5_0").0, Q5_0_BYTES),
        ] {
            let signs: Vec<bool> = bytes.chunks(block).map(|b| b[1] & 0x80 != 0).collect();
            assert!(signs.iter().any(|&s| s) && signs.iter().any(|&s| !s));
        }
    }

    fn ramp() -> [f32; BLOCK] {
        std::array::from_fn(|i| (i as f32 - 15.5) / 64.0)
    }

    #[test]
    fn all_zero_blocks() {
        let x = [0f32; BLOCK];
        // Q4_0 / Q5_0: d = 0 / -8 = -0.0, stored as f16 0x8000; codes 8 / 16 (value 0).
        let mut q = [0u8; Q4_0_BYTES];
        quantize_block_q4_0(&x, &mut q);
        assert_eq!(&q[..2], &[0x00, 0x80]);
        assert!(q[2..].iter().all(|&b| b == 0x88));
        let mut q = [0u8; Q5_0_BYTES];
        quantize_block_q5_0(&x, &mut q);
        assert_eq!(&q[..6], &[0x00, 0x80, 0xff, 0xff, 0xff, 0xff]);
        assert!(q[6..].iter().all(|&b| b == 0x00));
        // Q4_1 / Q5_1: d = 0, m = 0, codes 0.
        let mut q = [0xAAu8; Q4_1_BYTES];
        quantize_block_q4_1(&x, &mut q);
        assert!(q.iter().all(|&b| b == 0));
        let mut q = [0xAAu8; Q5_1_BYTES];
        quantize_block_q5_1(&x, &mut q);
        assert!(q.iter().all(|&b| b == 0));
        let mut y = [1f32; BLOCK];
        dequantize_block_q5_1(&q, &mut y);
        assert!(y.iter().all(|&v| v.to_bits() == 0));
    }

    #[test]
    fn signed_max_picks_the_negative_side() {
        let mut x = ramp();
        x[3] = -4.0; // largest magnitude, negative: d = -4 / -8 = 0.5
        let mut q = [0u8; Q4_0_BYTES];
        quantize_block_q4_0(&x, &mut q);
        assert_eq!(u16::from_le_bytes([q[0], q[1]]), 0x3800);
        assert_eq!(q[2 + 3] & 0x0F, 0, "the maximum gets code 0");
        let mut y = [0f32; BLOCK];
        dequantize_block_q4_0(&q, &mut y);
        assert_eq!(y[3], -4.0);
        // A tie in magnitude keeps the first element: +4 at 1 beats -4 at 3, so d = -0.5.
        x[1] = 4.0;
        quantize_block_q4_0(&x, &mut q);
        assert_eq!(u16::from_le_bytes([q[0], q[1]]), 0xB800);
        // Q5_0: d = -4 / -16 = 0.25 with the negative maximum alone.
        x[1] = 0.0;
        let mut q = [0u8; Q5_0_BYTES];
        quantize_block_q5_0(&x, &mut q);
        assert_eq!(u16::from_le_bytes([q[0], q[1]]), 0x3400);
        let mut y = [0f32; BLOCK];
        dequantize_block_q5_0(&q, &mut y);
        assert_eq!(y[3], -4.0);
        // The positive side reaches +16 steps, clamped to code 31 (+15 steps).
        x[20] = 4.0;
        quantize_block_q5_0(&x, &mut q);
        dequantize_block_q5_0(&q, &mut y);
        assert_eq!(y[20], 15.0 * 0.25);
    }

    #[test]
    fn one_huge_value() {
        let mut x = ramp();
        x[5] = 1e30;
        // d = -1.25e29 overflows f16 to -inf; the other values are ~0 after x·id: code 8.
        let mut q = [0u8; Q4_0_BYTES];
        quantize_block_q4_0(&x, &mut q);
        assert_eq!(u16::from_le_bytes([q[0], q[1]]), 0xFC00);
        assert_eq!(q[2 + 5], 0x80);
        assert!(q[2..].iter().enumerate().all(|(j, &b)| j == 5 || b == 0x88));
        // Q4_1: d = (1e30 - min) / 15 → +inf, m = min exactly representable.
        let mut q = [0u8; Q4_1_BYTES];
        quantize_block_q4_1(&x, &mut q);
        assert_eq!(u16::from_le_bytes([q[0], q[1]]), 0x7C00);
        assert_eq!(
            ggml_fp16_to_fp32(u16::from_le_bytes([q[2], q[3]])),
            -15.5 / 64.0
        );
    }

    #[test]
    fn subnormal_blocks_give_code_zero_like_the_x86_build() {
        // 1/d overflows to inf: every x·id is ±inf or NaN, which the x86-64 build converts to
        // code 0 (the golden edge rows hold the same case as computed by ggml itself).
        let x: [f32; BLOCK] = std::array::from_fn(|i| (i as f32 - 13.0) * 1e-40);
        let mut q = [0xAAu8; Q4_0_BYTES];
        quantize_block_q4_0(&x, &mut q);
        assert_eq!(&q[..2], &[0x00, 0x80]); // d = -tiny → f16 -0
        assert!(q[2..].iter().all(|&b| b == 0));
        let mut q = [0xAAu8; Q5_1_BYTES];
        quantize_block_q5_1(&x, &mut q);
        assert_eq!(&q[..4], &[0x00, 0x00, 0x00, 0x80]); // d → +0, m → -0
        assert!(q[4..].iter().all(|&b| b == 0));
    }

    #[test]
    fn c_casts_follow_cvttss2si() {
        assert_eq!(c_float_to_u8(8.99), 8);
        assert_eq!(c_float_to_u8(0.49), 0);
        assert_eq!(c_float_to_u8(-0.99), 0);
        assert_eq!(c_float_to_u8(-1.5) as i8, -1);
        assert_eq!(c_float_to_u8(300.0), 44); // low byte of 300
        assert_eq!(c_float_to_u8(f32::INFINITY), 0);
        assert_eq!(c_float_to_u8(f32::NEG_INFINITY), 0);
        assert_eq!(c_float_to_u8(f32::NAN), 0);
        assert_eq!(c_float_to_u8(2_147_483_648.0), 0);
        assert_eq!(c_float_to_u8(2_147_483_520.0), 0x80);
    }

    /// ggml's f16 conversions equal IEEE round-to-nearest-even (`half`) on every non-NaN value.
    #[test]
    fn ggml_f16_conversions_match_ieee() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h).to_f32();
            let got = ggml_fp16_to_fp32(h);
            if want.is_nan() {
                assert!(got.is_nan());
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "{h:#06x}");
            }
        }
        let mut bits = 0u32;
        loop {
            let f = f32::from_bits(bits);
            let got = ggml_fp32_to_fp16(f);
            if f.is_nan() {
                assert_eq!(got, ((bits >> 16) as u16 & 0x8000) | 0x7E00, "{bits:#010x}");
            } else {
                assert_eq!(got, half::f16::from_f32(f).to_bits(), "{bits:#010x}");
            }
            match bits.checked_add(4093) {
                Some(b) => bits = b,
                None => break,
            }
        }
        // Exact ties at the f16 grid, both parities, and the overflow boundary.
        for (f, h) in [
            (1.0 + 2f32.powi(-11), 0x3C00),
            (1.0 + 3.0 * 2f32.powi(-11), 0x3C02),
        ] {
            assert_eq!(ggml_fp32_to_fp16(f), h);
        }
        assert_eq!(ggml_fp32_to_fp16(65520.0), 0x7C00);
        assert_eq!(ggml_fp32_to_fp16(65519.996), 0x7BFF);
    }

    #[test]
    fn plain_rows_match_llama_quantize_too() {
        check(
            "Q4_0 plain",
            quantize_row_q4_0_plain,
            dequantize_row_q4_0,
            golden!("Q4_0"),
        );
        check(
            "Q4_1 plain",
            quantize_row_q4_1_plain,
            dequantize_row_q4_1,
            golden!("Q4_1"),
        );
        check(
            "Q5_0 plain",
            quantize_row_q5_0_plain,
            dequantize_row_q5_0,
            golden!("Q5_0"),
        );
        check(
            "Q5_1 plain",
            quantize_row_q5_1_plain,
            dequantize_row_q5_1,
            golden!("Q5_1"),
        );
    }

    #[test]
    fn trunc_small_is_trunc() {
        let mut y = -4_194_303.9f32;
        let mut seen = 0;
        while y < 4_194_304.0 {
            for v in [y, -y, y / 3.0, y / 1e5, y * 1e-30] {
                assert_eq!(trunc_small(v), v.trunc() as i32, "{v}");
            }
            y = if y.abs() < 1.0 {
                y + 0.01
            } else {
                y * 0.999_9 + y.signum() * 0.25
            };
            if y.abs() < 1e-3 {
                y = 1e-3;
            }
            seen += 1;
            if seen > 2_000_000 {
                break;
            }
        }
        for v in [
            0.5f32,
            -0.5,
            1.5,
            -1.5,
            2.5,
            0.499_999_97,
            -0.999_999_94,
            16.5,
            31.5,
            0.0,
            -0.0,
        ] {
            assert_eq!(trunc_small(v), v.trunc() as i32, "{v}");
        }
    }

    #[test]
    fn high_bits_gathers_bit_4_of_every_code() {
        for p in 0..=255u32 {
            for shift in [0, 8, 16, 24] {
                let q: [u8; BLOCK] = std::array::from_fn(|k| {
                    let bit = ((p << shift) >> k) & 1;
                    (bit << 4) as u8 | (k as u8 & 0x0F) // low bits must not leak
                });
                let want = (0..BLOCK).fold(0u32, |h, k| h | (((q[k] >> 4) & 1) as u32) << k);
                assert_eq!(high_bits(&q), want);
            }
        }
        for v in [0.0f32, 0.4, 0.5, 1.0, 15.5, 16.5, 31.99, 4_194_303.5] {
            assert_eq!(trunc_pos(v), v.trunc() as u32, "{v}");
        }
    }

    #[test]
    fn fast_rows_equal_the_plain_port() {
        let x = stress_blocks();
        type Row = fn(&[f32], &mut [u8]);
        let cases: [(&str, usize, Row, Row); 4] = [
            (
                "Q4_0",
                Q4_0_BYTES,
                quantize_row_q4_0,
                quantize_row_q4_0_plain,
            ),
            (
                "Q4_1",
                Q4_1_BYTES,
                quantize_row_q4_1,
                quantize_row_q4_1_plain,
            ),
            (
                "Q5_0",
                Q5_0_BYTES,
                quantize_row_q5_0,
                quantize_row_q5_0_plain,
            ),
            (
                "Q5_1",
                Q5_1_BYTES,
                quantize_row_q5_1,
                quantize_row_q5_1_plain,
            ),
        ];
        for (name, bytes, fast, plain) in cases {
            let n = x.len() / BLOCK * bytes;
            let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
            fast(&x, &mut a);
            plain(&x, &mut b);
            for (k, (p, q)) in a.chunks(bytes).zip(b.chunks(bytes)).enumerate() {
                assert_eq!(
                    p,
                    q,
                    "{name} block {k}: {:?}",
                    &x[k * BLOCK..(k + 1) * BLOCK]
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "Q4_1 row bytes")]
    fn row_lengths_are_checked() {
        quantize_row_q4_1(&[0.0; 64], &mut [0u8; 41]);
    }
}
