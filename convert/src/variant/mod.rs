//! The variants oss-forge writes, and the one entry point that writes any of them.
//!
//! Each variant is a row of [`storage::Storage`] (how each class of weights is stored); the
//! containers' writers read it:
//!
//! | file | what |
//! |---|---|
//! | `storage.rs` | the table: one [`Storage`] row per variant |
//! | `gguf.rs` | GGUF variants: tensor plan (names, order, types from the row) and per-tensor encoders |
//! | `st.rs` | safetensors variants: transformers' dense layout and compressed-tensors int8 |
//! | `mlx.rs` | MLX variants: mlx-lm's layout, index and config (`mlx_lm.convert`'s output) |
//!
//! Shared by both writers, so each rule exists once: the source's integrity rule ([`Guard`]),
//! the count of values stored inexactly ([`Tally`]), the greedy split of tensors into files
//! ([`greedy_ranges`]), and the chunked parallel encoders.

use crate::error::{ConvertError, Result};
use crate::model::AnyModel;
use quant::{Codec, float, mxfp4};
use rayon::prelude::*;
use reference::{WeightId, WeightSource};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub mod gguf;
pub mod mlx;
pub mod preset;
pub mod st;
pub mod storage;

pub use preset::Preset;
pub use storage::{Container, Storage, Store};

/// An output variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// GGUF, MXFP4 experts, BF16 dense (llama.cpp `--outtype auto`).
    GgufMxfp4,
    /// GGUF, MXFP4 experts, F16 dense (llama.cpp `--outtype f16`).
    GgufMxfp4F16,
    /// GGUF, MXFP4 experts, Q8_0 dense (llama.cpp `--outtype q8_0`).
    GgufMxfp4Q8_0,
    /// GGUF, everything Q8_0 (experts exact where the MXFP4 scale fits an f16 `d`).
    GgufQ8_0,
    /// GGUF, everything F16.
    GgufF16,
    /// GGUF, everything BF16.
    GgufBf16,
    /// transformers' dequantized layout in BF16.
    SafetensorsBf16,
    /// transformers' dequantized layout in F16.
    SafetensorsFp16,
    /// compressed-tensors pack-quantized int8 experts (group 32), BF16 elsewhere.
    SafetensorsInt8,
    /// The release's own layout: MXFP4 experts (`*_blocks` / `*_scales`), BF16 elsewhere,
    /// `quant_method: mxfp4` (what vLLM, SGLang, TensorRT-LLM and transformers serve).
    SafetensorsMxfp4,
    /// MLX, MXFP4 experts, affine 8-bit elsewhere (`mlx_lm.convert -q --q-bits 8`).
    MlxMxfp4Q8,
    /// MLX, MXFP4 experts, affine 4-bit elsewhere, router 8-bit (`mlx_lm.convert -q --q-bits 4`).
    MlxMxfp4Q4,
    /// MLX, everything BF16 (`mlx_lm.convert -d`).
    MlxBf16,
    /// GGUF, a llama-quantize preset (`gguf-q4_k_m`): from an MXFP4 source the experts stay
    /// MXFP4 and the rest follows the preset; from a dense source every tensor does.
    GgufPreset(Preset),
}

