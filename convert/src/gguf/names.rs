//! llama.cpp's names for gpt-oss, spelled once: the GGUF tensor of each weight (with its `ne`
//! and the rows of it a weight is), the release tensor each GGUF tensor is made from, and the
//! `gpt-oss.*` hyperparameter keys. The reader ([`GgufModel`](super::GgufModel)), the metadata
//! writer ([`meta`](super::meta)) and the variant planner all read this table.
//!
//! Tensors (llama.cpp `gguf-py/gguf/constants.py` `MODEL_TENSORS[MODEL_ARCH.GPT_OSS]` and
//! `conversion/gpt_oss.py` `GptOssModel`, as vendored in llama-cpp-python 0.3.36; `ne`
//! innermost first):
//!
//! | [`Content`] | GGUF tensor | `ne` | from the release tensor | [`Class`] |
//! |---|---|---|---|---|
//! | `Single(Embedding)` / `Single(LmHead)` | `token_embd.weight` / `output.weight` | `[H, V]` | `model.embed_tokens.weight` / `lm_head.weight` | `Matrix` |
//! | `Single(FinalNorm)` | `output_norm.weight` | `[H]` | `model.norm.weight` | `Small` |
//! | `Single(AttnNorm(N))` / `Single(MlpNorm(N))` | `blk.N.attn_norm.weight` / `blk.N.post_attention_norm.weight` | `[H]` | `input_layernorm.weight` / `post_attention_layernorm.weight` | `Small` |
//! | `Single(QProj(N))`, `KProj`, `VProj` | `blk.N.attn_{q,k,v}.weight` | `[H, Q]`, `[H, KV]` | `self_attn.{q,k,v}_proj.weight` | `Matrix` |
//! | `Single(OProj(N))` | `blk.N.attn_output.weight` | `[Q, H]` | `self_attn.o_proj.weight` | `Matrix` |
//! | q/k/v/o biases | `blk.N.attn_{q,k,v,output}.bias` | `[Q]`, `[KV]`, `[H]` | `self_attn.{q,k,v,o}_proj.bias` | `Small` |
//! | `Single(Sinks(N))` | `blk.N.attn_sinks.weight` | `[heads]` | `self_attn.sinks` | `Small` |
//! | `Single(Router(N))` / `Single(RouterBias(N))` | `blk.N.ffn_gate_inp.{weight,bias}` | `[H, E]` / `[E]` | `mlp.router.{weight,bias}` | `Small` |
//! | `ExpertWeights(Gate/Up, N)` | `blk.N.ffn_{gate,up}_exps.weight` | `[H, I, E]` | `mlp.experts.gate_up_proj_scales` (gate then up) | `ExpertWeights` |
//! | `ExpertWeights(Down, N)` | `blk.N.ffn_down_exps.weight` | `[I, H, E]` | `mlp.experts.down_proj_scales` | `ExpertWeights` |
//! | `ExpertBiases(Gate/Up, N)` | `blk.N.ffn_{gate,up}_exps.bias` | `[I, E]` | `mlp.experts.gate_up_proj_bias` (gate then up) | `Small` |
//! | `ExpertBiases(Down, N)` | `blk.N.ffn_down_exps.bias` | `[H, E]` | `mlp.experts.down_proj_bias` | `Small` |
//!
//! Expert `e` of a stacked tensor is rows `e·out .. (e+1)·out` of its weights (`out` = the
//! expert matrix's rows) and row `e` of its biases ([`locate`]), so a reader views it in place.
//!
//! Hyperparameters: the `gpt-oss.*` keys of [`hparam`], written by [`hparams_kv`] in the order
//! llama.cpp's `TextModel.set_gguf_parameters` and `GptOssModel.set_gguf_parameters` write
//! them, and read back by the reader.

use super::Value;
use reference::{Config, WeightId};

/// The architecture name llama.cpp uses for gpt-oss (`general.architecture`, and the prefix
/// of the hyperparameter keys).
pub const ARCH: &str = "gpt-oss";

