//! What `oss-forge inspect` reports about a checkpoint: layout, config, files, tensor bytes by
//! dtype, the MXFP4 scale-byte histogram, and anything suspicious (non-finite values, NaN scale
//! bytes, values past float16's range, tokenizer ids past `vocab_size`, an index that disagrees
//! with its shards).

use crate::checkpoint::Checkpoint;
use crate::safetensors::Dtype;
use rayon::prelude::*;
use reference::WeightSource;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Counts of non-finite values in one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonFinite {
    /// Tensor name.
    pub tensor: String,
    /// NaN values.
    pub nan: u64,
    /// ±Inf values.
    pub inf: u64,
}

/// MXFP4 blocks of one tensor whose E8M0 scale byte is 255 (NaN in the OCP MX spec).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NanScales {
    /// Tensor name (the `*_scales` tensor, or the GGUF MXFP4 tensor holding the blocks).
    pub tensor: String,
    /// Blocks with scale byte 255.
    pub blocks: u64,
}

/// Values of one tensor that float16 cannot hold: finite values of magnitude 65520 or more,
/// which round to ±Inf (float16's largest finite value is 65504). A float16 variant cannot store
/// them, and `convert` refuses to write one unless `--allow-nonfinite`.
#[derive(Clone, Debug, PartialEq)]
pub struct PastF16 {
    /// Tensor name (the `*_blocks` tensor, or the GGUF tensor, for MXFP4).
    pub tensor: String,
    /// How many: values of a dense tensor, blocks of an MXFP4 tensor.
    pub count: u64,
    /// `values` or `MXFP4 blocks`.
    pub unit: &'static str,
    /// The largest magnitude among them.
    pub max: f64,
}

/// Smallest magnitude float16 rounds to Inf (65504 + half a step of 32).
pub const F16_OVERFLOW: f32 = 65520.0;

/// The largest magnitude of a block of 16 MXFP4 nibble bytes (either nibble order: the
/// magnitude is in the low three bits of each nibble).
fn mxfp4_block_max(nibbles: &[u8], scale: u8) -> f32 {
    let code = nibbles
        .iter()
        .fold(0u8, |m, &b| m.max(b & 7).max((b >> 4) & 7));
    quant::mxfp4::E2M1_VALUES[code as usize] * quant::mxfp4::e8m0_to_f32(scale)
}

/// Blocks (scale byte, nibble bytes) past float16's range: (count, largest magnitude).
fn mxfp4_past_f16<'a>(blocks: impl Iterator<Item = (u8, &'a [u8])>) -> (u64, f32) {
    // 6 x 2^13 = 49152 is the largest value of a block with scale byte 140: only larger scale
    // bytes can overflow, so the nibbles of the other blocks are never read.
    let first = quant::mxfp4::E8M0_BIAS as u8 + 14;
    blocks
        .filter(|&(s, _)| s >= first && s != quant::mxfp4::E8M0_NAN)
        .map(|(s, n)| mxfp4_block_max(n, s))
        .filter(|&m| m >= F16_OVERFLOW)
        .fold((0, 0f32), |(n, m), x| (n + 1, m.max(x)))
}

/// Finite values of magnitude ≥ [`F16_OVERFLOW`] among little-endian `dtype` values: (count,
/// largest magnitude).
fn dense_past_f16(dtype: Dtype, data: &[u8]) -> (u64, f32) {
    let size = match dtype {
        Dtype::BF16 => 2,
        Dtype::F32 => 4,
        _ => return (0, 0.0),
    };
    data.par_chunks(1 << 16)
        .map(|c| {
            c.chunks_exact(size)
                .map(|b| {
                    if size == 2 {
                        quant::float::bf16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]))
                    } else {
                        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
                    }
                })
                .filter(|x| x.is_finite() && x.abs() >= F16_OVERFLOW)
                .fold((0u64, 0f32), |(n, m), x| (n + 1, m.max(x.abs())))
        })
        .reduce(|| (0, 0.0), |a, b| (a.0 + b.0, a.1.max(b.1)))
}

