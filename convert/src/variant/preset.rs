//! llama-quantize's presets (`Q4_K_M`, `MXFP4_MOE`, ...) for gpt-oss: which ggml type each
//! tensor of a GGUF gets, and what else the tool changes in the file. Pure: no I/O.
//!
//! Ported from `src/llama-quant.cpp` and `tools/quantize/quantize.cpp` of llama.cpp as vendored
//! in llama-cpp-python 0.3.36 (<https://github.com/ggml-org/llama.cpp>), for the architecture
//! `gpt-oss` (`LLM_ARCH_OPENAI_MOE`), without an importance matrix and without the options
//! `--pure`, `--leave-output-tensor`, `--output-tensor-type`, `--token-embedding-type`,
//! `--allow-requantize`, `--prune-layers`, `--keep-split` and `--override-kv`. Checked against
//! every `llama-quantize` output in the test table (`convert/tests/data/preset-types.txt`).
//!
//! # Type choice, per tensor ([`plan_types`])
//!
//! Tensors are visited in the output order (below), which matters for the counters.
//!
//! 1. **Quantized at all?** (`tensor_allows_quantization`). A tensor keeps its type, bytes
//!    unchanged, unless it has at least 2 dimensions by `ggml_n_dims` (trailing dimensions of 1
//!    do not count: `[2880, 1]` is 1-D), its name ends in `weight`, and the name contains none of
//!    `_norm.weight`, `ffn_gate_inp.weight` (the router), and a list of other architectures'
//!    tensors. In a gpt-oss GGUF that leaves `token_embd.weight`, `output.weight`,
//!    `attn_{q,k,v,output}.weight` and `ffn_{gate,up,down}_exps.weight`; norms, biases,
//!    `attn_sinks` and the router stay as they are (F32 from llama.cpp's converter).
//! 2. **The preset's default type** (`llama_ftype_get_default_type`, [`Preset::default_codec`]),
//!    or a `--tensor-type PATTERN=TYPE` override whose pattern is found in the name (the first
//!    match wins; patterns are lower-cased; an overridden tensor skips step 3 and does not move
//!    the counters).
//! 3. **The mixture's adjustments** (`llama_tensor_get_type_impl`), by category
//!    (`tensor_get_category`: `output.weight`, `token_embd.weight`, then the first of
//!    `attn_qkv.weight`, `attn_kv_b.weight`, `attn_v.weight`, `attn_k.weight`, `attn_q.weight`,
//!    `attn_output.weight`, `ffn_up`, `ffn_gate`, `ffn_down` found in the name):
//!    - `output.weight`, and `token_embd.weight` when the file has no `output.weight` (tied
//!      embeddings): Q8_0 for MXFP4_MOE or when the row length is not a multiple of the default
//!      type's block; otherwise Q6_K (Q8_0 stays Q8_0).
//!    - MXFP4_MOE: tensors with `ne[2] > 1` (the experts) MXFP4, every other one Q8_0.
//!    - `attn_v` (`n_attention_wv` = their count, `i_attention_wv` = how many were seen before):
//!      Q2_K → Q4_K if `n_head / n_head_kv >= 4` else Q3_K; Q3_K_M → Q5_K for the first two,
//!      then Q4_K; Q3_K_L → Q5_K; IQ4_NL / IQ4_XS → Q5_K if `n_head / n_head_kv >= 4`;
//!      Q4_K_M / Q5_K_M → Q6_K where `use_more_bits(i_attention_wv, n_attention_wv)`; Q4_K_S →
//!      Q5_K for the first four; then, whatever the preset, Q8_0 if the model has exactly 8
//!      experts.
//!    - `attn_k`: Q8_0 if the model has exactly 8 experts.
//!    - `ffn_down` (layer `i` of `n` = `block_count`, parsed from `blk.i.` because gpt-oss has
//!      experts): Q2_K → Q3_K; Q3_K_M → Q5_K if `i < n/16` else Q4_K; Q3_K_L → Q5_K; Q4_K_M →
//!      Q6_K where `use_more_bits(i, n)`; IQ4_NL / IQ4_XS → Q5_K if `i < n/8`; Q5_K_M → Q6_K
//!      where `use_more_bits(i, n)`; Q4_K_S → Q5_K if `i < n/8`.
//!    - `attn_output`: with exactly 8 experts, Q5_K for Q2_K, Q3_K_S, Q3_K_M, IQ4_NL, Q4_K_S,
//!      Q4_K_M, IQ4_XS; otherwise Q2_K → Q3_K, Q3_K_M → Q4_K, Q3_K_L → Q5_K.
//!    - `attn_qkv` (not in gpt-oss): Q3_K_M / Q3_K_L → Q4_K, Q4_K_M → Q5_K, Q5_K_M → Q6_K.
//!    - `ffn_gate`, `ffn_up`, `attn_q`, `token_embd` (untied): the default type.
//!
//!    `use_more_bits(i, n) = i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2` (integer division).
//! 4. **Fallback** (`tensor_type_fallback`): if the row length `ne[0]` is not a multiple of the
//!    chosen type's block, IQ4_XS → IQ4_NL, Q2_K / Q3_K → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1,
//!    Q6_K → Q8_0, a 32-block type stays; if the row is still not a multiple of the new block,
//!    F16. Each such tensor counts once in [`Plan::fallbacks`] (llama-quantize's warning
//!    "N of M tensor(s) required fallback quantization"). In gpt-oss-20b/120b every quantized
//!    tensor but `attn_output` (rows of 64 heads × 64 = 4096) has 2880-wide rows
//!    (2880 = 11.25 × 256 = 90 × 32), so their k-quant and IQ4_XS choices all fall back
//!    (Q4_K_M on gpt-oss-20b: Q5_0 where Q4_K was chosen, Q8_0 where Q6_K was, Q4_K only
//!    for `attn_output`), and `output.weight` goes Q6_K → Q8_0 for Q4_0 ... Q5_1 (one
//!    fallback).
//! 5. **Refusal** (`llama_model_quantize_impl`): a tensor whose source type is a block type
//!    (MXFP4, Q8_0, ...) and whose target differs is refused: "requantizing from type mxfp4 is
//!    disabled". A target equal to the source type is a byte copy (MXFP4 experts with the
//!    overrides [`TypeOverride::MXFP4_EXPERTS`], or with MXFP4_MOE itself). F32, F16 and BF16
//!    sources are converted to f32 and quantized (an F16 fallback of a BF16 source is
//!    converted, an F16 source to F16 is copied).
//!
//! # The output file (for a writer that claims to reproduce llama-quantize)
//!
//! Checked with gguf-py on every (input, output) pair behind the test table:
//! - **Metadata** (`gguf_set_kv`, `gguf_set_val_u32`, `gguf_remove_key`): every key-value pair
//!   of the input, in the input's order and with the same value and type, except that
//!   `general.quantization_version` and `general.file_type` are removed from wherever they were
//!   and appended at the end, in that order: `general.quantization_version` = u32
//!   [`QUANTIZATION_VERSION`] (2), then `general.file_type` = u32 [`Preset::file_type`]
//!   (`LLAMA_FTYPE_MOSTLY_*`). `split.no`, `split.count` and `split.tensors.count` are removed
//!   if present. Nothing else is added (no `quantize.imatrix.*` without an importance matrix).
//!   GGUF version 3.
//! - **Tensor order** ([`output_order`], llama-model-loader's `weight_name_comparer`): sorted
//!   by layer number, then by name in byte order, where the layer is the integer after a
//!   leading `blk.` and -1 for names without it. So `output.weight`, `output_norm.weight`,
//!   `token_embd.weight` come first, then `blk.0.attn_k.bias`, `blk.0.attn_k.weight`,
//!   `blk.0.attn_norm.weight`, ... `blk.0.post_attention_norm.weight`, then `blk.1.`... (layer
//!   10 after layer 9, unlike a plain string sort). llama.cpp's converter writes the experts
//!   first; llama-quantize reorders them.
//! - **Tensor infos**: name, `n_dims` = `ggml_n_dims` (trailing dimensions of 1 dropped), the
//!   input's `ne`, the new type, offsets packed in output order with each tensor's data padded
//!   with zeros to a multiple of 32 bytes (`GGUF_DEFAULT_ALIGNMENT`). The data section starts at
//!   the header's end padded to 32. A `general.alignment` key in the input would be copied while
//!   the data stays 32-aligned (a llama.cpp quirk; llama.cpp's converter writes no such key).
//! - **Data**: copied tensors are the input bytes; converted ones are the tensor converted to
//!   f32 (exact from F16 / BF16), then `ggml_quantize_chunk` with no importance matrix, whole
//!   rows at a time (never across two experts).

