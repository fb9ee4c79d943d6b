//! Tensor names of each safetensors layout, and the tensor set a config implies.
//!
//! | weight | HF release (`model.layers.N.`) | OpenAI original (`block.N.`) |
//! |---|---|---|
//! | embedding / unembedding | `model.embed_tokens.weight` / `lm_head.weight` | `embedding.weight` / `unembedding.weight` |
//! | final norm | `model.norm.weight` | `norm.scale` |
//! | attention norm | `input_layernorm.weight` | `attn.norm.scale` |
//! | q, k, v | `self_attn.{q,k,v}_proj.{weight,bias}` | `attn.qkv.{weight,bias}` rows q \| k \| v |
//! | o | `self_attn.o_proj.{weight,bias}` | `attn.out.{weight,bias}` |
//! | sinks | `self_attn.sinks` | `attn.sinks` |
//! | MLP norm | `post_attention_layernorm.weight` | `mlp.norm.scale` |
//! | router | `mlp.router.{weight,bias}` | `mlp.gate.{weight,bias}` |
//! | gate_up | `mlp.experts.gate_up_proj_{blocks,scales,bias}` | `mlp.mlp1_weight.{blocks,scales}`, `mlp.mlp1_bias` |
//! | down | `mlp.experts.down_proj_{blocks,scales,bias}` | `mlp.mlp2_weight.{blocks,scales}`, `mlp.mlp2_bias` |
//!
//! Sources: the safetensors headers of `openai/gpt-oss-20b` on Hugging Face (release names) and
//! transformers' `src/transformers/models/gpt_oss/convert_gpt_oss_weights_to_hf.py` (the
//! original → HF mapping).
//!
//! The two layouts oss-forge writes (`docs/formats.md`) keep the release's names for everything
//! but the experts:
//!
//! | experts of layer N | dense (transformers, BF16/F16) | int8 (compressed-tensors), per expert `e` |
//! |---|---|---|
//! | gate + up | `mlp.experts.gate_up_proj` `[E, H, 2I]` (input-major, gate = even columns) | `mlp.experts.e.{gate,up}_proj.{weight_packed, weight_scale, weight_shape}` |
//! | gate + up bias | `mlp.experts.gate_up_proj_bias` `[E, 2I]` | `mlp.experts.e.{gate,up}_proj.bias` `[I]` |
//! | down | `mlp.experts.down_proj` `[E, I, H]` (input-major) | `mlp.experts.e.down_proj.{weight_packed, weight_scale, weight_shape}` |
//! | down bias | `mlp.experts.down_proj_bias` `[E, H]` | `mlp.experts.e.down_proj.bias` `[H]` |
//!
//! With `--int8-dense` the attention projections and `lm_head` are int8 modules too
//! (`weight_packed`, `weight_scale [out, 1]`, `weight_shape`; the q/k/v/o biases keep `.bias`).
//!
//! Two more dense layouts are read (never written):
//!
//! | experts of layer N | per-expert (llm-compressor, MoE tools) | dense under MXFP4 names (transformers 5.23 `save_pretrained` after dequantizing) |
//! |---|---|---|
//! | gate, up | `mlp.experts.e.{gate,up}_proj.weight` `[I, H]` (`[out, in]`) | `mlp.experts.gate_up_proj_blocks` holding `gate_up_proj` `[E, H, 2I]` |
//! | down | `mlp.experts.e.down_proj.weight` `[H, I]` | `mlp.experts.down_proj_blocks` holding `down_proj` `[E, I, H]` |
//! | biases | `mlp.experts.e.{gate,up,down}_proj.bias` | `gate_up_proj_bias`, `down_proj_bias` as in the dense layout |
//!
//! Every float tensor is accepted in BF16, F16 or F32 in every layout: the file's dtype is what
//! counts, as transformers loads it (the int8 scales are BF16, as the int8 codec reads them).

use crate::error::{ConvertError, Result};
use crate::safetensors::{Dtype, TensorInfo};
use reference::{Config, WeightId};
use serde_json::Value;
use std::path::Path;

/// How a safetensors model directory names and stores its tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// The HF release: `model.layers.N.*`, MXFP4 experts, BF16 elsewhere.
    Release,
    /// OpenAI's `original/`: `block.N.*`, fused qkv, MXFP4 experts, BF16 elsewhere.
    Original,
    /// transformers' dequantized layout: release names, fused input-major dense experts
    /// (`gate_up_proj [E, H, 2I]`, `down_proj [E, I, H]`), every float tensor BF16, F16 or F32,
    /// no `quantization_config`.
    Dense,
    /// compressed-tensors `pack-quantized` int8: per-expert int8 modules in groups of 32, BF16
    /// elsewhere; with `dense_int8` the attention projections and lm_head are int8 per channel.
    Int8 {
        /// q/k/v/o and lm_head are int8 modules too (`--int8-dense`).
        dense_int8: bool,
    },
    /// Dense per-expert modules, as MoE quantization tools linearize gpt-oss's experts
    /// (llm-compressor's `modeling/gpt_oss.py`): `mlp.experts.E.{gate,up,down}_proj.{weight,bias}`,
    /// weights `[out, in]`, release names elsewhere, no `quantization_config`. Read only.
    PerExpert,
    /// transformers' dense layout with the fused expert weights stored under the MXFP4 names:
    /// `gate_up_proj_blocks` holding the float `[E, H, 2I]`, `down_proj_blocks` the float
    /// `[E, I, H]`, no `*_scales`. transformers 5.23's `save_pretrained` of a model loaded with
    /// `Mxfp4Config(dequantize=True)` writes this (its own loader then leaves the experts
    /// random). Read only; `docs/decisions.md` says why it is read.
    DenseUnderBlocks,
    /// mlx-lm's layout (`mlx_lm.convert`): one module per linear layer, experts stacked per
    /// projection, quantized modules as `.weight` codes + `.scales` (+ `.biases`); see
    /// [`crate::mlx`].
    Mlx(crate::mlx::MlxScheme),
}