impl Variant {
    /// Every variant, in the order `pipeline` writes them.
    pub const ALL: [Variant; 28] = [
        Variant::GgufMxfp4,
        Variant::GgufMxfp4F16,
        Variant::GgufMxfp4Q8_0,
        Variant::GgufQ8_0,
        Variant::GgufF16,
        Variant::GgufBf16,
        Variant::SafetensorsBf16,
        Variant::SafetensorsFp16,
        Variant::SafetensorsInt8,
        Variant::SafetensorsMxfp4,
        Variant::MlxMxfp4Q8,
        Variant::MlxMxfp4Q4,
        Variant::MlxBf16,
        Variant::GgufPreset(Preset::Q6_K),
        Variant::GgufPreset(Preset::Q5_K_M),
        Variant::GgufPreset(Preset::Q5_K_S),
        Variant::GgufPreset(Preset::Q5_1),
        Variant::GgufPreset(Preset::Q5_0),
        Variant::GgufPreset(Preset::Q4_K_M),
        Variant::GgufPreset(Preset::Q4_K_S),
        Variant::GgufPreset(Preset::Q4_1),
        Variant::GgufPreset(Preset::Q4_0),
        Variant::GgufPreset(Preset::IQ4_NL),
        Variant::GgufPreset(Preset::IQ4_XS),
        Variant::GgufPreset(Preset::Q3_K_L),
        Variant::GgufPreset(Preset::Q3_K_M),
        Variant::GgufPreset(Preset::Q3_K_S),
        Variant::GgufPreset(Preset::Q2_K),
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Variant::GgufPreset(p) => preset_variant_name(p),
            Variant::GgufMxfp4 => "gguf-mxfp4",
            Variant::GgufMxfp4F16 => "gguf-mxfp4-f16",
            Variant::GgufMxfp4Q8_0 => "gguf-mxfp4-q8_0",
            Variant::GgufQ8_0 => "gguf-q8_0",
            Variant::GgufF16 => "gguf-f16",
            Variant::GgufBf16 => "gguf-bf16",
            Variant::SafetensorsBf16 => "safetensors-bf16",
            Variant::SafetensorsFp16 => "safetensors-fp16",
            Variant::SafetensorsInt8 => "safetensors-int8",
            Variant::SafetensorsMxfp4 => "safetensors-mxfp4",
            Variant::MlxMxfp4Q8 => "mlx-mxfp4-q8",
            Variant::MlxMxfp4Q4 => "mlx-mxfp4-q4",
            Variant::MlxBf16 => "mlx-bf16",
        }
    }

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.name() == s)
    }

    /// Parses a command-line name, or says which name was probably meant:
    /// ``unknown variant `gguf-mxfp`: did you mean `gguf-mxfp4`? (known: ...)``.
    pub fn parse_or_suggest(s: &str) -> std::result::Result<Variant, String> {
        if let Some(v) = Variant::parse(s.trim()) {
            return Ok(v);
        }
        let known = Variant::ALL.map(|v| v.name()).join(", ");
        let t = s.trim().to_ascii_lowercase().replace('_', "-");
        let best = Variant::ALL
            .into_iter()
            .map(|v| (edit_distance(&t, &v.name().replace('_', "-")), v))
            .min_by_key(|(d, _)| *d)
            .filter(|(d, _)| *d <= 3.max(t.len() / 3));
        let lower = s.trim().to_ascii_lowercase();
        let hint = match (best, OUTTYPES.iter().find(|(o, _)| *o == lower)) {
            (_, Some(_)) => format!(
                ": `{lower}` is a llama.cpp --outtype (convert takes `--outtype {lower}`; name a variant here)"
            ),
            (Some((_, v)), None) => format!(": did you mean `{v}`?"),
            (None, None) => String::new(),
        };
        Err(format!("unknown variant `{s}`{hint} (known: {known})"))
    }

    /// The variant llama.cpp's `convert_hf_to_gguf.py --outtype T` writes, for a source whose
    /// experts are MXFP4 (`mxfp4_source`) or not, with a note where the names differ. `auto`
    /// is what llama.cpp's heuristic picks for this source (`auto`: the type of its first 2-D
    /// BF16 or F16 tensor, see [`llamacpp_auto_outtype`]), `bf16` or `f16`. From llama.cpp (as
    /// vendored in llama-cpp-python 0.3.36) `conversion/gpt_oss.py` and `conversion/base.py`:
    /// MXFP4 experts are repacked as they are whatever the outtype, and `f16`/`bf16`/`f32` of
    /// an MXFP4 model are written as `MOSTLY_MXFP4_MOE`. A source without MXFP4 experts is
    /// converted whole to the outtype.
    pub fn from_llamacpp_outtype(
        outtype: &str,
        mxfp4_source: bool,
        auto: &str,
    ) -> std::result::Result<(Variant, String), String> {
        let asked = outtype.trim().to_ascii_lowercase();
        let t = if asked == "auto" {
            auto.to_string()
        } else {
            asked.clone()
        };
        let Some(&(_, (mx, dense))) = OUTTYPES.iter().find(|(o, _)| *o == t && t != "auto") else {
            let known: Vec<&str> = OUTTYPES.iter().map(|(o, _)| *o).collect();
            return Err(format!(
                "--outtype {outtype}: not one oss-forge writes (llama.cpp's it maps: {}; f32, tq1_0 and tq2_0 have no variant here)",
                known.join(", ")
            ));
        };
        let v = if mxfp4_source { mx } else { dense };
        let name = if asked == "auto" {
            format!(
                "--outtype auto (here {t}, llama.cpp's choice: the type of the first 2-D BF16 or F16 tensor)"
            )
        } else {
            format!("--outtype {t}")
        };
        let note = if mxfp4_source && t == "f16" {
            format!(
                "{name} is `{v}`: llama.cpp keeps the MXFP4 experts and stores the rest F16 \
                 (oss-forge's `gguf-f16` also dequantizes the experts to F16: about 3x larger, 39 GiB instead of 13 GiB for gpt-oss-20b)"
            )
        } else if mxfp4_source {
            format!(
                "{name} is `{v}`: llama.cpp keeps the MXFP4 experts as they are{}",
                if t == "q8_0" {
                    " and quantizes the rest to Q8_0 (oss-forge's `gguf-q8_0` also moves the experts to Q8_0)"
                } else {
                    " and stores the rest BF16"
                }
            )
        } else {
            format!(
                "{name} is `{v}` (the source has no MXFP4 experts: every weight is stored {})",
                t.to_uppercase()
            )
        };
        Ok((v, note))
    }

    /// The variants `pipeline` writes when none are named, in order.
    pub fn defaults() -> Vec<Variant> {
        Variant::ALL
            .into_iter()
            .filter(|v| v.storage().default)
            .collect()
    }

    /// The variant's row of the storage table with default options.
    pub fn storage(self) -> Storage {
        Storage::of(self, &ConvertOptions::default())
    }

    /// True for the single-file GGUF variants.
    pub fn is_gguf(self) -> bool {
        self.storage().is_gguf()
    }
}

