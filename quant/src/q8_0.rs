//! ggml `block_q8_0`: 32 int8 values sharing one f16 scale `d` (34 bytes: `d` little-endian,
//! then `qs[32]`). Value `k` is `qs[k] · d` (ggml `ggml-common.h`, `dequantize_row_q8_0`).
//!
//! Two encoders:
//! - [`quantize_block_ref`], ggml's `quantize_row_q8_0_ref` bit for bit: `d = amax/127`,
//!   `id = 1/d` taken from the f32 `d` *before* it is rounded to f16, `q = roundf(x·id)` (half away
//!   from zero), `d` stored as f16 nearest-even. This is what `convert_hf_to_gguf.py --outtype q8_0`
//!   and `llama-quantize` write.
//! - [`from_mxfp4_block`], the exact factorisation of an MXFP4 block: `d = 2^(s-128)` and
//!   `q = 2 · E2M1 value` (ggml's own doubled table), lossless whenever `2^(s-128)` is an f16
//!   value, i.e. for scale bytes 104..=143 (`docs/formats.md`, GGUF).

use crate::float::{f16_bits_to_f32, f32_to_f16_bits};
use crate::mxfp4;

/// Elements per block.
pub const BLOCK: usize = 32;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 34;
/// Smallest MXFP4 scale byte whose `2^(s-128)` is exact in f16 (`2^-24`, the smallest subnormal).
pub const EXACT_SCALE_MIN: u8 = 104;
/// Largest MXFP4 scale byte whose `2^(s-128)` is exact in f16 (`2^15`).
pub const EXACT_SCALE_MAX: u8 = 143;

/// Decodes one block.
#[inline]
pub fn decode_block(block: &[u8], out: &mut [f32]) {
    debug_assert_eq!(block.len(), BLOCK_BYTES);
    debug_assert_eq!(out.len(), BLOCK);
    let d = f16_bits_to_f32(u16::from_le_bytes([block[0], block[1]]));
    for (o, &q) in out.iter_mut().zip(&block[2..]) {
        *o = (q as i8) as f32 * d;
    }
}

/// Decodes a row of blocks (`data.len() == out.len() / 32 * 34`).
pub fn decode_row(data: &[u8], out: &mut [f32]) {
    assert_eq!(
        out.len() % BLOCK,
        0,
        "Q8_0 row length must be a multiple of 32"
    );
    assert_eq!(
        data.len(),
        out.len() / BLOCK * BLOCK_BYTES,
        "Q8_0 row bytes"
    );
    for (o, b) in out
        .chunks_exact_mut(BLOCK)
        .zip(data.chunks_exact(BLOCK_BYTES))
    {
        decode_block(b, o);
    }
}

/// ggml's `quantize_row_q8_0_ref` for one block of 32 values.
pub fn quantize_block_ref(x: &[f32], out: &mut [u8]) {
    assert_eq!(x.len(), BLOCK, "Q8_0 block length");
    assert_eq!(out.len(), BLOCK_BYTES, "Q8_0 block bytes");
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out[..2].copy_from_slice(&f32_to_f16_bits(d).to_le_bytes());
    for (o, &v) in out[2..].iter_mut().zip(x) {
        // `f32::round` is C `roundf`: half away from zero.
        *o = ((v * id).round() as i32) as i8 as u8;
    }
}

/// The fast path of [`quantize_block_ref`], same bytes: the largest magnitude over 8 lanes,
/// `roundf` as `trunc` plus a step away from zero where the exact fractional part reaches one
/// half (f32 operations only, so the loop vectorizes on the baseline target). Blocks where
/// the two could differ go to [`quantize_block_ref`]: a NaN or infinite value, or an infinite
/// `1/d`. Elsewhere `|x·id| <= 127·(1 + 2^-20)`, where the emulation is exact.
#[inline(always)]
fn quantize_block_fast(x: &[f32; BLOCK], out: &mut [u8]) {
    if !crate::legacy::block_finite(x) {
        return quantize_block_ref(x, out);
    }
    let amax = crate::legacy::block_absmax(x);
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    if !id.is_finite() {
        return quantize_block_ref(x, out);
    }
    // ggml's own f32 -> f16 (inlined arithmetic), equal to `half`'s on every non-NaN value.
    out[..2].copy_from_slice(&crate::legacy::ggml_fp32_to_fp16(d).to_le_bytes());
    let mut q = [0u8; BLOCK];
    for (q, &v) in q.iter_mut().zip(x) {
        let y = v * id;
        let t = crate::legacy::trunc_small(y);
        let f = y - t as f32; // exact: the fractional part of a value below 2^7
        *q = (t + (f >= 0.5) as i32 - (f <= -0.5) as i32) as u8;
    }
    out[2..].copy_from_slice(&q);
}

