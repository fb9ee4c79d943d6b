//! MXFP4 (OCP Microscaling FP4): E2M1 elements in blocks of 32 sharing one E8M0 scale.
//!
//! **Release layout** (gpt-oss `*_blocks` / `*_scales`; OCP MX v1.0 spec):
//! a block is 16 bytes; byte `b` holds element `2b` in its **low** nibble and element `2b+1`
//! in its **high** nibble (openai/gpt-oss `weights.py`: `lut[blk & 0x0F]` → even,
//! `lut[blk >> 4]` → odd). The scale byte `s` is stored separately and means `2^(s-127)`
//! (E8M0, bias 127); `s = 255` is NaN per the OCP MX spec. An E2M1 nibble is
//! sign (bit 3) · exponent (bits 2..1, bias 1) · mantissa (bit 0):
//! `0, 0.5, 1, 1.5, 2, 3, 4, 6` and the same negated for codes 8..15.
//!
//! **ggml layout** (`block_mxfp4`, ggml `ggml-common.h`, `ggml-quants.c`): 17 bytes, the scale byte `e` first,
//! then `qs[16]` where `qs[j]` holds element `j` (low nibble) and element `j+16` (high nibble).
//! ggml decodes with a doubled table (`kvalues_mxfp4`) and a halved scale `2^(e-128)`, which is
//! the same value bit for bit, so the scale byte is copied unchanged and only nibbles move.
//!
//! **Encoder**: triton_kernels' `downcast_to_mxfp` with `ROUND_UP` scales (the quantizer
//! transformers uses when saving MXFP4; triton `triton_kernels/numerics_details/mxfp.py`): `d = 2^ceil(log2(amax/6))`,
//! elements rounded to nearest-even E2M1, sign kept (so `-0` can appear).

/// Elements per block.
pub const BLOCK: usize = 32;
/// Bytes of packed nibbles per block (the scale is stored apart in the release layout).
pub const BLOCK_BYTES: usize = 16;
/// Bytes of one ggml `block_mxfp4` (scale byte + 16 nibble bytes).
pub const GGML_BLOCK_BYTES: usize = 17;
/// The E8M0 exponent bias.
pub const E8M0_BIAS: i32 = 127;
/// The E8M0 byte reserved for NaN.
pub const E8M0_NAN: u8 = 255;

/// E2M1 value of each 4-bit code.
pub const E2M1_VALUES: [f32; 16] = [
    0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
];

/// ggml's `kvalues_mxfp4`: the E2M1 table doubled, as small integers.
pub const GGML_KVALUES: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// `(low, high)` nibble values of every byte, so a byte decodes with one table load.
const PAIRS: [[f32; 2]; 256] = {
    let mut t = [[0f32; 2]; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = [E2M1_VALUES[b & 15], E2M1_VALUES[b >> 4]];
        b += 1;
    }
    t
};

/// The value of an E8M0 scale byte: `2^(s-127)`, NaN for 255.
///
/// Built from float bits so it is exact for every byte, including `s = 0` (`2^-127`, a
/// subnormal) where a plain `s << 23` would give 0.
#[inline]
pub fn e8m0_to_f32(s: u8) -> f32 {
    match s {
        0 => f32::from_bits(0x0040_0000),
        E8M0_NAN => f32::NAN,
        _ => f32::from_bits((s as u32) << 23),
    }
}

/// ggml's `GGML_E8M0_TO_FP32_HALF`: `2^(e-128)`. ggml gives 255 no special meaning.
#[inline]
pub fn e8m0_to_f32_half(e: u8) -> f32 {
    match e {
        0 => f32::from_bits(0x0020_0000),
        1 => f32::from_bits(0x0040_0000),
        _ => f32::from_bits(((e as u32) - 1) << 23),
    }
}

/// Decodes one release-layout block.
#[inline]
pub fn decode_block(block: &[u8], scale: u8, out: &mut [f32]) {
    debug_assert_eq!(block.len(), BLOCK_BYTES);
    debug_assert_eq!(out.len(), BLOCK);
    let d = e8m0_to_f32(scale);
    for (pair, &byte) in out.chunks_exact_mut(2).zip(block) {
        let [lo, hi] = PAIRS[byte as usize];
        pair[0] = lo * d;
        pair[1] = hi * d;
    }
}