/// The result of inspecting a checkpoint.
#[derive(Clone, Debug)]
pub struct Inspect {
    /// The model path.
    pub path: PathBuf,
    /// Layout name.
    pub layout: String,
    /// Per tensor group (embeddings, attention, ..., experts), how it is stored: the float
    /// dtypes found, or the quantized encoding; for a GGUF, the ggml types of the group's
    /// tensors with their counts (`attn_v Q4_K x1 + Q6_K x1`).
    pub dtype_groups: Vec<(String, String)>,
    /// How each config key the file leaves to transformers was read.
    pub config_notes: Vec<String>,
    /// Hyperparameters.
    pub config: reference::Config,
    /// Files and their sizes.
    pub files: Vec<(PathBuf, u64)>,
    /// Tensor count.
    pub tensors: usize,
    /// Per dtype: (tensors, bytes).
    pub by_dtype: BTreeMap<String, (usize, u64)>,
    /// How many MXFP4 blocks use each scale byte.
    pub scale_histogram: Option<Box<[u64; 256]>>,
    /// Tensors holding NaN or Inf.
    pub non_finite: Vec<NonFinite>,
    /// Tensors holding MXFP4 blocks with the NaN scale byte 255.
    pub nan_scales: Vec<NanScales>,
    /// Tensors holding values past float16's range.
    pub past_f16: Vec<PastF16>,
    /// Tokens of the tokenizer whose ids are at or past `vocab_size`, as (id, text).
    pub tokens_past_vocab: Vec<(u64, String)>,
    /// GGUF Q8_0 expert tensors: (blocks, blocks not of the exact MXFP4 form `d = 2^k` for
    /// k in -24..=15 and `q` in ±{0,1,2,3,4,6,8,12}, i.e. quantized with `d = amax/127`).
    pub q8_0_expert_blocks: Option<(u64, u64)>,
    /// Findings a user should look at.
    pub warnings: Vec<String>,
}

fn count_non_finite(dtype: Dtype, data: &[u8]) -> (u64, u64) {
    let count = match dtype {
        Dtype::BF16 => quant::float::nonfinite_counts_bf16,
        Dtype::F16 => quant::float::nonfinite_counts_f16,
        Dtype::F32 => quant::float::nonfinite_counts_f32,
        _ => return (0, 0),
    };
    data.par_chunks(1 << 16)
        .map(count)
        .reduce(|| (0, 0), |(a, b), (c, d)| (a + c, b + d))
}

fn histogram(data: &[u8]) -> Box<[u64; 256]> {
    data.par_chunks(1 << 16)
        .map(|c| {
            let mut h = Box::new([0u64; 256]);
            for &b in c {
                h[b as usize] += 1;
            }
            h
        })
        .reduce(
            || Box::new([0u64; 256]),
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b.iter()) {
                    *x += y;
                }
                a
            },
        )
}

/// True for a tensor of MXFP4 scale bytes.
pub fn is_scale_tensor(name: &str) -> bool {
    name.ends_with("_scales") || name.ends_with(".scales")
}