/// What llama.cpp's `--outtype auto` means for `model`: `bf16` or `f16`, the type of the first
/// 2-D (or larger) tensor stored BF16 or F16, in the order its converter reads them (shards in
/// name order, tensors by name within each; U8 blocks and F32 skipped), and `f16` when there is
/// none. From llama.cpp (as vendored in llama-cpp-python 0.3.36) `conversion/base.py`
/// (`LlamaFileType.GUESSED`) and `gguf-py/gguf/utility.py` (`SafetensorsLocal`). A GGUF source
/// (which that converter does not read) keeps its dense tensors' type the same way.
pub fn llamacpp_auto_outtype(model: &AnyModel) -> &'static str {
    use crate::safetensors::Dtype;
    let first = match model {
        AnyModel::Safetensors(c) => c.files().iter().find_map(|f| {
            let mut ts: Vec<_> = f.tensors().iter().filter(|t| t.shape.len() >= 2).collect();
            ts.sort_by(|a, b| a.name.cmp(&b.name));
            ts.into_iter()
                .find(|t| matches!(t.dtype, Dtype::BF16 | Dtype::F16))
                .map(|t| t.dtype)
        }),
        AnyModel::Gguf(g) => g
            .files()
            .iter()
            .flat_map(|f| f.tensors())
            .find(|t| t.ne.len() >= 2 && matches!(t.ty, quant::Codec::BF16 | quant::Codec::F16))
            .map(|t| {
                if t.ty == quant::Codec::BF16 {
                    Dtype::BF16
                } else {
                    Dtype::F16
                }
            }),
    };
    if first == Some(Dtype::BF16) {
        "bf16"
    } else {
        "f16"
    }
}

/// llama.cpp's `--outtype` values oss-forge writes: (outtype, (variant for an MXFP4 source,
/// variant for a source without MXFP4 experts)).
const OUTTYPES: [(&str, (Variant, Variant)); 4] = [
    ("auto", (Variant::GgufMxfp4, Variant::GgufBf16)),
    ("bf16", (Variant::GgufMxfp4, Variant::GgufBf16)),
    ("f16", (Variant::GgufMxfp4F16, Variant::GgufF16)),
    ("q8_0", (Variant::GgufMxfp4Q8_0, Variant::GgufQ8_0)),
];

/// Levenshtein distance of two short names (bytes).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, &x) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `gguf-` and llama-quantize's preset name in lower case.
const fn preset_variant_name(p: Preset) -> &'static str {
    match p {
        Preset::Q4_0 => "gguf-q4_0",
        Preset::Q4_1 => "gguf-q4_1",
        Preset::Q5_0 => "gguf-q5_0",
        Preset::Q5_1 => "gguf-q5_1",
        Preset::Q8_0 => "gguf-q8_0-preset",
        Preset::Q2_K => "gguf-q2_k",
        Preset::Q3_K_S => "gguf-q3_k_s",
        Preset::Q3_K_M => "gguf-q3_k_m",
        Preset::Q3_K_L => "gguf-q3_k_l",
        Preset::Q4_K_S => "gguf-q4_k_s",
        Preset::Q4_K_M => "gguf-q4_k_m",
        Preset::Q5_K_S => "gguf-q5_k_s",
        Preset::Q5_K_M => "gguf-q5_k_m",
        Preset::Q6_K => "gguf-q6_k",
        Preset::IQ4_NL => "gguf-iq4_nl",
        Preset::IQ4_XS => "gguf-iq4_xs",
        Preset::MXFP4_MOE => "gguf-mxfp4_moe",
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Settings of one conversion.
#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    /// Replace an existing output.
    pub force: bool,
    /// GGUF: split into llama.cpp-style shards of at most this many bytes of tensor data.
    pub split_max_bytes: Option<u64>,
    /// safetensors: largest shard (default 5 GB, transformers v4's `max_shard_size`).
    pub max_shard_bytes: Option<u64>,
    /// safetensors-int8: also quantize attention projections and lm_head per output channel.
    pub int8_dense: bool,
    /// Convert even when the source holds NaN/Inf values or NaN scale bytes, or values the
    /// output would store as NaN/Inf (float16 overflow).
    pub allow_nonfinite: bool,
    /// Leave out tokens whose ids are past `vocab_size` (added to a tokenizer without resizing
    /// the embedding) instead of refusing the source; the report lists them.
    pub truncate_vocab: bool,
    /// Skip the free-space check before writing (for file systems whose `statvfs` is wrong).
    pub skip_space_check: bool,
    /// How dense expert weights are rounded to MXFP4 (`--mxfp4-rounding`; ggml's rule by
    /// default, so the bytes equal llama-quantize's; the MLX variants use it too).
    pub mxfp4_rounding: quant::mxfp4::Rounding,
    /// GGUF presets: quantize MXFP4 experts to the preset's types too (`--requantize-experts`;
    /// lossy) instead of keeping them MXFP4.
    pub requantize_experts: bool,
}

