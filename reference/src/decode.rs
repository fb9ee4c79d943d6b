//! Row decoders of the block encodings the forward pass reads most (release MXFP4, ggml MXFP4,
//! Q8_0), with an AVX2 copy beside `quant`'s plain one.
//!
//! Every decoded value is exact: an E2M1 value times a power of two, or an int8 times an f16
//! scale, each representable in f32, so any order of exact operations gives the same bits. The
//! AVX2 copies compute the same products (`value · d`, one IEEE multiply, same operands) and fall
//! back to `quant` for any block whose scale is not an ordinary power of two (E8M0 0, 1, 254 and
//! 255: subnormal, overflowing or NaN scales); tests pin them bit for bit against `quant` on
//! every byte value and every scale.

use quant::{Codec, mxfp4, q8_0};

/// A row of ggml blocks of `codec`: the AVX2 decoders for MXFP4 and Q8_0, `quant`'s
/// (`Codec::dequantize_row`) for every other codec.
pub fn ggml_row(codec: Codec, data: &[u8], out: &mut [f32]) {
    match codec {
        Codec::MXFP4 => mxfp4_ggml_row(data, out),
        Codec::Q8_0 => q8_0_row(data, out),
        other => other.dequantize_row(data, out),
    }
}

/// Release-layout MXFP4 (`quant::mxfp4::decode_row`): `blocks` holds `out.len() / 32` blocks of
/// 16 bytes, `scales` one E8M0 byte per block.
pub fn mxfp4_row(blocks: &[u8], scales: &[u8], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::kernel::fma::available() {
        return avx2::mxfp4_row(blocks, scales, out, false);
    }
    mxfp4::decode_row(blocks, scales, out)
}

/// ggml `block_mxfp4` rows (`quant::mxfp4::decode_ggml_row`): 17-byte blocks.
pub fn mxfp4_ggml_row(data: &[u8], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::kernel::fma::available() {
        return avx2::mxfp4_row(data, &[], out, true);
    }
    mxfp4::decode_ggml_row(data, out)
}

