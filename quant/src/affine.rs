//! MLX affine quantization: `mx.quantize(w, group_size, bits)` with the default
//! `mode="affine"`, bit for bit, and its inverse.
//!
//! A row of `n` values is cut into groups of `group` (32, 64 or 128; `mlx_lm.convert` uses 64)
//! consecutive values. Each group stores unsigned `bits`-bit codes `q` (bits 2, 3, 4, 5, 6 or 8)
//! and one BF16 `scale` and `bias`, and means `scale · q + bias`:
//!
//! - **codes** (`.weight`, U32 `[.., n · bits / 32]`): a little-endian bit stream, element `k`
//!   of the row in bits `k·bits .. (k+1)·bits` (for 2, 4 and 8 bits that is "lowest bits first
//!   in each little-endian U32"; for 3, 5 and 6 bits MLX packs 8, 8 and 4 values into 3, 5 and
//!   3 bytes, which is the same stream);
//! - **scales**, **biases** (`.scales`, `.biases`, `[.., n / group]`): BF16 (the dtype of the
//!   quantized BF16 weights).
//!
//! Encoding, per group, in f32 (mlx `quantize` in `mlx/backend/cpu/quantized.cpp`, the CPU
//! kernel of `fast::Quantize`, and the `affine_quantize` fallback in `mlx/ops.cpp`; checked bit
//! for bit against mlx 0.32.4 and against `mlx_lm.convert` output):
//! 1. `max`, `min` of the group; the edge of larger magnitude (`min` if `|min| > |max|`, else
//!    `max`) sets the sign: `scale = ±max((max - min) / (2^bits - 1), 1e-7)`, `+` for `min`;
//! 2. `q0 = rint(edge / scale)`; when `q0 != 0`: `scale = edge / q0`, `bias = edge`, else
//!    `bias = 0` (so the edge is reproduced exactly, up to the BF16 rounding of the stored
//!    scale and bias);
//! 3. `q = clamp(rint((x - bias) / scale), 0, 2^bits - 1)` with the f32 `scale` (before it is
//!    rounded to BF16); `rint` rounds half to even;
//! 4. `scale` and `bias` stored as BF16, round to nearest even.
//!
//! Decoding: [`dequantize_row`] computes `scale · q + bias` in f32 (the stored BF16 scale and
//! bias, two f32 roundings), which is what a float32 reference wants. `mx.dequantize` on BF16
//! scales returns BF16 and rounds after each operation, `bf16(bf16(scale · q) + bias)`
//! (measured on mlx 0.32.4); [`dequantize_row_mlx`] reproduces that.
//!
//! Non-finite input: a group holding NaN or ±Inf gets codes 0 and a NaN scale and bias, so it
//! decodes to NaN (MLX would cast a NaN to an integer, which is undefined). Callers refuse such
//! weights first ([`crate::float::first_nonfinite`]).

use crate::float::{bf16_bits_to_f32, f32_to_bf16_bits};

/// The code widths MLX supports.
pub const BITS: [u32; 6] = [2, 3, 4, 5, 6, 8];
/// The group sizes MLX supports.
pub const GROUPS: [usize; 3] = [32, 64, 128];
/// The smallest scale magnitude (`eps` in MLX's kernel, `1e-7` rounded to f32).
pub const MIN_SCALE: f32 = 1e-7;
/// BF16 quiet NaN, written as the scale and bias of a non-finite group.
const BF16_NAN: u16 = 0x7FC0;

/// Unsupported quantization parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AffineParamsError {
    /// `bits` is not one of [`BITS`].
    Bits(u32),
    /// `group` is not one of [`GROUPS`].
    Group(usize),
}

impl std::fmt::Display for AffineParamsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AffineParamsError::Bits(b) => {
                write!(
                    f,
                    "MLX affine quantization takes 2, 3, 4, 5, 6 or 8 bits, not {b}"
                )
            }
            AffineParamsError::Group(g) => {
                write!(
                    f,
                    "MLX affine quantization takes groups of 32, 64 or 128, not {g}"
                )
            }
        }
    }
}

impl std::error::Error for AffineParamsError {}

