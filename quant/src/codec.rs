//! [`Codec`]: every storage type oss-forge reads or writes, with the facts each container needs
//! about it (elements per block, bytes per block, ggml type id, safetensors dtype, name).
//!
//! | codec | block | bytes | ggml id | layout |
//! |---|---|---|---|---|
//! | F32 / F16 / BF16 | 1 | 4 / 2 / 2 | 0 / 1 / 30 | little-endian IEEE (BF16: the top half of an f32) |
//! | Q4_0 / Q4_1 | 32 | 18 / 20 | 2 / 3 | `d` (f16) [, `m`], 16 nibble bytes |
//! | Q5_0 / Q5_1 | 32 | 22 / 24 | 6 / 7 | `d` [, `m`], `qh[4]`, 16 nibble bytes |
//! | Q8_0 | 32 | 34 | 8 | `d` (f16), 32 × i8 |
//! | Q2_K / Q3_K / Q4_K / Q5_K / Q6_K | 256 | 84 / 110 / 144 / 176 / 210 | 10 / 11 / 12 / 13 / 14 | super-blocks of 16 or 8 sub-blocks |
//! | IQ4_NL | 32 | 18 | 20 | `d`, 16 nibble bytes indexing a non-linear table |
//! | IQ4_XS | 256 | 136 | 23 | `d`, 6-bit sub-block scales, 128 nibble bytes |
//! | MXFP4 | 32 | 17 | 39 | E8M0 scale byte, 16 nibble bytes (element `j` low, `j+16` high) |
//!
//! Block sizes and ids: ggml's `type_traits` table and `enum ggml_type` (`ggml/src/ggml.c`,
//! `ggml/include/ggml.h`, llama.cpp as vendored in llama-cpp-python 0.3.36); block layouts:
//! `ggml/src/ggml-common.h`. The release's own MXFP4 layout (nibbles and scales in separate
//! tensors, pairwise nibble order) and the compressed-tensors int8 groups are not ggml blocks:
//! see [`crate::mxfp4`] and [`crate::int8`].

use crate::{float, iq4, kquants, legacy, mxfp4, q8_0};

/// A storage type for a row of values. See the module table.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Codec {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    BF16,
    /// ggml `block_q4_0`.
    Q4_0,
    /// ggml `block_q4_1`.
    Q4_1,
    /// ggml `block_q5_0`.
    Q5_0,
    /// ggml `block_q5_1`.
    Q5_1,
    /// ggml `block_q8_0`.
    Q8_0,
    /// ggml `block_q2_K`.
    Q2_K,
    /// ggml `block_q3_K`.
    Q3_K,
    /// ggml `block_q4_K`.
    Q4_K,
    /// ggml `block_q5_K`.
    Q5_K,
    /// ggml `block_q6_K`.
    Q6_K,
    /// ggml `block_iq4_nl`.
    IQ4_NL,
    /// ggml `block_iq4_xs`.
    IQ4_XS,
    /// ggml `block_mxfp4`.
    MXFP4,
}

impl Codec {
    /// Every codec, in ggml type id order.
    pub const ALL: [Codec; 16] = [
        Codec::F32,
        Codec::F16,
        Codec::Q4_0,
        Codec::Q4_1,
        Codec::Q5_0,
        Codec::Q5_1,
        Codec::Q8_0,
        Codec::Q2_K,
        Codec::Q3_K,
        Codec::Q4_K,
        Codec::Q5_K,
        Codec::Q6_K,
        Codec::IQ4_NL,
        Codec::IQ4_XS,
        Codec::BF16,
        Codec::MXFP4,
    ];

    /// Elements per block (ggml's `blck_size`).
    pub const fn block(self) -> usize {
        match self {
            Codec::F32 | Codec::F16 | Codec::BF16 => 1,
            Codec::Q4_0 | Codec::Q4_1 | Codec::Q5_0 | Codec::Q5_1 | Codec::Q8_0 => 32,
            Codec::IQ4_NL | Codec::MXFP4 => 32,
            Codec::Q2_K | Codec::Q3_K | Codec::Q4_K | Codec::Q5_K | Codec::Q6_K => 256,
            Codec::IQ4_XS => 256,
        }
    }