/// The `gpt-oss.*` hyperparameter keys, without the `gpt-oss.` prefix (llama.cpp
/// `gguf-py/gguf/constants.py` `Keys.LLM`, `Keys.Attention`, `Keys.Rope`).
pub mod hparam {
    /// u32: decoder layers.
    pub const BLOCK_COUNT: &str = "block_count";
    /// u32: the context the model claims (`max_position_embeddings`).
    pub const CONTEXT_LENGTH: &str = "context_length";
    /// u32: H.
    pub const EMBEDDING_LENGTH: &str = "embedding_length";
    /// u32: I (written; the reader takes [`EXPERT_FEED_FORWARD_LENGTH`]).
    pub const FEED_FORWARD_LENGTH: &str = "feed_forward_length";
    /// u32: query heads.
    pub const HEAD_COUNT: &str = "attention.head_count";
    /// u32: key/value heads (absent: as many as query heads).
    pub const HEAD_COUNT_KV: &str = "attention.head_count_kv";
    /// string: `yarn`.
    pub const ROPE_SCALING_TYPE: &str = "rope.scaling.type";
    /// f32: YaRN factor.
    pub const ROPE_SCALING_FACTOR: &str = "rope.scaling.factor";
    /// u32: YaRN's pre-extension context (absent: the context length).
    pub const ROPE_ORIGINAL_CONTEXT: &str = "rope.scaling.original_context_length";
    /// f32: YaRN beta_fast (absent: 32).
    pub const YARN_BETA_FAST: &str = "rope.scaling.yarn_beta_fast";
    /// f32: YaRN beta_slow (absent: 1).
    pub const YARN_BETA_SLOW: &str = "rope.scaling.yarn_beta_slow";
    /// f32: RoPE base (absent: 10000).
    pub const ROPE_FREQ_BASE: &str = "rope.freq_base";
    /// f32: RMSNorm epsilon.
    pub const RMS_EPS: &str = "attention.layer_norm_rms_epsilon";
    /// u32: E.
    pub const EXPERT_COUNT: &str = "expert_count";
    /// u32: experts per token.
    pub const EXPERT_USED_COUNT: &str = "expert_used_count";
    /// u32: head width of keys.
    pub const KEY_LENGTH: &str = "attention.key_length";
    /// u32: head width of values (gpt-oss: the same as keys).
    pub const VALUE_LENGTH: &str = "attention.value_length";
    /// u32: keys a sliding layer sees.
    pub const SLIDING_WINDOW: &str = "attention.sliding_window";
    /// Per-layer sliding pattern; never written for gpt-oss (llama.cpp's default: even layers
    /// slide), refused when present.
    pub const SLIDING_WINDOW_PATTERN: &str = "attention.sliding_window_pattern";
    /// u32: I, the width of one expert.
    pub const EXPERT_FEED_FORWARD_LENGTH: &str = "expert_feed_forward_length";
}

/// The full metadata key of a hyperparameter: `gpt-oss.` + `k`.
pub fn key(k: &str) -> String {
    format!("{ARCH}.{k}")
}

/// The key naming the architecture ([`ARCH`]).
pub const ARCHITECTURE_KEY: &str = "general.architecture";
/// u32: the beginning-of-sequence token id.
pub const BOS_ID_KEY: &str = "tokenizer.ggml.bos_token_id";
/// u32: the end-of-sequence token id.
pub const EOS_ID_KEY: &str = "tokenizer.ggml.eos_token_id";
/// u32: the padding token id.
pub const PAD_ID_KEY: &str = "tokenizer.ggml.padding_token_id";

/// The special-token ids, as (type, `tokenizer.ggml.*` key), in the order llama.cpp's
/// `SpecialVocab` writes them (gguf-py `vocab.py`; `seperator` is its spelling).
pub const SPECIAL_TOKENS: [(&str, &str); 7] = [
    ("bos", BOS_ID_KEY),
    ("eos", EOS_ID_KEY),
    ("unk", "tokenizer.ggml.unknown_token_id"),
    ("sep", "tokenizer.ggml.seperator_token_id"),
    ("pad", PAD_ID_KEY),
    ("cls", "tokenizer.ggml.cls_token_id"),
    ("mask", "tokenizer.ggml.mask_token_id"),
];

/// The `tokenizer.ggml.*` key of a special-token type (`bos`, `eos`, `pad`, ...).
pub fn special_token_key(typ: &str) -> Option<&'static str> {
    SPECIAL_TOKENS
        .iter()
        .find(|(t, _)| *t == typ)
        .map(|(_, k)| *k)
}