/// What a `config.json` alone says about the layout ([`Layout::declared`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Declared {
    /// No `model_type`: OpenAI's `original/config.json`.
    Original,
    /// `quant_method: mxfp4`.
    Mxfp4,
    /// A compressed-tensors config of the int8 scheme oss-forge reads.
    Int8 {
        /// q/k/v/o and lm_head are int8 too.
        dense_int8: bool,
    },
    /// No `quantization_config` (or null).
    Unquantized,
    /// mlx-lm's per-module `quantization` map (an MLX directory).
    Mlx,
}

/// Inputs per scale of the int8 expert weights (one MXFP4 block).
pub const INT8_GROUP: usize = 32;

/// What a stored tensor holds, so readers and writers agree on one list ([`expected`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// One logical weight stored whole, row-major `[rows, cols]` (vectors `[n]`).
    Plain(WeightId),
    /// Part of a tensor read by layout-specific code (MXFP4 blocks/scales, fused qkv,
    /// interleaved gate_up bias of the release).
    Other,
    /// transformers' `gate_up_proj [E, H, 2I]` of a layer.
    GateUpT(usize),
    /// `gate_up_proj_bias [E, 2I]` of a layer (gate = even entries).
    GateUpBias(usize),
    /// transformers' `down_proj [E, I, H]` of a layer.
    DownT(usize),
    /// `down_proj_bias [E, H]` of a layer.
    DownBias(usize),
    /// `weight_packed` I32 `[out, in/4]` of an int8 module.
    Packed(WeightId),
    /// `weight_scale` BF16 `[out, in/group]` of an int8 module.
    Scale(WeightId),
    /// `weight_shape` I64 `[2]` = `[out, in]` of an int8 module.
    Shape(WeightId),
    /// MXFP4 nibbles of a layer's experts, release order: `gate_up_proj_blocks [E, 2I, H/32,
    /// 16]` (gate = even rows) or `down_proj_blocks [E, H, I/32, 16]` (`true` for gate_up).
    Blocks(usize, bool),
    /// The E8M0 scales beside [`Role::Blocks`]: `[E, 2I, H/32]` or `[E, H, I/32]`.
    Scales(usize, bool),
    /// MLX: every expert's weight `id` (named for expert 0) stacked into one float tensor,
    /// `[E, rows, cols]` for a projection, `[E, n]` for a bias.
    Stacked(WeightId),
    /// MLX: one part of a quantized module (an expert projection, named for expert 0, stacks
    /// every expert).
    Quantized(WeightId, QPart),
}

/// The parts of an MLX quantized module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QPart {
    /// `.weight`: the codes, U32.
    Codes,
    /// `.scales`: BF16 (affine) or U8 E8M0 (mxfp4).
    Scales,
    /// `.biases`: BF16 (affine only).
    Biases,
}