/// Reads every tensor of `ckpt` once (releasing pages as it goes) and builds the report.
pub fn inspect(ckpt: &Checkpoint) -> Inspect {
    let mut by_dtype: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    let mut hist: Option<Box<[u64; 256]>> = None;
    let mut non_finite = Vec::new();
    let mut nan_scales = Vec::new();
    let mut past_f16 = Vec::new();
    let mut files = Vec::new();
    let mut tensors = 0;
    let mut tensor_bytes = 0u64;
    for f in ckpt.files() {
        files.push((f.path().to_path_buf(), f.bytes().len() as u64));
        for t in f.tensors() {
            tensors += 1;
            let e = by_dtype.entry(t.dtype.name().to_string()).or_default();
            e.0 += 1;
            e.1 += t.range.len() as u64;
            tensor_bytes += t.range.len() as u64;
            let data = f.data(t);
            if t.dtype == Dtype::U8 && is_scale_tensor(&t.name) {
                // The nibbles of the blocks whose scale byte could overflow float16.
                let blocks_name = match t.name.strip_suffix("scales") {
                    Some(stem) => format!("{stem}blocks"),
                    None => t.name.clone(),
                };
                if let Some((bf, bt)) = ckpt
                    .tensor(&blocks_name)
                    .filter(|(_, bt)| bt.range.len() == data.len() * quant::mxfp4::BLOCK_BYTES)
                {
                    let nibbles = bf.data(bt);
                    let (n, max) = mxfp4_past_f16(
                        data.iter()
                            .copied()
                            .zip(nibbles.chunks_exact(quant::mxfp4::BLOCK_BYTES)),
                    );
                    if n > 0 {
                        past_f16.push(PastF16 {
                            tensor: blocks_name,
                            count: n,
                            unit: "MXFP4 blocks",
                            max: max as f64,
                        });
                    }
                    bf.mapped().release_slice(nibbles);
                }
                let h = histogram(data);
                if h[255] > 0 {
                    nan_scales.push(NanScales {
                        tensor: t.name.clone(),
                        blocks: h[255],
                    });
                }
                let acc = hist.get_or_insert_with(|| Box::new([0u64; 256]));
                for (x, y) in acc.iter_mut().zip(h.iter()) {
                    *x += y;
                }
            } else {
                let (nan, inf) = count_non_finite(t.dtype, data);
                if nan + inf > 0 {
                    non_finite.push(NonFinite {
                        tensor: t.name.clone(),
                        nan,
                        inf,
                    });
                }
                let (n, max) = dense_past_f16(t.dtype, data);
                if n > 0 {
                    past_f16.push(PastF16 {
                        tensor: t.name.clone(),
                        count: n,
                        unit: "values",
                        max: max as f64,
                    });
                }
            }
            f.mapped().release_slice(data);
        }
    }
    let tokens_past_vocab = crate::companion::find(ckpt.dir(), "tokenizer.json")
        .and_then(|p| crate::checkpoint::read_json(&p).ok())
        .map(|tok| crate::gguf::meta::tokens_past_vocab(&tok, ckpt.config().vocab_size))
        .unwrap_or_default();
    let mut warnings = ckpt.layout_notes().to_vec();
    warnings.extend(integrity_warnings(&non_finite, &nan_scales));
    warnings.extend(past_f16_warnings(&past_f16));
    if !tokens_past_vocab.is_empty() {
        warnings.push(format!(
            "tokenizer.json holds {} with ids at or past vocab_size {}: the embedding has no row for them; GGUF conversion refuses them unless --truncate-vocab leaves them out, safetensors variants copy them unchanged",
            crate::gguf::meta::describe_tokens(&tokens_past_vocab),
            ckpt.config().vocab_size
        ));
    }
    if let Some(total) = ckpt.index_total_size()
        && total != tensor_bytes
    {
        warnings.push(format!(
            "index metadata.total_size is {total} but the shards hold {tensor_bytes} tensor bytes"
        ));
    }
    Inspect {
        path: ckpt.dir().to_path_buf(),
        layout: ckpt.layout().describe(),
        dtype_groups: ckpt
            .dtype_groups()
            .into_iter()
            .map(|(g, d)| {
                let how = match ckpt.layout() {
                    crate::names::Layout::Mlx(scheme) => mlx_storage_of(&scheme, g, &d),
                    _ => None,
                };
                (g.to_string(), how.unwrap_or_else(|| storage_of(&d)))
            })
            .collect(),
        config_notes: ckpt.config_notes().iter().map(|n| n.to_string()).collect(),
        config: ckpt.config().clone(),
        files,
        tensors,
        by_dtype,
        scale_histogram: hist,
        non_finite,
        nan_scales,
        past_f16,
        tokens_past_vocab,
        q8_0_expert_blocks: None,
        warnings,
    }
}