/// The `gpt-oss.*` hyperparameters of `cfg` with `general.file_type` = `file_type` and
/// `general.quantization_version` = 2, in the order llama.cpp's converter writes them (the
/// two `general.*` keys sit between them there).
pub fn hparams_kv(cfg: &Config, file_type: u32) -> Vec<(String, Value)> {
    use hparam::*;
    let u = |v: usize| Value::U32(v as u32);
    let f = |v: f64| Value::F32(v as f32);
    let y = &cfg.rope_scaling;
    let hp = |k: &str, v: Value| (self::key(k), v);
    vec![
        hp(BLOCK_COUNT, u(cfg.num_hidden_layers)),
        hp(CONTEXT_LENGTH, u(cfg.max_position_embeddings)),
        hp(EMBEDDING_LENGTH, u(cfg.hidden_size)),
        hp(FEED_FORWARD_LENGTH, u(cfg.intermediate_size)),
        hp(HEAD_COUNT, u(cfg.num_attention_heads)),
        hp(HEAD_COUNT_KV, u(cfg.num_key_value_heads)),
        hp(ROPE_SCALING_TYPE, Value::String("yarn".into())),
        hp(ROPE_SCALING_FACTOR, f(y.factor)),
        hp(ROPE_ORIGINAL_CONTEXT, u(y.original_max_position_embeddings)),
        hp(YARN_BETA_FAST, f(y.beta_fast)),
        hp(YARN_BETA_SLOW, f(y.beta_slow)),
        hp(ROPE_FREQ_BASE, f(cfg.rope_theta)),
        hp(RMS_EPS, Value::F32(cfg.rms_norm_eps)),
        hp(EXPERT_COUNT, u(cfg.num_local_experts)),
        hp(EXPERT_USED_COUNT, u(cfg.num_experts_per_tok)),
        hp(KEY_LENGTH, u(cfg.head_dim)),
        hp(VALUE_LENGTH, u(cfg.head_dim)),
        ("general.file_type".into(), Value::U32(file_type)),
        hp(SLIDING_WINDOW, u(cfg.sliding_window)),
        hp(EXPERT_FEED_FORWARD_LENGTH, u(cfg.intermediate_size)),
        ("general.quantization_version".into(), Value::U32(2)),
    ]
}

/// Which expert projection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proj {
    /// gate (even rows of the release's gate_up).
    Gate,
    /// up (odd rows).
    Up,
    /// down.
    Down,
}

impl Proj {
    /// The weight of expert `e` of layer `l`.
    pub fn weight(self, l: usize, e: usize) -> WeightId {
        match self {
            Proj::Gate => WeightId::Gate(l, e),
            Proj::Up => WeightId::Up(l, e),
            Proj::Down => WeightId::Down(l, e),
        }
    }

    /// The bias of expert `e` of layer `l`.
    pub fn bias(self, l: usize, e: usize) -> WeightId {
        match self {
            Proj::Gate => WeightId::GateBias(l, e),
            Proj::Up => WeightId::UpBias(l, e),
            Proj::Down => WeightId::DownBias(l, e),
        }
    }

    fn stem(self) -> &'static str {
        match self {
            Proj::Gate => "ffn_gate_exps",
            Proj::Up => "ffn_up_exps",
            Proj::Down => "ffn_down_exps",
        }
    }
}

/// What one GGUF tensor holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    /// All experts' weights of one projection of a layer, `[in, out, E]`.
    ExpertWeights(Proj, usize),
    /// All experts' biases of one projection of a layer, `[out, E]`.
    ExpertBiases(Proj, usize),
    /// One weight, stored whole (never an expert's weight or bias).
    Single(WeightId),
}

/// How llama.cpp's gpt-oss files group tensors when choosing their types (the variant
/// picks one ggml type per class; `Small` is F32 in every variant llama.cpp writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// `blk.N.ffn_{gate,up,down}_exps.weight`.
    ExpertWeights,
    /// `token_embd`, `output`, `blk.N.attn_{q,k,v,output}.weight`.
    Matrix,
    /// Everything else: norms, biases, sinks, the router.
    Small,
}