impl Layout {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Release => "hf-mxfp4",
            Layout::Original => "original",
            Layout::Dense => "hf-dense",
            Layout::Int8 { dense_int8: false } => "compressed-tensors-int8",
            Layout::Int8 { dense_int8: true } => "compressed-tensors-int8-dense",
            Layout::PerExpert => "hf-per-expert",
            Layout::DenseUnderBlocks => "hf-dense-under-blocks-names",
            Layout::Mlx(_) => "mlx",
        }
    }

    /// The name with what it stores, where the name alone does not say it (an MLX directory's
    /// scheme: `mlx (experts mxfp4, embedding affine 8-bit group 64, ...)`).
    pub fn describe(self) -> String {
        match self {
            Layout::Mlx(s) => format!("mlx ({})", s.describe()),
            other => other.name().to_string(),
        }
    }

    /// transformers' fused dense experts (`gate_up_proj [E, H, 2I]`, `down_proj [E, I, H]`),
    /// under either name.
    pub fn fused_dense(self) -> bool {
        matches!(self, Layout::Dense | Layout::DenseUnderBlocks)
    }

    /// One module per expert (`mlp.experts.E.gate_proj`, ...): int8 or dense.
    pub fn per_expert_modules(self) -> bool {
        matches!(self, Layout::Int8 { .. } | Layout::PerExpert)
    }

    /// True when the weight `id` is an int8 module in this layout.
    pub fn is_int8(self, id: WeightId) -> bool {
        use WeightId::*;
        match self {
            Layout::Int8 { dense_int8 } => {
                id.is_expert_matrix()
                    || (dense_int8
                        && matches!(id, QProj(_) | KProj(_) | VProj(_) | OProj(_) | LmHead))
            }
            _ => false,
        }
    }

    /// Inputs per scale of an int8 module of this layout (the whole row for per-channel).
    pub fn int8_group(self, id: WeightId, cfg: &Config) -> usize {
        if id.is_expert_matrix() {
            INT8_GROUP
        } else {
            id.shape(cfg).1
        }
    }

    /// What `config.json` alone says about the layout (its errors come before any shard is
    /// opened): no `model_type` → original; mlx-lm's `quantization` map → MLX; `quant_method`
    /// `compressed-tensors` → int8 (the config must describe exactly the int8 scheme oss-forge
    /// reads, see [`int8_config_dense`]); `mxfp4`; or no `quantization_config`.
    pub fn declared(dir: &Path, config: &Value) -> Result<Declared> {
        let cfg_path = dir.join("config.json");
        if config.get("model_type").is_none() {
            return Ok(Declared::Original);
        }
        // mlx-lm's per-module map (its `quantization_config` is a copy of it, with no
        // `quant_method`).
        if config.get("quantization").is_some_and(Value::is_object) {
            return Ok(Declared::Mlx);
        }
        let Some(q) = config.get("quantization_config").filter(|q| !q.is_null()) else {
            return Ok(Declared::Unquantized);
        };
        match q.get("quant_method").and_then(Value::as_str) {
            Some("compressed-tensors") => {
                let dense_int8 = int8_config_dense(q).map_err(|m| {
                    ConvertError::format(&cfg_path, format!("quantization_config: {m}"))
                })?;
                Ok(Declared::Int8 { dense_int8 })
            }
            Some("mxfp4") => Ok(Declared::Mxfp4),
            Some(other) => Err(ConvertError::format(
                cfg_path,
                format!("quantization_config.quant_method {other:?} is not supported"),
            )),
            None => Err(ConvertError::format(
                cfg_path,
                "quantization_config has no string `quant_method`",
            )),
        }
    }

    /// Decides the layout from the directory's `config.json` ([`Layout::declared`]) and the
    /// tensors of layer 0 (`probe` looks a stored tensor up by name). An original or int8
    /// config decides alone; an MLX map or MLX expert modules (`experts.gate_proj.weight`) give
    /// [`Layout::Mlx`] with [`crate::mlx::MlxScheme::FLOAT`] as a placeholder, the scheme being
    /// read from the tensors by [`crate::mlx::read_scheme`]; otherwise the experts' tensors
    /// decide: fused `gate_up_proj` →
    /// dense, per-expert `experts.0.gate_proj.weight` → per-expert, float
    /// `gate_up_proj_blocks` → dense under the MXFP4 names, U8 `gate_up_proj_blocks` → release.
    ///
    /// Returns the layout and what a user should know about how it was decided (a config that
    /// disagrees with the tensors, a directory transformers cannot load).
    pub fn detect<'a>(
        dir: &Path,
        config: &Value,
        probe: impl Fn(&str) -> Option<&'a TensorInfo>,
    ) -> Result<(Layout, Vec<String>)> {
        let cfg_path = dir.join("config.json");
        let method = match Layout::declared(dir, config)? {
            Declared::Original => return Ok((Layout::Original, Vec::new())),
            Declared::Int8 { dense_int8 } => {
                return Ok((Layout::Int8 { dense_int8 }, Vec::new()));
            }
            Declared::Mlx => return Ok((Layout::Mlx(crate::mlx::MlxScheme::FLOAT), Vec::new())),
            Declared::Mxfp4 => Some("mxfp4"),
            Declared::Unquantized => None,
        };
        if probe(crate::mlx::MLX_PROBE).is_some() {
            // `mlx_lm.convert -d` writes no map.
            return Ok((Layout::Mlx(crate::mlx::MlxScheme::FLOAT), Vec::new()));
        }
        let n = Names::new(Layout::Release);
        let blocks_name = n.gate_up_blocks(0);
        let blocks = probe(&blocks_name);
        let fused = probe(&n.gate_up_fused(0)).is_some();
        let per_expert = probe("model.layers.0.mlp.experts.0.gate_proj.weight").is_some();
        let says = match method {
            Some(_) => "`quantization_config.quant_method` is \"mxfp4\"",
            None => "config.json has no `quantization_config`",
        };
        let mut notes = Vec::new();
        let layout = match blocks {
            Some(t) if t.dtype.dense().is_some() => {
                notes.push(format!(
                    "`{blocks_name}` holds {}: dense experts under the MXFP4 names, as \
                     transformers 5.23's save_pretrained writes them after \
                     Mxfp4Config(dequantize=True); read as transformers' dense layout. \
                     transformers itself cannot load this directory (it leaves the experts \
                     randomly initialized): convert it to safetensors-bf16 for transformers",
                    t.describe()
                ));
                Layout::DenseUnderBlocks
            }
            Some(_) => {
                if method.is_none() {
                    notes.push(format!(
                        "{says}, but the experts are MXFP4 `_blocks`/`_scales`: read as MXFP4. \
                         transformers would leave these experts randomly initialized; add \
                         `\"quantization_config\": {{\"quant_method\": \"mxfp4\"}}` for it"
                    ));
                }
                Layout::Release
            }
            None if method.is_some() && (fused || per_expert) => {
                notes.push(format!(
                    "{says}, but the experts are stored dense: read as dense. transformers \
                     expects MXFP4 `_blocks`/`_scales` under this config"
                ));
                if fused {
                    Layout::Dense
                } else {
                    Layout::PerExpert
                }
            }
            None if method.is_some() => Layout::Release,
            None if per_expert && !fused => Layout::PerExpert,
            None => {
                if probe("model.layers.0.mlp.experts.0.gate_proj.weight_packed").is_some() {
                    return Err(ConvertError::format(
                        cfg_path,
                        format!(
                            "{says}, but the experts are compressed-tensors int8 modules \
                             (`weight_packed`): the config that describes them is missing"
                        ),
                    ));
                }
                Layout::Dense
            }
        };
        Ok((layout, notes))
    }
}