/// Decodes one row of release-layout MXFP4: `blocks` holds `out.len() / 32` blocks of 16
/// bytes and `scales` one byte per block.
pub fn decode_row(blocks: &[u8], scales: &[u8], out: &mut [f32]) {
    assert_eq!(
        out.len() % BLOCK,
        0,
        "MXFP4 row length must be a multiple of 32"
    );
    let n = out.len() / BLOCK;
    assert_eq!(blocks.len(), n * BLOCK_BYTES, "MXFP4 blocks length");
    assert_eq!(scales.len(), n, "MXFP4 scales length");
    for ((o, b), &s) in out
        .chunks_exact_mut(BLOCK)
        .zip(blocks.chunks_exact(BLOCK_BYTES))
        .zip(scales)
    {
        decode_block(b, s, o);
    }
}

/// Decodes one ggml `block_mxfp4` (17 bytes).
#[inline]
pub fn decode_ggml_block(block: &[u8], out: &mut [f32]) {
    debug_assert_eq!(block.len(), GGML_BLOCK_BYTES);
    debug_assert_eq!(out.len(), BLOCK);
    let d = e8m0_to_f32_half(block[0]);
    let (lo, hi) = out.split_at_mut(BLOCK / 2);
    for j in 0..BLOCK / 2 {
        let q = block[1 + j];
        lo[j] = GGML_KVALUES[(q & 15) as usize] as f32 * d;
        hi[j] = GGML_KVALUES[(q >> 4) as usize] as f32 * d;
    }
}

/// Decodes one row of ggml MXFP4 blocks (`data.len() == out.len() / 32 * 17`).
pub fn decode_ggml_row(data: &[u8], out: &mut [f32]) {
    assert_eq!(
        out.len() % BLOCK,
        0,
        "MXFP4 row length must be a multiple of 32"
    );
    assert_eq!(
        data.len(),
        out.len() / BLOCK * GGML_BLOCK_BYTES,
        "ggml MXFP4 row bytes"
    );
    for (o, b) in out
        .chunks_exact_mut(BLOCK)
        .zip(data.chunks_exact(GGML_BLOCK_BYTES))
    {
        decode_ggml_block(b, o);
    }
}

/// Moves the nibbles of one release-layout block into ggml order (element `j` low and `j+16`
/// high in byte `j`). The formula is llama.cpp's `transform_nibble_layout`
/// (`conversion/gpt_oss.py`).
#[inline]
pub fn repack_to_ggml(hf: &[u8]) -> [u8; BLOCK_BYTES] {
    debug_assert_eq!(hf.len(), BLOCK_BYTES);
    let mut qs = [0u8; BLOCK_BYTES];
    for i in 0..8 {
        qs[2 * i] = (hf[i] & 0x0F) | ((hf[i + 8] & 0x0F) << 4);
        qs[2 * i + 1] = (hf[i] >> 4) | (hf[i + 8] & 0xF0);
    }
    qs
}

/// The inverse of [`repack_to_ggml`].
#[inline]
pub fn repack_from_ggml(qs: &[u8]) -> [u8; BLOCK_BYTES] {
    debug_assert_eq!(qs.len(), BLOCK_BYTES);
    let mut hf = [0u8; BLOCK_BYTES];
    for i in 0..8 {
        hf[i] = (qs[2 * i] & 0x0F) | ((qs[2 * i + 1] & 0x0F) << 4);
        hf[i + 8] = (qs[2 * i] >> 4) | (qs[2 * i + 1] & 0xF0);
    }
    hf
}

/// The 4-bit code of element `k` (0..32) of a release-layout block.
#[inline]
pub fn code_at(block: &[u8], k: usize) -> u8 {
    (block[k >> 1] >> (4 * (k & 1))) & 0x0F
}

/// Rounds a non-negative magnitude to the nearest E2M1 magnitude code (0..=7), ties to the
/// even code, saturating at 6.0. The midpoints are exact in f32, so this is exact RNE; each
/// comparison is strict where the tie goes down (to an even code) and inclusive where it goes up.
#[inline]
pub fn e2m1_magnitude_code(q: f32) -> u8 {
    (q > 0.25) as u8
        + (q >= 0.75) as u8
        + (q > 1.25) as u8
        + (q >= 1.75) as u8
        + (q > 2.5) as u8
        + (q >= 3.5) as u8
        + (q > 5.0) as u8
}