    /// Bytes per block (ggml's `type_size`).
    pub const fn block_bytes(self) -> usize {
        match self {
            Codec::F32 => 4,
            Codec::F16 | Codec::BF16 => 2,
            Codec::Q4_0 => legacy::Q4_0_BYTES,
            Codec::Q4_1 => legacy::Q4_1_BYTES,
            Codec::Q5_0 => legacy::Q5_0_BYTES,
            Codec::Q5_1 => legacy::Q5_1_BYTES,
            Codec::Q8_0 => q8_0::BLOCK_BYTES,
            Codec::Q2_K => kquants::Q2_K_BYTES,
            Codec::Q3_K => kquants::Q3_K_BYTES,
            Codec::Q4_K => kquants::Q4_K_BYTES,
            Codec::Q5_K => kquants::Q5_K_BYTES,
            Codec::Q6_K => kquants::Q6_K_BYTES,
            Codec::IQ4_NL => iq4::IQ4_NL_BYTES,
            Codec::IQ4_XS => iq4::IQ4_XS_BYTES,
            Codec::MXFP4 => mxfp4::GGML_BLOCK_BYTES,
        }
    }

    /// The ggml type id (`enum ggml_type`).
    pub const fn ggml_id(self) -> u32 {
        match self {
            Codec::F32 => 0,
            Codec::F16 => 1,
            Codec::Q4_0 => 2,
            Codec::Q4_1 => 3,
            Codec::Q5_0 => 6,
            Codec::Q5_1 => 7,
            Codec::Q8_0 => 8,
            Codec::Q2_K => 10,
            Codec::Q3_K => 11,
            Codec::Q4_K => 12,
            Codec::Q5_K => 13,
            Codec::Q6_K => 14,
            Codec::IQ4_NL => 20,
            Codec::IQ4_XS => 23,
            Codec::BF16 => 30,
            Codec::MXFP4 => 39,
        }
    }

    /// The codec for a ggml type id, if oss-forge reads it (see [`ggml_type_name`] for the
    /// name of one it does not).
    pub fn from_ggml_id(id: u32) -> Option<Codec> {
        Codec::ALL.into_iter().find(|c| c.ggml_id() == id)
    }

    /// The ggml type name in upper case, as llama.cpp's tools print it (`Q5_0`, `MXFP4`).
    pub const fn name(self) -> &'static str {
        match self {
            Codec::F32 => "F32",
            Codec::F16 => "F16",
            Codec::BF16 => "BF16",
            Codec::Q4_0 => "Q4_0",
            Codec::Q4_1 => "Q4_1",
            Codec::Q5_0 => "Q5_0",
            Codec::Q5_1 => "Q5_1",
            Codec::Q8_0 => "Q8_0",
            Codec::Q2_K => "Q2_K",
            Codec::Q3_K => "Q3_K",
            Codec::Q4_K => "Q4_K",
            Codec::Q5_K => "Q5_K",
            Codec::Q6_K => "Q6_K",
            Codec::IQ4_NL => "IQ4_NL",
            Codec::IQ4_XS => "IQ4_XS",
            Codec::MXFP4 => "MXFP4",
        }
    }

    /// The ggml type name in lower case, as ggml's `type_name` spells it (`q5_0`, `mxfp4`).
    pub const fn lower_name(self) -> &'static str {
        match self {
            Codec::F32 => "f32",
            Codec::F16 => "f16",
            Codec::BF16 => "bf16",
            Codec::Q4_0 => "q4_0",
            Codec::Q4_1 => "q4_1",
            Codec::Q5_0 => "q5_0",
            Codec::Q5_1 => "q5_1",
            Codec::Q8_0 => "q8_0",
            Codec::Q2_K => "q2_K",
            Codec::Q3_K => "q3_K",
            Codec::Q4_K => "q4_K",
            Codec::Q5_K => "q5_K",
            Codec::Q6_K => "q6_K",
            Codec::IQ4_NL => "iq4_nl",
            Codec::IQ4_XS => "iq4_xs",
            Codec::MXFP4 => "mxfp4",
        }
    }

    /// The safetensors dtype a tensor of this codec is stored as (`F32`, `F16`, `BF16`; the
    /// block codecs are byte arrays, `U8`).
    pub const fn safetensors_dtype(self) -> &'static str {
        match self {
            Codec::F32 => "F32",
            Codec::F16 => "F16",
            Codec::BF16 => "BF16",
            _ => "U8",
        }
    }

    /// True for the element-wise float codecs.
    pub const fn is_float(self) -> bool {
        matches!(self, Codec::F32 | Codec::F16 | Codec::BF16)
    }

    /// Bytes of a row of `cols` values (`cols` a multiple of [`Codec::block`]).
    pub const fn row_bytes(self, cols: usize) -> usize {
        cols / self.block() * self.block_bytes()
    }

    /// [`Codec::row_bytes`] for a `cols` read from a file: `None` when it overflows (a row
    /// shorter than a block counts its whole blocks only, as ggml's `ggml_row_size` does).
    pub fn checked_row_bytes(self, cols: u64) -> Option<u64> {
        (cols / self.block() as u64).checked_mul(self.block_bytes() as u64)
    }

    /// Bytes of `values` values stored as whole rows of `cols` (for size estimates; `None` on
    /// overflow or when `cols` is not a multiple of the block).
    pub fn bytes(self, rows: u64, cols: u64) -> Option<u64> {
        if !cols.is_multiple_of(self.block() as u64) {
            return None;
        }
        (cols / self.block() as u64)
            .checked_mul(self.block_bytes() as u64)?
            .checked_mul(rows)
    }

    /// Decodes one row: `bytes` holds `out.len() / block` blocks. Bit-identical to ggml's
    /// `dequantize_row_*` (and `ggml_*_to_fp32_row` for the floats).
    ///
    /// Panics if the lengths disagree (a caller bug: views check lengths when built).
    pub fn dequantize_row(self, bytes: &[u8], out: &mut [f32]) {
        assert_eq!(
            bytes.len(),
            self.row_bytes(out.len()),
            "{} row length",
            self.name()
        );
        match self {
            Codec::F32 => float::f32_row_from_le(bytes, out),
            Codec::F16 => float::f16_row_to_f32(bytes, out),
            Codec::BF16 => float::bf16_row_to_f32(bytes, out),
            Codec::Q4_0 => legacy::dequantize_row_q4_0(bytes, out),
            Codec::Q4_1 => legacy::dequantize_row_q4_1(bytes, out),
            Codec::Q5_0 => legacy::dequantize_row_q5_0(bytes, out),
            Codec::Q5_1 => legacy::dequantize_row_q5_1(bytes, out),
            Codec::Q8_0 => q8_0::decode_row(bytes, out),
            Codec::Q2_K => kquants::dequantize_row_q2_k(bytes, out),
            Codec::Q3_K => kquants::dequantize_row_q3_k(bytes, out),
            Codec::Q4_K => kquants::dequantize_row_q4_k(bytes, out),
            Codec::Q5_K => kquants::dequantize_row_q5_k(bytes, out),
            Codec::Q6_K => kquants::dequantize_row_q6_k(bytes, out),
            Codec::IQ4_NL => iq4::dequantize_row_iq4_nl(bytes, out),
            Codec::IQ4_XS => iq4::dequantize_row_iq4_xs(bytes, out),
            Codec::MXFP4 => mxfp4::decode_ggml_row(bytes, out),
        }
    }
}