use quant::Codec;
use std::collections::HashSet;

/// `GGML_QNT_VERSION` (`ggml/include/ggml.h`): the `general.quantization_version` llama-quantize
/// writes.
pub const QUANTIZATION_VERSION: u32 = 2;

/// `LLAMA_MAX_LAYERS` (`src/llama-hparams.h`): the largest `block_count` llama.cpp loads.
pub const MAX_LAYERS: u32 = 512;

/// A llama-quantize preset (`LLAMA_FTYPE_MOSTLY_*`) that oss-forge reproduces.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Preset {
    /// Q4_0 everywhere (output Q6_K).
    Q4_0,
    /// Q4_1 everywhere (output Q6_K).
    Q4_1,
    /// Q5_0 everywhere (output Q6_K).
    Q5_0,
    /// Q5_1 everywhere (output Q6_K).
    Q5_1,
    /// Q8_0 everywhere.
    Q8_0,
    /// Q2_K, with Q3_K/Q4_K for `attn_v`, `attn_output`, `ffn_down`.
    Q2_K,
    /// Q3_K everywhere (output Q6_K).
    Q3_K_S,
    /// Q3_K, with Q4_K/Q5_K for `attn_v`, `attn_output`, `ffn_down`.
    Q3_K_M,
    /// Q3_K, with Q5_K for `attn_v`, `attn_output`, `ffn_down`.
    Q3_K_L,
    /// Q4_K, with Q5_K for the first `attn_v` and the first eighth of `ffn_down`.
    Q4_K_S,
    /// Q4_K, with Q6_K for half the `attn_v` and `ffn_down`.
    Q4_K_M,
    /// Q5_K everywhere (output Q6_K).
    Q5_K_S,
    /// Q5_K, with Q6_K for half the `attn_v` and `ffn_down`.
    Q5_K_M,
    /// Q6_K everywhere.
    Q6_K,
    /// IQ4_NL, with Q5_K for the first eighth of `ffn_down`.
    IQ4_NL,
    /// IQ4_XS, with Q5_K for the first eighth of `ffn_down`.
    IQ4_XS,
    /// Experts (3-D tensors) MXFP4, every other quantized tensor Q8_0.
    MXFP4_MOE,
}

impl Preset {
    /// Every preset, in `LLAMA_FTYPE_MOSTLY_*` order.
    pub const ALL: [Preset; 17] = [
        Preset::Q4_0,
        Preset::Q4_1,
        Preset::Q8_0,
        Preset::Q5_0,
        Preset::Q5_1,
        Preset::Q2_K,
        Preset::Q3_K_S,
        Preset::Q3_K_M,
        Preset::Q3_K_L,
        Preset::Q4_K_S,
        Preset::Q4_K_M,
        Preset::Q5_K_S,
        Preset::Q5_K_M,
        Preset::Q6_K,
        Preset::IQ4_NL,
        Preset::IQ4_XS,
        Preset::MXFP4_MOE,
    ];

