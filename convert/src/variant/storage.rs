//! [`Storage`]: one row per variant saying how each class of weights is stored. The GGUF
//! planner, the safetensors writer, `fit`'s byte counts and the model cards all read this
//! table, so a new variant is a new row (plus, if needed, a codec in `quant`).
//!
//! | variant | container | experts | embedding | attention, lm_head | router | vectors | `general.file_type` |
//! |---|---|---|---|---|---|---|---|
//! | `gguf-mxfp4` | GGUF | MXFP4 | BF16 | BF16 | F32 | F32 | 38 (`MOSTLY_MXFP4_MOE`) |
//! | `gguf-mxfp4-f16` | GGUF | MXFP4 | F16 | F16 | F32 | F32 | 38 |
//! | `gguf-mxfp4-q8_0` | GGUF | MXFP4 | Q8_0 | Q8_0 | F32 | F32 | 7 (`MOSTLY_Q8_0`) |
//! | `gguf-q8_0` | GGUF | Q8_0 | Q8_0 | Q8_0 | F32 | F32 | 7 |
//! | `gguf-f16` | GGUF | F16 | F16 | F16 | F32 | F32 | 1 (`MOSTLY_F16`) |
//! | `gguf-bf16` | GGUF | BF16 | BF16 | BF16 | F32 | F32 | 32 (`MOSTLY_BF16`) |
//! | `safetensors-bf16` | transformers dense | BF16 | BF16 | BF16 | BF16 | BF16 | |
//! | `safetensors-fp16` | transformers dense | F16 | F16 | F16 | F16 | F16 | |
//! | `safetensors-mxfp4` | the release's layout | MXFP4 `_blocks` / `_scales` | BF16 | BF16 | BF16 | BF16 | |
//! | `safetensors-int8` | compressed-tensors | int8, group 32 | BF16 | BF16 (int8 per channel with `--int8-dense`) | BF16 | BF16 | (not in `pipeline`'s default set) |
//! | `mlx-mxfp4-q8` | MLX | MXFP4 | affine 8-bit, group 64 | affine 8-bit, group 64 | affine 8-bit, group 64 | BF16 | |
//! | `mlx-mxfp4-q4` | MLX | MXFP4 | affine 4-bit, group 64 | affine 4-bit, group 64 | affine 8-bit, group 64 | BF16 | (not in `pipeline`'s default set) |
//! | `mlx-bf16` | MLX | BF16 | BF16 | BF16 | BF16 | BF16 | (not in `pipeline`'s default set) |
//!
//! | `gguf-<preset>` (`gguf-q4_k_m`, ...) | GGUF | MXFP4 kept (the preset's types from a dense source) | llama-quantize's preset | the preset | F32 | F32 | the preset's `LLAMA_FTYPE` |
//!
//! The GGUF rows are what llama.cpp's `convert_hf_to_gguf.py` writes for `--outtype auto`,
//! `f16` and `q8_0` (the `gguf-mxfp4*` rows) and for a dequantized source (`gguf-q8_0`,
//! `gguf-f16`, `gguf-bf16`); `general.file_type` values are gguf-py's `LlamaFileType`. The MLX
//! rows are what mlx-lm 0.32's `mlx_lm.convert -q --q-bits 8`, `-q --q-bits 4` and `-d` write
//! for gpt-oss (the router stays 8-bit: gpt-oss's `quant_predicate`).

use super::{ConvertOptions, Preset, Variant};
use crate::mlx::{MlxQuant, MlxScheme};
use crate::names::{INT8_GROUP, Layout};
use quant::Codec;

/// The file format a variant is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// One GGUF file (or llama.cpp splits).
    Gguf,
    /// A model directory of safetensors shards in this layout (transformers' index and config).
    Safetensors(Layout),
    /// mlx-lm's model directory: safetensors shards in the MLX layout of this scheme, mlx-lm's
    /// index and config ([`crate::mlx`]).
    Mlx(MlxScheme),
}