/// Checks a compressed-tensors `quantization_config` against the scheme oss-forge reads:
/// format and status `pack-quantized` / `compressed`; every config group symmetric 8-bit int
/// weights with no activation quantization, either `strategy: group, group_size: 32` (the
/// experts; required) or `strategy: channel` (attention and lm_head, `--int8-dense`). Returns
/// whether a per-channel group is present.
pub fn int8_config_dense(q: &Value) -> std::result::Result<bool, String> {
    let want_str = |key: &str, want: &str| match q.get(key).and_then(Value::as_str) {
        Some(v) if v == want => Ok(()),
        Some(other) => Err(format!("`{key}` is \"{other}\", only \"{want}\" is read")),
        None => Err(format!(
            "`{key}` is missing or not a string, only \"{want}\" is read"
        )),
    };
    want_str("format", "pack-quantized")?;
    want_str("quantization_status", "compressed")?;
    let groups = q
        .get("config_groups")
        .and_then(Value::as_object)
        .ok_or("no `config_groups` object")?;
    let (mut grouped, mut channel) = (false, false);
    for (name, g) in groups {
        let w = g
            .get("weights")
            .filter(|w| w.is_object())
            .ok_or_else(|| format!("config_groups.{name}: no `weights`"))?;
        let bad = |what: &str| format!("config_groups.{name}.weights: {what}");
        if w.get("num_bits").and_then(Value::as_u64) != Some(8) {
            return Err(bad("`num_bits` must be 8"));
        }
        if w.get("type").and_then(Value::as_str) != Some("int")
            || w.get("symmetric").and_then(Value::as_bool) != Some(true)
        {
            return Err(bad("only symmetric `int` weights are read"));
        }
        if w.get("dynamic").and_then(Value::as_bool) == Some(true)
            || w.get("actorder").is_some_and(|a| !a.is_null())
        {
            return Err(bad("dynamic or act-ordered weights are not read"));
        }
        for act in ["input_activations", "output_activations"] {
            if g.get(act).is_some_and(|a| !a.is_null()) {
                return Err(format!(
                    "config_groups.{name}.{act}: activation quantization is not read"
                ));
            }
        }
        if let Some(f) = g.get("format").filter(|f| !f.is_null())
            && f.as_str() != Some("pack-quantized")
        {
            return Err(format!(
                "config_groups.{name}.format is {f}, only \"pack-quantized\" is read"
            ));
        }
        match (
            w.get("strategy").and_then(Value::as_str),
            w.get("group_size").and_then(Value::as_u64),
        ) {
            (Some("group"), Some(32)) => grouped = true,
            (Some("channel"), None) => channel = true,
            (s, gs) => {
                let s = s.map_or("absent".to_string(), |s| format!("\"{s}\""));
                let gs = gs.map_or("absent".to_string(), |g| g.to_string());
                return Err(bad(&format!(
                    "strategy {s} with group_size {gs}: only group/32 and channel are read"
                )));
            }
        }
    }
    if !grouped {
        return Err("no config group with `strategy: group, group_size: 32` (the experts)".into());
    }
    Ok(channel)
}

impl Layout {
    /// True for the layouts with the release's `model.layers.N.` names.
    fn hf_names(self) -> bool {
        !matches!(self, Layout::Original)
    }
}

/// A tensor the config implies: name, accepted dtypes, shape.
#[derive(Clone, Debug)]
pub struct Expect {
    /// Stored name.
    pub name: String,
    /// Dtypes accepted.
    pub dtypes: &'static [Dtype],
    /// Shape.
    pub shape: Vec<usize>,
    /// What it holds.
    pub role: Role,
}

/// The tensor groups [`Expect::group`] names, in report order.
pub const GROUPS: [&str; 10] = [
    "embeddings",
    "attention",
    "attention biases",
    "sinks",
    "norms",
    "router",
    "experts",
    "expert biases",
    "int8 scales",
    "mlx scales and biases",
];

impl Expect {
    /// The group this tensor belongs to in reports (one of [`GROUPS`]).
    pub fn group(&self) -> &'static str {
        use WeightId::*;
        let of_id = |id: WeightId| match id {
            Embedding | LmHead => "embeddings",
            QProj(_) | KProj(_) | VProj(_) | OProj(_) => "attention",
            QBias(_) | KBias(_) | VBias(_) | OBias(_) => "attention biases",
            Sinks(_) => "sinks",
            FinalNorm | AttnNorm(_) | MlpNorm(_) => "norms",
            Router(_) | RouterBias(_) => "router",
            Gate(..) | Up(..) | Down(..) => "experts",
            GateBias(..) | UpBias(..) | DownBias(..) => "expert biases",
        };
        match self.role {
            Role::Plain(id)
            | Role::Packed(id)
            | Role::Shape(id)
            | Role::Stacked(id)
            | Role::Quantized(id, QPart::Codes) => of_id(id),
            Role::Scale(_) => "int8 scales",
            Role::Quantized(_, QPart::Scales | QPart::Biases) => "mlx scales and biases",
            Role::GateUpT(_) | Role::DownT(_) | Role::Blocks(..) | Role::Scales(..) => "experts",
            Role::GateUpBias(_) | Role::DownBias(_) => "expert biases",
            Role::Other => {
                let name = self.name.as_str();
                if name.ends_with("qkv.weight") {
                    "attention"
                } else if name.ends_with("qkv.bias") {
                    "attention biases"
                } else if name.ends_with("_bias") {
                    "expert biases"
                } else {
                    "experts"
                }
            }
        }
    }

    /// `DTYPE[shape]` for messages.
    pub fn describe(&self) -> String {
        format!("{}{:?}", Dtype::alternatives(self.dtypes), self.shape)
    }
}

