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
//! Source: `spec/gpt-oss.md` §2.1 and §3.3 (transformers' `convert_gpt_oss_weights_to_hf.py`).
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

use crate::error::{ConvertError, Result};
use crate::safetensors::Dtype;
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
    /// mlx-lm's layout (`mlx_lm.convert`): one module per linear layer, experts stacked per
    /// projection, quantized modules as `.weight` codes + `.scales` (+ `.biases`); see
    /// [`crate::mlx`].
    Mlx(crate::mlx::MlxScheme),
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

    /// Decides the layout from the directory's `config.json`: no `model_type` → original;
    /// `quant_method` `mxfp4` → release, `compressed-tensors` → int8 (the config must describe
    /// exactly the int8 scheme oss-forge reads, see [`int8_config_dense`]); mlx-lm's
    /// `quantization` map → MLX (scheme still to be read from the tensors); no
    /// `quantization_config` → dense (or MLX, which `Checkpoint::open` tells by the tensors).
    pub fn detect(dir: &Path, config: &Value) -> Result<Layout> {
        let cfg_path = dir.join("config.json");
        if config.get("model_type").is_none() {
            return Ok(Layout::Original);
        }
        // mlx-lm's per-module map; the scheme itself is read from the tensors once the files
        // are open (`Checkpoint::open`, `crate::mlx::read_scheme`).
        if config.get("quantization").is_some_and(Value::is_object) {
            return Ok(Layout::Mlx(crate::mlx::MlxScheme::FLOAT));
        }
        let Some(q) = config.get("quantization_config").filter(|q| !q.is_null()) else {
            return Ok(Layout::Dense);
        };
        match q.get("quant_method").and_then(Value::as_str) {
            Some("mxfp4") => Ok(Layout::Release),
            Some("compressed-tensors") => {
                let dense_int8 = int8_config_dense(q).map_err(|m| {
                    ConvertError::format(&cfg_path, format!("quantization_config: {m}"))
                })?;
                Ok(Layout::Int8 { dense_int8 })
            }
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
}

/// Checks a compressed-tensors `quantization_config` against the scheme oss-forge reads:
/// format and status `pack-quantized` / `compressed`; every config group symmetric 8-bit int
/// weights with no activation quantization, either `strategy: group, group_size: 32` (the
/// experts; required) or `strategy: channel` (attention and lm_head, `--int8-dense`). Returns
/// whether a per-channel group is present.
pub fn int8_config_dense(q: &Value) -> std::result::Result<bool, String> {
    let want_str = |key: &str, want: &str| match q.get(key).and_then(Value::as_str) {
        Some(v) if v == want => Ok(()),
        other => Err(format!("`{key}` is {other:?}, only {want:?} is read")),
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
                return Err(bad(&format!(
                    "strategy {s:?} with group_size {gs:?}: only group/32 and channel are read"
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

impl Expect {
    /// `DTYPE[shape]` for messages.
    pub fn describe(&self) -> String {
        format!(
            "{}{:?}",
            crate::checkpoint::dtype_list(self.dtypes),
            self.shape
        )
    }
}

const BF16: &[Dtype] = &[Dtype::BF16];
const U8: &[Dtype] = &[Dtype::U8];
const I32: &[Dtype] = &[Dtype::I32];
const I64: &[Dtype] = &[Dtype::I64];
/// Float dtypes the dense layout accepts (transformers saves in the model dtype).
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
        if let Layout::Int8 { .. } = self.layout
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

    /// transformers' fused `gate_up_proj [E, H, 2I]` (dense layout).
    pub fn gate_up_fused(&self, l: usize) -> String {
        format!("model.layers.{l}.mlp.experts.gate_up_proj")
    }

    /// transformers' fused `down_proj [E, I, H]` (dense layout).
    pub fn down_fused(&self, l: usize) -> String {
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
    let float = if layout == Layout::Dense {
        FLOATS
    } else {
        BF16
    };
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
                out.push(other(n.qkv_weight(l), BF16, vec![qkv, h]));
                out.push(other(n.qkv_bias(l), BF16, vec![qkv]));
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
                out.push(other(n.gate_up_blocks(l), U8, vec![e, 2 * i, h / 32, 16]));
                out.push(other(n.gate_up_scales(l), U8, vec![e, 2 * i, h / 32]));
                out.push(other(n.gate_up_bias(l), BF16, vec![e, 2 * i]));
                out.push(other(n.down_blocks(l), U8, vec![e, h, i / 32, 16]));
                out.push(other(n.down_scales(l), U8, vec![e, h, i / 32]));
                out.push(other(n.down_bias(l), BF16, vec![e, h]));
            }
            Layout::Dense => {
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
            Layout::Int8 { .. } => {
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