    /// The name llama-quantize takes on its command line (`QUANT_OPTIONS` in
    /// `tools/quantize/quantize.cpp`): `Q4_K_M`, `MXFP4_MOE`.
    pub const fn name(self) -> &'static str {
        match self {
            Preset::Q4_0 => "Q4_0",
            Preset::Q4_1 => "Q4_1",
            Preset::Q5_0 => "Q5_0",
            Preset::Q5_1 => "Q5_1",
            Preset::Q8_0 => "Q8_0",
            Preset::Q2_K => "Q2_K",
            Preset::Q3_K_S => "Q3_K_S",
            Preset::Q3_K_M => "Q3_K_M",
            Preset::Q3_K_L => "Q3_K_L",
            Preset::Q4_K_S => "Q4_K_S",
            Preset::Q4_K_M => "Q4_K_M",
            Preset::Q5_K_S => "Q5_K_S",
            Preset::Q5_K_M => "Q5_K_M",
            Preset::Q6_K => "Q6_K",
            Preset::IQ4_NL => "IQ4_NL",
            Preset::IQ4_XS => "IQ4_XS",
            Preset::MXFP4_MOE => "MXFP4_MOE",
        }
    }

    /// The lower-case form used in oss-forge variant names: `q4_k_m`, `mxfp4_moe`.
    pub const fn variant_name(self) -> &'static str {
        match self {
            Preset::Q4_0 => "q4_0",
            Preset::Q4_1 => "q4_1",
            Preset::Q5_0 => "q5_0",
            Preset::Q5_1 => "q5_1",
            Preset::Q8_0 => "q8_0",
            Preset::Q2_K => "q2_k",
            Preset::Q3_K_S => "q3_k_s",
            Preset::Q3_K_M => "q3_k_m",
            Preset::Q3_K_L => "q3_k_l",
            Preset::Q4_K_S => "q4_k_s",
            Preset::Q4_K_M => "q4_k_m",
            Preset::Q5_K_S => "q5_k_s",
            Preset::Q5_K_M => "q5_k_m",
            Preset::Q6_K => "q6_k",
            Preset::IQ4_NL => "iq4_nl",
            Preset::IQ4_XS => "iq4_xs",
            Preset::MXFP4_MOE => "mxfp4_moe",
        }
    }

    /// Parses a preset name, case-insensitively, as llama-quantize does (`try_parse_ftype`),
    /// including its aliases `Q3_K` (= Q3_K_M), `Q4_K` (= Q4_K_M) and `Q5_K` (= Q5_K_M).
    /// `None` for any other name (llama-quantize's numeric ftypes are not accepted).
    pub fn parse(s: &str) -> Option<Preset> {
        let alias = |n: &str| s.eq_ignore_ascii_case(n);
        if alias("Q3_K") {
            return Some(Preset::Q3_K_M);
        }
        if alias("Q4_K") {
            return Some(Preset::Q4_K_M);
        }
        if alias("Q5_K") {
            return Some(Preset::Q5_K_M);
        }
        Preset::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
    }

    /// `general.file_type`: the `LLAMA_FTYPE_MOSTLY_*` value (`include/llama.h`).
    pub const fn file_type(self) -> u32 {
        match self {
            Preset::Q4_0 => 2,
            Preset::Q4_1 => 3,
            Preset::Q8_0 => 7,
            Preset::Q5_0 => 8,
            Preset::Q5_1 => 9,
            Preset::Q2_K => 10,
            Preset::Q3_K_S => 11,
            Preset::Q3_K_M => 12,
            Preset::Q3_K_L => 13,
            Preset::Q4_K_S => 14,
            Preset::Q4_K_M => 15,
            Preset::Q5_K_S => 16,
            Preset::Q5_K_M => 17,
            Preset::Q6_K => 18,
            Preset::IQ4_NL => 25,
            Preset::IQ4_XS => 30,
            Preset::MXFP4_MOE => 38,
        }
    }

    /// The type a quantized tensor gets before the mixture's adjustments
    /// (`llama_ftype_get_default_type`).
    pub const fn default_codec(self) -> Codec {
        match self {
            Preset::Q4_0 => Codec::Q4_0,
            Preset::Q4_1 => Codec::Q4_1,
            Preset::Q5_0 => Codec::Q5_0,
            Preset::Q5_1 => Codec::Q5_1,
            Preset::Q8_0 => Codec::Q8_0,
            Preset::Q2_K => Codec::Q2_K,
            Preset::Q3_K_S | Preset::Q3_K_M | Preset::Q3_K_L => Codec::Q3_K,
            Preset::Q4_K_S | Preset::Q4_K_M => Codec::Q4_K,
            Preset::Q5_K_S | Preset::Q5_K_M => Codec::Q5_K,
            Preset::Q6_K => Codec::Q6_K,
            Preset::IQ4_NL => Codec::IQ4_NL,
            Preset::IQ4_XS => Codec::IQ4_XS,
            Preset::MXFP4_MOE => Codec::MXFP4,
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The hyper-parameters the type choice reads, from the GGUF's metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// `gpt-oss.block_count` (llama.cpp's `n_layer_all`): 1 to [`MAX_LAYERS`].
    pub n_layer: u32,
    /// `gpt-oss.expert_count` (0 when absent). Exactly 8 turns on extra bits for `attn_v`,
    /// `attn_k` and `attn_output`; more than 1 makes `ffn_*` tensors take their layer from
    /// their name.
    pub n_expert: u32,
    /// `gpt-oss.attention.head_count` (of layer 0).
    pub n_head: u32,
    /// `gpt-oss.attention.head_count_kv` (of layer 0).
    pub n_head_kv: u32,
}

impl ModelInfo {
    /// `llama_hparams::n_gqa`: `n_head / n_head_kv`, 0 when `n_head_kv` is 0.
    pub const fn n_gqa(&self) -> u32 {
        match self.n_head.checked_div(self.n_head_kv) {
            Some(g) => g,
            None => 0,
        }
    }
}

/// One tensor of the input GGUF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorInfo<'a> {
    /// The GGUF tensor name (`blk.0.attn_v.weight`).
    pub name: &'a str,
    /// The shape in ggml order: `ne[0]` is the row length (`[2880, 4096]` for a 4096 × 2880
    /// matrix, `[2880, 2880, 32]` for 32 experts); 1 to 4 dimensions.
    pub ne: &'a [u64],
    /// Its type in the input file.
    pub codec: Codec,
}

/// A `--tensor-type PATTERN=TYPE` override: tensors whose name contains `pattern` get `codec`
/// (before the fallback rule). llama-quantize takes the pattern as a regular expression; here it
/// must be a literal (no regex metacharacter), which is how the gpt-oss recipes use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeOverride<'a> {
    /// The literal searched for in the tensor name (lower-cased first, as llama-quantize does).
    pub pattern: &'a str,
    /// The type given.
    pub codec: Codec,
}

impl TypeOverride<'static> {
    /// `--tensor-type ffn_gate_exps=mxfp4 --tensor-type ffn_up_exps=mxfp4
    /// --tensor-type ffn_down_exps=mxfp4`: keep a gpt-oss GGUF's MXFP4 experts, as published
    /// gpt-oss GGUFs are made from llama.cpp's `--outtype auto` conversion.
    pub const MXFP4_EXPERTS: [TypeOverride<'static>; 3] = [
        TypeOverride {
            pattern: "ffn_gate_exps",
            codec: Codec::MXFP4,
        },
        TypeOverride {
            pattern: "ffn_up_exps",
            codec: Codec::MXFP4,
        },
        TypeOverride {
            pattern: "ffn_down_exps",
            codec: Codec::MXFP4,
        },
    ];
}

/// The outcome of [`plan_types`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The output type of each tensor, in the order of the input slice.
    pub types: Vec<Codec>,
    /// Indices into the input slice, in the order llama-quantize writes the tensors
    /// ([`output_order`]).
    pub order: Vec<usize>,
    /// How many tensors fell back to another type because their row length is not a multiple
    /// of the chosen type's block (`quantize_state_impl::n_fallback`).
    pub fallbacks: usize,
}