const BF16: &[Dtype] = &[Dtype::BF16];
const U8: &[Dtype] = &[Dtype::U8];
const I32: &[Dtype] = &[Dtype::I32];
const I64: &[Dtype] = &[Dtype::I64];
/// Float dtypes accepted wherever a layout stores a float tensor (transformers saves in the model
/// dtype and loads any). The writers of a fixed dtype (synth, the original layout's
/// `dtypes.json`) take the first, BF16, as the release stores.
pub const FLOATS: &[Dtype] = &[Dtype::BF16, Dtype::F16, Dtype::F32];

/// Names of one layout.
#[derive(Clone, Copy, Debug)]
pub struct Names {
    layout: Layout,
}

impl Names {
    /// Names for `layout`.
    pub fn new(layout: Layout) -> Names {
        Names { layout }
    }

    fn layer(&self, l: usize, hf: &str, orig: &str) -> String {
        if self.layout.hf_names() {
            format!("model.layers.{l}.{hf}")
        } else {
            format!("block.{l}.{orig}")
        }
    }

    /// The tensor holding a weight that is stored whole (not fused, not MXFP4).
    pub fn plain(&self, id: WeightId) -> String {
        use WeightId::*;
        let global = |hf: &str, orig: &str| {
            if self.layout.hf_names() {
                hf.to_string()
            } else {
                orig.to_string()
            }
        };
        if self.layout == Layout::PerExpert && id.is_expert_matrix() {
            return format!("{}.weight", self.module(id));
        }
        if self.layout.per_expert_modules()
            && let GateBias(..) | UpBias(..) | DownBias(..) = id
        {
            let module = match id {
                GateBias(l, e) => Gate(l, e),
                UpBias(l, e) => Up(l, e),
                DownBias(l, e) => Down(l, e),
                _ => unreachable!("matched above"),
            };
            return format!("{}.bias", self.module(module));
        }
        match id {
            Embedding => global("model.embed_tokens.weight", "embedding.weight"),
            LmHead => global("lm_head.weight", "unembedding.weight"),
            FinalNorm => global("model.norm.weight", "norm.scale"),
            AttnNorm(l) => self.layer(l, "input_layernorm.weight", "attn.norm.scale"),
            MlpNorm(l) => self.layer(l, "post_attention_layernorm.weight", "mlp.norm.scale"),
            QProj(l) => self.layer(l, "self_attn.q_proj.weight", "attn.qkv.weight"),
            QBias(l) => self.layer(l, "self_attn.q_proj.bias", "attn.qkv.bias"),
            KProj(l) => self.layer(l, "self_attn.k_proj.weight", "attn.qkv.weight"),
            KBias(l) => self.layer(l, "self_attn.k_proj.bias", "attn.qkv.bias"),
            VProj(l) => self.layer(l, "self_attn.v_proj.weight", "attn.qkv.weight"),
            VBias(l) => self.layer(l, "self_attn.v_proj.bias", "attn.qkv.bias"),
            OProj(l) => self.layer(l, "self_attn.o_proj.weight", "attn.out.weight"),
            OBias(l) => self.layer(l, "self_attn.o_proj.bias", "attn.out.bias"),
            Sinks(l) => self.layer(l, "self_attn.sinks", "attn.sinks"),
            Router(l) => self.layer(l, "mlp.router.weight", "mlp.gate.weight"),
            RouterBias(l) => self.layer(l, "mlp.router.bias", "mlp.gate.bias"),
            Gate(l, _) | Up(l, _) => self.gate_up_blocks(l),
            GateBias(l, _) | UpBias(l, _) => self.gate_up_bias(l),
            Down(l, _) => self.down_blocks(l),
            DownBias(l, _) => self.down_bias(l),
        }
    }

    /// The module name (without `.weight`) of a matrix, as compressed-tensors names it:
    /// `model.layers.N.self_attn.q_proj`, `lm_head`, `model.layers.N.mlp.experts.E.gate_proj`.
    pub fn module(&self, id: WeightId) -> String {
        use WeightId::*;
        match id {
            Gate(l, e) => format!("model.layers.{l}.mlp.experts.{e}.gate_proj"),
            Up(l, e) => format!("model.layers.{l}.mlp.experts.{e}.up_proj"),
            Down(l, e) => format!("model.layers.{l}.mlp.experts.{e}.down_proj"),
            _ => {
                let plain = self.plain(id);
                plain
                    .strip_suffix(".weight")
                    .map(str::to_string)
                    .unwrap_or(plain)
            }
        }
    }

    /// transformers' fused `gate_up_proj [E, H, 2I]` (dense layout; the `_blocks` name in
    /// [`Layout::DenseUnderBlocks`]).
    pub fn gate_up_fused(&self, l: usize) -> String {
        if self.layout == Layout::DenseUnderBlocks {
            return self.gate_up_blocks(l);
        }
        format!("model.layers.{l}.mlp.experts.gate_up_proj")
    }

    /// transformers' fused `down_proj [E, I, H]` (dense layout; the `_blocks` name in
    /// [`Layout::DenseUnderBlocks`]).
    pub fn down_fused(&self, l: usize) -> String {
        if self.layout == Layout::DenseUnderBlocks {
            return self.down_blocks(l);
        }
        format!("model.layers.{l}.mlp.experts.down_proj")
    }

    /// Fused qkv weight (original layout).
    pub fn qkv_weight(&self, l: usize) -> String {
        format!("block.{l}.attn.qkv.weight")
    }

    /// Fused qkv bias (original layout).
    pub fn qkv_bias(&self, l: usize) -> String {
        format!("block.{l}.attn.qkv.bias")
    }

