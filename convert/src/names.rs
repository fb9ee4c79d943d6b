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
}

impl Layout {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Release => "hf-mxfp4",
            Layout::Original => "original",
        }
    }

    /// Decides the layout from the directory's `config.json`.
    pub fn detect(dir: &Path, config: &Value) -> Result<Layout> {
        let cfg_path = dir.join("config.json");
        if config.get("model_type").is_none() {
            return Ok(Layout::Original);
        }
        match config.pointer("/quantization_config/quant_method").and_then(Value::as_str) {
            Some("mxfp4") => Ok(Layout::Release),
            Some(other) => Err(ConvertError::format(cfg_path, format!("quantization_config.quant_method {other:?} is not supported"))),
            None => Err(ConvertError::format(cfg_path, "no quantization_config: a dequantized checkpoint, not supported yet")),
        }
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
}

impl Expect {
    /// `DTYPE[shape]` for messages.
    pub fn describe(&self) -> String {
        format!("{}{:?}", crate::checkpoint::dtype_list(self.dtypes), self.shape)
    }
}

const BF16: &[Dtype] = &[Dtype::BF16];
const U8: &[Dtype] = &[Dtype::U8];

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
        match self.layout {
            Layout::Release => format!("model.layers.{l}.{hf}"),
            Layout::Original => format!("block.{l}.{orig}"),
        }
    }

    /// The tensor holding a weight that is stored whole (not fused, not MXFP4).
    pub fn plain(&self, id: WeightId) -> String {
        use WeightId::*;
        let global = |hf: &str, orig: &str| match self.layout {
            Layout::Release => hf.to_string(),
            Layout::Original => orig.to_string(),
        };
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
        self.layer(l, "mlp.experts.gate_up_proj_blocks", "mlp.mlp1_weight.blocks")
    }

    /// gate_up MXFP4 scales `[E, 2I, H/32]`.
    pub fn gate_up_scales(&self, l: usize) -> String {
        self.layer(l, "mlp.experts.gate_up_proj_scales", "mlp.mlp1_weight.scales")
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

/// Every tensor a `layout` checkpoint of `cfg` holds, in the release's per-layer order.
pub fn expected(layout: Layout, cfg: &Config) -> Vec<Expect> {
    let n = Names::new(layout);
    let (h, i, e, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.num_local_experts, cfg.vocab_size);
    let (q, kv, heads) = (cfg.q_dim(), cfg.kv_dim(), cfg.num_attention_heads);
    let x = |name: String, dtypes, shape: Vec<usize>| Expect { name, dtypes, shape };
    use WeightId::*;
    let mut out = vec![x(n.plain(Embedding), BF16, vec![v, h])];
    for l in 0..cfg.num_hidden_layers {
        out.push(x(n.plain(AttnNorm(l)), BF16, vec![h]));
        match layout {
            Layout::Release => {
                out.push(x(n.plain(QProj(l)), BF16, vec![q, h]));
                out.push(x(n.plain(QBias(l)), BF16, vec![q]));
                out.push(x(n.plain(KProj(l)), BF16, vec![kv, h]));
                out.push(x(n.plain(KBias(l)), BF16, vec![kv]));
                out.push(x(n.plain(VProj(l)), BF16, vec![kv, h]));
                out.push(x(n.plain(VBias(l)), BF16, vec![kv]));
            }
            Layout::Original => {
                out.push(x(n.qkv_weight(l), BF16, vec![q + 2 * kv, h]));
                out.push(x(n.qkv_bias(l), BF16, vec![q + 2 * kv]));
            }
        }
        out.push(x(n.plain(OProj(l)), BF16, vec![h, q]));
        out.push(x(n.plain(OBias(l)), BF16, vec![h]));
        out.push(x(n.plain(Sinks(l)), BF16, vec![heads]));
        out.push(x(n.plain(MlpNorm(l)), BF16, vec![h]));
        out.push(x(n.plain(Router(l)), BF16, vec![e, h]));
        out.push(x(n.plain(RouterBias(l)), BF16, vec![e]));
        out.push(x(n.gate_up_blocks(l), U8, vec![e, 2 * i, h / 32, 16]));
        out.push(x(n.gate_up_scales(l), U8, vec![e, 2 * i, h / 32]));
        out.push(x(n.gate_up_bias(l), BF16, vec![e, 2 * i]));
        out.push(x(n.down_blocks(l), U8, vec![e, h, i / 32, 16]));
        out.push(x(n.down_scales(l), U8, vec![e, h, i / 32]));
        out.push(x(n.down_bias(l), BF16, vec![e, h]));
    }
    out.push(x(n.plain(FinalNorm), BF16, vec![h]));
    out.push(x(n.plain(LmHead), BF16, vec![v, h]));
    out
}