/// Values a variant could not store exactly.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inexact {
    /// What was inexact (e.g. "Q8_0 expert blocks with scale outside 104..=143").
    pub what: String,
    /// How many values (or blocks, as `what` says).
    pub count: u64,
    /// The largest absolute error introduced.
    pub max_abs_error: f32,
}

/// What a conversion wrote.
#[derive(Clone, Debug, Default)]
pub struct ConvertReport {
    /// The files written (one GGUF, several splits, or a directory's files).
    pub outputs: Vec<PathBuf>,
    /// Bytes written.
    pub bytes: u64,
    /// Values stored inexactly, by kind. Empty for a lossless conversion.
    pub inexact: Vec<Inexact>,
    /// Warnings to show the user (and put in the model card).
    pub warnings: Vec<String>,
}

/// Progress of a long operation, in bytes. Implementations must be cheap to call often.
pub trait Progress: Sync {
    /// A new phase with `total` bytes of work.
    fn begin(&self, label: &str, total: u64);
    /// `bytes` more done.
    fn advance(&self, bytes: u64);
    /// The phase is over.
    fn end(&self);
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn end(&self) {}
}

/// Writes `variant` of the model `src` (its weights, and the tokenizer files and config found
/// beside it, see [`crate::companion`]) to `out`, by the rules of [`crate::output`]: never
/// onto or into the model, a GGUF into an existing directory as `MODEL-SUFFIX.gguf`, a
/// safetensors directory into an existing one replacing only its own files. A stop asked for
/// ([`crate::cancel`]) ends it with [`ConvertError::Interrupted`], the partial output removed.
pub fn convert(
    src: &AnyModel,
    variant: Variant,
    out: &Path,
    opts: &ConvertOptions,
    progress: &dyn Progress,
) -> Result<ConvertReport> {
    convert_weights(src, src.source(), variant, out, opts, progress)
}

/// One conversion as the writers (`gguf`, `st`, `mlx`) take it: `variant` stored as `storage`
/// (its row of the storage table for `opts`), the model `model` read through `src` (its own
/// weights or a wrapper), written to `out` (for GGUF, the file path already resolved).
#[derive(Clone, Copy)]
pub struct Job<'a> {
    /// The model read: its path, config, tokenizer files and other companions.
    pub model: &'a AnyModel,
    /// Where its weights are read from.
    pub src: &'a dyn WeightSource,
    /// The variant written.
    pub variant: Variant,
    /// How the variant stores each tensor.
    pub storage: &'a Storage,
    /// The output file (GGUF) or directory.
    pub out: &'a Path,
    /// The conversion settings.
    pub opts: &'a ConvertOptions,
    /// Where progress goes, in bytes.
    pub progress: &'a dyn Progress,
}

/// [`convert`] with the weights read through `weights` (a wrapper around `model`'s own: a
/// filter, or a fault injected by a test); everything else comes from `model`.
pub fn convert_weights(
    model: &AnyModel,
    weights: &dyn WeightSource,
    variant: Variant,
    out: &Path,
    opts: &ConvertOptions,
    progress: &dyn Progress,
) -> Result<ConvertReport> {
    let storage = Storage::of(variant, opts);
    let out = &match storage.container {
        Container::Gguf => crate::output::gguf_target(model, storage.file_suffix, out),
        Container::Safetensors(_) | Container::Mlx(_) => out.to_path_buf(),
    };
    let inputs = crate::output::inputs(model);
    crate::output::refuse_overlap(&inputs, out)?;
    if storage.container == Container::Gguf {
        crate::output::refuse_gguf_family(&inputs, out)?;
    }
    let job = Job {
        model,
        src: weights,
        variant,
        storage: &storage,
        out,
        opts,
        progress,
    };
    match storage.container {
        Container::Gguf => gguf::convert(&job),
        Container::Safetensors(_) => st::convert(&job),
        Container::Mlx(_) => mlx::convert(&job),
    }
    .map_err(|e| crate::cancel::or_interrupted(e, out))
}