    /// gate_up MXFP4 nibbles `[E, 2I, H/32, 16]`.
    pub fn gate_up_blocks(&self, l: usize) -> String {
        self.layer(
            l,
            "mlp.experts.gate_up_proj_blocks",
            "mlp.mlp1_weight.blocks",
        )
    }

    /// gate_up MXFP4 scales `[E, 2I, H/32]`.
    pub fn gate_up_scales(&self, l: usize) -> String {
        self.layer(
            l,
            "mlp.experts.gate_up_proj_scales",
            "mlp.mlp1_weight.scales",
        )
    }

    /// gate_up bias `[E, 2I]`, gate/up interleaved.
    pub fn gate_up_bias(&self, l: usize) -> String {
        self.layer(l, "mlp.experts.gate_up_proj_bias", "mlp.mlp1_bias")
    }

    /// down MXFP4 nibbles `[E, H, I/32, 16]`.
    pub fn down_blocks(&self, l: usize) -> String {
        self.layer(l, "mlp.experts.down_proj_blocks", "mlp.mlp2_weight.blocks")
    }

    /// down MXFP4 scales `[E, H, I/32]`.
    pub fn down_scales(&self, l: usize) -> String {
        self.layer(l, "mlp.experts.down_proj_scales", "mlp.mlp2_weight.scales")
    }

    /// down bias `[E, H]`.
    pub fn down_bias(&self, l: usize) -> String {
        self.layer(l, "mlp.experts.down_proj_bias", "mlp.mlp2_bias")
    }
}

/// Every tensor a `layout` checkpoint of `cfg` holds, in the release's per-layer order. The
/// variant writers write exactly this list; the reader requires exactly this set.
pub fn expected(layout: Layout, cfg: &Config) -> Vec<Expect> {
    if let Layout::Mlx(scheme) = layout {
        return crate::mlx::expected(scheme, cfg);
    }
    let n = Names::new(layout);
    let (h, i, e) = (
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.num_local_experts,
    );
    // The file's float dtype is what counts, in every layout (transformers loads any).
    let float = FLOATS;
    let mut out = Vec::new();
    // A weight stored whole, or as an int8 module when the layout quantizes it.
    let plain = |out: &mut Vec<Expect>, id: WeightId| {
        let (rows, cols) = id.shape(cfg);
        if layout.is_int8(id) {
            let m = n.module(id);
            let g = layout.int8_group(id, cfg);
            out.push(Expect {
                name: format!("{m}.weight_packed"),
                dtypes: I32,
                shape: vec![rows, cols / 4],
                role: Role::Packed(id),
            });
            out.push(Expect {
                name: format!("{m}.weight_scale"),
                dtypes: BF16,
                shape: vec![rows, cols / g],
                role: Role::Scale(id),
            });
            out.push(Expect {
                name: format!("{m}.weight_shape"),
                dtypes: I64,
                shape: vec![2],
                role: Role::Shape(id),
            });
        } else {
            let shape = if rows == 1 {
                vec![cols]
            } else {
                vec![rows, cols]
            };
            out.push(Expect {
                name: n.plain(id),
                dtypes: float,
                shape,
                role: Role::Plain(id),
            });
        }
    };
    let other = |name: String, dtypes: &'static [Dtype], shape: Vec<usize>| Expect {
        name,
        dtypes,
        shape,
        role: Role::Other,
    };
    use WeightId::*;
    plain(&mut out, Embedding);
    for l in 0..cfg.num_hidden_layers {
        plain(&mut out, AttnNorm(l));
        match layout {
            Layout::Original => {
                let qkv = cfg.q_dim() + 2 * cfg.kv_dim();
                out.push(other(n.qkv_weight(l), FLOATS, vec![qkv, h]));
                out.push(other(n.qkv_bias(l), FLOATS, vec![qkv]));
            }
            _ => {
                for id in [QProj(l), QBias(l), KProj(l), KBias(l), VProj(l), VBias(l)] {
                    plain(&mut out, id);
                }
            }
        }
        for id in [
            OProj(l),
            OBias(l),
            Sinks(l),
            MlpNorm(l),
            Router(l),
            RouterBias(l),
        ] {
            plain(&mut out, id);
        }
        match layout {
            Layout::Release | Layout::Original => {
                let x = |name, dtypes, shape, role| Expect {
                    name,
                    dtypes,
                    shape,
                    role,
                };
                out.push(x(
                    n.gate_up_blocks(l),
                    U8,
                    vec![e, 2 * i, h / 32, 16],
                    Role::Blocks(l, true),
                ));
                out.push(x(
                    n.gate_up_scales(l),
                    U8,
                    vec![e, 2 * i, h / 32],
                    Role::Scales(l, true),
                ));
                out.push(x(
                    n.gate_up_bias(l),
                    FLOATS,
                    vec![e, 2 * i],
                    Role::GateUpBias(l),
                ));
                out.push(x(
                    n.down_blocks(l),
                    U8,
                    vec![e, h, i / 32, 16],
                    Role::Blocks(l, false),
                ));
                out.push(x(
                    n.down_scales(l),
                    U8,
                    vec![e, h, i / 32],
                    Role::Scales(l, false),
                ));
                out.push(x(n.down_bias(l), FLOATS, vec![e, h], Role::DownBias(l)));
            }
            Layout::Dense | Layout::DenseUnderBlocks => {
                let x = |name, shape, role| Expect {
                    name,
                    dtypes: FLOATS,
                    shape,
                    role,
                };
                out.push(x(n.gate_up_fused(l), vec![e, h, 2 * i], Role::GateUpT(l)));
                out.push(x(n.gate_up_bias(l), vec![e, 2 * i], Role::GateUpBias(l)));
                out.push(x(n.down_fused(l), vec![e, i, h], Role::DownT(l)));
                out.push(x(n.down_bias(l), vec![e, h], Role::DownBias(l)));
            }
            Layout::Mlx(_) => unreachable!("returned above"),
            Layout::Int8 { .. } | Layout::PerExpert => {
                for x in 0..e {
                    for id in [
                        Gate(l, x),
                        GateBias(l, x),
                        Up(l, x),
                        UpBias(l, x),
                        Down(l, x),
                        DownBias(l, x),
                    ] {
                        plain(&mut out, id);
                    }
                }
            }
        }
    }
    plain(&mut out, FinalNorm);
    plain(&mut out, LmHead);
    out
}