/// Checks `bits` and `group` against what MLX supports (the row functions panic otherwise).
pub fn check_params(bits: u32, group: usize) -> Result<(), AffineParamsError> {
    if !BITS.contains(&bits) {
        return Err(AffineParamsError::Bits(bits));
    }
    if !GROUPS.contains(&group) {
        return Err(AffineParamsError::Group(group));
    }
    Ok(())
}

/// Bytes of packed codes for `n` values of `bits` bits (`n · bits / 8`; whole U32 words when
/// `n` is a multiple of a supported group).
pub const fn packed_bytes(n: usize, bits: u32) -> usize {
    n * bits as usize / 8
}

fn check_row(n: usize, bits: u32, group: usize, packed: usize, scales: usize, biases: usize) {
    if let Err(e) = check_params(bits, group) {
        panic!("{e}");
    }
    assert_eq!(
        n % group,
        0,
        "affine row length must be a multiple of the group"
    );
    assert_eq!(packed, packed_bytes(n, bits), "affine packed length");
    assert_eq!(scales, 2 * (n / group), "affine scales length");
    assert_eq!(biases, 2 * (n / group), "affine biases length");
}

/// Quantizes one row as `mx.quantize(w, group_size=group, bits=bits)` does for a BF16 `w`
/// (given here as f32; every BF16 value is exact in f32): `packed` receives
/// [`packed_bytes`]`(xs.len(), bits)` bytes of codes (the little-endian bytes of the U32
/// tensor), `scales_bf16` and `biases_bf16` two little-endian BF16 bytes per group.
///
/// Panics on unsupported `bits`/`group` (see [`check_params`]) or wrong lengths (caller bugs).
pub fn quantize_row(
    xs: &[f32],
    bits: u32,
    group: usize,
    packed: &mut [u8],
    scales_bf16: &mut [u8],
    biases_bf16: &mut [u8],
) {
    quantize_row_counting(xs, bits, group, packed, scales_bf16, biases_bf16);
}

/// [`quantize_row`], also returning how many values [`dequantize_row`] does not give back
/// exactly and the largest absolute change (as [`crate::float::rounding_errors`] counts them;
/// a non-finite group counts as changed with an infinite error), computed on the way instead of
/// by decoding the row again.
///
/// Panics on unsupported `bits`/`group` (see [`check_params`]) or wrong lengths (caller bugs).
pub fn quantize_row_counting(
    xs: &[f32],
    bits: u32,
    group: usize,
    packed: &mut [u8],
    scales_bf16: &mut [u8],
    biases_bf16: &mut [u8],
) -> (u64, f32) {
    check_row(
        xs.len(),
        bits,
        group,
        packed.len(),
        scales_bf16.len(),
        biases_bf16.len(),
    );
    let gbytes = packed_bytes(group, bits);
    let (mut changed, mut worst) = (0u64, 0f32);
    for (((x, p), s), b) in xs
        .chunks_exact(group)
        .zip(packed.chunks_exact_mut(gbytes))
        .zip(scales_bf16.chunks_exact_mut(2))
        .zip(biases_bf16.chunks_exact_mut(2))
    {
        let (scale, bias, n, err) = quantize_group_counting(x, bits, p);
        s.copy_from_slice(&scale.to_le_bytes());
        b.copy_from_slice(&bias.to_le_bytes());
        changed += n;
        worst = worst.max(err);
    }
    (changed, worst)
}

/// One group: writes the packed codes into `out` and returns the BF16 bits of the scale and
/// bias.
#[cfg(test)]
fn quantize_group(x: &[f32], bits: u32, out: &mut [u8]) -> (u16, u16) {
    let (s, b, _, _) = quantize_group_counting(x, bits, out);
    (s, b)
}

/// Lanes of the min/max scan (independent accumulators, so the loop vectorizes).
const LANES: usize = 8;