impl Plan {
    /// True when tensor `i` (input order) is converted rather than copied byte for byte.
    pub fn converts(&self, tensors: &[TensorInfo<'_>], i: usize) -> bool {
        tensors[i].codec != self.types[i]
    }
}

/// Why a preset cannot be applied (llama-quantize refuses the same inputs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresetError {
    /// A tensor stored in a block type would have to be quantized again.
    #[error("tensor `{tensor}`: requantizing from type {} is disabled", from.lower_name())]
    RequantizeDisabled {
        /// The tensor name.
        tensor: String,
        /// Its type in the input.
        from: Codec,
        /// The type the preset chose for it.
        to: Codec,
    },
    /// An `ffn_*` tensor of a mixture-of-experts model has no `blk.N.` prefix.
    #[error("Failed to determine layer for tensor {tensor}")]
    NoLayer {
        /// The tensor name.
        tensor: String,
    },
    /// An `ffn_*` tensor's layer is outside `[0, block_count)`.
    #[error("Bad layer {layer} for tensor {tensor}. Must be in [0, {n_layer})")]
    BadLayer {
        /// The tensor name.
        tensor: String,
        /// The layer in its name.
        layer: i64,
        /// `block_count`.
        n_layer: u32,
    },
    /// A tensor has no dimension or more than 4.
    #[error("tensor `{tensor}`: {dims} dimensions (ggml allows 1 to 4)")]
    Dimensions {
        /// The tensor name.
        tensor: String,
        /// How many it has.
        dims: usize,
    },
    /// Two tensors have the same name.
    #[error("tensor `{tensor}` is duplicated")]
    DuplicateTensor {
        /// The tensor name.
        tensor: String,
    },
    /// `block_count` is 0 or above [`MAX_LAYERS`].
    #[error("block_count {n_layer} is outside [1, {MAX_LAYERS}]")]
    LayerCount {
        /// The value given.
        n_layer: u32,
    },
    /// An override pattern is empty or not a literal.
    #[error("--tensor-type pattern `{pattern}`: only non-empty literal patterns are supported")]
    Pattern {
        /// The pattern.
        pattern: String,
    },
}

/// The layer of a tensor name as llama.cpp reads it with `sscanf(name, "blk.%d.", &il)`: the
/// integer (C whitespace, optional sign, digits) right after a leading `blk.`; `None` without
/// one. Out-of-range values saturate (no gpt-oss name has them).
fn name_layer(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("blk.")?;
    let rest = rest.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, digits) = match rest.as_bytes().first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    let end = digits
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    let value = digits[..end].bytes().fold(0i64, |v, b| {
        v.saturating_mul(10).saturating_add(i64::from(b - b'0'))
    });
    Some(if negative { -value } else { value })
}

/// The order llama-quantize writes tensors in: llama-model-loader's `weights_map`, a
/// `std::map` ordered by `weight_name_comparer` (layer from `blk.N.`, -1 without, then the
/// name in byte order). Returns indices into `names`.
pub fn output_order<S: AsRef<str>>(names: &[S]) -> Vec<usize> {
    let key = |i: usize| {
        (
            name_layer(names[i].as_ref()).unwrap_or(-1),
            names[i].as_ref(),
        )
    };
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by(|&a, &b| {
        let (ka, kb) = (key(a), key(b));
        ka.0.cmp(&kb.0)
            .then_with(|| ka.1.as_bytes().cmp(kb.1.as_bytes()))
    });
    order
}

/// `ggml_n_dims`: the number of dimensions up to the last one larger than 1 (at least 1).
fn n_dims(ne: &[u64]) -> usize {
    ne.iter().rposition(|&n| n > 1).map_or(1, |i| i + 1)
}

/// `tensor_allows_quantization` for gpt-oss with the default parameters (no `--leave-output-
/// tensor`, not `COPY`).
fn allows_quantization(t: &TensorInfo<'_>) -> bool {
    if n_dims(t.ne) < 2 {
        return false;
    }
    let name = t.name;
    // `name.rfind("weight") == name.size() - 6` in size_t arithmetic: true for names ending in
    // "weight", and (npos == size - 6 after wrap-around) for 5-byte names.
    let ends_weight = name.ends_with("weight") || name.len() == 5;
    const EXCLUDED: [&str; 35] = [
        "_norm.weight",
        "ffn_gate_inp.weight",
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "indexer.k_proj.weight",
        "indexer.q_proj.weight",
        "time_mix_first.weight",
        "time_mix_w0.weight",
        "time_mix_w1.weight",
        "time_mix_w2.weight",
        "time_mix_v0.weight",
        "time_mix_v1.weight",
        "time_mix_v2.weight",
        "time_mix_a0.weight",
        "time_mix_a1.weight",
        "time_mix_a2.weight",
        "time_mix_g1.weight",
        "time_mix_g2.weight",
        "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
        ".position_embd",
        "sam.pos_embd",
        "sam.neck.",
        "sam.net_",
        ".rel_pos",
        ".patch_embd",
        ".patch_merger",
        "a.rvq.codebook",
        "mm.a.code_embd",
    ];
    // (the GLM5_NEXT-only exclusions do not apply to gpt-oss)
    ends_weight
        && !EXCLUDED.iter().any(|p| name.contains(p))
        // LLM_TN(arch)(LLM_TENSOR_POS_EMBD / LLM_TENSOR_TOKEN_TYPES, "weight")
        && name != "position_embd.weight"
        && name != "token_types.weight"
}

/// `tensor_category` of `tensor_get_category`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Category {
    TokenEmbd,
    AttnQ,
    AttnV,
    AttnK,
    AttnQkv,
    AttnKvB,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Output,
    Other,
}

impl Category {
    fn of(name: &str) -> Category {
        if name == "output.weight" {
            return Category::Output;
        }
        if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
            return Category::TokenEmbd;
        }
        const BY_SUBSTRING: [(&str, Category); 9] = [
            ("attn_qkv.weight", Category::AttnQkv),
            ("attn_kv_b.weight", Category::AttnKvB),
            ("attn_v.weight", Category::AttnV),
            ("attn_k.weight", Category::AttnK),
            ("attn_q.weight", Category::AttnQ),
            ("attn_output.weight", Category::AttnOutput),
            ("ffn_up", Category::FfnUp),
            ("ffn_gate", Category::FfnGate),
            ("ffn_down", Category::FfnDown),
        ];
        BY_SUBSTRING
            .iter()
            .find(|(s, _)| name.contains(s))
            .map_or(Category::Other, |&(_, c)| c)
    }

    /// `category_is_attn_v`.
    fn is_attn_v(self) -> bool {
        matches!(
            self,
            Category::AttnV | Category::AttnQkv | Category::AttnKvB
        )
    }
}

/// The counters of `quantize_state_impl`.
struct State {
    n_attention_wv: i64,
    i_attention_wv: i64,
    n_layer: i64,
    i_ffn_down: i64,
    i_ffn_gate: i64,
    i_ffn_up: i64,
    has_tied_embeddings: bool,
    fallbacks: usize,
}

/// `use_more_bits` of `llama_tensor_get_type_impl`.
fn use_more_bits(i: i64, n: i64) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// `layer_info` of `llama_tensor_get_type_impl`: with experts, the layer in the name.
fn layer_info(
    model: &ModelInfo,
    counter: i64,
    n_layer: i64,
    name: &str,
) -> Result<i64, PresetError> {
    if model.n_expert.max(1) <= 1 {
        return Ok(counter);
    }
    let layer = name_layer(name).ok_or_else(|| PresetError::NoLayer {
        tensor: name.into(),
    })?;
    if layer < 0 || layer >= n_layer {
        return Err(PresetError::BadLayer {
            tensor: name.into(),
            layer,
            n_layer: model.n_layer,
        });
    }
    Ok(layer)
}