impl Content {
    /// The GGUF tensor name.
    pub fn name(self) -> String {
        use WeightId::*;
        let blk = |l: usize, s: &str| format!("blk.{l}.{s}");
        match self {
            Content::ExpertWeights(p, l) => blk(l, &format!("{}.weight", p.stem())),
            Content::ExpertBiases(p, l) => blk(l, &format!("{}.bias", p.stem())),
            Content::Single(id) => match id {
                Embedding => "token_embd.weight".into(),
                LmHead => "output.weight".into(),
                FinalNorm => "output_norm.weight".into(),
                AttnNorm(l) => blk(l, "attn_norm.weight"),
                MlpNorm(l) => blk(l, "post_attention_norm.weight"),
                QProj(l) => blk(l, "attn_q.weight"),
                QBias(l) => blk(l, "attn_q.bias"),
                KProj(l) => blk(l, "attn_k.weight"),
                KBias(l) => blk(l, "attn_k.bias"),
                VProj(l) => blk(l, "attn_v.weight"),
                VBias(l) => blk(l, "attn_v.bias"),
                OProj(l) => blk(l, "attn_output.weight"),
                OBias(l) => blk(l, "attn_output.bias"),
                Sinks(l) => blk(l, "attn_sinks.weight"),
                Router(l) => blk(l, "ffn_gate_inp.weight"),
                RouterBias(l) => blk(l, "ffn_gate_inp.bias"),
                // Experts live in the stacked tensors (`Content::of`).
                Gate(l, _) => Content::ExpertWeights(Proj::Gate, l).name(),
                Up(l, _) => Content::ExpertWeights(Proj::Up, l).name(),
                Down(l, _) => Content::ExpertWeights(Proj::Down, l).name(),
                GateBias(l, _) => Content::ExpertBiases(Proj::Gate, l).name(),
                UpBias(l, _) => Content::ExpertBiases(Proj::Up, l).name(),
                DownBias(l, _) => Content::ExpertBiases(Proj::Down, l).name(),
            },
        }
    }

    /// The GGUF `ne` (innermost first) for `cfg`: a matrix `[rows, cols]` of the forward pass
    /// is `[cols, rows]`, a vector `[n]`, a stack of E experts gains a last `E`.
    pub fn shape(self, cfg: &Config) -> Vec<u64> {
        use WeightId::*;
        let e = cfg.num_local_experts as u64;
        match self {
            Content::ExpertWeights(p, l) => {
                let (rows, cols) = p.weight(l, 0).shape(cfg);
                vec![cols as u64, rows as u64, e]
            }
            Content::ExpertBiases(p, l) => {
                let (_, cols) = p.bias(l, 0).shape(cfg);
                vec![cols as u64, e]
            }
            Content::Single(id) => {
                let (rows, cols) = id.shape(cfg);
                match id {
                    FinalNorm | AttnNorm(_) | MlpNorm(_) | QBias(_) | KBias(_) | VBias(_)
                    | OBias(_) | Sinks(_) | RouterBias(_) => vec![cols as u64],
                    _ => vec![cols as u64, rows as u64],
                }
            }
        }
    }

    /// Its type class.
    pub fn class(self) -> Class {
        use WeightId::*;
        match self {
            Content::ExpertWeights(..) => Class::ExpertWeights,
            Content::Single(Embedding | LmHead | QProj(_) | KProj(_) | VProj(_) | OProj(_)) => {
                Class::Matrix
            }
            _ => Class::Small,
        }
    }

    /// The tensor holding `id` (experts' weights and biases: their layer's stack).
    pub fn of(id: WeightId) -> Content {
        use WeightId::*;
        match id {
            Gate(l, _) => Content::ExpertWeights(Proj::Gate, l),
            Up(l, _) => Content::ExpertWeights(Proj::Up, l),
            Down(l, _) => Content::ExpertWeights(Proj::Down, l),
            GateBias(l, _) => Content::ExpertBiases(Proj::Gate, l),
            UpBias(l, _) => Content::ExpertBiases(Proj::Up, l),
            DownBias(l, _) => Content::ExpertBiases(Proj::Down, l),
            id => Content::Single(id),
        }
    }