/// How a tensor group is stored, from the dtypes of its tensors: `MXFP4 (U8 blocks + scales)`,
/// `int8 (I32 packed)`, or the float dtypes (`BF16`, `BF16+F32`).
fn storage_of(dtypes: &[Dtype]) -> String {
    if dtypes.contains(&Dtype::U8) {
        "MXFP4 (U8 blocks + scales)".into()
    } else if dtypes.contains(&Dtype::I32) {
        "int8 (I32 packed)".into()
    } else {
        dtypes
            .iter()
            .map(|d| d.name())
            .collect::<Vec<_>>()
            .join("+")
    }
}

/// How one MLX module kind is stored, in words: the float dtype, `affine 4-bit in U32 words,
/// BF16 scale and bias per 64`, or `MXFP4 in U32 words (8 codes each), U8 E8M0 scale per 32`.
fn mlx_quant_words(q: crate::mlx::MlxQuant, dtypes: &[Dtype]) -> String {
    use crate::mlx::MlxQuant;
    match q {
        MlxQuant::Float => dtypes
            .iter()
            .filter(|d| **d != Dtype::U32 && **d != Dtype::U8)
            .map(|d| d.name())
            .collect::<Vec<_>>()
            .join("+"),
        MlxQuant::Affine { bits, group } => {
            format!("affine {bits}-bit in U32 words, BF16 scale and bias per {group}")
        }
        MlxQuant::Mxfp4 => "MXFP4 in U32 words (8 codes each), U8 E8M0 scale per 32".into(),
    }
}

/// How a tensor group of an MLX directory is stored, from its scheme (`None`: the plain
/// dtypes say it). The codes of every quantized module are U32 words, whatever the format.
fn mlx_storage_of(scheme: &crate::mlx::MlxScheme, group: &str, dtypes: &[Dtype]) -> Option<String> {
    use crate::mlx::MlxQuant;
    let bias = || {
        dtypes
            .iter()
            .find(|d| **d != Dtype::U32 && **d != Dtype::U8)
            .map(|d| format!("; bias vector {}", d.name()))
            .unwrap_or_default()
    };
    Some(match group {
        "embeddings" if scheme.embedding == scheme.lm_head => {
            mlx_quant_words(scheme.embedding, dtypes)
        }
        "embeddings" => format!(
            "embedding {}; lm_head {}",
            mlx_quant_words(scheme.embedding, dtypes),
            mlx_quant_words(scheme.lm_head, dtypes)
        ),
        "attention" => mlx_quant_words(scheme.attention, dtypes),
        "router" if scheme.router != MlxQuant::Float => {
            format!("{}{}", mlx_quant_words(scheme.router, dtypes), bias())
        }
        "experts" => mlx_quant_words(scheme.experts, dtypes),
        "mlx scales and biases" => {
            let mut parts = Vec::new();
            if dtypes.iter().any(|d| *d != Dtype::U8) {
                parts.push("affine scales and biases BF16".to_string());
            }
            if dtypes.contains(&Dtype::U8) {
                parts.push("MXFP4 expert scales U8 (E8M0)".to_string());
            }
            parts.join("; ")
        }
        _ => return None,
    })
}

/// One warning per tensor holding non-finite values or NaN scale bytes, naming it.
fn integrity_warnings(non_finite: &[NonFinite], nan_scales: &[NanScales]) -> Vec<String> {
    let mut warnings = Vec::new();
    for nf in non_finite {
        warnings.push(format!(
            "tensor `{}` holds {} NaN and {} Inf values",
            nf.tensor, nf.nan, nf.inf
        ));
    }
    for ns in nan_scales {
        warnings.push(format!(
            "tensor `{}` has {} MXFP4 blocks with scale byte 255, which is NaN in the OCP MX spec",
            ns.tensor, ns.blocks
        ));
    }
    warnings
}