/// One group: writes the packed codes into `out` and returns the BF16 bits of the scale and
/// bias, with the count and largest size of the values that do not decode back exactly.
fn quantize_group_counting(x: &[f32], bits: u32, out: &mut [u8]) -> (u16, u16, u64, f32) {
    let n_bins = ((1u32 << bits) - 1) as f32;
    if !crate::float::all_finite(x) {
        out.fill(0);
        // Every value decodes to NaN: a change for all but the NaN inputs.
        let n = x.iter().filter(|v| !v.is_nan()).count() as u64;
        return (
            BF16_NAN,
            BF16_NAN,
            n,
            if n > 0 { f32::INFINITY } else { 0.0 },
        );
    }
    // The extremes, over 8 lanes then across them (MLX scans with `std::max` / `std::min`).
    // The values are finite, so the maximum and minimum are the same whatever the order and
    // whichever max/min is used, but for the sign of a zero extreme, on which nothing below
    // depends (|min| vs |max|, `max - min`, and a zero edge gives q0 = 0 and bias 0 either way).
    let (mut hi, mut lo) = ([f32::NEG_INFINITY; LANES], [f32::INFINITY; LANES]);
    for c in x.chunks_exact(LANES) {
        for k in 0..LANES {
            hi[k] = hi[k].max(c[k]);
            lo[k] = lo[k].min(c[k]);
        }
    }
    let (mut w_max, mut w_min) = (f32::NEG_INFINITY, f32::INFINITY);
    for k in 0..LANES {
        if w_max < hi[k] {
            w_max = hi[k];
        }
        if lo[k] < w_min {
            w_min = lo[k];
        }
    }
    let mask = w_min.abs() > w_max.abs();
    let mut scale = (w_max - w_min) / n_bins;
    if scale < MIN_SCALE {
        scale = MIN_SCALE;
    }
    if !mask {
        scale = -scale;
    }
    let edge = if mask { w_min } else { w_max };
    let q0 = edge / scale;
    // rint: the addition trick where it is exact, the library call (rarely) beyond.
    let q0 = if q0.abs() < 4_194_304.0 {
        (q0 + MAGIC) - MAGIC
    } else {
        q0.round_ties_even()
    };
    let mut bias = 0f32;
    if q0 != 0.0 {
        scale = edge / q0;
        bias = edge;
    }
    // The codes first, in a loop the compiler vectorizes (the division is MLX's, not a
    // multiplication by the reciprocal, which can round differently). Clamping the quotient to
    // [-1, 2^bits] before rounding changes no code (anything beyond rounds past the clamp
    // below anyway) and keeps it where adding 1.5·2^23 rounds it to a whole number exactly
    // as `rint` does, that number then in the low bits of the sum.
    let (sb, bb) = (f32_to_bf16_bits(scale), f32_to_bf16_bits(bias));
    let (sd, bd) = (bf16_bits_to_f32(sb), bf16_bits_to_f32(bb));
    let mut codes = [0u8; 128];
    let codes = &mut codes[..x.len()];
    let (mut changed, mut worst) = (0u32, 0u32);
    for (c, &w) in codes.iter_mut().zip(x) {
        let v = (w - bias) / scale;
        let v = if v < -1.0 { -1.0 } else { v };
        let v = if v > n_bins + 1.0 { n_bins + 1.0 } else { v };
        let r = (v + MAGIC) - MAGIC;
        let r = if r < 0.0 { 0.0 } else { r };
        let r = if r > n_bins { n_bins } else { r };
        *c = ((r + MAGIC).to_bits() as i32 - MAGIC_BITS) as u8;
        // What `dequantize_row` gives back, compared as `float::rounding_errors` does (every
        // value is finite here, so every difference is a number).
        // Sizes are non-negative, so their bits order like them: an integer maximum, which
        // vectorizes where a float one does not.
        let back = sd * r + bd;
        changed += (w != back) as u32;
        worst = worst.max((w - back).abs().to_bits());
    }
    pack(codes, bits, out);
    let worst = f32::from_bits(worst);
    (sb, bb, changed as u64, worst)
}

/// 1.5·2^23: for `|v| < 2^22`, `v + MAGIC` is rounded (to nearest, ties to even) to a whole
/// number, `MAGIC + rint(v)`, whose bits are `MAGIC_BITS + rint(v)`.
const MAGIC: f32 = 12_582_912.0;
/// The bits of [`MAGIC`].
const MAGIC_BITS: i32 = 0x4B40_0000;