/// ggml `block_q8_0` rows (`quant::q8_0::decode_row`): 34-byte blocks.
pub fn q8_0_row(data: &[u8], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::kernel::fma::available() {
        return avx2::q8_0_row(data, out);
    }
    q8_0::decode_row(data, out)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use quant::{float, mxfp4, q8_0};
    use std::arch::x86_64::*;

    /// E2M1 values as bf16 bits, split into their high and low bytes, indexed by nibble. The
    /// release layout's nibble 8 is −0; ggml's (`kvalues_mxfp4`, an integer table) is +0.
    const fn e2m1_bf16(ggml: bool) -> ([i8; 16], [i8; 16]) {
        let (mut hi, mut lo) = ([0i8; 16], [0i8; 16]);
        let mut n = 0;
        while n < 16 {
            let v = mxfp4::E2M1_VALUES[n];
            let bits = if ggml && n == 8 { 0 } else { v.to_bits() };
            assert!(bits & 0xFFFF == 0);
            hi[n] = (bits >> 24) as u8 as i8;
            lo[n] = (bits >> 16) as u8 as i8;
            n += 1;
        }
        (hi, lo)
    }
    const RELEASE: ([i8; 16], [i8; 16]) = e2m1_bf16(false);
    const GGML: ([i8; 16], [i8; 16]) = e2m1_bf16(true);

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn table(t: &[i8; 16]) -> __m128i {
        _mm_set_epi8(
            t[15], t[14], t[13], t[12], t[11], t[10], t[9], t[8], t[7], t[6], t[5], t[4], t[3],
            t[2], t[1], t[0],
        )
    }

    /// Stores eight f32 into `out[..8]`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn store8(out: &mut [f32], v: __m256) {
        let out = &mut out[..8];
        // SAFETY: `out` holds 8 f32 (checked by the slice above); an unaligned store writes
        // exactly those 32 bytes.
        #[allow(unsafe_code)]
        unsafe {
            _mm256_storeu_ps(out.as_mut_ptr(), v)
        }
    }

    /// Loads 16 bytes from `b[..16]`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn load16(b: &[u8]) -> __m128i {
        let b = &b[..16];
        // SAFETY: `b` holds 16 bytes (checked by the slice above); an unaligned load reads
        // exactly those.
        #[allow(unsafe_code)]
        unsafe {
            _mm_loadu_si128(b.as_ptr().cast())
        }
    }

    /// Sixteen nibbles (one per byte of `n`) to f32 values times `d`, into `out[..16]`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn nibbles(n: __m128i, hi_t: __m128i, lo_t: __m128i, d: __m256, out: &mut [f32]) {
        let (h, l) = (_mm_shuffle_epi8(hi_t, n), _mm_shuffle_epi8(lo_t, n));
        // bf16 words (low byte, high byte), then f32 = word << 16.
        let (w0, w1) = (_mm_unpacklo_epi8(l, h), _mm_unpackhi_epi8(l, h));
        let f0 = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(w0)));
        let f1 = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(w1)));
        store8(&mut out[..8], _mm256_mul_ps(f0, d));
        store8(&mut out[8..16], _mm256_mul_ps(f1, d));
    }

    /// Release blocks (`ggml == false`: 16 nibble bytes per block in `data`, scales apart) or
    /// ggml blocks (`ggml == true`: 17 bytes, the scale first; `scales` unused).
    pub fn mxfp4_row(data: &[u8], scales: &[u8], out: &mut [f32], ggml: bool) {
        assert!(crate::kernel::fma::available());
        // SAFETY: `body` requires only AVX2 and FMA, which the line above confirmed.
        #[allow(unsafe_code)]
        unsafe {
            mxfp4_body(data, scales, out, ggml)
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn mxfp4_body(data: &[u8], scales: &[u8], out: &mut [f32], ggml: bool) {
        let nb = out.len() / mxfp4::BLOCK;
        assert_eq!(out.len() % mxfp4::BLOCK, 0, "MXFP4 row length");
        let bb = if ggml {
            mxfp4::GGML_BLOCK_BYTES
        } else {
            mxfp4::BLOCK_BYTES
        };
        assert_eq!(data.len(), nb * bb, "MXFP4 row bytes");
        if !ggml {
            assert_eq!(scales.len(), nb, "MXFP4 scales length");
        }
        let (ht, lt) = if ggml { GGML } else { RELEASE };
        let (hi_t, lo_t) = (table(&ht), table(&lt));
        let mask = _mm_set1_epi8(0x0F);
        for (k, o) in out.chunks_exact_mut(mxfp4::BLOCK).enumerate() {
            let b = &data[k * bb..(k + 1) * bb];
            let (s, q) = if ggml {
                (b[0], &b[1..])
            } else {
                (scales[k], b)
            };
            if !(2..=253).contains(&s) {
                if ggml {
                    mxfp4::decode_ggml_block(b, o);
                } else {
                    mxfp4::decode_block(b, s, o);
                }
                continue;
            }
            // E2M1 value · 2^(s − 127), for either layout (ggml's kvalues · 2^(s − 128)).
            let d = _mm256_set1_ps(f32::from_bits((s as u32) << 23));
            let bytes = load16(q);
            let lo = _mm_and_si128(bytes, mask);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(bytes), mask);
            let (n0, n1) = if ggml {
                // Element j is the low nibble of byte j, element j + 16 its high nibble.
                (lo, hi)
            } else {
                // Element 2j is the low nibble of byte j, element 2j + 1 its high nibble.
                (_mm_unpacklo_epi8(lo, hi), _mm_unpackhi_epi8(lo, hi))
            };
            nibbles(n0, hi_t, lo_t, d, &mut o[..16]);
            nibbles(n1, hi_t, lo_t, d, &mut o[16..]);
        }
    }

    pub fn q8_0_row(data: &[u8], out: &mut [f32]) {
        assert!(crate::kernel::fma::available());
        // SAFETY: `body` requires only AVX2 and FMA, which the line above confirmed.
        #[allow(unsafe_code)]
        unsafe {
            q8_0_body(data, out)
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn q8_0_body(data: &[u8], out: &mut [f32]) {
        assert_eq!(out.len() % q8_0::BLOCK, 0, "Q8_0 row length");
        assert_eq!(
            data.len(),
            out.len() / q8_0::BLOCK * q8_0::BLOCK_BYTES,
            "Q8_0 row bytes"
        );
        for (o, b) in out
            .chunks_exact_mut(q8_0::BLOCK)
            .zip(data.chunks_exact(q8_0::BLOCK_BYTES))
        {
            let d = _mm256_set1_ps(float::f16_bits_to_f32(u16::from_le_bytes([b[0], b[1]])));
            let (q0, q1) = (load16(&b[2..18]), load16(&b[18..34]));
            for (j, q) in [q0, _mm_srli_si128::<8>(q0), q1, _mm_srli_si128::<8>(q1)]
                .into_iter()
                .enumerate()
            {
                let f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
                store8(&mut o[8 * j..8 * j + 8], _mm256_mul_ps(f, d));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|f| f.to_bits()).collect()
    }

    /// Every byte value in every position, under every scale byte: the same bits as `quant`.
    #[test]
    fn mxfp4_rows_match_quant_for_every_byte_and_scale() {
        let nb = 256;
        let blocks: Vec<u8> = (0..nb * 16).map(|i| (i * 7 + i / 16) as u8).collect();
        for ggml in [false, true] {
            for shift in 0..16 {
                let scales: Vec<u8> = (0..nb).map(|k| (k + shift * 16) as u8).collect();
                let (mut want, mut got) = (vec![0f32; nb * 32], vec![1f32; nb * 32]);
                if ggml {
                    let data: Vec<u8> = (0..nb)
                        .flat_map(|k| {
                            std::iter::once(scales[k]).chain(blocks[k * 16..k * 16 + 16].to_vec())
                        })
                        .collect();
                    mxfp4::decode_ggml_row(&data, &mut want);
                    mxfp4_ggml_row(&data, &mut got);
                } else {
                    mxfp4::decode_row(&blocks, &scales, &mut want);
                    mxfp4_row(&blocks, &scales, &mut got);
                }
                assert_eq!(bits(&got), bits(&want), "ggml {ggml}, shift {shift}");
            }
        }
    }

    #[test]
    fn q8_0_rows_match_quant_for_every_byte_and_special_scales() {
        let nb = 64;
        let mut data = vec![0u8; nb * 34];
        for (k, b) in data.chunks_exact_mut(34).enumerate() {
            let d: u16 = match k {
                0 => 0x7C00,           // inf
                1 => 0x7E01,           // NaN
                2 => 0x0001,           // smallest subnormal
                3 => 0x8000,           // -0
                _ => (k as u16) * 997, // assorted
            };
            b[..2].copy_from_slice(&d.to_le_bytes());
            for (j, q) in b[2..].iter_mut().enumerate() {
                *q = (k * 32 + j) as u8;
            }
        }
        let (mut want, mut got) = (vec![0f32; nb * 32], vec![1f32; nb * 32]);
        q8_0::decode_row(&data, &mut want);
        q8_0_row(&data, &mut got);
        assert_eq!(bits(&got), bits(&want));
    }
}