/// Bytes of tensor data (headers aside) a variant stored as `storage` holds for `cfg`, from a
/// source whose experts are MXFP4 (the release) or dense (a fine-tune): the writers' own plans
/// summed, so `fit`'s sizes and the files cannot disagree. `None` where the writer would refuse
/// (a preset llama-quantize cannot apply to this model).
pub fn tensor_bytes(
    storage: &Storage,
    cfg: &reference::Config,
    mxfp4_experts: bool,
) -> Option<u64> {
    Some(match storage.container {
        Container::Gguf => {
            let order = crate::names::sorted_release_names(cfg);
            let plan = gguf::plan_tensors(storage, cfg, &order, mxfp4_experts, false).ok()?;
            plan.items.iter().map(|i| i.tensor.nbytes()).sum()
        }
        Container::Safetensors(layout) => {
            let float = st::layout_of(storage).map_or(crate::safetensors::Dtype::BF16, |(_, f)| f);
            st::plan(layout, float, cfg)
                .iter()
                .map(|(_, t)| t.bytes())
                .sum()
        }
        Container::Mlx(scheme) => {
            // The MLX writers store every float tensor in BF16.
            st::plan(
                crate::names::Layout::Mlx(scheme),
                crate::safetensors::Dtype::BF16,
                cfg,
            )
            .iter()
            .map(|(_, t)| t.bytes())
            .sum()
        }
    })
}

/// Bytes of tensor data of the release checkpoint (MXFP4 experts, BF16 elsewhere) for `cfg`.
pub fn release_tensor_bytes(cfg: &reference::Config) -> u64 {
    st::plan(
        crate::names::Layout::Release,
        crate::safetensors::Dtype::BF16,
        cfg,
    )
    .iter()
    .map(|(_, t)| t.bytes())
    .sum()
}

/// Values stored inexactly, by kind (a description such as "values not representable in
/// F16"): how many and the largest absolute error. Tallies merge by sums and maxima, so parts
/// computed in parallel give the same total in any order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally(BTreeMap<String, (u64, f32)>);

impl Tally {
    /// Adds `count` inexact values of kind `what` whose largest error is `err`.
    pub fn add(&mut self, what: &str, count: u64, err: f32) {
        if count > 0 {
            let e = self.0.entry(what.to_string()).or_default();
            e.0 += count;
            e.1 = if err.is_nan() {
                f32::INFINITY
            } else {
                e.1.max(err)
            };
        }
    }

    /// Counts the values of `stored` that differ from `exact` under kind `what`.
    pub fn compare(&mut self, what: &str, exact: &[f32], stored: &[f32]) {
        let (n, err) = float::rounding_errors(exact, stored);
        self.add(what, n, err);
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: Tally) {
        for (what, (count, err)) in other.0 {
            self.add(&what, count, err);
        }
    }

    /// All of `parts` merged.
    pub fn merged(parts: impl IntoIterator<Item = Tally>) -> Tally {
        let mut all = Tally::default();
        for p in parts {
            all.merge(p);
        }
        all
    }

    /// The report lines, by kind.
    pub fn into_report(self) -> Vec<Inexact> {
        self.0
            .into_iter()
            .map(|(what, (count, max_abs_error))| Inexact {
                what,
                count,
                max_abs_error,
            })
            .collect()
    }
}

/// What the lossy codecs store inexactly, as the reports and cards word it.
pub fn inexact_kind(codec: Codec) -> String {
    match codec {
        Codec::F16 => "values not representable in F16 (rounded to nearest even)".into(),
        Codec::BF16 => "values not representable in BF16 (rounded to nearest even)".into(),
        Codec::Q8_0 => "dense values quantized to Q8_0 (d = amax/127, lossy by design)".into(),
        c => format!("values quantized to {c} (ggml's reference quantizer, lossy by design)"),
    }
}

/// The source's integrity rule, the same for every writer: NaN/Inf values and the NaN scale
/// byte 255 are refused, and so is a finite value the output would store as NaN or ±Inf
/// (float16 overflow past 65504, a Q8_0 block whose float16 scale `amax/127` overflows: an
/// MXFP4 scale byte too large for the target), unless `--allow-nonfinite`, naming the source,
/// the weight and, for an overflow, the row, column, block and value. Checked on the values as
/// they stream through, so nothing is read twice.
#[derive(Clone, Copy)]
pub struct Guard<'a> {
    /// `--allow-nonfinite`.
    pub allow: bool,
    /// The source, for messages.
    pub src_path: &'a Path,
}

/// A finite source value that the output's storage cannot hold (it would be NaN or ±Inf).
#[derive(Clone, Debug, PartialEq)]
pub struct Overflow {
    /// Row of the weight.
    pub row: usize,
    /// Column of the weight.
    pub col: usize,
    /// The source's value.
    pub value: f32,
    /// The output's storage.
    pub codec: Codec,
    /// The source's MXFP4 scale byte at that place, when the source stores MXFP4.
    pub mxfp4_scale: Option<u8>,
}