/// How one class of weights is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// Every weight of the class in one codec (the container decides the byte layout: MXFP4
    /// is ggml's `block_mxfp4` in a GGUF and the release's `_blocks`/`_scales` in safetensors).
    Codec(Codec),
    /// compressed-tensors int8, symmetric, a BF16 scale per `group` inputs (`None`: one per
    /// output channel).
    Int8 {
        /// Inputs per scale, or the whole row.
        group: Option<usize>,
    },
    /// The per-tensor types llama-quantize's preset chooses ([`Preset`],
    /// `variant::preset::plan_types`).
    Preset(Preset),
    /// MLX affine (`mx.quantize`, mode `affine`): `bits`-bit codes with a BF16 scale and bias
    /// per `group` inputs ([`quant::affine`]).
    Affine {
        /// Bits per code.
        bits: u32,
        /// Inputs per scale and bias.
        group: usize,
    },
}

impl From<MlxQuant> for Store {
    /// How an MLX module is stored (float as BF16, the dtype oss-forge writes).
    fn from(q: MlxQuant) -> Store {
        store_of(q)
    }
}

impl Store {
    /// Bytes of a `[rows, cols]` weight stored this way (`None` when `cols` does not fit the
    /// block or group).
    pub fn bytes(self, rows: u64, cols: u64) -> Option<u64> {
        match self {
            Store::Codec(c) => c.bytes(rows, cols),
            Store::Int8 { group } => {
                let g = group.map_or(cols, |g| g as u64);
                (g > 0 && cols.is_multiple_of(g)).then(|| rows * cols + rows * (cols / g) * 2)
            }
            Store::Affine { bits, group } => {
                let g = group as u64;
                (g > 0 && cols.is_multiple_of(g))
                    .then(|| rows * cols * bits as u64 / 8 + rows * (cols / g) * 4)
            }
            // Depends on the tensor's name and place: `tensor_bytes` plans the whole file.
            Store::Preset(_) => None,
        }
    }

    /// How a model card describes it.
    pub fn describe(self) -> String {
        match self {
            Store::Codec(Codec::MXFP4) => "MXFP4 (E2M1 + E8M0 scale per 32)".into(),
            Store::Codec(Codec::Q8_0) => "Q8_0 (int8 + F16 scale per 32)".into(),
            Store::Codec(c) => c.name().into(),
            Store::Int8 { group: Some(g) } => format!("int8, symmetric, BF16 scale per {g}"),
            Store::Int8 { group: None } => "int8, symmetric, BF16 scale per output channel".into(),
            Store::Affine { bits, group } => {
                format!("MLX affine {bits}-bit, BF16 scale and bias per {group}")
            }
            // The types follow the tensor's name, place and shape; a model card lists the
            // file's own (`verify::card::preset_storage`).
            Store::Preset(p) => format!("llama-quantize's {} mixture", p.name()),
        }
    }
}

/// One variant's storage rules. See the module table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Storage {
    /// The file format.
    pub container: Container,
    /// Expert projections (gate, up, down).
    pub experts: Store,
    /// Token embedding.
    pub embedding: Store,
    /// Attention projections (q, k, v, o) and lm_head.
    pub dense: Store,
    /// Router (`ffn_gate_inp`).
    pub router: Store,
    /// Norms, biases, sinks.
    pub vectors: Codec,
    /// GGUF `general.file_type` (`LlamaFileType`).
    pub file_type: Option<u32>,
    /// What a pipeline puts after the model name in a GGUF file name (`NAME-MXFP4.gguf`).
    pub file_suffix: &'static str,
    /// In `pipeline`'s default set (`--variants all` gives every variant). Off for variants that
    /// no common runtime loads as written (`safetensors-int8`: `docs/formats.md`) and for the
    /// GGUF presets (name them).
    pub default: bool,
    /// For the GGUF presets: llama-quantize's preset, whose rules choose each tensor's type.
    pub preset: Option<Preset>,
}