/// Quantizes a row as [`quantize_block_ref`] does, block by block (through a vectorized fast
/// path with the same bytes; [`quantize_row_plain`] is the port alone).
pub fn quantize_row_ref(x: &[f32], out: &mut [u8]) {
    assert_eq!(
        x.len() % BLOCK,
        0,
        "Q8_0 row length must be a multiple of 32"
    );
    assert_eq!(out.len(), x.len() / BLOCK * BLOCK_BYTES, "Q8_0 row bytes");
    row_fast(x, out);
}

crate::avx2::dispatch_row!(
    /// The blocks of [`quantize_row_ref`], with AVX2 where the CPU has it.
    row_fast => row_fast_body
);

#[inline(always)]
fn row_fast_body(x: &[f32], out: &mut [u8]) {
    for (b, o) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        quantize_block_fast(b.try_into().unwrap(), o);
    }
}

/// [`quantize_row_ref`] by [`quantize_block_ref`] alone (for the tests, and as the readable
/// statement of what the fast path computes).
pub fn quantize_row_plain(x: &[f32], out: &mut [u8]) {
    assert_eq!(
        x.len() % BLOCK,
        0,
        "Q8_0 row length must be a multiple of 32"
    );
    assert_eq!(out.len(), x.len() / BLOCK * BLOCK_BYTES, "Q8_0 row bytes");
    for (b, o) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        quantize_block_ref(b, o);
    }
}

/// True when an MXFP4 block with this scale byte converts to Q8_0 exactly.
#[inline]
pub fn mxfp4_scale_is_exact(scale: u8) -> bool {
    (EXACT_SCALE_MIN..=EXACT_SCALE_MAX).contains(&scale)
}

/// Converts one release-layout MXFP4 block to Q8_0. Returns `true` when the conversion is
/// exact (`d = 2^(s-128)`, `q = 2·v`); otherwise the block's decoded values are quantized
/// with [`quantize_block_ref`] and `false` is returned so the caller can count it.
pub fn from_mxfp4_block(blocks: &[u8], scale: u8, out: &mut [u8]) -> bool {
    debug_assert_eq!(blocks.len(), mxfp4::BLOCK_BYTES);
    debug_assert_eq!(out.len(), BLOCK_BYTES);
    if mxfp4_scale_is_exact(scale) {
        let d = f32_to_f16_bits(mxfp4::e8m0_to_f32_half(scale));
        out[..2].copy_from_slice(&d.to_le_bytes());
        for k in 0..BLOCK {
            out[2 + k] = mxfp4::GGML_KVALUES[mxfp4::code_at(blocks, k) as usize] as u8;
        }
        true
    } else {
        let mut v = [0f32; BLOCK];
        mxfp4::decode_block(blocks, scale, &mut v);
        quantize_block_ref(&v, out);
        false
    }
}