impl std::fmt::Display for Overflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Exactly: f32's shortest round-trip form prints 6 x 2^23 as 50331650. Past 1e16, in
        // scientific notation (still the exact f64 of the f32 value).
        let v = self.value as f64;
        if v.abs() >= 1e16 {
            write!(f, "value {v:e} ")?;
        } else {
            write!(f, "value {v} ")?;
        }
        write!(f, "at row {}, column {} ", self.row, self.col)?;
        // The block named is the output's (a ggml block type), else the source's MXFP4 block.
        let block = match self.codec.block() {
            1 => self.mxfp4_scale.map(|_| mxfp4::BLOCK),
            n => Some(n),
        };
        if let Some(n) = block {
            write!(f, "(in {n}-value block {}) ", self.col / n)?;
        }
        match self.codec {
            Codec::F16 => f.write_str(
                "is past float16's largest finite value 65504: it would be stored as Inf",
            )?,
            Codec::BF16 => f.write_str(
                "is past bfloat16's largest finite value (3.39e38): it would be stored as Inf",
            )?,
            c => write!(
                f,
                "cannot be stored in {c}: the block's float16 scale overflows (largest 65504) and the block would decode to Inf/NaN"
            )?,
        }
        if let Some(s) = self.mxfp4_scale {
            write!(
                f,
                "; the source's MXFP4 block there has scale byte {s} (2^{})",
                s as i32 - mxfp4::E8M0_BIAS
            )?;
        }
        Ok(())
    }
}

impl Guard<'_> {
    /// Decoded values of `id`.
    pub fn floats(&self, id: WeightId, xs: &[f32]) -> Result<()> {
        if !self.allow && !float::all_finite(xs) {
            return Err(ConvertError::nonfinite(self.src_path, id));
        }
        Ok(())
    }

    /// Decoded rows `r0..` (of `cols` values) of `id`: a refusal names the first non-finite
    /// value's row, column and block.
    pub fn rows(&self, id: WeightId, r0: usize, cols: usize, xs: &[f32]) -> Result<()> {
        if self.allow || float::all_finite(xs) {
            return Ok(());
        }
        let i = float::first_nonfinite(xs).unwrap_or(0);
        let cols = cols.max(1);
        Err(ConvertError::nonfinite_at(
            self.src_path,
            id,
            r0 + i / cols,
            i % cols,
            xs[i],
        ))
    }

    /// BF16 bytes of `id`, checked on the bits.
    pub fn bf16_bytes(&self, id: WeightId, bytes: &[u8]) -> Result<()> {
        if !self.allow && !float::bf16_bytes_all_finite(bytes) {
            return Err(ConvertError::nonfinite(self.src_path, id));
        }
        Ok(())
    }

    /// An MXFP4 scale byte of `id`.
    pub fn scale(&self, id: WeightId, s: u8) -> Result<()> {
        if !self.allow && s == mxfp4::E8M0_NAN {
            return Err(ConvertError::nan_scale(self.src_path, id));
        }
        Ok(())
    }

    /// A finite value of `id` that the output would store as NaN or ±Inf.
    pub fn overflow(&self, id: WeightId, at: &Overflow) -> Result<()> {
        if self.allow {
            return Ok(());
        }
        Err(ConvertError::overflow(self.src_path, id, at))
    }

    /// Rows of ggml blocks of `codec` copied as they are: the MXFP4 scale bytes, and for the
    /// other block codecs the decoded values.
    pub fn ggml_blocks(&self, id: WeightId, codec: Codec, data: &[u8]) -> Result<()> {
        if self.allow {
            return Ok(());
        }
        if codec == Codec::MXFP4 {
            return data
                .chunks_exact(codec.block_bytes())
                .try_for_each(|b| self.scale(id, b[0]));
        }
        let mut xs = vec![0f32; data.len() / codec.block_bytes() * codec.block()];
        codec.dequantize_row(data, &mut xs);
        self.floats(id, &xs)
    }
}

/// The first value of `xs` that is finite but that F16 (`f16`) or BF16 rounds to ±Inf.
/// Encoders call it only once the rounding reported an infinite error, so the common case
/// costs nothing.
pub fn first_half_overflow(xs: &[f32], f16: bool) -> Option<usize> {
    xs.iter().position(|&x| {
        x.is_finite()
            && !(if f16 {
                float::f16_bits_to_f32(float::f32_to_f16_bits(x))
            } else {
                float::bf16_bits_to_f32(float::f32_to_bf16_bits(x))
            })
            .is_finite()
    })
}

/// Where `xs` first overflows its storage: in the first block of `block` values (1 for the
/// float types) holding a value that is finite while `stored` (the same values decoded back
/// from the output) holds NaN or ±Inf there, the finite value of largest magnitude, which is the
/// one that overflowed the block's scale (the other values of the block decode to Inf/NaN
/// with it).
pub fn first_overflow(xs: &[f32], stored: &[f32], block: usize) -> Option<usize> {
    float::first_nonfinite(stored)?;
    let i = xs
        .iter()
        .zip(stored)
        .position(|(x, y)| x.is_finite() && !y.is_finite())?;
    let b0 = i / block.max(1) * block.max(1);
    let end = (b0 + block.max(1)).min(xs.len());
    (b0..end)
        .filter(|&k| xs[k].is_finite())
        .max_by(|&a, &b| xs[a].abs().total_cmp(&xs[b].abs()).then(b.cmp(&a)))
}