/// One warning per tensor holding values past float16's range.
fn past_f16_warnings(past: &[PastF16]) -> Vec<String> {
    past.iter()
        .map(|p| {
            let what = if p.unit == "values" {
                format!("{} value{}", p.count, if p.count == 1 { "" } else { "s" })
            } else {
                format!(
                    "{} MXFP4 block{} with values",
                    p.count,
                    if p.count == 1 { "" } else { "s" }
                )
            };
            format!(
                "tensor `{}`: {what} past float16's range (largest finite 65504), up to {}: \
                 float16 variants cannot store them{}; convert refuses to write them as Inf unless --allow-nonfinite",
                p.tensor,
                p.max,
                if p.max / 127.0 >= F16_OVERFLOW as f64 {
                    ", nor can Q8_0 (its float16 block scale amax/127 overflows)"
                } else {
                    ""
                }
            )
        })
        .collect()
}

/// The group a GGUF tensor is reported under: its name without the layer and the `.weight`
/// suffix (`blk.3.attn_v.weight` -> `attn_v`, `blk.0.ffn_up_exps.bias` -> `ffn_up_exps.bias`).
fn gguf_group(name: &str) -> String {
    let rest = match name.strip_prefix("blk.").and_then(|r| r.split_once('.')) {
        Some((_, tail)) => tail,
        None => name,
    };
    rest.strip_suffix(".weight").unwrap_or(rest).to_string()
}