/// Quantizes 32 values into one release-layout block, returning `(nibbles, scale byte)`.
///
/// Scale: `d' = 2^ceil(log2(amax / 6))` computed on the f32 bits
/// (`(bits(d) + 0x7FFFFF) & 0x7F800000`), so the largest element lands on at most 6.
/// An all-zero block gets scale byte 0 and code 0 everywhere. NaN inputs are not supported
/// (the caller's values come from finite weights).
pub fn encode_block(x: &[f32]) -> ([u8; BLOCK_BYTES], u8) {
    assert_eq!(x.len(), BLOCK, "MXFP4 block length");
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let mut out = [0u8; BLOCK_BYTES];
    if amax == 0.0 {
        return (out, 0);
    }
    let d = amax / 6.0;
    let bits = (d.to_bits() + 0x007F_FFFF) & 0x7F80_0000;
    let scale = (bits >> 23) as u8;
    let inv = 1.0 / f32::from_bits(bits);
    let mut codes = [0u8; BLOCK];
    for (c, &v) in codes.iter_mut().zip(x) {
        let q = v * inv;
        *c = e2m1_magnitude_code(q.abs()) | ((q.is_sign_negative() as u8) << 3);
    }
    for (o, pair) in out.iter_mut().zip(codes.chunks_exact(2)) {
        *o = pair[0] | (pair[1] << 4);
    }
    (out, scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// openai/gpt-oss `weights.py`: low nibble → even element, high nibble → odd element.
    #[test]
    fn nibble_order_low_is_even_element() {
        let mut block = [0u8; 16];
        block[0] = 0x72; // element 0 = code 2 (1.0), element 1 = code 7 (6.0)
        block[15] = 0x9C; // element 30 = code 12 (-2.0), element 31 = code 9 (-0.5)
        let mut out = [0f32; 32];
        decode_block(&block, 127, &mut out);
        assert_eq!(out[0], 1.0);
        assert_eq!(out[1], 6.0);
        assert_eq!(out[30], -2.0);
        assert_eq!(out[31], -0.5);
        assert_eq!(code_at(&block, 1), 7);
        assert_eq!(code_at(&block, 30), 12);
    }

    /// E8M0 bias is 127: byte 127 is 1.0, 128 is 2.0, 120 is 2^-7; 255 is NaN (OCP MX spec).
    #[test]
    fn e8m0_bias_is_127_and_255_is_nan() {
        assert_eq!(e8m0_to_f32(127), 1.0);
        assert_eq!(e8m0_to_f32(128), 2.0);
        assert_eq!(e8m0_to_f32(120), 2f32.powi(-7));
        assert_eq!(e8m0_to_f32(254), 2f32.powi(127));
        assert_eq!(e8m0_to_f32(1), 2f32.powi(-126));
        assert_eq!(e8m0_to_f32(0), 2f32.powi(-127));
        assert!(e8m0_to_f32(255).is_nan());
    }

    #[test]
    fn all_sixteen_codes_decode_exactly() {
        let expect = [
            0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
        ];
        for code in 0..16u8 {
            let block = [code | (code << 4); 16];
            let mut out = [0f32; 32];
            decode_block(&block, 129, &mut out); // scale 4
            for v in out {
                assert_eq!(v, expect[code as usize] * 4.0);
                assert_eq!(v.is_sign_negative(), code >= 8);
            }
        }
    }

    #[test]
    fn encoder_rounds_like_triton_round_up() {
        // triton's `downcast_to_mxfp` (ROUND_UP), with amax = 6 so that d' = 1 and q = x.
        let cases = [
            (0.25, 0.0),
            (0.26, 0.5),
            (0.75, 1.0),
            (1.25, 1.0),
            (1.75, 2.0),
            (2.5, 2.0),
            (3.5, 4.0),
            (5.0, 4.0),
            (5.1, 6.0),
        ];
        for (x, want) in cases {
            let mut v = [0f32; 32];
            v[0] = 6.0;
            v[1] = x;
            v[2] = -x;
            let (block, scale) = encode_block(&v);
            assert_eq!(scale, 127, "amax 6 → d' = 1");
            let mut out = [0f32; 32];
            decode_block(&block, scale, &mut out);
            assert_eq!(out[1], want, "{x}");
            assert_eq!(out[2], -want, "-{x}");
        }
    }

    /// Every E2M1 midpoint and its neighbours, against a plain nearest-even search.
    #[test]
    fn magnitude_rounding_is_nearest_even_everywhere() {
        let mags = [0.0f32, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];
        let nearest_even = |q: f32| {
            let mut best = 0usize;
            for (i, &m) in mags.iter().enumerate() {
                let (d, db) = ((q - m).abs(), (q - mags[best]).abs());
                if d < db || (d == db && i % 2 == 0 && best % 2 == 1) {
                    best = i;
                }
            }
            best as u8
        };
        for i in 0..=1400 {
            let q = i as f32 * 0.005;
            for q in [
                q,
                f32::from_bits(q.to_bits().saturating_sub(1)),
                f32::from_bits(q.to_bits() + 1),
            ] {
                assert_eq!(e2m1_magnitude_code(q), nearest_even(q), "{q}");
            }
        }
    }

    #[test]
    fn encoder_scale_is_ceil_log2_of_amax_over_6() {
        for (amax, scale) in [
            (6.0f32, 127u8),
            (6.1, 128),
            (12.0, 128),
            (3.0, 126),
            (0.046875, 120),
        ] {
            let mut v = [0f32; 32];
            v[5] = -amax;
            assert_eq!(encode_block(&v).1, scale, "amax {amax}");
        }
    }

    #[test]
    fn all_zero_block_has_scale_zero_and_decodes_to_zero() {
        let (block, scale) = encode_block(&[0f32; 32]);
        assert_eq!(scale, 0);
        assert_eq!(block, [0u8; 16]);
        let mut out = [1f32; 32];
        decode_block(&block, scale, &mut out);
        assert!(out.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn encode_decode_error_is_bounded_and_exact_values_survive() {
        let mut seed = 0x1234_5678u64;
        for _ in 0..200 {
            let mut v = [0f32; 32];
            for x in v.iter_mut() {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *x = ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.3;
            }
            let (block, scale) = encode_block(&v);
            let mut out = [0f32; 32];
            decode_block(&block, scale, &mut out);
            let d = e8m0_to_f32(scale);
            for (a, b) in v.iter().zip(out) {
                // The widest gap between neighbouring E2M1 values is 2 (between 4 and 6).
                assert!((a - b).abs() <= d * 1.0 + 1e-12, "{a} vs {b} (d = {d})");
            }
            // Encoding decoded values again reproduces them exactly.
            let (block2, scale2) = encode_block(&out);
            let mut again = [0f32; 32];
            decode_block(&block2, scale2, &mut again);
            assert_eq!(out, again);
        }
    }

    /// A worked example of `transform_nibble_layout`: the block whose elements are `k mod 16`.
    #[test]
    fn ggml_repack_worked_example() {
        let hf = [
            0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, 0x10, 0x32, 0x54, 0x76, 0x98, 0xba,
            0xdc, 0xfe,
        ];
        let qs = repack_to_ggml(&hf);
        assert_eq!(
            qs,
            [
                0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                0xee, 0xff
            ]
        );
        assert_eq!(repack_from_ggml(&qs), hf);
    }

    #[test]
    fn ggml_decode_equals_release_decode_for_every_scale() {
        let mut hf = [0u8; 16];
        for (i, b) in hf.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        let qs = repack_to_ggml(&hf);
        for s in 0..=254u8 {
            let mut a = [0f32; 32];
            let mut b = [0f32; 32];
            decode_block(&hf, s, &mut a);
            let mut g = [0u8; 17];
            g[0] = s;
            g[1..].copy_from_slice(&qs);
            decode_ggml_block(&g, &mut b);
            for k in 0..32 {
                // Equal as values; bit for bit except code 8 (-0), which ggml's integer
                // table turns into +0.
                assert_eq!(a[k], b[k], "scale {s}, element {k}");
                if a[k] != 0.0 {
                    assert_eq!(a[k].to_bits(), b[k].to_bits(), "scale {s}, element {k}");
                }
            }
        }
    }

    #[test]
    fn rows_decode_block_by_block() {
        let blocks: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(29)).collect();
        let scales = [120u8, 130];
        let mut out = [0f32; 64];
        decode_row(&blocks, &scales, &mut out);
        let mut first = [0f32; 32];
        decode_block(&blocks[16..], 130, &mut first);
        assert_eq!(&out[32..], &first);
        let mut ggml = Vec::new();
        for (b, s) in blocks.chunks(16).zip(scales) {
            ggml.push(s);
            ggml.extend_from_slice(&repack_to_ggml(b));
        }
        let mut out2 = [0f32; 64];
        decode_ggml_row(&ggml, &mut out2);
        assert_eq!(out, out2);
    }
}