/// The MXFP4 scale byte of row `row`, column `col` of `m`, when `m` stores MXFP4 (release or
/// ggml layout), for messages.
pub fn mxfp4_scale_at(m: &reference::MatRef<'_>, row: usize, col: usize) -> Option<u8> {
    use reference::Encoding;
    let nb = m.cols() / mxfp4::BLOCK;
    let b = col / mxfp4::BLOCK;
    match *m.encoding() {
        Encoding::Mxfp4 {
            scales, row_step, ..
        } => scales.get(row * row_step * nb + b).copied(),
        Encoding::Ggml {
            codec: Codec::MXFP4,
            data,
            row_step,
        } => data
            .get((row * row_step * nb + b) * mxfp4::GGML_BLOCK_BYTES)
            .copied(),
        _ => None,
    }
}

/// Splits items of `sizes` bytes, in order, into consecutive ranges of at most `max` bytes (an
/// item larger than `max` gets a range of its own); no limit gives one range. The rule of
/// gguf-py's `--split-max-size` and of transformers' `max_shard_size`.
pub fn greedy_ranges(sizes: &[u64], max: Option<u64>) -> Vec<std::ops::Range<usize>> {
    let Some(max) = max.filter(|&m| m > 0) else {
        return std::iter::once(0..sizes.len()).collect();
    };
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, &n) in sizes.iter().enumerate() {
        if i > start && bytes + n > max {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += n;
    }
    out.push(start..sizes.len());
    out
}

/// Values of a dense tensor encoded per chunk (about 8 MB of f32): each chunk is encoded in
/// parallel pieces, written, and its source pages released, so a 1.2 GB embedding never becomes
/// resident whole.
pub(crate) const CHUNK_VALUES: usize = 2 << 20;

/// The BF16 bytes of a dense weight `id` of `src` passed on unchanged, a chunk of
/// [`CHUNK_VALUES`] at a time: its pages mapped in one call, checked for NaN/Inf on the bits
/// (refused, naming the weight, unless `allow_nonfinite`), handed to `write`, released.
pub(crate) fn copy_bf16(
    src: &dyn WeightSource,
    id: WeightId,
    bytes: &[u8],
    guard: Guard<'_>,
    mut write: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    for piece in bytes.chunks(2 * CHUNK_VALUES) {
        src.prefetch(piece);
        guard.bf16_bytes(id, piece)?;
        write(piece)?;
        src.release(id);
    }
    Ok(())
}

/// Encodes rows `range` of a tensor whose rows take `rb` output bytes into `buf` (resized to
/// fit), pieces of `piece_rows` rows in parallel: `piece(first row, its bytes, tally)`. Each
/// piece's bytes depend on its rows alone and tallies merge by sums and maxima, so neither the
/// bytes nor the report depend on the thread count.
pub(crate) fn encode_rows(
    range: std::ops::Range<usize>,
    rb: usize,
    piece_rows: usize,
    buf: &mut Vec<u8>,
    piece: impl Fn(usize, &mut [u8], &mut Tally) -> Result<()> + Sync,
) -> Result<Tally> {
    // Every byte is overwritten by the pieces: only a change of size needs the zero fill.
    if buf.len() != range.len() * rb {
        buf.clear();
        buf.resize(range.len() * rb, 0);
    }
    let step = piece_rows.max(1);
    let parts: Vec<Tally> = buf
        .par_chunks_mut((step * rb).max(1))
        .enumerate()
        .map(|(k, out)| {
            let mut t = Tally::default();
            piece(range.start + k * step, out, &mut t)?;
            Ok(t)
        })
        .collect::<Result<_>>()?;
    Ok(Tally::merged(parts))
}