    /// The GGUF tensors made from the release tensor `name` (`model.layers.3.mlp.experts.
    /// gate_up_proj_scales` → gate then up expert weights of layer 3), in the order llama.cpp
    /// emits them; none for `*_blocks` (the weights hang on `*_scales`) and unknown names.
    /// transformers' dense experts (`gate_up_proj`, `down_proj`) give the same tensors.
    pub fn from_release(name: &str) -> Vec<Content> {
        use WeightId::*;
        let single = |id| vec![Content::Single(id)];
        match name {
            "model.embed_tokens.weight" => return single(Embedding),
            "lm_head.weight" => return single(LmHead),
            "model.norm.weight" => return single(FinalNorm),
            _ => {}
        }
        let Some((l, tail)) = name
            .strip_prefix("model.layers.")
            .and_then(|r| r.split_once('.'))
            .and_then(|(l, tail)| Some((l.parse::<usize>().ok()?, tail)))
        else {
            return Vec::new();
        };
        let (w, b) = (Content::ExpertWeights, Content::ExpertBiases);
        match tail {
            "mlp.experts.gate_up_proj_scales" | "mlp.experts.gate_up_proj" => {
                vec![w(Proj::Gate, l), w(Proj::Up, l)]
            }
            "mlp.experts.down_proj_scales" | "mlp.experts.down_proj" => vec![w(Proj::Down, l)],
            "mlp.experts.gate_up_proj_bias" => vec![b(Proj::Gate, l), b(Proj::Up, l)],
            "mlp.experts.down_proj_bias" => vec![b(Proj::Down, l)],
            "input_layernorm.weight" => single(AttnNorm(l)),
            "post_attention_layernorm.weight" => single(MlpNorm(l)),
            "mlp.router.weight" => single(Router(l)),
            "mlp.router.bias" => single(RouterBias(l)),
            "self_attn.q_proj.weight" => single(QProj(l)),
            "self_attn.q_proj.bias" => single(QBias(l)),
            "self_attn.k_proj.weight" => single(KProj(l)),
            "self_attn.k_proj.bias" => single(KBias(l)),
            "self_attn.v_proj.weight" => single(VProj(l)),
            "self_attn.v_proj.bias" => single(VBias(l)),
            "self_attn.o_proj.weight" => single(OProj(l)),
            "self_attn.o_proj.bias" => single(OBias(l)),
            "self_attn.sinks" => single(Sinks(l)),
            _ => Vec::new(),
        }
    }
}

/// The GGUF tensors of a source whose tensors are walked in `order`, in the order llama.cpp's
/// converter writes them (llama.cpp `conversion/gpt_oss.py`): the MXFP4 experts (named by their
/// `*_scales`) first, as `GptOssModel.generate_extra_tensors` writes them, then everything else
/// in walk order as `modify_tensors` does, dense experts (`gate_up_proj`, `down_proj`) included.
pub fn llamacpp_order(order: &[String]) -> Vec<Content> {
    let (extra, rest): (Vec<&String>, Vec<&String>) =
        order.iter().partition(|n| n.ends_with("_scales"));
    extra
        .into_iter()
        .chain(rest)
        .flat_map(|n| Content::from_release(n))
        .collect()
}

/// Every tensor a gpt-oss GGUF of `cfg` holds: globals, then each layer's.
pub fn contents(cfg: &Config) -> Vec<Content> {
    use WeightId::*;
    let mut out = vec![
        Content::Single(Embedding),
        Content::Single(LmHead),
        Content::Single(FinalNorm),
    ];
    for l in 0..cfg.num_hidden_layers {
        out.extend(
            [
                AttnNorm(l),
                MlpNorm(l),
                QProj(l),
                QBias(l),
                KProj(l),
                KBias(l),
                VProj(l),
                VBias(l),
                OProj(l),
                OBias(l),
                Sinks(l),
                Router(l),
                RouterBias(l),
            ]
            .map(Content::Single),
        );
        for p in [Proj::Gate, Proj::Up, Proj::Down] {
            out.push(Content::ExpertWeights(p, l));
        }
        for p in [Proj::Gate, Proj::Up, Proj::Down] {
            out.push(Content::ExpertBiases(p, l));
        }
    }
    out
}

/// Where a weight lives in a gpt-oss GGUF: rows `first .. first + rows` of tensor `name`,
/// each `cols` values wide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The GGUF tensor.
    pub name: String,
    /// First row of the view.
    pub first: usize,
    /// Rows of the view.
    pub rows: usize,
    /// Values per row.
    pub cols: usize,
}