impl Storage {
    /// A GGUF row: vectors and the router in F32, as llama.cpp's converter keeps them.
    const fn gguf(
        experts: Codec,
        dense: Codec,
        file_type: u32,
        file_suffix: &'static str,
    ) -> Storage {
        Storage {
            container: Container::Gguf,
            experts: Store::Codec(experts),
            embedding: Store::Codec(dense),
            dense: Store::Codec(dense),
            router: Store::Codec(Codec::F32),
            vectors: Codec::F32,
            file_type: Some(file_type),
            file_suffix,
            default: true,
            preset: None,
        }
    }

    /// A safetensors row: everything in `float` but what `experts` and `dense` say.
    const fn safetensors(layout: Layout, experts: Store, dense: Store, float: Codec) -> Storage {
        Storage {
            container: Container::Safetensors(layout),
            experts,
            embedding: Store::Codec(float),
            dense,
            router: Store::Codec(float),
            vectors: float,
            file_type: None,
            file_suffix: "",
            default: true,
            preset: None,
        }
    }

    /// An MLX row: each kind of weight as `scheme` stores it, vectors BF16; `pipeline` writes
    /// `mlx-mxfp4-q8` by default (it converts faster than gguf-mxfp4-q8_0 and verifies like any
    /// lossy variant), `-q4` and `-bf16` when named.
    const fn mlx(scheme: MlxScheme, default: bool) -> Storage {
        Storage {
            container: Container::Mlx(scheme),
            experts: store_of(scheme.experts),
            embedding: store_of(scheme.embedding),
            dense: store_of(scheme.attention),
            router: store_of(scheme.router),
            vectors: Codec::BF16,
            file_type: None,
            file_suffix: "",
            default,
            preset: None,
        }
    }

    /// The row of `variant` under `opts` (`--int8-dense` changes the int8 row).
    pub fn of(variant: Variant, opts: &ConvertOptions) -> Storage {
        use crate::gguf::meta::file_type as ft;
        use Codec::*;
        match variant {
            Variant::GgufPreset(p) => Storage {
                // From an MXFP4 source the experts stay MXFP4 (llama-quantize's
                // `--tensor-type ffn_*_exps=mxfp4`); from a dense source, or with
                // `--requantize-experts`, they follow the preset.
                experts: if opts.requantize_experts {
                    Store::Preset(p)
                } else {
                    Store::Codec(MXFP4)
                },
                embedding: Store::Preset(p),
                dense: Store::Preset(p),
                default: false,
                preset: Some(p),
                ..Storage::gguf(MXFP4, F32, p.file_type(), p.name())
            },
            Variant::GgufMxfp4 => Storage::gguf(MXFP4, BF16, ft::MOSTLY_MXFP4_MOE, "MXFP4"),
            Variant::GgufMxfp4F16 => Storage::gguf(MXFP4, F16, ft::MOSTLY_MXFP4_MOE, "MXFP4-F16"),
            Variant::GgufMxfp4Q8_0 => Storage::gguf(MXFP4, Q8_0, ft::MOSTLY_Q8_0, "MXFP4-Q8_0"),
            Variant::GgufQ8_0 => Storage::gguf(Q8_0, Q8_0, ft::MOSTLY_Q8_0, "Q8_0"),
            Variant::GgufF16 => Storage::gguf(F16, F16, ft::MOSTLY_F16, "F16"),
            Variant::GgufBf16 => Storage::gguf(BF16, BF16, ft::MOSTLY_BF16, "BF16"),
            Variant::SafetensorsBf16 => {
                Storage::safetensors(Layout::Dense, Store::Codec(BF16), Store::Codec(BF16), BF16)
            }
            Variant::SafetensorsFp16 => {
                Storage::safetensors(Layout::Dense, Store::Codec(F16), Store::Codec(F16), F16)
            }
            Variant::SafetensorsMxfp4 => Storage::safetensors(
                Layout::Release,
                Store::Codec(MXFP4),
                Store::Codec(BF16),
                BF16,
            ),
            Variant::SafetensorsInt8 => {
                let dense_int8 = opts.int8_dense;
                let dense = if dense_int8 {
                    Store::Int8 { group: None }
                } else {
                    Store::Codec(BF16)
                };
                let experts = Store::Int8 {
                    group: Some(INT8_GROUP),
                };
                Storage {
                    // Stock transformers and vLLM load it with random experts (only a warning):
                    // available by name, never published by default.
                    default: false,
                    ..Storage::safetensors(Layout::Int8 { dense_int8 }, experts, dense, BF16)
                }
            }
            Variant::MlxMxfp4Q8 => Storage::mlx(MlxScheme::mxfp4_affine(8), true),
            Variant::MlxMxfp4Q4 => Storage::mlx(MlxScheme::mxfp4_affine(4), false),
            Variant::MlxBf16 => Storage::mlx(MlxScheme::FLOAT, false),
        }
    }

