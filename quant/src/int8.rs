//! Symmetric int8 with one scale per group of `group` consecutive inputs, stored the way
//! compressed-tensors' `pack-quantized` format stores 8-bit weights
//! (vllm-project/compressed-tensors `pack_quantized.py`; `docs/formats.md`; checked against
//! `fixtures/compressed-tensors`):
//!
//! - `weight_packed`: I32 `[out, in/4]`; element `k` of a row is byte `k` of the row, holding
//!   `q + 128` (unsigned offset), so four consecutive elements share a little-endian i32 with
//!   the first in the low byte (compressed-tensors `pack_to_int32`).
//! - `weight_scale`: `[out, in/group]` in the model dtype (BF16 here).
//! - value `= q · scale`, computed the way compressed-tensors dequantizes: in the scale's dtype,
//!   i.e. the exact product rounded to BF16 (`_dequantize`: `x_q.to(scale.dtype) * scale`).
//!
//! Two encoders: [`from_mxfp4_block`] (exact: group = one MXFP4 block, `q = 2·v`,
//! `scale = 2^(s-128)`, which BF16 holds for every `s` in 0..=254) and [`quantize_row_absmax`]
//! (lossy, symmetric absmax/127 with the scale rounded to BF16 first so `q` is computed against
//! the stored scale).

use crate::float::{bf16_bits_to_f32, f32_to_bf16_bits};
use crate::mxfp4;

/// Offset added to `q` before packing.
pub const OFFSET: i32 = 128;

/// Decodes one row: `packed` holds `out.len()` bytes, `scales_bf16` one little-endian BF16
/// scale per group of `group` elements.
pub fn decode_row_bf16_scales(packed: &[u8], scales_bf16: &[u8], group: usize, out: &mut [f32]) {
    assert!(
        group > 0 && out.len().is_multiple_of(group),
        "int8 group must divide the row"
    );
    assert_eq!(packed.len(), out.len(), "int8 packed row bytes");
    assert_eq!(
        scales_bf16.len(),
        2 * (out.len() / group),
        "int8 scales bytes"
    );
    for ((o, q), s) in out
        .chunks_exact_mut(group)
        .zip(packed.chunks_exact(group))
        .zip(scales_bf16.chunks_exact(2))
    {
        let scale = bf16_bits_to_f32(u16::from_le_bytes([s[0], s[1]]));
        for (o, &b) in o.iter_mut().zip(q) {
            let v = (b as i32 - OFFSET) as f32 * scale;
            *o = bf16_bits_to_f32(f32_to_bf16_bits(v));
        }
    }
}

/// Converts one release-layout MXFP4 block to 32 packed int8 bytes and its BF16 scale bits.
/// Exact for every scale byte but the NaN 255 (`None`): the BF16 scale `2^(s-128)` holds every
/// `s` in 0..=254 (0 gives `2^-128`, a BF16 subnormal), and every `q · scale` is exact in BF16.
pub fn from_mxfp4_block(blocks: &[u8], scale: u8, out: &mut [u8]) -> Option<u16> {
    if scale == mxfp4::E8M0_NAN {
        return None;
    }
    mxfp4_codes_to_q(blocks, out);
    Some(f32_to_bf16_bits(mxfp4::e8m0_to_f32_half(scale)))
}

/// The packed bytes `q + 128` of an MXFP4 block, `q = 2·v` ([`mxfp4::GGML_KVALUES`]), whatever
/// its scale (for a caller that stores a NaN scale on purpose).
pub fn mxfp4_codes_to_q(blocks: &[u8], out: &mut [u8]) {
    debug_assert_eq!(blocks.len(), mxfp4::BLOCK_BYTES);
    debug_assert_eq!(out.len(), mxfp4::BLOCK);
    // Byte k of the block holds elements 2k (low nibble) and 2k + 1 (high nibble).
    const PACKED: [u8; 16] = {
        let mut t = [0u8; 16];
        let mut c = 0;
        while c < 16 {
            t[c] = (mxfp4::GGML_KVALUES[c] as i32 + OFFSET) as u8;
            c += 1;
        }
        t
    };
    for (o, &b) in out.chunks_exact_mut(2).zip(blocks) {
        o[0] = PACKED[(b & 0x0F) as usize];
        o[1] = PACKED[(b >> 4) as usize];
    }
}