/// The GGUF tensor holding `id`, and the row range of it that `id` is.
pub fn locate(id: WeightId, cfg: &Config) -> Location {
    use WeightId::*;
    let (rows, cols) = id.shape(cfg);
    let first = match id {
        Gate(_, e) | Up(_, e) | Down(_, e) => e * rows,
        GateBias(_, e) | UpBias(_, e) | DownBias(_, e) => e,
        _ => 0,
    };
    Location {
        name: Content::of(id).name(),
        first,
        rows,
        cols,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{Layout, expected};
    use crate::synth::{Preset, preset_config};

    fn cfg() -> Config {
        Config::from_hf_json(&preset_config(Preset::Tiny, Some(2))).unwrap()
    }

    #[test]
    fn every_weight_is_a_row_range_of_a_listed_tensor() {
        let cfg = cfg();
        let all = contents(&cfg);
        for id in WeightId::all(&cfg) {
            let loc = locate(id, &cfg);
            let c = all
                .iter()
                .find(|c| c.name() == loc.name)
                .unwrap_or_else(|| panic!("{id}: {} is not listed", loc.name));
            let ne = c.shape(&cfg);
            assert_eq!(ne[0] as usize, loc.cols, "{id}");
            let rows: u64 = ne[1..].iter().product();
            assert!(
                (loc.first + loc.rows) as u64 <= rows,
                "{id}: {loc:?} in {ne:?}"
            );
        }
    }

    #[test]
    fn names_and_shapes_are_llamacpps() {
        let cfg = cfg();
        let (h, i, e) = (
            cfg.hidden_size as u64,
            cfg.intermediate_size as u64,
            cfg.num_local_experts as u64,
        );
        let up = Content::ExpertWeights(Proj::Up, 1);
        assert_eq!(up.name(), "blk.1.ffn_up_exps.weight");
        assert_eq!(up.shape(&cfg), [h, i, e]);
        let down = Content::ExpertWeights(Proj::Down, 0);
        assert_eq!(down.shape(&cfg), [i, h, e]);
        assert_eq!(Content::ExpertBiases(Proj::Down, 0).shape(&cfg), [h, e]);
        let o = Content::Single(WeightId::OProj(1));
        assert_eq!(o.name(), "blk.1.attn_output.weight");
        assert_eq!(o.shape(&cfg), [cfg.q_dim() as u64, h]);
        assert_eq!(
            Content::Single(WeightId::Sinks(0)).shape(&cfg),
            [cfg.num_attention_heads as u64]
        );
        assert_eq!(
            Content::Single(WeightId::Router(0)).class(),
            Class::Small,
            "the router stays F32"
        );
        let loc = locate(WeightId::Up(1, 3), &cfg);
        assert_eq!(
            (loc.name.as_str(), loc.first, loc.rows, loc.cols),
            (
                "blk.1.ffn_up_exps.weight",
                3 * i as usize,
                i as usize,
                h as usize
            )
        );
    }

    #[test]
    fn every_release_tensor_maps_and_every_gguf_tensor_is_made_once() {
        let cfg = cfg();
        let order: Vec<String> = expected(Layout::Release, &cfg)
            .into_iter()
            .map(|x| x.name)
            .collect();
        let planned = llamacpp_order(&order);
        let mut names: Vec<String> = planned.iter().map(|c| c.name()).collect();
        let mut want: Vec<String> = contents(&cfg).iter().map(|c| c.name()).collect();
        names.sort();
        want.sort();
        assert_eq!(names, want);
        // Expert weights first, as llama.cpp writes them.
        let k = planned
            .iter()
            .position(|c| !matches!(c, Content::ExpertWeights(..)))
            .unwrap();
        assert_eq!(k, 3 * cfg.num_hidden_layers);
        assert!(
            planned[k..]
                .iter()
                .all(|c| !matches!(c, Content::ExpertWeights(..)))
        );
        assert!(Content::from_release("model.layers.0.mlp.experts.down_proj_blocks").is_empty());
        assert!(Content::from_release("model.layers.x.self_attn.sinks").is_empty());
    }

    #[test]
    fn hparams_are_written_in_llamacpps_order_under_the_arch_prefix() {
        let kv = hparams_kv(&cfg(), 38);
        assert_eq!(kv[0].0, "gpt-oss.block_count");
        assert_eq!(kv[17], ("general.file_type".to_string(), Value::U32(38)));
        assert_eq!(kv.last().unwrap().0, "general.quantization_version");
        assert!(
            kv.iter()
                .all(|(k, _)| k.starts_with("gpt-oss.") || k.starts_with("general."))
        );
        assert_eq!(
            special_token_key("pad"),
            Some("tokenizer.ggml.padding_token_id")
        );
    }
}