/// True when a Q8_0 block is an exact MXFP4 block: `d` a power of two that an MXFP4 scale
/// byte in [`EXACT_SCALE_MIN`]..=[`EXACT_SCALE_MAX`] gives, every `q` a doubled E2M1 value (what
/// [`from_mxfp4_block`] writes).
pub fn block_is_mxfp4_form(block: &[u8]) -> bool {
    let d = u16::from_le_bytes([block[0], block[1]]);
    let (exp, man) = ((d >> 10) & 0x1F, d & 0x3FF);
    let pow2 = d & 0x8000 == 0
        && ((exp != 0 && exp != 0x1F && man == 0) || (exp == 0 && man.is_power_of_two()));
    pow2 && block[2..BLOCK_BYTES]
        .iter()
        .all(|&q| crate::mxfp4::GGML_KVALUES.contains(&(q as i8)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_block_decodes() {
        let mut b = [0u8; 34];
        b[..2].copy_from_slice(&0x3800u16.to_le_bytes()); // f16 0.5
        b[2] = 127;
        b[3] = 0x80; // -128
        b[4] = 0xFF; // -1
        let mut out = [0f32; 32];
        decode_block(&b, &mut out);
        assert_eq!(&out[..4], &[63.5, -64.0, -0.5, 0.0]);
    }

    /// Expected bytes produced by gguf-py 0.19 `quants.quantize(x, Q8_0)` (bit-exact with
    /// ggml's `quantize_row_q8_0_ref`): d = f16 0x251f, q = 127, -64, 1, -1.
    #[test]
    fn reference_quantizer_matches_ggml() {
        let mut x = [0f32; 32];
        x[0] = 2.54;
        x[1] = -1.27;
        x[2] = 0.01; // 0.01 · 50 = 0.5 → rounds away from zero to 1
        x[3] = -0.01;
        let mut out = [0u8; 34];
        quantize_block_ref(&x, &mut out);
        assert_eq!(u16::from_le_bytes([out[0], out[1]]), 0x251f);
        assert_eq!(out[2] as i8, 127);
        assert_eq!(out[3] as i8, -64);
        assert_eq!(out[4] as i8, 1);
        assert_eq!(out[5] as i8, -1);
        let mut zero = [1u8; 34];
        quantize_block_ref(&[0f32; 32], &mut zero);
        assert!(zero.iter().all(|&b| b == 0), "all-zero block: d = 0, q = 0");
    }

    #[test]
    fn fast_rows_equal_the_plain_port() {
        let x = crate::legacy::test_data::stress_blocks();
        let n = x.len() / BLOCK * BLOCK_BYTES;
        let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
        quantize_row_ref(&x, &mut a);
        quantize_row_plain(&x, &mut b);
        for (k, (p, q)) in a.chunks(BLOCK_BYTES).zip(b.chunks(BLOCK_BYTES)).enumerate() {
            assert_eq!(p, q, "block {k}: {:?}", &x[k * BLOCK..(k + 1) * BLOCK]);
        }
        // The body as built for the baseline target (the row above takes the AVX2 copy where this
        // CPU has AVX2).
        let mut base = vec![0u8; n];
        row_fast_body(&x, &mut base);
        assert!(base == b, "baseline build of the fast path");
        // Exact halves of the scaled values, both signs, where roundf goes away from zero.
        let mut h = [0f32; BLOCK];
        for (i, v) in h.iter_mut().enumerate() {
            *v = (i as f32 - 15.5) * 0.5;
        }
        h[0] = 63.5;
        let (mut a, mut b) = ([0u8; BLOCK_BYTES], [0u8; BLOCK_BYTES]);
        quantize_row_ref(&h, &mut a);
        quantize_row_plain(&h, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn mxfp4_conversion_is_exact_inside_the_f16_scale_range() {
        let blocks: Vec<u8> = (0..16u8)
            .map(|i| i.wrapping_mul(53).wrapping_add(7))
            .collect();
        for s in 0..=254u8 {
            let mut want = [0f32; 32];
            mxfp4::decode_block(&blocks, s, &mut want);
            let mut q = [0u8; 34];
            let exact = from_mxfp4_block(&blocks, s, &mut q);
            assert_eq!(exact, (104..=143).contains(&s), "scale {s}");
            let mut got = [0f32; 32];
            decode_block(&q, &mut got);
            if exact {
                assert_eq!(got, want, "scale {s}");
            }
        }
    }

    #[test]
    fn rows_round_trip_within_half_a_step() {
        let x: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 64) as f32 - 31.5) * 0.013)
            .collect();
        let mut q = vec![0u8; 68];
        quantize_row_ref(&x, &mut q);
        let mut back = vec![0f32; 64];
        decode_row(&q, &mut back);
        for (blk, qb) in x.chunks(32).zip(back.chunks(32)) {
            let amax = blk.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (a, b) in blk.iter().zip(qb) {
                assert!((a - b).abs() <= amax / 127.0 * 0.5 + amax * 1e-3, "{a} {b}");
            }
        }
    }
}