/// `llama_tensor_get_type_impl` for gpt-oss (not Falcon, GLM5-next or BailingMoE3, never
/// `LLM_TYPE_70B`), no importance matrix, no output / token-embedding type given, restricted
/// to the presets of [`Preset`] (the IQ1/IQ2/IQ3/TQ/Q2_K_S branches are not reachable).
fn mixture_type(
    st: &mut State,
    preset: Preset,
    model: &ModelInfo,
    t: &TensorInfo<'_>,
    cat: Category,
    default: Codec,
) -> Result<Codec, PresetError> {
    use Codec as C;
    use Preset as P;
    let mut new = default;
    let n_gqa = model.n_gqa();
    let experts_8 = model.n_expert == 8;
    if cat == Category::Output || (st.has_tied_embeddings && cat == Category::TokenEmbd) {
        let nx = t.ne[0];
        new = if preset == P::MXFP4_MOE || !nx.is_multiple_of(new.block() as u64) {
            C::Q8_0
        } else if new != C::Q8_0 {
            C::Q6_K
        } else {
            new
        };
    } else if preset == P::MXFP4_MOE {
        new = if t.ne.get(2).copied().unwrap_or(1) > 1 {
            C::MXFP4
        } else {
            C::Q8_0
        };
    } else if cat == Category::TokenEmbd {
        // untied: only the IQ1/IQ2/IQ3/TQ presets change it
    } else if cat.is_attn_v() {
        let (i, n) = (st.i_attention_wv, st.n_attention_wv);
        match preset {
            P::Q2_K => new = if n_gqa >= 4 { C::Q4_K } else { C::Q3_K },
            P::Q3_K_M => new = if i < 2 { C::Q5_K } else { C::Q4_K },
            P::Q3_K_L => new = C::Q5_K,
            P::IQ4_NL | P::IQ4_XS if n_gqa >= 4 => new = C::Q5_K,
            P::Q4_K_M | P::Q5_K_M if use_more_bits(i, n) => new = C::Q6_K,
            P::Q4_K_S if i < 4 => new = C::Q5_K,
            _ => {}
        }
        if experts_8 {
            new = C::Q8_0;
        }
        st.i_attention_wv += 1;
    } else if cat == Category::AttnK {
        if experts_8 {
            new = C::Q8_0;
        }
    } else if cat == Category::AttnQ {
        // only IQ3_XS / IQ3_XXS change it
    } else if cat == Category::FfnDown {
        let n = st.n_layer;
        let i = layer_info(model, st.i_ffn_down, n, t.name)?;
        match preset {
            P::Q2_K => new = C::Q3_K,
            // `arch != LLM_ARCH_FALCON || use_more_bits(..)` is always true here
            P::Q3_K_M => new = if i < n / 16 { C::Q5_K } else { C::Q4_K },
            P::Q3_K_L => new = C::Q5_K,
            P::Q4_K_M if use_more_bits(i, n) => new = C::Q6_K,
            P::IQ4_NL | P::IQ4_XS if i < n / 8 => new = C::Q5_K,
            P::Q5_K_M if use_more_bits(i, n) => new = C::Q6_K,
            P::Q4_K_S if i < n / 8 => new = C::Q5_K,
            _ => {}
        }
        st.i_ffn_down += 1;
    } else if cat == Category::AttnOutput {
        if experts_8 {
            if matches!(
                preset,
                P::Q2_K | P::Q3_K_S | P::Q3_K_M | P::IQ4_NL | P::Q4_K_S | P::Q4_K_M | P::IQ4_XS
            ) {
                new = C::Q5_K;
            }
        } else {
            match preset {
                P::Q2_K => new = C::Q3_K,
                P::Q3_K_M => new = C::Q4_K,
                P::Q3_K_L => new = C::Q5_K,
                _ => {}
            }
        }
    } else if cat == Category::AttnQkv {
        match preset {
            P::Q3_K_M | P::Q3_K_L => new = C::Q4_K,
            P::Q4_K_M => new = C::Q5_K,
            P::Q5_K_M => new = C::Q6_K,
            _ => {}
        }
    } else if cat == Category::FfnGate {
        // the layer is still checked; only IQ3_XS changes the type
        layer_info(model, st.i_ffn_gate, st.n_layer, t.name)?;
        st.i_ffn_gate += 1;
    } else if cat == Category::FfnUp {
        layer_info(model, st.i_ffn_up, st.n_layer, t.name)?;
        st.i_ffn_up += 1;
    }
    Ok(new)
}

/// `tensor_type_fallback`: a type whose block divides the row length `ncols`.
fn fallback(st: &mut State, ncols: u64, target: Codec) -> Codec {
    if ncols.is_multiple_of(target.block() as u64) {
        return target;
    }
    st.fallbacks += 1;
    let next = match target {
        Codec::IQ4_XS => Codec::IQ4_NL,
        Codec::Q2_K | Codec::Q3_K => Codec::Q4_0,
        Codec::Q4_K => Codec::Q5_0,
        Codec::Q5_K => Codec::Q5_1,
        Codec::Q6_K => Codec::Q8_0,
        // every other codec has a block of at most 32 ("no tensor type fallback" is
        // unreachable for the codecs oss-forge has)
        other => other,
    };
    if !ncols.is_multiple_of(next.block() as u64) {
        Codec::F16
    } else {
        next
    }
}

/// Characters with a meaning in a `std::regex` (ECMAScript) pattern.
const REGEX_META: &[char] = &[
    '\\', '^', '$', '.', '|', '?', '*', '+', '(', ')', '[', ']', '{', '}',
];

