//! Pure numeric codecs for the gpt-oss checkpoints and the variants oss-forge writes.
//!
//! No I/O, no allocation inside a block codec, no errors below the row level: every function
//! here works on byte slices and `f32` slices whose lengths the caller has checked (the
//! row-level helpers assert them, so a wrong length is a bug, never a corrupted output).
//!
//! | format | elements / block | bytes / block | layout |
//! |---|---|---|---|
//! | MXFP4, release (OCP) | 32 | 16 + 1 scale stored apart | byte `b` = element `2b` (low nibble), `2b+1` (high) ; scale E8M0, bias 127 |
//! | MXFP4, ggml `block_mxfp4` | 32 | 17 | `e` then `qs[16]`; `qs[j]` = element `j` (low), `j+16` (high); value table doubled, scale `2^(e-128)` |
//! | Q8_0, ggml `block_q8_0` | 32 | 34 | f16 `d` then 32 × i8 |
//! | Q2_K … Q6_K, ggml `block_q2_K` … `block_q6_K` ([`kquants`]) | 256 | 84 / 110 / 144 / 176 / 210 | f16 super-block scale(s), 16 or 8 sub-blocks with 4-, 6- or 8-bit scales, 2- to 6-bit quants |
//! | Q4_0 / Q4_1, ggml `block_q4_0` / `block_q4_1` ([`legacy`]) | 32 | 18 / 20 | f16 `d` [, f16 `m`], 16 nibble bytes (element `j` low, `j+16` high) |
//! | Q5_0 / Q5_1, ggml `block_q5_0` / `block_q5_1` ([`legacy`]) | 32 | 22 / 24 | f16 `d` [, f16 `m`], u32 `qh` (bit 4 of each element), 16 nibble bytes |
//! | IQ4_NL, ggml `block_iq4_nl` ([`iq4`]) | 32 | 18 | f16 `d`, 16 nibble bytes indexing `kvalues_iq4nl` |
//! | IQ4_XS, ggml `block_iq4_xs` ([`iq4`]) | 256 | 136 | f16 `d`, u16 `scales_h`, `scales_l[4]` (6-bit sub-block scales), 128 nibble bytes |
//! | int8 group (compressed-tensors `pack-quantized`) | group (32) | 32 + scale | `q + 128` as u8, four per little-endian i32 |
//! | MLX affine (`mx.quantize`, mode `affine`) | group (32, 64, 128) | `group · bits / 8` + BF16 scale + BF16 bias | unsigned `bits`-bit codes (2..=6, 8) as a little-endian bit stream (U32 words); value `scale · q + bias` |
//! | BF16 / F16 / F32 | 1 | 2 / 2 / 4 | little-endian IEEE |
//!
//! Sources: the OCP Microscaling Formats (MX) v1.0 spec and openai/gpt-oss `weights.py` (MXFP4);
//! `ggml/src/ggml-common.h` and `ggml/src/ggml-quants.c` of llama.cpp as vendored in
//! llama-cpp-python 0.3.36 (ggml blocks, k-quants); compressed-tensors `pack_quantized.py` and
//! `docs/formats.md` (int8).
//! MXFP4 encoders under five rounding rules (ggml's, the OCP spec's, triton_kernels', MLX's,
//! least squares): [`mxfp4::encode`]. Sources are named in each module: the OCP MX v1.0
//! specification and openai/gpt-oss (MXFP4), `ggml/src/ggml-common.h` and `ggml-quants.c` of
//! llama.cpp as vendored in llama-cpp-python 0.3.36 (ggml blocks), compressed-tensors (int8),
//! mlx (affine).
//!
//! No `unsafe` but in [`avx2`]: the runtime dispatch to AVX2 copies of a few fast paths.
#![deny(unsafe_code)]

pub mod affine;
pub mod avx2;
pub mod codec;
pub mod float;
pub mod int8;
pub mod iq4;
pub mod kquants;
pub mod legacy;
pub mod mxfp4;
pub mod q8_0;

pub use codec::Codec;