/// Symmetric absmax quantization of one row in groups of `group`: `scale = bf16(amax / 127)`,
/// `q = clamp(round(x / scale), -127, 127)` (0 for an all-zero group). Writes packed bytes and
/// BF16 scale bits.
pub fn quantize_row_absmax(x: &[f32], group: usize, packed: &mut [u8], scales_bf16: &mut [u16]) {
    assert!(
        group > 0 && x.len().is_multiple_of(group),
        "int8 group must divide the row"
    );
    assert_eq!(packed.len(), x.len(), "int8 packed row bytes");
    assert_eq!(scales_bf16.len(), x.len() / group, "int8 scales length");
    for ((xs, ps), sc) in x
        .chunks_exact(group)
        .zip(packed.chunks_exact_mut(group))
        .zip(scales_bf16.iter_mut())
    {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let bits = f32_to_bf16_bits(amax / 127.0);
        let scale = bf16_bits_to_f32(bits);
        *sc = bits;
        for (p, &v) in ps.iter_mut().zip(xs) {
            let q = if scale > 0.0 {
                (v / scale).round().clamp(-127.0, 127.0) as i32
            } else {
                0
            };
            *p = (q + OFFSET) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes from `fixtures/compressed-tensors/tiny-gpt-oss-int8`: row 0 of layer 0, expert 1,
    /// gate_proj starts 129 126 122 120 with scale 0x3d80 (2^-4 = MXFP4 scale byte 124).
    #[test]
    fn packed_bytes_are_q_plus_128_in_element_order() {
        let packed = [129u8, 126, 122, 120];
        let mut row = vec![128u8; 32];
        row[..4].copy_from_slice(&packed);
        let scale = 0x3d80u16.to_le_bytes();
        let mut out = [0f32; 32];
        decode_row_bf16_scales(&row, &scale, 32, &mut out);
        assert_eq!(&out[..4], &[0.0625, -0.125, -0.375, -0.5]);
    }

    #[test]
    fn mxfp4_conversion_is_exact_for_every_scale_but_nan() {
        let blocks: Vec<u8> = (0..16u8)
            .map(|i| i.wrapping_mul(91).wrapping_add(3))
            .collect();
        // Scale byte 0 included: 2^-127 · v = q · 2^-128, a BF16 subnormal scale, still exact.
        for s in 0..=254u8 {
            let mut want = [0f32; 32];
            mxfp4::decode_block(&blocks, s, &mut want);
            assert!(
                want.iter().any(|&v| v != 0.0),
                "scale byte {s}: a block of zeros proves nothing"
            );
            let mut packed = [0u8; 32];
            let bits = from_mxfp4_block(&blocks, s, &mut packed).unwrap();
            let mut got = [0f32; 32];
            decode_row_bf16_scales(&packed, &bits.to_le_bytes(), 32, &mut got);
            assert_eq!(
                got, want,
                "scale byte {s} (values; MXFP4 code 8 is -0, int8 has only +0)"
            );
        }
        let mut packed = [0u8; 32];
        assert!(from_mxfp4_block(&blocks, 255, &mut packed).is_none());
    }

    #[test]
    fn absmax_round_trip_and_zero_group() {
        let x: Vec<f32> = (0..64)
            .map(|i| {
                if i < 32 {
                    0.0
                } else {
                    (i as f32 - 47.5) * 0.01
                }
            })
            .collect();
        let mut packed = vec![0u8; 64];
        let mut scales = vec![0u16; 2];
        quantize_row_absmax(&x, 32, &mut packed, &mut scales);
        assert_eq!(scales[0], 0);
        assert!(packed[..32].iter().all(|&b| b == 128));
        let sb: Vec<u8> = scales.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut back = vec![0f32; 64];
        decode_row_bf16_scales(&packed, &sb, 32, &mut back);
        let step = bf16_bits_to_f32(scales[1]);
        for (a, b) in x.iter().zip(&back) {
            assert!((a - b).abs() <= step * 0.5 + a.abs() * 4e-3, "{a} {b}");
        }
    }
}