/// Packs `codes` (each below `2^bits`) into the little-endian bit stream `out`
/// (`out.len() == packed_bytes(codes.len(), bits)`).
fn pack(codes: &[u8], bits: u32, out: &mut [u8]) {
    match bits {
        8 => out.copy_from_slice(codes),
        4 => {
            for (o, c) in out.iter_mut().zip(codes.chunks_exact(2)) {
                *o = c[0] | (c[1] << 4);
            }
        }
        2 => {
            for (o, c) in out.iter_mut().zip(codes.chunks_exact(4)) {
                *o = c[0] | (c[1] << 2) | (c[2] << 4) | (c[3] << 6);
            }
        }
        _ => {
            let mut acc = 0u64;
            let mut nbits = 0u32;
            let mut o = 0usize;
            for &q in codes {
                acc |= (q as u64) << nbits;
                nbits += bits;
                while nbits >= 8 {
                    out[o] = acc as u8;
                    o += 1;
                    acc >>= 8;
                    nbits -= 8;
                }
            }
            debug_assert_eq!((o, nbits), (out.len(), 0));
        }
    }
}

/// The codes of one row, unpacked from the little-endian bit stream into `q`
/// (`packed.len() == packed_bytes(q.len(), bits)`).
fn unpack(packed: &[u8], bits: u32, q: &mut [u8]) {
    match bits {
        8 => return q.copy_from_slice(packed),
        4 => {
            for (c, &p) in q.chunks_exact_mut(2).zip(packed) {
                c[0] = p & 15;
                c[1] = p >> 4;
            }
            return;
        }
        _ => {}
    }
    let mask = (1u64 << bits) - 1;
    let mut acc = 0u64;
    let mut nbits = 0u32;
    let mut bytes = packed.iter();
    for v in q.iter_mut() {
        while nbits < bits {
            acc |= (*bytes.next().expect("packed length checked") as u64) << nbits;
            nbits += 8;
        }
        *v = (acc & mask) as u8;
        acc >>= bits;
        nbits -= bits;
    }
}

/// Decodes one row to `scale · q + bias` computed in f32 from the stored BF16 scale and bias.
/// Lengths as in [`quantize_row`], `out.len()` values.
///
/// Panics on unsupported `bits`/`group` or wrong lengths (caller bugs).
pub fn dequantize_row(
    packed: &[u8],
    scales_bf16: &[u8],
    biases_bf16: &[u8],
    bits: u32,
    group: usize,
    out: &mut [f32],
) {
    decode(
        packed,
        scales_bf16,
        biases_bf16,
        bits,
        group,
        out,
        |s, q, b| s * q + b,
    );
}

/// Decodes one row as `mx.dequantize` does for BF16 scales: `bf16(bf16(scale · q) + bias)`,
/// returned as f32 (exact: every value is a BF16 value).
///
/// Panics on unsupported `bits`/`group` or wrong lengths (caller bugs).
pub fn dequantize_row_mlx(
    packed: &[u8],
    scales_bf16: &[u8],
    biases_bf16: &[u8],
    bits: u32,
    group: usize,
    out: &mut [f32],
) {
    let bf16 = |v: f32| bf16_bits_to_f32(f32_to_bf16_bits(v));
    decode(
        packed,
        scales_bf16,
        biases_bf16,
        bits,
        group,
        out,
        |s, q, b| bf16(bf16(s * q) + b),
    );
}

fn decode(
    packed: &[u8],
    scales_bf16: &[u8],
    biases_bf16: &[u8],
    bits: u32,
    group: usize,
    out: &mut [f32],
    f: impl Fn(f32, f32, f32) -> f32,
) {
    check_row(
        out.len(),
        bits,
        group,
        packed.len(),
        scales_bf16.len(),
        biases_bf16.len(),
    );
    let gbytes = packed_bytes(group, bits);
    let mut codes = [0u8; 128]; // the largest group
    let q = &mut codes[..group];
    for (((o, p), s), b) in out
        .chunks_exact_mut(group)
        .zip(packed.chunks_exact(gbytes))
        .zip(scales_bf16.chunks_exact(2))
        .zip(biases_bf16.chunks_exact(2))
    {
        unpack(p, bits, q);
        let s = bf16_bits_to_f32(u16::from_le_bytes([s[0], s[1]]));
        let b = bf16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]));
        for (o, &q) in o.iter_mut().zip(q.iter()) {
            *o = f(s, q as f32, b);
        }
    }
}

#[cfg(test)]
mod tests;