/// Encodes all `rows` rows (of `cols` values, `rb` output bytes) of a dense tensor a chunk of
/// [`CHUNK_VALUES`] at a time with [`encode_rows`], the chunk's rows shared among the threads;
/// `chunk_done` receives each chunk's bytes in order (to write them and release the source
/// pages read so far).
pub(crate) fn encode_chunked(
    rows: usize,
    cols: usize,
    rb: usize,
    buf: &mut Vec<u8>,
    piece: impl Fn(usize, &mut [u8], &mut Tally) -> Result<()> + Sync,
    mut chunk_done: impl FnMut(&[u8]) -> Result<()>,
) -> Result<Tally> {
    let chunk = (CHUNK_VALUES / cols.max(1)).clamp(1, rows.max(1));
    let sub = chunk.div_ceil(2 * rayon::current_num_threads()).max(1);
    let mut tally = Tally::default();
    for r in (0..rows).step_by(chunk) {
        tally.merge(encode_rows(r..(r + chunk).min(rows), rb, sub, buf, &piece)?);
        chunk_done(buf)?;
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_changed_values_only() {
        let mut t = Tally::default();
        t.compare(
            "x",
            &[1.0, f32::NAN, 1e-8, 70000.0],
            &[1.0, f32::NAN, 0.0, f32::INFINITY],
        );
        assert_eq!(t.clone().into_report()[0].count, 2);
        assert_eq!(t.clone().into_report()[0].max_abs_error, f32::INFINITY);
        t.add("y", 0, 5.0);
        assert_eq!(
            t.into_report().len(),
            1,
            "a kind with no values is not reported"
        );
    }

    #[test]
    fn misspelt_variants_get_a_did_you_mean_and_outtypes_map_by_source() {
        let e = Variant::parse_or_suggest("gguf-mxfp").unwrap_err();
        assert!(e.contains("did you mean `gguf-mxfp4`?"), "{e}");
        let e = Variant::parse_or_suggest("safetensor-int8").unwrap_err();
        assert!(e.contains("did you mean `safetensors-int8`?"), "{e}");
        let e = Variant::parse_or_suggest("q8_0").unwrap_err();
        assert!(e.contains("--outtype q8_0"), "{e}");
        assert!(
            !Variant::parse_or_suggest("zzzzzzzzzzzzz")
                .unwrap_err()
                .contains("did you mean")
        );
        assert_eq!(
            Variant::parse_or_suggest("gguf-q8_0"),
            Ok(Variant::GgufQ8_0)
        );
        let v = |t, mx| Variant::from_llamacpp_outtype(t, mx, "bf16").unwrap().0;
        assert_eq!(v("auto", true), Variant::GgufMxfp4);
        assert_eq!(v("bf16", true), Variant::GgufMxfp4);
        assert_eq!(v("f16", true), Variant::GgufMxfp4F16);
        assert_eq!(v("q8_0", true), Variant::GgufMxfp4Q8_0);
        assert_eq!(v("f16", false), Variant::GgufF16);
        assert_eq!(v("auto", false), Variant::GgufBf16);
        let f16 = |t, mx| Variant::from_llamacpp_outtype(t, mx, "f16").unwrap().0;
        assert_eq!(f16("auto", false), Variant::GgufF16);
        assert_eq!(f16("auto", true), Variant::GgufMxfp4F16);
        assert_eq!(f16("bf16", false), Variant::GgufBf16);
        let (_, note) = Variant::from_llamacpp_outtype("f16", true, "bf16").unwrap();
        assert!(
            note.contains("gguf-mxfp4-f16") && note.contains("dequantizes"),
            "{note}"
        );
        assert!(Variant::from_llamacpp_outtype("f32", true, "bf16").is_err());
    }

    #[test]
    fn float16_overflow_is_found_where_rounding_gives_inf() {
        // 65504 is float16's largest; 65519 still rounds down to it, 65520 rounds to Inf.
        let xs = [1.0, 65504.0, 65519.0, -65520.0, f32::INFINITY, 3e38];
        assert_eq!(first_half_overflow(&xs, true), Some(3));
        assert_eq!(first_half_overflow(&xs[4..], true), Some(1));
        // BF16 reaches 3.39e38: 3e38 fits.
        assert_eq!(first_half_overflow(&xs, false), None);
        assert_eq!(first_overflow(&[1.0, 2.0], &[1.0, f32::NAN], 1), Some(1));
        assert_eq!(first_overflow(&[f32::NAN, 2.0], &[f32::NAN, 2.0], 1), None);
        // In a block, the value that overflowed the scale, not the block's first.
        let xs = [1.0, 2.0, 0.5, -1e30, 3.0, 4.0];
        let stored = [1.0, 2.0, f32::INFINITY, f32::NAN, f32::NAN, f32::INFINITY];
        assert_eq!(first_overflow(&xs, &stored, 2), Some(3));
        assert_eq!(first_overflow(&xs, &stored, 1), Some(2));
        let at = Overflow {
            row: 3,
            col: 37,
            value: 50331648.0,
            codec: Codec::Q8_0,
            mxfp4_scale: Some(150),
        };
        let huge = Overflow {
            value: 1e30,
            ..at.clone()
        };
        assert!(
            huge.to_string().starts_with(
                "value 1.0000000150474662e30 at row 3, column 37 (in 32-value block 1)"
            ),
            "{huge}"
        );
        assert_eq!(
            at.to_string(),
            "value 50331648 at row 3, column 37 (in 32-value block 1) cannot be stored in Q8_0: \
             the block's float16 scale overflows (largest 65504) and the block would decode to \
             Inf/NaN; the source's MXFP4 block there has scale byte 150 (2^23)"
        );
    }

    #[test]
    fn greedy_ranges_keep_order_and_give_a_large_item_its_own_range() {
        let sizes = [4, 4, 3, 10, 1];
        assert_eq!(greedy_ranges(&sizes, Some(8)), vec![0..2, 2..3, 3..4, 4..5]);
        let whole = |n| std::iter::once(0..n).collect::<Vec<_>>();
        assert_eq!(greedy_ranges(&sizes, Some(100)), whole(5));
        assert_eq!(greedy_ranges(&sizes, None), whole(5));
        assert_eq!(greedy_ranges(&[], Some(8)), whole(0));
    }
}