    /// True for the GGUF container.
    pub fn is_gguf(&self) -> bool {
        self.container == Container::Gguf
    }

    /// The safetensors layout, for the safetensors and MLX containers.
    pub fn layout(&self) -> Option<Layout> {
        match self.container {
            Container::Safetensors(l) => Some(l),
            Container::Mlx(s) => Some(Layout::Mlx(s)),
            Container::Gguf => None,
        }
    }
}

/// [`Store::from`] for a `const` row.
const fn store_of(q: MlxQuant) -> Store {
    match q {
        MlxQuant::Float => Store::Codec(Codec::BF16),
        MlxQuant::Mxfp4 => Store::Codec(Codec::MXFP4),
        MlxQuant::Affine { bits, group } => Store::Affine { bits, group },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_row_that_names_its_container() {
        let opts = ConvertOptions::default();
        for v in Variant::ALL {
            let s = Storage::of(v, &opts);
            assert_eq!(s.is_gguf(), v.name().starts_with("gguf-"), "{v}");
            assert_eq!(s.file_type.is_some(), s.is_gguf(), "{v}");
            assert_eq!(s.file_suffix.is_empty(), !s.is_gguf(), "{v}");
            assert_eq!(
                s.preset.is_some(),
                matches!(v, Variant::GgufPreset(_)),
                "{v}"
            );
            if s.is_gguf() && s.preset.is_none() {
                // The converter-style GGUF planner needs one codec per class.
                for store in [s.experts, s.embedding, s.dense, s.router] {
                    assert!(matches!(store, Store::Codec(_)), "{v}: {store:?}");
                }
            }
        }
        let dense = ConvertOptions {
            int8_dense: true,
            ..ConvertOptions::default()
        };
        assert_eq!(
            Storage::of(Variant::SafetensorsInt8, &dense).dense,
            Store::Int8 { group: None }
        );
    }

    #[test]
    fn byte_counts_follow_the_codecs() {
        assert_eq!(Store::Codec(Codec::MXFP4).bytes(2, 64), Some(2 * 2 * 17));
        assert_eq!(Store::Codec(Codec::BF16).bytes(3, 5), Some(30));
        assert_eq!(
            Store::Int8 { group: Some(32) }.bytes(2, 64),
            Some(2 * 64 + 2 * 2 * 2)
        );
        assert_eq!(
            Store::Int8 { group: None }.bytes(2, 64),
            Some(2 * 64 + 2 * 2)
        );
        assert_eq!(Store::Codec(Codec::Q4_K).bytes(1, 2880), None);
        assert_eq!(
            Store::Affine { bits: 4, group: 64 }.bytes(2, 128),
            Some(2 * 64 + 2 * 2 * 4)
        );
        assert_eq!(Store::Affine { bits: 8, group: 64 }.bytes(1, 96), None);
    }

    #[test]
    fn mlx_rows_are_mlx_lm_s_schemes() {
        let q4 = Variant::MlxMxfp4Q4.storage();
        assert_eq!(q4.experts, Store::Codec(Codec::MXFP4));
        assert_eq!(q4.dense, Store::Affine { bits: 4, group: 64 });
        assert_eq!(
            q4.router,
            Store::Affine { bits: 8, group: 64 },
            "gpt-oss's predicate"
        );
        assert_eq!(
            Variant::MlxBf16.storage().experts,
            Store::Codec(Codec::BF16)
        );
        assert!(matches!(q4.layout(), Some(Layout::Mlx(_))));
    }
}