/// Every release tensor name of `cfg`, sorted: the order llama.cpp's converter walks a model
/// that has no release shards of its own (one shard of release names).
pub fn sorted_release_names(cfg: &Config) -> Vec<String> {
    let mut names: Vec<String> = expected(Layout::Release, cfg)
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{Preset, preset_config};
    use serde_json::json;

    fn cfg() -> Config {
        Config::from_hf_json(&preset_config(Preset::Tiny, Some(2))).unwrap()
    }

    #[test]
    fn each_layout_lists_every_tensor_once() {
        let cfg = cfg();
        let (l, e) = (cfg.num_hidden_layers, cfg.num_local_experts);
        for (layout, per_layer) in [
            (Layout::Release, 19),
            (Layout::Original, 15),
            (Layout::Dense, 17),
            (Layout::Int8 { dense_int8: false }, 13 + 12 * e),
            (Layout::Int8 { dense_int8: true }, 21 + 12 * e),
        ] {
            let x = expected(layout, &cfg);
            let extra = if layout == (Layout::Int8 { dense_int8: true }) {
                2
            } else {
                0
            };
            assert_eq!(x.len(), 3 + per_layer * l + extra, "{}", layout.name());
            let mut names: Vec<&str> = x.iter().map(|x| x.name.as_str()).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), x.len(), "{}: a name twice", layout.name());
        }
    }

    #[test]
    fn release_and_original_names() {
        let (hf, orig) = (Names::new(Layout::Release), Names::new(Layout::Original));
        assert_eq!(
            hf.plain(WeightId::KBias(3)),
            "model.layers.3.self_attn.k_proj.bias"
        );
        assert_eq!(orig.plain(WeightId::KBias(3)), "block.3.attn.qkv.bias");
        assert_eq!(hf.plain(WeightId::LmHead), "lm_head.weight");
        assert_eq!(orig.plain(WeightId::LmHead), "unembedding.weight");
        assert_eq!(orig.down_scales(1), "block.1.mlp.mlp2_weight.scales");
        let int8 = Names::new(Layout::Int8 { dense_int8: true });
        assert_eq!(
            int8.module(WeightId::Up(0, 5)),
            "model.layers.0.mlp.experts.5.up_proj"
        );
        assert_eq!(
            int8.plain(WeightId::UpBias(0, 5)),
            "model.layers.0.mlp.experts.5.up_proj.bias"
        );
        assert_eq!(int8.module(WeightId::LmHead), "lm_head");
    }

    #[test]
    fn expectations_describe_their_dtypes_and_shape() {
        let x = expected(Layout::Dense, &cfg());
        let norm = x.iter().find(|x| x.name == "model.norm.weight").unwrap();
        assert_eq!(
            norm.describe(),
            format!("BF16|F16|F32[{}]", cfg().hidden_size)
        );
    }

    /// The compressed-tensors config the int8 layout writes (`docs/formats.md`).
    fn int8_q() -> Value {
        json!({"quant_method": "compressed-tensors", "format": "pack-quantized",
               "quantization_status": "compressed",
               "config_groups": {"group_0": {"weights": {"num_bits": 8, "type": "int", "symmetric": true,
                                 "strategy": "group", "group_size": 32}, "format": "pack-quantized"}}})
    }

    #[test]
    fn the_layout_comes_from_config_json() {
        let dir = Path::new("/m");
        let detect = |c: Value| Layout::detect(dir, &c, |_| None).map(|(l, _)| l);
        assert_eq!(
            detect(json!({"num_experts": 32})).unwrap(),
            Layout::Original
        );
        assert_eq!(
            detect(json!({"model_type": "gpt_oss"})).unwrap(),
            Layout::Dense
        );
        assert_eq!(
            detect(json!({"model_type": "gpt_oss", "quantization_config": null})).unwrap(),
            Layout::Dense
        );
        assert_eq!(
            detect(
                json!({"model_type": "gpt_oss", "quantization_config": {"quant_method": "mxfp4"}})
            )
            .unwrap(),
            Layout::Release
        );
        assert_eq!(
            detect(json!({"model_type": "gpt_oss", "quantization_config": int8_q()})).unwrap(),
            Layout::Int8 { dense_int8: false }
        );
        let e = detect(
            json!({"model_type": "gpt_oss", "quantization_config": {"quant_method": "gptq"}}),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("/m/config.json") && e.contains("quant_method \"gptq\" is not supported"),
            "{e}"
        );
        let e = detect(json!({"model_type": "gpt_oss", "quantization_config": {}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("has no string `quant_method`"), "{e}");
    }

    /// Where the config leaves it open, the expert tensors of layer 0 decide, and the notes say
    /// when transformers would read the directory differently.
    #[test]
    fn the_expert_tensors_decide_the_unquantized_layouts() {
        use crate::safetensors::Dtype::{BF16, F16, U8};
        let dir = Path::new("/m");
        let t = |name: &str, dtype, shape: &[usize]| TensorInfo {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
            range: 0..0,
        };
        let plain = json!({"model_type": "gpt_oss"});
        let mxfp4 =
            json!({"model_type": "gpt_oss", "quantization_config": {"quant_method": "mxfp4"}});
        let detect = |c: &Value, ts: &[TensorInfo]| {
            Layout::detect(dir, c, |n| ts.iter().find(|t| t.name == n))
        };
        let fused = [t(
            "model.layers.0.mlp.experts.gate_up_proj",
            BF16,
            &[8, 128, 128],
        )];
        let per_expert = [t(
            "model.layers.0.mlp.experts.0.gate_proj.weight",
            F16,
            &[64, 128],
        )];
        let dense_blocks = [t(
            "model.layers.0.mlp.experts.gate_up_proj_blocks",
            BF16,
            &[8, 128, 128],
        )];
        let blocks = [t(
            "model.layers.0.mlp.experts.gate_up_proj_blocks",
            U8,
            &[8, 128, 4, 16],
        )];
        assert_eq!(detect(&plain, &fused).unwrap(), (Layout::Dense, vec![]));
        assert_eq!(
            detect(&plain, &per_expert).unwrap(),
            (Layout::PerExpert, vec![])
        );
        assert_eq!(detect(&mxfp4, &blocks).unwrap(), (Layout::Release, vec![]));
        for c in [&plain, &mxfp4] {
            let (l, notes) = detect(c, &dense_blocks).unwrap();
            assert_eq!(l, Layout::DenseUnderBlocks);
            assert!(notes[0].contains("holds BF16[8, 128, 128]"), "{notes:?}");
            assert!(
                notes[0].contains("transformers itself cannot load"),
                "{notes:?}"
            );
        }
        let (l, notes) = detect(&plain, &blocks).unwrap();
        assert_eq!(l, Layout::Release);
        assert!(notes[0].contains("transformers would leave these experts randomly"));
        let (l, notes) = detect(&mxfp4, &fused).unwrap();
        assert_eq!(l, Layout::Dense);
        assert!(
            notes[0].contains("the experts are stored dense"),
            "{notes:?}"
        );
        let packed = [t(
            "model.layers.0.mlp.experts.0.gate_proj.weight_packed",
            crate::safetensors::Dtype::I32,
            &[64, 32],
        )];
        let e = detect(&plain, &packed).unwrap_err().to_string();
        assert!(e.contains("compressed-tensors int8 modules"), "{e}");
    }

    /// The refusal of `int8_q()` with `edit` applied.
    fn int8_err(edit: impl FnOnce(&mut Value)) -> String {
        let mut q = int8_q();
        edit(&mut q);
        int8_config_dense(&q).unwrap_err()
    }

    #[test]
    fn int8_format_and_status() {
        assert!(
            int8_err(|q| q["format"] = json!("int-quantized"))
                .contains("`format` is \"int-quantized\"")
        );
        assert!(
            int8_err(|q| q["quantization_status"] = json!("frozen"))
                .contains("`quantization_status`")
        );
    }

    #[test]
    fn int8_groups_missing_or_without_weights() {
        assert!(int8_err(|q| q["config_groups"] = json!([])).contains("no `config_groups` object"));
        assert!(
            int8_err(|q| q["config_groups"]["group_0"] = json!({}))
                .contains("config_groups.group_0: no `weights`")
        );
    }

    #[test]
    fn int8_weights_other_than_symmetric_8_bit_ints() {
        let w = |k: &str, v: Value| int8_err(|q| q["config_groups"]["group_0"]["weights"][k] = v);
        assert!(w("num_bits", json!(4)).contains("`num_bits` must be 8"));
        assert!(w("type", json!("float")).contains("only symmetric `int` weights are read"));
        assert!(w("symmetric", json!(false)).contains("only symmetric `int` weights are read"));
        assert!(w("dynamic", json!(true)).contains("dynamic or act-ordered weights are not read"));
        assert!(
            w("actorder", json!("group")).contains("dynamic or act-ordered weights are not read")
        );
        assert!(w("group_size", json!(128)).contains("only group/32 and channel are read"));
    }

    #[test]
    fn int8_activation_quantization_or_another_group_format() {
        let e = int8_err(|q| {
            q["config_groups"]["group_0"]["input_activations"] = json!({"num_bits": 8})
        });
        assert!(
            e.contains("group_0.input_activations: activation quantization is not read"),
            "{e}"
        );
        let e = int8_err(|q| q["config_groups"]["group_0"]["format"] = json!("int-quantized"));
        assert!(e.contains("group_0.format is \"int-quantized\""), "{e}");
    }

    #[test]
    fn int8_needs_a_group_32_scheme_and_may_add_channel() {
        let e = int8_err(|q| {
            q["config_groups"]["group_0"]["weights"]["strategy"] = json!("channel");
            q["config_groups"]["group_0"]["weights"]["group_size"] = Value::Null;
        });
        assert!(
            e.contains("no config group with `strategy: group, group_size: 32`"),
            "{e}"
        );
        let mut q = int8_q();
        let mut channel = q["config_groups"]["group_0"].clone();
        channel["weights"]["strategy"] = json!("channel");
        channel["weights"]["group_size"] = Value::Null;
        q["config_groups"]["group_1"] = channel;
        assert_eq!(int8_config_dense(&q), Ok(true));
        assert_eq!(int8_config_dense(&int8_q()), Ok(false));
    }
}