/// Reads every tensor of a GGUF model once (releasing pages as it goes) and builds the report.
pub fn inspect_gguf(model: &crate::gguf::GgufModel, format: String) -> Inspect {
    use crate::gguf::Codec;
    let mut by_dtype: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    let mut hist: Option<Box<[u64; 256]>> = None;
    let mut q8: Option<(u64, u64)> = None;
    let mut non_finite = Vec::new();
    let mut nan_scales = Vec::new();
    let mut past_f16 = Vec::new();
    let mut files = Vec::new();
    let mut tensors = 0;
    let mut groups: Vec<(String, BTreeMap<String, usize>)> = Vec::new();
    for f in model.files() {
        files.push((f.path().to_path_buf(), f.len()));
        for t in f.tensors() {
            tensors += 1;
            let g = gguf_group(&t.name);
            let at = match groups.iter().position(|(n, _)| *n == g) {
                Some(i) => i,
                None => {
                    groups.push((g, BTreeMap::new()));
                    groups.len() - 1
                }
            };
            *groups[at].1.entry(t.ty.name().to_string()).or_default() += 1;
            let e = by_dtype.entry(t.ty.name().to_string()).or_default();
            e.0 += 1;
            e.1 += t.range.len() as u64;
            let data = f.data(t);
            let experts = t.name.contains("_exps.weight");
            match t.ty {
                Codec::MXFP4 => {
                    let acc = hist.get_or_insert_with(|| Box::new([0u64; 256]));
                    let before = acc[255];
                    for b in data.chunks_exact(quant::mxfp4::GGML_BLOCK_BYTES) {
                        acc[b[0] as usize] += 1;
                    }
                    if acc[255] > before {
                        nan_scales.push(NanScales {
                            tensor: t.name.clone(),
                            blocks: acc[255] - before,
                        });
                    }
                    let (n, max) = mxfp4_past_f16(
                        data.chunks_exact(quant::mxfp4::GGML_BLOCK_BYTES)
                            .map(|b| (b[0], &b[1..])),
                    );
                    if n > 0 {
                        past_f16.push(PastF16 {
                            tensor: t.name.clone(),
                            count: n,
                            unit: "MXFP4 blocks",
                            max: max as f64,
                        });
                    }
                }
                Codec::Q8_0 if experts => {
                    let blocks = data
                        .par_chunks(quant::q8_0::BLOCK_BYTES * 4096)
                        .map(|c| {
                            c.chunks_exact(quant::q8_0::BLOCK_BYTES).fold(
                                (0u64, 0u64),
                                |(n, bad), b| {
                                    (n + 1, bad + !quant::q8_0::block_is_mxfp4_form(b) as u64)
                                },
                            )
                        })
                        .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
                    let acc = q8.get_or_insert((0, 0));
                    acc.0 += blocks.0;
                    acc.1 += blocks.1;
                }
                Codec::F32 | Codec::F16 | Codec::BF16 => {
                    let dtype = match t.ty {
                        Codec::F32 => Dtype::F32,
                        Codec::F16 => Dtype::F16,
                        _ => Dtype::BF16,
                    };
                    // In 64 MiB pieces, released as they are done, so a 1 GiB embedding is never
                    // resident as a whole.
                    let (mut nan, mut inf) = (0, 0);
                    let (mut past, mut max) = (0, 0f32);
                    for piece in data.chunks(64 << 20) {
                        let (a, b) = count_non_finite(dtype, piece);
                        (nan, inf) = (nan + a, inf + b);
                        let (n, m) = dense_past_f16(dtype, piece);
                        (past, max) = (past + n, max.max(m));
                        f.mapped().release_slice(piece);
                    }
                    if past > 0 {
                        past_f16.push(PastF16 {
                            tensor: t.name.clone(),
                            count: past,
                            unit: "values",
                            max: max as f64,
                        });
                    }
                    if nan + inf > 0 {
                        non_finite.push(NonFinite {
                            tensor: t.name.clone(),
                            nan,
                            inf,
                        });
                    }
                }
                _ => {}
            }
            f.mapped().release_slice(data);
        }
    }
    let mut warnings = integrity_warnings(&non_finite, &nan_scales);
    warnings.extend(past_f16_warnings(&past_f16));
    let vocab = model.config().vocab_size;
    let tokens_past_vocab: Vec<(u64, String)> = match model.get("tokenizer.ggml.tokens") {
        Some(crate::gguf::Value::Array(_, tokens)) if tokens.len() > vocab => tokens[vocab..]
            .iter()
            .enumerate()
            .map(|(i, t)| {
                (
                    (vocab + i) as u64,
                    t.as_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    if !tokens_past_vocab.is_empty() {
        warnings.push(format!(
            "tokenizer.ggml.tokens holds {} past the embedding's {vocab} rows: the model has no embedding for them",
            crate::gguf::meta::describe_tokens(&tokens_past_vocab)
        ));
    }
    Inspect {
        path: model.files()[0].path().to_path_buf(),
        layout: format,
        dtype_groups: groups
            .into_iter()
            .map(|(g, types)| {
                let mix: Vec<String> = types.iter().map(|(t, n)| format!("{t} x{n}")).collect();
                (g, mix.join(" + "))
            })
            .collect(),
        config_notes: Vec::new(),
        config: model.config().clone(),
        files,
        tensors,
        by_dtype,
        scale_histogram: hist,
        non_finite,
        nan_scales,
        past_f16,
        tokens_past_vocab,
        q8_0_expert_blocks: q8,
        warnings,
    }
}

/// Inspects a model of any format.
pub fn inspect_any(model: &crate::AnyModel) -> Inspect {
    match model {
        crate::AnyModel::Safetensors(c) => inspect(c),
        crate::AnyModel::Gguf(g) => inspect_gguf(g, model.format_name()),
    }
}

impl Inspect {
    /// `(min, max)` scale byte over all MXFP4 blocks.
    pub fn scale_range(&self) -> Option<(u8, u8)> {
        let h = self.scale_histogram.as_ref()?;
        let min = h.iter().position(|&c| c > 0)? as u8;
        let max = 255 - h.iter().rev().position(|&c| c > 0)? as u8;
        Some((min, max))
    }

    /// MXFP4 blocks whose scale byte is outside `lo..=hi`.
    pub fn blocks_outside(&self, lo: u8, hi: u8) -> u64 {
        self.scale_histogram.as_ref().map_or(0, |h| {
            h.iter()
                .enumerate()
                .filter(|(s, _)| (*s as u8) < lo || (*s as u8) > hi)
                .map(|(_, c)| c)
                .sum()
        })
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        let c = &self.config;
        let scales = self.scale_histogram.as_ref().map(|h| {
            let nonzero: BTreeMap<String, u64> = h.iter().enumerate().filter(|(_, c)| **c > 0).map(|(s, c)| (s.to_string(), *c)).collect();
            let (min, max) = self.scale_range().unwrap_or((0, 0));
            json!({
                "blocks": h.iter().sum::<u64>(),
                "min": min,
                "max": max,
                "histogram": nonzero,
                "nan_255": h[255],
                "zero_0": h[0],
                "outside_f16_exact_104_143": self.blocks_outside(quant::q8_0::EXACT_SCALE_MIN, quant::q8_0::EXACT_SCALE_MAX),
            })
        });
        json!({
            "path": self.path.display().to_string(),
            "layout": self.layout,
            "dtype_groups": self.dtype_groups.iter().map(|(g, d)| (g.clone(), json!(d))).collect::<serde_json::Map<_, _>>(),
            "config_notes": self.config_notes,
            "config": {
                "num_hidden_layers": c.num_hidden_layers, "hidden_size": c.hidden_size,
                "intermediate_size": c.intermediate_size, "num_attention_heads": c.num_attention_heads,
                "num_key_value_heads": c.num_key_value_heads, "head_dim": c.head_dim,
                "num_local_experts": c.num_local_experts, "num_experts_per_tok": c.num_experts_per_tok,
                "vocab_size": c.vocab_size, "sliding_window": c.sliding_window,
                "rope_theta": c.rope_theta, "yarn_factor": c.rope_scaling.factor,
                "rms_norm_eps": c.rms_norm_eps, "swiglu_limit": c.swiglu_limit,
                "parameters": c.parameter_count(),
            },
            "files": self.files.iter().map(|(p, b)| json!({"path": p.display().to_string(), "bytes": b})).collect::<Vec<_>>(),
            "tensors": self.tensors,
            "by_dtype": self.by_dtype.iter().map(|(d, (n, b))| (d.clone(), json!({"tensors": n, "bytes": b}))).collect::<serde_json::Map<_, _>>(),
            "mxfp4_scales": scales,
            "q8_0_expert_blocks": self.q8_0_expert_blocks.map(|(n, bad)| json!({"blocks": n, "not_exact_mxfp4": bad})),
            "non_finite": self.non_finite.iter().map(|n| json!({"tensor": n.tensor, "nan": n.nan, "inf": n.inf})).collect::<Vec<_>>(),
            "nan_scales": self.nan_scales.iter().map(|n| json!({"tensor": n.tensor, "blocks": n.blocks})).collect::<Vec<_>>(),
            "past_f16": self.past_f16.iter().map(|p| json!({"tensor": p.tensor, "count": p.count, "unit": p.unit, "max": p.max})).collect::<Vec<_>>(),
            "tokens_past_vocab": self.tokens_past_vocab.iter().map(|(id, t)| json!({"id": id, "token": t})).collect::<Vec<_>>(),
            "warnings": self.warnings,
        })
    }

    /// The report as text.
    pub fn render(&self) -> String {
        let c = &self.config;
        let mut s = String::new();
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        s += &format!(
            "model     {}\nlayout    {}\n",
            self.path.display(),
            self.layout
        );
        if !self.dtype_groups.is_empty() {
            let width = self
                .dtype_groups
                .iter()
                .map(|(g, _)| g.len())
                .max()
                .unwrap_or(0);
            for (k, (g, d)) in self.dtype_groups.iter().enumerate() {
                let head = if k == 0 { "stored" } else { "" };
                s += &format!("{head:<10}{g:<width$}  {d}\n");
            }
        }
        s += &format!(
            "config    {} layers, hidden {}, {} heads / {} kv x {}, {} experts (top {}) x {}, vocab {}, window {}\n",
            c.num_hidden_layers,
            c.hidden_size,
            c.num_attention_heads,
            c.num_key_value_heads,
            c.head_dim,
            c.num_local_experts,
            c.num_experts_per_tok,
            c.intermediate_size,
            c.vocab_size,
            c.sliding_window
        );
        s += &format!(
            "          rope theta {} yarn x{} (beta {}/{}, ctx {}), eps {:e}, swiglu limit {}, {:.3} B parameters\n",
            c.rope_theta,
            c.rope_scaling.factor,
            c.rope_scaling.beta_fast,
            c.rope_scaling.beta_slow,
            c.rope_scaling.original_max_position_embeddings,
            c.rms_norm_eps,
            c.swiglu_limit,
            c.parameter_count() as f64 / 1e9
        );
        for n in &self.config_notes {
            s += &format!("          {n}\n");
        }
        let total: u64 = self.files.iter().map(|f| f.1).sum();
        s += &format!("files     {} ({:.2} GiB)\n", self.files.len(), gib(total));
        if self.files.len() > 1 && self.layout.starts_with("gguf") {
            for (k, (p, b)) in self.files.iter().enumerate() {
                s += &format!(
                    "  split {} of {}  {}  {}\n",
                    k + 1,
                    self.files.len(),
                    p.file_name().map_or(p.display().to_string(), |n| n
                        .to_string_lossy()
                        .into_owned()),
                    crate::units::bytes(*b)
                );
            }
        }
        s += &format!("tensors   {}\n", self.tensors);
        for (d, (n, b)) in &self.by_dtype {
            s += &format!("  {d:<6} {n:>6} tensors {:>10.3} GiB\n", gib(*b));
        }
        if let (Some(h), Some((min, max))) = (&self.scale_histogram, self.scale_range()) {
            s += &format!(
                "mxfp4     {} blocks, scale bytes {min}..={max} (2^{} .. 2^{}); {} blocks outside 104..=143 (not exact in f16/Q8_0)\n",
                h.iter().sum::<u64>(),
                min as i32 - 127,
                max as i32 - 127,
                self.blocks_outside(quant::q8_0::EXACT_SCALE_MIN, quant::q8_0::EXACT_SCALE_MAX)
            );
        }
        if let Some((n, bad)) = self.q8_0_expert_blocks {
            s += &format!(
                "q8_0      {n} expert blocks, {bad} not stored exactly from MXFP4 (quantized with d = amax/127)\n"
            );
        }
        if self.warnings.is_empty() {
            s += "warnings  none\n";
        } else {
            for w in &self.warnings {
                s += &format!("warning   {w}\n");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mxfp4_blocks_past_float16_are_told_by_scale_and_largest_code() {
        // Scale 141 (2^14): code 7 (6.0) is 98304 and code 6 (4.0) 65536, both past float16;
        // code 5 (3.0) is 49152. Either nibble counts; scale 140 never overflows; 255 is NaN.
        let with = |b: u8| {
            let mut n = [0u8; 16];
            n[9] = b;
            n
        };
        let (a, b, c, d) = (with(0x70), with(0x06), with(0x55), with(0xFF));
        let blocks: Vec<(u8, &[u8])> = vec![
            (141, &a[..]),
            (141, &b[..]),
            (141, &c[..]),
            (140, &d[..]),
            (255, &d[..]),
        ];
        assert_eq!(mxfp4_past_f16(blocks.into_iter()), (2, 98304.0));
        let data: Vec<u8> = [1.0f32, -70000.0, 65519.0, f32::INFINITY]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(dense_past_f16(Dtype::F32, &data), (1, 70000.0));
    }
}
