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
//! | int8 group (compressed-tensors `pack-quantized`) | group (32) | 32 + scale | `q + 128` as u8, four per little-endian i32 |
//! | BF16 / F16 / F32 | 1 | 2 / 2 / 4 | little-endian IEEE |
//!
//! Sources: the OCP Microscaling Formats (MX) v1.0 spec and openai/gpt-oss `weights.py` (MXFP4);
//! `ggml/src/ggml-common.h` and `ggml/src/ggml-quants.c` of llama.cpp as vendored in
//! llama-cpp-python 0.3.36 (ggml blocks, k-quants); compressed-tensors `pack_quantized.py` and
//! `docs/formats.md` (int8).
#![forbid(unsafe_code)]

pub mod codec;
pub mod float;
pub mod int8;
pub mod kquants;
pub mod mxfp4;
pub mod q8_0;

pub use codec::Codec;
