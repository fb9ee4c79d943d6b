//! f32 ↔ bf16 / f16 conversion, for single values and little-endian byte rows.
//!
//! Rounding is IEEE round-to-nearest-even in both directions (the `half` crate), which is
//! what torch, numpy and ggml do (`spec/gguf.md` §4.6). bf16 NaN keeps its sign and becomes a
//! quiet NaN; f16 overflow becomes ±inf. Every bf16 and every f16 value is exact in f32, so
//! the decode direction never rounds.

use half::{bf16, f16};

/// Decodes little-endian bf16 bytes into f32. `bytes.len()` must be `2 * out.len()`.
pub fn bf16_row_to_f32(bytes: &[u8], out: &mut [f32]) {
    assert_eq!(bytes.len(), 2 * out.len(), "bf16 row length");
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16);
    }
}

/// Decodes little-endian f16 bytes into f32. `bytes.len()` must be `2 * out.len()`.
pub fn f16_row_to_f32(bytes: &[u8], out: &mut [f32]) {
    assert_eq!(bytes.len(), 2 * out.len(), "f16 row length");
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
    }
}

/// Decodes little-endian f32 bytes. `bytes.len()` must be `4 * out.len()`.
pub fn f32_row_from_le(bytes: &[u8], out: &mut [f32]) {
    assert_eq!(bytes.len(), 4 * out.len(), "f32 row length");
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

/// Decodes one bf16 value given as its raw bits.
#[inline]
pub fn bf16_bits_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// Decodes one f16 value given as its raw bits.
#[inline]
pub fn f16_bits_to_f32(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// Rounds f32 to bf16 bits, nearest-even (NaN stays NaN).
#[inline]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    bf16::from_f32(x).to_bits()
}

/// Rounds f32 to f16 bits, nearest-even; values beyond ±65504 become ±inf.
#[inline]
pub fn f32_to_f16_bits(x: f32) -> u16 {
    f16::from_f32(x).to_bits()
}

/// Encodes f32 values as little-endian bf16 bytes (`out.len() == 2 * xs.len()`).
pub fn f32_row_to_bf16(xs: &[f32], out: &mut [u8]) {
    assert_eq!(out.len(), 2 * xs.len(), "bf16 output length");
    for (x, o) in xs.iter().zip(out.chunks_exact_mut(2)) {
        o.copy_from_slice(&f32_to_bf16_bits(*x).to_le_bytes());
    }
}

/// Encodes f32 values as little-endian f16 bytes (`out.len() == 2 * xs.len()`).
pub fn f32_row_to_f16(xs: &[f32], out: &mut [u8]) {
    assert_eq!(out.len(), 2 * xs.len(), "f16 output length");
    for (x, o) in xs.iter().zip(out.chunks_exact_mut(2)) {
        o.copy_from_slice(&f32_to_f16_bits(*x).to_le_bytes());
    }
}

/// Encodes f32 values as little-endian f32 bytes (`out.len() == 4 * xs.len()`).
pub fn f32_row_to_le(xs: &[f32], out: &mut [u8]) {
    assert_eq!(out.len(), 4 * xs.len(), "f32 output length");
    for (x, o) in xs.iter().zip(out.chunks_exact_mut(4)) {
        o.copy_from_slice(&x.to_le_bytes());
    }
}

/// True when `x` survives the round trip f32 → f16 → f32 unchanged (NaN counts as exact:
/// f16 has NaN too).
#[inline]
pub fn is_exact_in_f16(x: f32) -> bool {
    x.is_nan() || f16::from_f32(x).to_f32() == x
}

/// True when `x` survives the round trip f32 → bf16 → f32 unchanged.
#[inline]
pub fn is_exact_in_bf16(x: f32) -> bool {
    x.is_nan() || bf16::from_f32(x).to_f32() == x
}

/// True when no value of the little-endian BF16 `bytes` is NaN or ±Inf (the values whose
/// eight exponent bits are all ones), decided on the bits without decoding.
pub fn bf16_bytes_all_finite(bytes: &[u8]) -> bool {
    bytes.chunks_exact(2).all(|b| !(b[1] & 0x7f == 0x7f && b[0] & 0x80 != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_finite_check_agrees_with_decoding_on_every_bit_pattern() {
        for bits in 0u16..=0xFFFF {
            let finite = bf16_bits_to_f32(bits).is_finite();
            assert_eq!(bf16_bytes_all_finite(&bits.to_le_bytes()), finite, "{bits:#06x}");
        }
        assert!(bf16_bytes_all_finite(&[]));
    }

    #[test]
    fn bf16_golden_values() {
        // 1.0 = 0x3F80, -2.0 = 0xC000, smallest normal 2^-126 = 0x0080.
        let bytes = [0x80, 0x3F, 0x00, 0xC0, 0x80, 0x00];
        let mut out = [0f32; 3];
        bf16_row_to_f32(&bytes, &mut out);
        assert_eq!(out, [1.0, -2.0, f32::MIN_POSITIVE]);
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties go to the even mantissa (1.0).
        assert_eq!(f32_to_bf16_bits(1.0 + 1.0 / 256.0), 0x3F80);
        // 1 + 3·2^-8 is halfway between 1.0078125 (odd) and 1.015625 (even).
        assert_eq!(f32_to_bf16_bits(1.0 + 3.0 / 256.0), 0x3F82);
        assert!(bf16_bits_to_f32(f32_to_bf16_bits(f32::NAN)).is_nan());
    }

    #[test]
    fn bf16_round_trip_is_identity_on_bf16_values() {
        for bits in (0u16..=0xFFFF).step_by(7) {
            let x = bf16_bits_to_f32(bits);
            if x.is_nan() {
                continue;
            }
            assert_eq!(f32_to_bf16_bits(x), bits);
        }
    }

    #[test]
    fn f16_golden_values_and_overflow() {
        assert_eq!(f16_bits_to_f32(0x3C00), 1.0);
        assert_eq!(f16_bits_to_f32(0x7BFF), 65504.0);
        assert_eq!(f16_bits_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f32_to_f16_bits(70000.0), 0x7C00);
        assert!(is_exact_in_f16(2f32.powi(-24)));
        assert!(!is_exact_in_f16(2f32.powi(-25)));
        assert!(!is_exact_in_f16(65536.0));
        assert!(is_exact_in_bf16(65536.0));
    }

    #[test]
    fn rows_round_trip() {
        let xs = [0.5f32, -3.25, 1e-3, 0.0, -0.0, 1234.0];
        let mut b = vec![0u8; 12];
        f32_row_to_f16(&xs, &mut b);
        let mut back = [0f32; 6];
        f16_row_to_f32(&b, &mut back);
        for (x, y) in xs.iter().zip(back) {
            assert!((x - y).abs() <= x.abs() * 1e-3);
        }
        let mut b4 = vec![0u8; 24];
        f32_row_to_le(&xs, &mut b4);
        f32_row_from_le(&b4, &mut back);
        assert_eq!(back, xs);
    }
}