/// Chooses the output type of every tensor of a gpt-oss GGUF for `preset`, as llama-quantize
/// does (`llama_model_quantize_impl`'s preliminary loop, then its refusal check); see the
/// module documentation for the rules.
///
/// `tensors` are the input file's tensors in any order (the counters follow
/// [`output_order`]); `overrides` are `--tensor-type` options in command-line order (empty for
/// a plain preset, [`TypeOverride::MXFP4_EXPERTS`] to keep MXFP4 experts).
///
/// # Errors
/// - [`PresetError::RequantizeDisabled`]: a tensor in a block type (e.g. MXFP4 experts without
///   the overrides) would change type; the first such tensor in output order is named.
/// - [`PresetError::NoLayer`] / [`PresetError::BadLayer`]: an `ffn_*` weight without a valid
///   `blk.N.` in a model with experts.
/// - [`PresetError::Dimensions`], [`PresetError::DuplicateTensor`],
///   [`PresetError::LayerCount`], [`PresetError::Pattern`]: inputs llama.cpp would not load.
pub fn plan_types(
    preset: Preset,
    model: &ModelInfo,
    tensors: &[TensorInfo<'_>],
    overrides: &[TypeOverride<'_>],
) -> Result<Plan, PresetError> {
    if model.n_layer == 0 || model.n_layer > MAX_LAYERS {
        return Err(PresetError::LayerCount {
            n_layer: model.n_layer,
        });
    }
    let patterns = overrides
        .iter()
        .map(|o| {
            if o.pattern.is_empty() || o.pattern.contains(REGEX_META) {
                Err(PresetError::Pattern {
                    pattern: o.pattern.into(),
                })
            } else {
                Ok((o.pattern.to_ascii_lowercase(), o.codec))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = HashSet::with_capacity(tensors.len());
    for t in tensors {
        if t.ne.is_empty() || t.ne.len() > 4 {
            return Err(PresetError::Dimensions {
                tensor: t.name.into(),
                dims: t.ne.len(),
            });
        }
        if !seen.insert(t.name) {
            return Err(PresetError::DuplicateTensor {
                tensor: t.name.into(),
            });
        }
    }

    let names: Vec<&str> = tensors.iter().map(|t| t.name).collect();
    let order = output_order(&names);
    let categories: Vec<Category> = names.iter().map(|n| Category::of(n)).collect();
    // init_quantize_state_counters
    let mut st = State {
        n_attention_wv: categories.iter().filter(|c| c.is_attn_v()).count() as i64,
        i_attention_wv: 0,
        n_layer: i64::from(model.n_layer),
        i_ffn_down: 0,
        i_ffn_gate: 0,
        i_ffn_up: 0,
        has_tied_embeddings: !categories.contains(&Category::Output),
        fallbacks: 0,
    };
    let default = preset.default_codec();
    let mut types: Vec<Codec> = tensors.iter().map(|t| t.codec).collect();
    for &i in &order {
        let t = &tensors[i];
        if !allows_quantization(t) {
            continue;
        }
        // llama_tensor_get_type (the default type is always a block type here)
        let manual = patterns
            .iter()
            .find(|(p, _)| t.name.contains(p.as_str()))
            .map(|&(_, c)| c);
        let chosen = match manual {
            Some(codec) => codec,
            None => mixture_type(&mut st, preset, model, t, categories[i], default)?,
        };
        types[i] = fallback(&mut st, t.ne[0], chosen);
    }
    // the main loop refuses to requantize (no --allow-requantize)
    if let Some(&i) = order
        .iter()
        .find(|&&i| !tensors[i].codec.is_float() && types[i] != tensors[i].codec)
    {
        return Err(PresetError::RequantizeDisabled {
            tensor: tensors[i].name.into(),
            from: tensors[i].codec,
            to: types[i],
        });
    }
    Ok(Plan {
        types,
        order,
        fallbacks: st.fallbacks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of llama-quantize outputs (see `convert/tests/data/README.md`).
    const TABLE: &str = include_str!("../../tests/data/preset-types.txt");

    fn codec(name: &str) -> Codec {
        Codec::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .unwrap_or_else(|| panic!("unknown type {name}"))
    }

    /// The table's one-character type codes (its header has the legend).
    fn code(c: char) -> Codec {
        const CODES: [(char, Codec); 16] = [
            ('f', Codec::F32),
            ('h', Codec::F16),
            ('b', Codec::BF16),
            ('q', Codec::Q4_0),
            ('Q', Codec::Q4_1),
            ('r', Codec::Q5_0),
            ('R', Codec::Q5_1),
            ('8', Codec::Q8_0),
            ('2', Codec::Q2_K),
            ('3', Codec::Q3_K),
            ('4', Codec::Q4_K),
            ('5', Codec::Q5_K),
            ('6', Codec::Q6_K),
            ('n', Codec::IQ4_NL),
            ('x', Codec::IQ4_XS),
            ('m', Codec::MXFP4),
        ];
        CODES
            .iter()
            .find(|(k, _)| *k == c)
            .unwrap_or_else(|| panic!("unknown code {c}"))
            .1
    }

    struct Model {
        name: String,
        info: ModelInfo,
        tensors: Vec<(String, Vec<u64>, Codec)>,
        order: Vec<usize>,
        cases: Vec<Case>,
    }

    struct Case {
        preset: Preset,
        mxfp4: bool,
        file_type: u32,
        fallbacks: Option<usize>,
        types: Vec<Codec>,
    }

    fn table() -> Vec<Model> {
        let mut models: Vec<Model> = Vec::new();
        let mut lines = TABLE
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
        while let Some(line) = lines.next() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f[0] {
                "model" => {
                    let n = |i: usize| f[i].parse::<u32>().unwrap();
                    let info = ModelInfo {
                        n_layer: n(2),
                        n_expert: n(3),
                        n_head: n(4),
                        n_head_kv: n(5),
                    };
                    let tensors = (0..n(6))
                        .map(|_| {
                            let t: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
                            let ne = t[1].split(',').map(|x| x.parse().unwrap()).collect();
                            (t[0].to_string(), ne, codec(t[2]))
                        })
                        .collect();
                    models.push(Model {
                        name: f[1].into(),
                        info,
                        tensors,
                        order: Vec::new(),
                        cases: Vec::new(),
                    });
                }
                "order" => {
                    models.last_mut().unwrap().order =
                        f[1..].iter().map(|x| x.parse().unwrap()).collect();
                }
                "case" => models.last_mut().unwrap().cases.push(Case {
                    preset: Preset::parse(f[1]).unwrap(),
                    mxfp4: f[2] == "mxfp4",
                    file_type: f[3].parse().unwrap(),
                    fallbacks: f[4].parse().ok(),
                    types: f[5].chars().map(code).collect(),
                }),
                other => panic!("bad table line {other}"),
            }
        }
        models
    }

    fn infos(m: &Model) -> Vec<TensorInfo<'_>> {
        m.tensors
            .iter()
            .map(|(name, ne, codec)| TensorInfo {
                name,
                ne,
                codec: *codec,
            })
            .collect()
    }

    #[test]
    fn every_llama_quantize_output_in_the_table_is_reproduced() {
        let models = table();
        let mut cases = 0;
        let mut fallbacks_checked = 0;
        for m in &models {
            let tensors = infos(m);
            let names: Vec<&str> = tensors.iter().map(|t| t.name).collect();
            assert_eq!(output_order(&names), m.order, "{}: tensor order", m.name);
            for c in &m.cases {
                let overrides: &[TypeOverride<'_>] = if c.mxfp4 {
                    &TypeOverride::MXFP4_EXPERTS
                } else {
                    &[]
                };
                let plan = plan_types(c.preset, &m.info, &tensors, overrides)
                    .unwrap_or_else(|e| panic!("{} {}: {e}", m.name, c.preset));
                let got: Vec<Codec> = plan.order.iter().map(|&i| plan.types[i]).collect();
                for (k, (g, w)) in got.iter().zip(&c.types).enumerate() {
                    assert_eq!(
                        g, w,
                        "{} {} mxfp4={}: {}",
                        m.name, c.preset, c.mxfp4, tensors[plan.order[k]].name
                    );
                }
                assert_eq!(got.len(), c.types.len(), "{} {}", m.name, c.preset);
                assert_eq!(c.preset.file_type(), c.file_type, "{} {}", m.name, c.preset);
                if let Some(n) = c.fallbacks {
                    assert_eq!(plan.fallbacks, n, "{} {}: fallbacks", m.name, c.preset);
                    fallbacks_checked += 1;
                }
                cases += 1;
            }
        }
        // the table's coverage, so that a truncated file fails
        assert!(models.len() >= 10, "{} models", models.len());
        assert!(cases >= 175, "{cases} cases");
        assert!(
            fallbacks_checked >= 175,
            "{fallbacks_checked} fallback counts"
        );
    }

    #[test]
    fn mxfp4_experts_without_overrides_are_refused_like_llama_quantize() {
        let models = table();
        let mut refused = 0;
        for m in models
            .iter()
            .filter(|m| m.tensors.iter().any(|t| t.2 == Codec::MXFP4))
        {
            let tensors = infos(m);
            for preset in Preset::ALL {
                let r = plan_types(preset, &m.info, &tensors, &[]);
                if preset == Preset::MXFP4_MOE {
                    // the experts' target is MXFP4 already: a copy
                    let plan = r.unwrap();
                    for (t, c) in tensors.iter().zip(&plan.types) {
                        if t.codec == Codec::MXFP4 {
                            assert_eq!(*c, Codec::MXFP4);
                        }
                    }
                    continue;
                }
                let e = r.unwrap_err();
                // llama-quantize stops at the first expert tensor in its order
                let first = plan_types(preset, &m.info, &tensors, &TypeOverride::MXFP4_EXPERTS)
                    .unwrap()
                    .order
                    .into_iter()
                    .find(|&i| tensors[i].codec == Codec::MXFP4)
                    .unwrap();
                assert!(
                    matches!(&e, PresetError::RequantizeDisabled { tensor, from: Codec::MXFP4, .. }
                    if tensor == tensors[first].name)
                );
                assert!(
                    e.to_string()
                        .ends_with("requantizing from type mxfp4 is disabled"),
                    "{e}"
                );
                refused += 1;
            }
        }
        assert!(refused >= 16 * 5, "{refused}");
    }

    fn t<'a>(name: &'a str, ne: &'a [u64], codec: Codec) -> TensorInfo<'a> {
        TensorInfo { name, ne, codec }
    }

    const WIDE: ModelInfo = ModelInfo {
        n_layer: 2,
        n_expert: 4,
        n_head: 4,
        n_head_kv: 2,
    };

    #[test]
    fn tied_embeddings_take_the_output_rule() {
        let ne = [256u64, 512];
        let untied = [
            t("token_embd.weight", &ne, Codec::BF16),
            t("output.weight", &ne, Codec::BF16),
        ];
        let tied = [t("token_embd.weight", &ne, Codec::BF16)];
        let p = plan_types(Preset::Q4_K_M, &WIDE, &untied, &[]).unwrap();
        assert_eq!(p.types, [Codec::Q4_K, Codec::Q6_K]);
        assert_eq!(p.order, [1, 0]);
        let p = plan_types(Preset::Q4_K_M, &WIDE, &tied, &[]).unwrap();
        assert_eq!(p.types, [Codec::Q6_K]);
        let p = plan_types(Preset::Q8_0, &WIDE, &tied, &[]).unwrap();
        assert_eq!(p.types, [Codec::Q8_0]);
        let p = plan_types(Preset::MXFP4_MOE, &WIDE, &tied, &[]).unwrap();
        assert_eq!(p.types, [Codec::Q8_0]);
        // 2880 is a multiple of Q4_0's 32 but not of Q6_K's 256: Q6_K, then the fallback Q8_0
        let p = plan_types(
            Preset::Q4_0,
            &WIDE,
            &[t("output.weight", &[2880, 8], Codec::BF16)],
            &[],
        )
        .unwrap();
        assert_eq!((p.types[0], p.fallbacks), (Codec::Q8_0, 1));
        // 2880 is not a multiple of Q4_K's 256: Q8_0 straight away, no fallback counted
        let p = plan_types(
            Preset::Q4_K_M,
            &WIDE,
            &[t("output.weight", &[2880, 8], Codec::BF16)],
            &[],
        )
        .unwrap();
        assert_eq!((p.types[0], p.fallbacks), (Codec::Q8_0, 0));
    }

    #[test]
    fn fallbacks_follow_tensor_type_fallback() {
        let cases = [
            (Preset::Q2_K, 2880, Codec::Q4_0),
            (Preset::Q3_K_S, 2880, Codec::Q4_0),
            (Preset::Q4_K_S, 2880, Codec::Q5_0),
            (Preset::Q5_K_S, 2880, Codec::Q5_1),
            (Preset::Q6_K, 2880, Codec::Q8_0),
            (Preset::IQ4_XS, 2880, Codec::IQ4_NL),
            (Preset::Q4_K_S, 48, Codec::F16),
            (Preset::Q4_0, 48, Codec::F16),
            (Preset::MXFP4_MOE, 48, Codec::F16),
            (Preset::Q4_0, 2880, Codec::Q4_0),
        ];
        for (preset, cols, want) in cases {
            let ne = [cols, 8];
            let p = plan_types(
                preset,
                &WIDE,
                &[t("blk.0.attn_q.weight", &ne, Codec::F32)],
                &[],
            )
            .unwrap();
            assert_eq!(p.types[0], want, "{preset} {cols}");
            assert_eq!(
                p.fallbacks,
                usize::from(!cols.is_multiple_of(preset.default_codec().block() as u64))
            );
        }
        // an F16 source falling back to F16 is a copy, a BF16 one a conversion
        let ne = [48u64, 8];
        let src = [t("blk.0.attn_q.weight", &ne, Codec::F16)];
        let p = plan_types(Preset::Q4_K_M, &WIDE, &src, &[]).unwrap();
        assert!(!p.converts(&src, 0));
        let src = [t("blk.0.attn_q.weight", &ne, Codec::BF16)];
        assert!(
            plan_types(Preset::Q4_K_M, &WIDE, &src, &[])
                .unwrap()
                .converts(&src, 0)
        );
    }

    #[test]
    fn only_2d_weights_outside_the_exclusions_are_quantized() {
        let v = [2880u64];
        let m = [2880u64, 64];
        let col = [2880u64, 1];
        let tensors = [
            t("blk.0.attn_norm.weight", &v, Codec::F32),
            t("blk.0.attn_q.bias", &m, Codec::F32),
            t("blk.0.ffn_gate_inp.weight", &m, Codec::F32),
            t("blk.0.attn_q.weight", &col, Codec::BF16),
            t("blk.0.post_attention_norm.weight", &m, Codec::F32),
            t("position_embd.weight", &m, Codec::F32),
            t("blk.0.attn_sinks.weight", &[64], Codec::F32),
            t("abcde", &m, Codec::F32),
            t("blk.0.attn_k.weight", &m, Codec::F32),
        ];
        let p = plan_types(Preset::Q8_0, &WIDE, &tensors, &[]).unwrap();
        let want = [
            Codec::F32,
            Codec::F32,
            Codec::F32,
            Codec::BF16,
            Codec::F32,
            Codec::F32,
            Codec::F32,
            // a 5-byte name passes llama.cpp's "ends with weight" test (size_t wrap-around)
            Codec::Q8_0,
            Codec::Q8_0,
        ];
        assert_eq!(p.types, want);
    }

    #[test]
    fn eight_experts_and_gqa_change_attention_types() {
        let ne = [256u64, 256];
        let names = [
            "blk.0.attn_v.weight",
            "blk.0.attn_k.weight",
            "blk.0.attn_output.weight",
        ];
        let tensors: Vec<_> = names.iter().map(|n| t(n, &ne, Codec::BF16)).collect();
        let types =
            |preset, info: ModelInfo| plan_types(preset, &info, &tensors, &[]).unwrap().types;
        let e8 = ModelInfo {
            n_expert: 8,
            ..WIDE
        };
        assert_eq!(
            types(Preset::Q4_K_M, e8),
            [Codec::Q8_0, Codec::Q8_0, Codec::Q5_K]
        );
        assert_eq!(
            types(Preset::Q5_K_S, e8),
            [Codec::Q8_0, Codec::Q8_0, Codec::Q5_K]
        );
        assert_eq!(
            types(Preset::Q5_K_M, e8),
            [Codec::Q8_0, Codec::Q8_0, Codec::Q5_K]
        );
        let gqa8 = ModelInfo {
            n_head: 64,
            n_head_kv: 8,
            n_expert: 32,
            ..WIDE
        };
        assert_eq!(
            types(Preset::Q2_K, gqa8),
            [Codec::Q4_K, Codec::Q2_K, Codec::Q3_K]
        );
        assert_eq!(
            types(Preset::Q2_K, WIDE),
            [Codec::Q3_K, Codec::Q2_K, Codec::Q3_K]
        );
        assert_eq!(
            types(Preset::IQ4_XS, gqa8),
            [Codec::Q5_K, Codec::IQ4_XS, Codec::IQ4_XS]
        );
    }

    #[test]
    fn counters_follow_the_output_order_not_the_input_order() {
        // 10 layers given in reverse: Q4_K_S gives Q5_K to the first four attn_v in layer order
        let ne = [256u64, 256];
        let names: Vec<String> = (0..10)
            .rev()
            .map(|i| format!("blk.{i}.attn_v.weight"))
            .collect();
        let tensors: Vec<_> = names.iter().map(|n| t(n, &ne, Codec::BF16)).collect();
        let info = ModelInfo {
            n_layer: 10,
            ..WIDE
        };
        let p = plan_types(Preset::Q4_K_S, &info, &tensors, &[]).unwrap();
        assert_eq!(p.order, (0..10).rev().collect::<Vec<_>>());
        let by_layer: Vec<Codec> = p.order.iter().map(|&i| p.types[i]).collect();
        assert_eq!(
            &by_layer[..5],
            [
                Codec::Q5_K,
                Codec::Q5_K,
                Codec::Q5_K,
                Codec::Q5_K,
                Codec::Q4_K
            ]
        );
    }

    #[test]
    fn output_order_sorts_by_layer_number_then_bytes() {
        let names = [
            "blk.10.a",
            "blk.9.b",
            "token_embd.weight",
            "blk.9.a",
            "output.weight",
            "blk.x",
        ];
        let order = output_order(&names);
        let sorted: Vec<&str> = order.iter().map(|&i| names[i]).collect();
        assert_eq!(
            sorted,
            [
                "blk.x",
                "output.weight",
                "token_embd.weight",
                "blk.9.a",
                "blk.9.b",
                "blk.10.a"
            ]
        );
    }

    #[test]
    fn bad_inputs_are_errors() {
        let ne = [256u64, 256, 4];
        let exp = [t("ffn_down_exps.weight", &ne, Codec::BF16)];
        assert!(matches!(
            plan_types(Preset::Q4_0, &WIDE, &exp, &[]),
            Err(PresetError::NoLayer { .. })
        ));
        let exp = [t("blk.2.ffn_down_exps.weight", &ne, Codec::BF16)];
        assert!(matches!(
            plan_types(Preset::Q4_0, &WIDE, &exp, &[]),
            Err(PresetError::BadLayer {
                layer: 2,
                n_layer: 2,
                ..
            })
        ));
        // MXFP4_MOE never reads the layer
        assert!(plan_types(Preset::MXFP4_MOE, &WIDE, &exp, &[]).is_ok());
        let dup = [
            t("a.weight", &ne, Codec::F32),
            t("a.weight", &ne, Codec::F32),
        ];
        assert!(matches!(
            plan_types(Preset::Q4_0, &WIDE, &dup, &[]),
            Err(PresetError::DuplicateTensor { .. })
        ));
        let five = [t("a.weight", &[1, 1, 1, 1, 1], Codec::F32)];
        assert!(matches!(
            plan_types(Preset::Q4_0, &WIDE, &five, &[]),
            Err(PresetError::Dimensions { dims: 5, .. })
        ));
        let zero = ModelInfo { n_layer: 0, ..WIDE };
        assert!(matches!(
            plan_types(Preset::Q4_0, &zero, &[], &[]),
            Err(PresetError::LayerCount { .. })
        ));
        let regex = [TypeOverride {
            pattern: "blk.0",
            codec: Codec::Q8_0,
        }];
        assert!(matches!(
            plan_types(Preset::Q4_0, &WIDE, &[], &regex),
            Err(PresetError::Pattern { .. })
        ));
        let q8 = [t("blk.0.attn_q.weight", &[256, 256], Codec::Q8_0)];
        let e = plan_types(Preset::Q4_K_M, &WIDE, &q8, &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "tensor `blk.0.attn_q.weight`: requantizing from type q8_0 is disabled"
        );
        assert!(plan_types(Preset::Q8_0, &WIDE, &q8, &[]).is_ok());
    }

    #[test]
    fn preset_names_and_file_types() {
        for p in Preset::ALL {
            assert_eq!(Preset::parse(p.name()), Some(p));
            assert_eq!(Preset::parse(p.variant_name()), Some(p));
            assert_eq!(p.variant_name(), p.name().to_ascii_lowercase());
        }
        assert_eq!(Preset::parse("q4_k"), Some(Preset::Q4_K_M));
        assert_eq!(Preset::parse("Q3_K"), Some(Preset::Q3_K_M));
        assert_eq!(Preset::parse("Q5_K"), Some(Preset::Q5_K_M));
        assert_eq!(Preset::parse("Q2_K_S"), None);
        let ft: Vec<u32> = Preset::ALL.iter().map(|p| p.file_type()).collect();
        assert_eq!(
            ft,
            [
                2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 25, 30, 38
            ]
        );
    }
}