impl Codec {
    /// Encodes one row: `xs.len()` values (a multiple of [`Codec::block`]) into
    /// `out` (exactly [`Codec::row_bytes`]). For the block codecs this is bit-identical to what
    /// `llama-quantize` writes without an importance matrix (`ggml_quantize_chunk` with no
    /// `quant_weights`); for the floats it rounds to nearest even. MXFP4 uses ggml's rule
    /// ([`mxfp4::Rounding::Ggml`]; ggml's `quantize_mxfp4` ignores an importance matrix); the
    /// other MXFP4 rules are [`mxfp4::quantize_ggml_row`]'s.
    ///
    /// Panics if the lengths disagree (a caller bug).
    pub fn quantize_row(self, xs: &[f32], out: &mut [u8]) {
        assert_eq!(
            out.len(),
            self.row_bytes(xs.len()),
            "{} row length",
            self.name()
        );
        match self {
            Codec::F32 => float::f32_row_to_le(xs, out),
            Codec::F16 => float::f32_row_to_f16(xs, out),
            Codec::BF16 => float::f32_row_to_bf16(xs, out),
            Codec::Q4_0 => legacy::quantize_row_q4_0(xs, out),
            Codec::Q4_1 => legacy::quantize_row_q4_1(xs, out),
            Codec::Q5_0 => legacy::quantize_row_q5_0(xs, out),
            Codec::Q5_1 => legacy::quantize_row_q5_1(xs, out),
            Codec::Q8_0 => q8_0::quantize_row_ref(xs, out),
            Codec::Q2_K => kquants::quantize_row_q2_k(xs, out),
            Codec::Q3_K => kquants::quantize_row_q3_k(xs, out),
            Codec::Q4_K => kquants::quantize_row_q4_k(xs, out),
            Codec::Q5_K => kquants::quantize_row_q5_k(xs, out),
            Codec::Q6_K => kquants::quantize_row_q6_k(xs, out),
            Codec::IQ4_NL => iq4::quantize_row_iq4_nl(xs, out),
            Codec::IQ4_XS => iq4::quantize_row_iq4_xs(xs, out),
            Codec::MXFP4 => mxfp4::quantize_ggml_row(mxfp4::Rounding::Ggml, xs, out),
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The upper-case name of any ggml type id llama.cpp knows (for messages about types oss-forge
/// does not read), `None` for an id no ggml version assigned.
pub fn ggml_type_name(id: u32) -> Option<&'static str> {
    if let Some(c) = Codec::from_ggml_id(id) {
        return Some(c.name());
    }
    Some(match id {
        4 => "Q4_2",
        5 => "Q4_3",
        9 => "Q8_1",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        21 => "IQ3_S",
        22 => "IQ2_S",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        31 => "Q4_0_4_4",
        32 => "Q4_0_4_8",
        33 => "Q4_0_8_8",
        34 => "TQ1_0",
        35 => "TQ2_0",
        36 => "IQ4_NL_4_4",
        37 => "IQ4_NL_4_8",
        38 => "IQ4_NL_8_8",
        40 => "NVFP4",
        41 => "Q1_0",
        42 => "Q2_0",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes from ggml's `type_traits` (`sizeof(block_*)` in `ggml-common.h`).
    #[test]
    fn block_sizes_match_ggml() {
        let want = [
            (Codec::Q4_0, 2 + 16),
            (Codec::Q4_1, 2 + 2 + 16),
            (Codec::Q5_0, 2 + 4 + 16),
            (Codec::Q5_1, 2 + 2 + 4 + 16),
            (Codec::Q8_0, 2 + 32),
            (Codec::Q2_K, 16 + 64 + 2 + 2),
            (Codec::Q3_K, 32 + 64 + 12 + 2),
            (Codec::Q4_K, 2 + 2 + 12 + 128),
            (Codec::Q5_K, 2 + 2 + 12 + 32 + 128),
            (Codec::Q6_K, 128 + 64 + 16 + 2),
            (Codec::IQ4_NL, 2 + 16),
            (Codec::IQ4_XS, 2 + 2 + 4 + 128),
            (Codec::MXFP4, 1 + 16),
        ];
        for (c, bytes) in want {
            assert_eq!(c.block_bytes(), bytes, "{c}");
        }
    }

    #[test]
    fn ids_round_trip_and_unknown_ids_have_names() {
        for c in Codec::ALL {
            assert_eq!(Codec::from_ggml_id(c.ggml_id()), Some(c));
        }
        assert_eq!(Codec::from_ggml_id(16), None);
        assert_eq!(ggml_type_name(16), Some("IQ2_XXS"));
        assert_eq!(ggml_type_name(34), Some("TQ1_0"));
        assert_eq!(ggml_type_name(6), Some("Q5_0"));
        assert_eq!(ggml_type_name(1000), None);
    }

    /// The six block codecs of `legacy` and `iq4` route to their module functions and round
    /// trip within a fraction of the row's largest magnitude (Q4_0 / Q5_0: one step, `amax/8` /
    /// `amax/16`, on the side opposite the signed maximum, where the top code is clamped).
    #[test]
    fn legacy_and_iq4_rows_route_and_round_trip() {
        type Pair = (fn(&[f32], &mut [u8]), fn(&[u8], &mut [f32]));
        let cases: [(Codec, Pair, f32); 6] = [
            (
                Codec::Q4_0,
                (legacy::quantize_row_q4_0, legacy::dequantize_row_q4_0),
                0.13,
            ),
            (
                Codec::Q4_1,
                (legacy::quantize_row_q4_1, legacy::dequantize_row_q4_1),
                0.07,
            ),
            (
                Codec::Q5_0,
                (legacy::quantize_row_q5_0, legacy::dequantize_row_q5_0),
                0.065,
            ),
            (
                Codec::Q5_1,
                (legacy::quantize_row_q5_1, legacy::dequantize_row_q5_1),
                0.035,
            ),
            (
                Codec::IQ4_NL,
                (iq4::quantize_row_iq4_nl, iq4::dequantize_row_iq4_nl),
                0.1,
            ),
            (
                Codec::IQ4_XS,
                (iq4::quantize_row_iq4_xs, iq4::dequantize_row_iq4_xs),
                0.1,
            ),
        ];
        let xs: Vec<f32> = (0..512)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01)
            .collect();
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (c, (quantize, dequantize), tol) in cases {
            let mut q = vec![0u8; c.row_bytes(xs.len())];
            let mut direct = q.clone();
            c.quantize_row(&xs, &mut q);
            quantize(&xs, &mut direct);
            assert_eq!(q, direct, "{c}");
            let mut back = vec![0f32; xs.len()];
            let mut back_direct = back.clone();
            c.dequantize_row(&q, &mut back);
            dequantize(&q, &mut back_direct);
            assert_eq!(back, back_direct, "{c}");
            let err = xs
                .iter()
                .zip(&back)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(err > 0.0 && err <= tol * amax, "{c}: max error {err}");
        }
    }
}
