//! The model hyperparameters, read from either config format the release ships.
//!
//! - HF `config.json` (transformers `configuration_gpt_oss.py`; the release's `config.json`):
//!   `model_type: "gpt_oss"`, `rope_scaling` (transformers 4.x) or `rope_parameters` (5.x) with
//!   `rope_type: "yarn"`.
//! - OpenAI `original/config.json` (mapped to HF keys by transformers'
//!   `convert_gpt_oss_weights_to_hf.py`): `num_experts`, `rope_scaling_factor`,
//!   `rope_ntk_alpha` (= beta_slow), `rope_ntk_beta` (= beta_fast); eps 1e-5, SwiGLU alpha 1.702
//!   and the even-layers-slide rule are hard-coded in OpenAI's code (openai/gpt-oss
//!   `gpt_oss/torch/model.py`).
//!
//! An HF config is read the way transformers 5.x reads it, so a file transformers loads gives the
//! same model here or a refusal naming the real cause (huggingface/transformers,
//! `models/gpt_oss/configuration_gpt_oss.py` `GptOssConfig` and `modeling_rope_utils.py`
//! `RotaryEmbeddingConfigMixin` / `_compute_yarn_parameters`):
//!
//! - An **absent** key takes `GptOssConfig`'s default (vocab 201088, hidden 2880, 36 layers, 128
//!   experts, ..., `rope_theta` 150000, the gpt-oss yarn dict when neither `rope_scaling` nor
//!   `rope_parameters` is given). Every default applied is reported as a [`ConfigNote`].
//! - A **null** key is a default only where transformers turns `None` into a value:
//!   `num_key_value_heads` (→ `num_attention_heads`), `head_dim` (→ hidden / heads),
//!   `layer_types`, `rope_scaling` / `rope_parameters`, the token ids, and inside the yarn dict
//!   `factor` (→ max / original context), `beta_fast` / `beta_slow` (`or 32` / `or 1`),
//!   `attention_factor` (derived) and `truncate` (falsy: no truncation). Anywhere else transformers
//!   fails on `None`, and so does this reader, saying "null".
//! - Keys transformers' yarn does not read are ignored (noted); values the forward pass does not
//!   implement (another rope type, tied embeddings, a partial rotary factor) are errors.

use serde_json::{Map, Value, json};

/// The attention pattern of one decoder layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerType {
    /// Causal attention over the last `sliding_window` positions (the current one included).
    Sliding,
    /// Causal attention over every earlier position.
    Full,
}

/// YaRN rope scaling, as transformers' `_compute_yarn_parameters` reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Yarn {
    /// Context extension factor (32 for gpt-oss).
    pub factor: f64,
    /// Rotations at which interpolation starts (32).
    pub beta_fast: f64,
    /// Rotations at which extrapolation stops (1).
    pub beta_slow: f64,
    /// The pre-extension context (4096), used for the correction range.
    pub original_max_position_embeddings: usize,
    /// Whether the correction range is floored/ceiled. gpt-oss: false. transformers' default
    /// when the key is absent: true.
    pub truncate: bool,
    /// Explicit cos/sin multiplier; `None` means `0.1·ln(factor) + 1`.
    pub attention_factor: Option<f64>,
}

/// Special token ids the checkpoint declares.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TokenIds {
    /// End-of-sequence ids (`eos_token_id`, a number or a list).
    pub eos: Vec<u32>,
    /// Padding id, if declared.
    pub pad: Option<u32>,
    /// Beginning-of-sequence id, if declared.
    pub bos: Option<u32>,
}

/// gpt-oss hyperparameters. Dimension names used throughout: H = hidden_size,
/// I = intermediate_size, E = num_local_experts, V = vocab_size.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// V: rows of the embedding and the unembedding (201088 for the release).
    pub vocab_size: usize,
    /// H: width of the residual stream (2880).
    pub hidden_size: usize,
    /// I: width of one expert's SwiGLU (2880).
    pub intermediate_size: usize,
    /// Decoder layers (24 / 36).
    pub num_hidden_layers: usize,
    /// Query heads (64).
    pub num_attention_heads: usize,
    /// Key/value heads (8); query head h reads kv head `h / (heads / kv_heads)`.
    pub num_key_value_heads: usize,
    /// Width of one head (64).
    pub head_dim: usize,
    /// E: experts per layer (32 / 128).
    pub num_local_experts: usize,
    /// Experts each token is routed to (4).
    pub num_experts_per_tok: usize,
    /// Keys visible to a sliding layer, the current position included (128).
    pub sliding_window: usize,
    /// One entry per layer.
    pub layer_types: Vec<LayerType>,
    /// RMSNorm epsilon (1e-5).
    pub rms_norm_eps: f32,
    /// RoPE base (150000).
    pub rope_theta: f64,
    /// YaRN parameters.
    pub rope_scaling: Yarn,
    /// Longest context the model claims (131072).
    pub max_position_embeddings: usize,
    /// SwiGLU clamp (7.0): gate clamped above, up clamped on both sides.
    pub swiglu_limit: f32,
    /// SwiGLU sigmoid slope (1.702; not in the release files, hard-coded by every implementation).
    pub swiglu_alpha: f32,
    /// Special token ids.
    pub token_ids: TokenIds,
}

/// How one key of an HF config was read when the file did not state it plainly: a transformers
/// default filled in, a value transformers derives, or a key it does not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigNote {
    /// The key, spelled as in the file (`rope_scaling.beta_fast`), or as transformers names it
    /// when the file lacks it.
    pub key: String,
    /// What was read, and why (`absent, read as 150000 (transformers' default)`).
    pub note: String,
}

impl std::fmt::Display for ConfigNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` {}", self.key, self.note)
    }
}

/// What is wrong with a config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not JSON, or not a JSON object.
    #[error("not a JSON object: {0}")]
    NotJson(String),
    /// A key every gpt-oss config carries is missing.
    #[error("missing key `{0}`")]
    Missing(String),
    /// A key transformers requires (or without which it builds another model) is absent.
    #[error("`{key}` is absent: {why}")]
    Absent {
        /// The key, as transformers names it.
        key: String,
        /// What transformers does without it.
        why: String,
    },
    /// A key is null where transformers has no default for null.
    #[error("`{key}` is null: {why}")]
    Null {
        /// The key, as the file spells it.
        key: String,
        /// What transformers does with the null.
        why: String,
    },
    /// A key has the wrong JSON type or an out-of-range value.
    #[error("key `{key}`: expected {expected}, found {found}")]
    Invalid {
        /// The key.
        key: String,
        /// What was expected.
        expected: String,
        /// What the file holds.
        found: String,
    },
    /// A value the pipeline does not implement.
    #[error("unsupported `{key}` = {value}: {why}")]
    Unsupported {
        /// The key.
        key: String,
        /// Its value.
        value: String,
        /// Why it is refused.
        why: String,
    },
}

/// Upper bounds that keep a hostile config from asking for absurd allocations. The release is far
/// inside every one of them.
mod caps {
    pub const VOCAB: usize = 1 << 22;
    pub const HIDDEN: usize = 1 << 16;
    pub const LAYERS: usize = 1024;
    pub const HEADS: usize = 1024;
    pub const HEAD_DIM: usize = 1024;
    pub const EXPERTS: usize = 4096;
    pub const CONTEXT: usize = 1 << 24;
}

/// transformers 5.x `GptOssConfig` defaults, used for absent keys.
mod defaults {
    pub const VOCAB: usize = 201088;
    pub const HIDDEN: usize = 2880;
    pub const INTERMEDIATE: usize = 2880;
    pub const LAYERS: usize = 36;
    pub const HEADS: usize = 64;
    pub const KV_HEADS: usize = 8;
    pub const HEAD_DIM: usize = 64;
    pub const EXPERTS: usize = 128;
    pub const TOP_K: usize = 4;
    pub const SLIDING_WINDOW: usize = 128;
    pub const MAX_POSITIONS: usize = 131072;
    pub const RMS_NORM_EPS: f64 = 1e-5;
    pub const SWIGLU_LIMIT: f64 = 7.0;
    pub const SWIGLU_ALPHA: f64 = 1.702;
    /// `GptOssConfig.default_theta`.
    pub const ROPE_THETA: f64 = 150000.0;
}

/// The yarn dict `GptOssConfig.__post_init__` sets when `rope_parameters` (and the v4
/// `rope_scaling`) is absent or null.
fn default_rope() -> Value {
    json!({"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
           "truncate": false, "original_max_position_embeddings": 4096})
}

/// A key's state in the file.
enum Slot<'a> {
    Absent,
    Null,
    Set(&'a Value),
}

struct Obj<'a> {
    map: &'a Map<String, Value>,
    prefix: &'a str,
}

/// Notes collected while reading one config.
#[derive(Default)]
struct Notes(Vec<ConfigNote>);

impl Notes {
    fn add(&mut self, key: String, note: impl Into<String>) {
        self.0.push(ConfigNote {
            key,
            note: note.into(),
        });
    }
}

impl<'a> Obj<'a> {
    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }
    fn slot(&self, k: &str) -> Slot<'a> {
        match self.map.get(k) {
            None => Slot::Absent,
            Some(Value::Null) => Slot::Null,
            Some(v) => Slot::Set(v),
        }
    }
    fn get(&self, k: &str) -> Result<&'a Value, ConfigError> {
        self.map
            .get(k)
            .ok_or_else(|| ConfigError::Missing(self.key(k)))
    }
    fn invalid(&self, k: &str, expected: &str, v: &Value) -> ConfigError {
        ConfigError::Invalid {
            key: self.key(k),
            expected: expected.into(),
            found: v.to_string(),
        }
    }
    fn null(&self, k: &str, why: impl Into<String>) -> ConfigError {
        ConfigError::Null {
            key: self.key(k),
            why: why.into(),
        }
    }
    fn parse_usize(
        &self,
        k: &str,
        v: &Value,
        min: usize,
        max: usize,
    ) -> Result<usize, ConfigError> {
        let n = v.as_u64().filter(|&n| n >= min as u64 && n <= max as u64);
        n.map(|n| n as usize)
            .ok_or_else(|| self.invalid(k, &format!("an integer in {min}..={max}"), v))
    }
    fn parse_f64(&self, k: &str, v: &Value) -> Result<f64, ConfigError> {
        v.as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| self.invalid(k, "a finite number", v))
    }
    fn usize_in(&self, k: &str, min: usize, max: usize) -> Result<usize, ConfigError> {
        self.parse_usize(k, self.get(k)?, min, max)
    }
    fn f64(&self, k: &str) -> Result<f64, ConfigError> {
        self.parse_f64(k, self.get(k)?)
    }
    /// The refusal of a null where transformers' default applies only to an absent key.
    fn null_not_default(&self, k: &str, default: impl std::fmt::Display) -> ConfigError {
        self.null(
            k,
            format!(
                "transformers cannot use a null here (its default, {default}, applies only when \
                 the key is absent)"
            ),
        )
    }
    /// An integer with a transformers default for an absent key.
    fn usize_or(
        &self,
        k: &str,
        min: usize,
        max: usize,
        default: usize,
        notes: &mut Notes,
    ) -> Result<usize, ConfigError> {
        match self.slot(k) {
            Slot::Absent => {
                notes.add(
                    self.key(k),
                    format!("absent, read as {default} (transformers' default)"),
                );
                Ok(default)
            }
            Slot::Null => Err(self.null_not_default(k, default)),
            Slot::Set(v) => self.parse_usize(k, v, min, max),
        }
    }
    /// A number with a transformers default for an absent key.
    fn f64_or(&self, k: &str, default: f64, notes: &mut Notes) -> Result<f64, ConfigError> {
        match self.slot(k) {
            Slot::Absent => {
                notes.add(
                    self.key(k),
                    format!("absent, read as {default:?} (transformers' default)"),
                );
                Ok(default)
            }
            Slot::Null => Err(self.null_not_default(k, format!("{default:?}"))),
            Slot::Set(v) => self.parse_f64(k, v),
        }
    }
    fn opt_f64(&self, k: &str) -> Result<Option<f64>, ConfigError> {
        match self.slot(k) {
            Slot::Absent | Slot::Null => Ok(None),
            Slot::Set(v) => self.parse_f64(k, v).map(Some),
        }
    }
    /// A boolean `GptOssConfig` types as `bool`: absent is the default, null is refused.
    fn bool_or(&self, k: &str, default: bool) -> Result<bool, ConfigError> {
        match self.slot(k) {
            Slot::Absent => Ok(default),
            Slot::Null => Err(self.null_not_default(k, default)),
            Slot::Set(Value::Bool(b)) => Ok(*b),
            Slot::Set(v) => Err(self.invalid(k, "true or false", v)),
        }
    }
    fn token_ids(&self, k: &str) -> Result<Vec<u32>, ConfigError> {
        let as_id = |v: &Value| {
            v.as_u64()
                .filter(|&n| n <= u32::MAX as u64)
                .map(|n| n as u32)
        };
        match self.map.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| as_id(v).ok_or_else(|| self.invalid(k, "token ids", v)))
                .collect(),
            Some(v) => as_id(v)
                .map(|id| vec![id])
                .ok_or_else(|| self.invalid(k, "a token id", v)),
        }
    }
}

fn object<'a>(v: &'a Value, prefix: &'a str) -> Result<Obj<'a>, ConfigError> {
    match v {
        Value::Object(map) => Ok(Obj { map, prefix }),
        other => Err(ConfigError::NotJson(format!(
            "expected an object, found {}",
            kind(other)
        ))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn unsupported(key: &str, value: impl ToString, why: &str) -> ConfigError {
    ConfigError::Unsupported {
        key: key.into(),
        value: value.to_string(),
        why: why.into(),
    }
}

/// transformers' default pattern for gpt-oss: layer i slides iff i is even.
fn default_layer_types(n: usize) -> Vec<LayerType> {
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                LayerType::Sliding
            } else {
                LayerType::Full
            }
        })
        .collect()
}

/// transformers' `get_mscale` of `_compute_yarn_parameters`.
fn get_mscale(scale: f64, mscale: f64) -> f64 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * mscale * scale.ln() + 1.0
    }
}

/// The yarn keys `_compute_yarn_parameters` and the rope standardization read.
const YARN_KEYS: [&str; 12] = [
    "rope_type",
    "type",
    "factor",
    "beta_fast",
    "beta_slow",
    "original_max_position_embeddings",
    "truncate",
    "attention_factor",
    "mscale",
    "mscale_all_dim",
    "partial_rotary_factor",
    "rope_theta",
];

/// The config fields that set tensor shapes (transformers' names): a model differing in one has
/// other tensors. (`num_experts` is another spelling of `num_local_experts` some configs use.)
pub const SHAPE_FIELDS: [&str; 8] = [
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "num_local_experts",
];

impl Config {
    /// Parses the text of a config file in either format, deciding the format from its keys
    /// (`model_type` → HF; `num_experts` without `model_type` → original).
    pub fn from_json_str(text: &str) -> Result<Config, ConfigError> {
        Config::from_json_str_noted(text).map(|(c, _)| c)
    }

    /// [`Config::from_json_str`], with how each key the file leaves to transformers was read
    /// (empty for an original config).
    pub fn from_json_str_noted(text: &str) -> Result<(Config, Vec<ConfigNote>), ConfigError> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| ConfigError::NotJson(e.to_string()))?;
        let o = object(&v, "")?;
        if o.map.contains_key("model_type") || !o.map.contains_key("num_experts") {
            Config::from_hf_json_noted(&v)
        } else {
            Config::from_original_json(&v).map(|c| (c, Vec::new()))
        }
    }

    /// Reads an HF-format `config.json`.
    pub fn from_hf_json(v: &Value) -> Result<Config, ConfigError> {
        Config::from_hf_json_noted(v).map(|(c, _)| c)
    }

    /// Reads an HF-format `config.json` as transformers 5.x does (module docs), with a note for
    /// every default applied, value derived and key ignored.
    pub fn from_hf_json_noted(v: &Value) -> Result<(Config, Vec<ConfigNote>), ConfigError> {
        let o = object(v, "")?;
        let mut notes = Notes::default();
        let n = &mut notes;
        match o.slot("model_type") {
            Slot::Set(Value::String(s)) if s == "gpt_oss" => {}
            Slot::Set(Value::String(other)) => {
                return Err(unsupported(
                    "model_type",
                    other,
                    "only gpt_oss is implemented",
                ));
            }
            Slot::Set(other) => return Err(o.invalid("model_type", "\"gpt_oss\"", other)),
            Slot::Null => {
                return Err(o.null("model_type", "transformers picks the model class from it"));
            }
            Slot::Absent => return Err(ConfigError::Missing("model_type".into())),
        }
        if o.bool_or("tie_word_embeddings", false)? {
            return Err(unsupported(
                "tie_word_embeddings",
                true,
                "gpt-oss has a separate lm_head",
            ));
        }
        if !o.bool_or("attention_bias", true)? {
            return Err(unsupported(
                "attention_bias",
                false,
                "gpt-oss attention has q/k/v/o biases",
            ));
        }
        let vocab_size = o.usize_or("vocab_size", 1, caps::VOCAB, defaults::VOCAB, n)?;
        let hidden = o.usize_or("hidden_size", 1, caps::HIDDEN, defaults::HIDDEN, n)?;
        let intermediate = o.usize_or(
            "intermediate_size",
            1,
            caps::HIDDEN,
            defaults::INTERMEDIATE,
            n,
        )?;
        let layers = o.usize_or("num_hidden_layers", 1, caps::LAYERS, defaults::LAYERS, n)?;
        let heads = o.usize_or("num_attention_heads", 1, caps::HEADS, defaults::HEADS, n)?;
        // `GptOssConfig.__post_init__`: a None kv-head count is the head count, a None head_dim
        // is hidden_size // num_attention_heads.
        let kv_heads = if let Slot::Null = o.slot("num_key_value_heads") {
            n.add(
                "num_key_value_heads".into(),
                format!("null, read as num_attention_heads ({heads}), as transformers does"),
            );
            heads
        } else {
            o.usize_or("num_key_value_heads", 1, caps::HEADS, defaults::KV_HEADS, n)?
        };
        let head_dim = if let Slot::Null = o.slot("head_dim") {
            let d = hidden / heads;
            n.add(
                "head_dim".into(),
                format!(
                    "null, read as hidden_size / num_attention_heads ({d}), as transformers does"
                ),
            );
            d
        } else {
            o.usize_or("head_dim", 2, caps::HEAD_DIM, defaults::HEAD_DIM, n)?
        };
        let num_local_experts = Self::experts(&o, n)?;
        let num_experts_per_tok = match (o.slot("num_experts_per_tok"), o.slot("experts_per_token"))
        {
            (Slot::Absent, Slot::Set(v)) if v.as_u64() != Some(defaults::TOP_K as u64) => {
                n.add(
                    "num_experts_per_tok".into(),
                    format!(
                        "absent, read as {} (transformers' default; it does not read \
                         `experts_per_token` = {v})",
                        defaults::TOP_K
                    ),
                );
                defaults::TOP_K
            }
            _ => o.usize_or("num_experts_per_tok", 1, caps::EXPERTS, defaults::TOP_K, n)?,
        };
        let sliding_window = match o.slot("sliding_window") {
            Slot::Null => {
                return Err(o.null(
                    "sliding_window",
                    "transformers cannot build the sliding-window mask of the sliding layers \
                     without it",
                ));
            }
            _ => o.usize_or(
                "sliding_window",
                1,
                caps::CONTEXT,
                defaults::SLIDING_WINDOW,
                n,
            )?,
        };
        let layer_types = match o.slot("layer_types") {
            Slot::Absent | Slot::Null => {
                let state = if o.map.contains_key("layer_types") {
                    "null"
                } else {
                    "absent"
                };
                n.add(
                    "layer_types".into(),
                    format!("{state}, read as transformers' default: even layers slide"),
                );
                default_layer_types(layers)
            }
            Slot::Set(Value::Array(items)) => {
                let parsed = items
                    .iter()
                    .map(|t| match t.as_str() {
                        Some("sliding_attention") => Ok(LayerType::Sliding),
                        Some("full_attention") => Ok(LayerType::Full),
                        _ => Err(unsupported(
                            "layer_types",
                            t,
                            "expected sliding_attention or full_attention",
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if parsed.len() != layers {
                    return Err(ConfigError::Invalid {
                        key: "layer_types".into(),
                        expected: format!("{layers} entries (num_hidden_layers)"),
                        found: format!("{} entries", parsed.len()),
                    });
                }
                parsed
            }
            Slot::Set(other) => return Err(o.invalid("layer_types", "an array", other)),
        };
        let rms_norm_eps = o.f64_or("rms_norm_eps", defaults::RMS_NORM_EPS, n)? as f32;
        let max_position_embeddings = o.usize_or(
            "max_position_embeddings",
            1,
            caps::CONTEXT,
            defaults::MAX_POSITIONS,
            n,
        )?;
        let swiglu_limit = o.f64_or("swiglu_limit", defaults::SWIGLU_LIMIT, n)? as f32;
        // Not in the release files; transformers 4.x hard-codes it, later versions read it.
        let swiglu_alpha = o.opt_f64("swiglu_alpha")?.unwrap_or(defaults::SWIGLU_ALPHA) as f32;
        let (rope_theta, rope_scaling) = Self::rope(&o, max_position_embeddings, n)?;
        let cfg = Config {
            vocab_size,
            hidden_size: hidden,
            intermediate_size: intermediate,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: kv_heads,
            head_dim,
            num_local_experts,
            num_experts_per_tok,
            sliding_window,
            layer_types,
            rms_norm_eps,
            rope_theta,
            rope_scaling,
            max_position_embeddings,
            swiglu_limit,
            swiglu_alpha,
            token_ids: TokenIds {
                eos: o.token_ids("eos_token_id")?,
                pad: o.token_ids("pad_token_id")?.first().copied(),
                bos: o.token_ids("bos_token_id")?.first().copied(),
            },
        };
        cfg.validate()?;
        Ok((cfg, notes.0))
    }

    /// `num_local_experts`, or `num_experts` (`GptOssConfig.attribute_map` maps it there).
    fn experts(o: &Obj<'_>, n: &mut Notes) -> Result<usize, ConfigError> {
        let alias = |v: &Value| o.parse_usize("num_experts", v, 1, caps::EXPERTS);
        match (o.slot("num_local_experts"), o.slot("num_experts")) {
            (Slot::Absent, Slot::Set(v)) => {
                let e = alias(v)?;
                n.add(
                    "num_local_experts".into(),
                    format!("absent, read from `num_experts` ({e}), transformers' alias for it"),
                );
                Ok(e)
            }
            (Slot::Set(a), Slot::Set(b)) if a != b => Err(o.invalid(
                "num_experts",
                &format!("num_local_experts ({a}): transformers maps num_experts onto it"),
                b,
            )),
            _ => o.usize_or("num_local_experts", 1, caps::EXPERTS, defaults::EXPERTS, n),
        }
    }

    /// `rope_theta` and the yarn parameters, as transformers 5.x standardizes and reads them:
    /// `rope_scaling` when it is a non-empty object, else `rope_parameters`, else gpt-oss's
    /// default dict; `rope_theta` from that dict, else the top-level key, else 150000.
    fn rope(o: &Obj<'_>, max_pos: usize, n: &mut Notes) -> Result<(f64, Yarn), ConfigError> {
        let scaling = o.slot("rope_scaling");
        let params = o.slot("rope_parameters");
        let non_empty = |v: &Value| v.as_object().is_none_or(|m| !m.is_empty());
        let default = default_rope();
        let (rope_key, rope) = match (&scaling, &params) {
            (Slot::Set(r), _) if non_empty(r) => {
                if let Slot::Set(_) = params {
                    n.add(
                        "rope_parameters".into(),
                        "not read: transformers reads `rope_scaling` when both are present",
                    );
                }
                ("rope_scaling", *r)
            }
            (_, Slot::Set(r)) => ("rope_parameters", *r),
            _ => {
                let state = |s: &Slot, k: &str| match s {
                    Slot::Absent => format!("`{k}` absent"),
                    Slot::Null => format!("`{k}` null"),
                    Slot::Set(_) => format!("`{k}` empty"),
                };
                n.add(
                    "rope_parameters".into(),
                    format!(
                        "{}, {}: read as transformers' gpt-oss default {default}",
                        state(&scaling, "rope_scaling"),
                        state(&params, "rope_parameters")
                    ),
                );
                ("rope_parameters", &default)
            }
        };
        let prefix = format!("{rope_key}.");
        let Value::Object(_) = rope else {
            return Err(o.invalid(rope_key, "an object", rope));
        };
        let r = object(rope, &prefix)?;
        let type_key = match (r.slot("rope_type"), r.slot("type")) {
            (Slot::Absent, Slot::Absent) => {
                return Err(ConfigError::Absent {
                    key: r.key("rope_type"),
                    why: "transformers then applies plain RoPE (rope_type \"default\"); gpt-oss \
                          uses yarn, the only type implemented"
                        .into(),
                });
            }
            (Slot::Absent, _) => "type",
            _ => "rope_type",
        };
        match r.slot(type_key) {
            Slot::Set(Value::String(s)) if s == "yarn" => {}
            Slot::Set(Value::String(other)) => {
                return Err(unsupported(
                    &r.key(type_key),
                    other,
                    "gpt-oss uses yarn; nothing else is implemented",
                ));
            }
            Slot::Set(other) => return Err(r.invalid(type_key, "\"yarn\"", other)),
            _ => {
                return Err(r.null(
                    type_key,
                    "transformers has no RoPE function for None (gpt-oss uses \"yarn\")",
                ));
            }
        }
        for k in r.map.keys().filter(|k| !YARN_KEYS.contains(&k.as_str())) {
            n.add(
                r.key(k),
                "ignored: transformers' yarn does not read it (it only warns)",
            );
        }
        // transformers' standardization: a top-level `partial_rotary_factor` replaces the dict's.
        let partial = match o.slot("partial_rotary_factor") {
            Slot::Set(v) => Some((o.key("partial_rotary_factor"), v)),
            _ => match r.slot("partial_rotary_factor") {
                Slot::Set(v) => Some((r.key("partial_rotary_factor"), v)),
                Slot::Null => {
                    return Err(r.null(
                        "partial_rotary_factor",
                        "transformers multiplies head_dim by it and fails on None",
                    ));
                }
                Slot::Absent => None,
            },
        };
        if let Some((key, v)) = partial
            && v.as_f64() != Some(1.0)
        {
            return Err(unsupported(
                &key,
                v,
                "gpt-oss rotates the whole head; a partial rotary factor is not implemented",
            ));
        }
        // A top-level `original_max_position_embeddings` replaces the dict's (transformers'
        // standardization, the Phi-3 rule); an absent one is max_position_embeddings.
        let orig_key = "original_max_position_embeddings";
        let original = match o.slot(orig_key) {
            Slot::Set(v) => {
                let c = o.parse_usize(orig_key, v, 1, caps::CONTEXT)?;
                n.add(
                    r.key(orig_key),
                    format!(
                        "read from the top-level `{orig_key}` ({c}), which transformers puts there"
                    ),
                );
                c
            }
            Slot::Null => {
                return Err(o.null(
                    orig_key,
                    "transformers copies it into the rope parameters and fails on None",
                ));
            }
            Slot::Absent => match r.slot(orig_key) {
                Slot::Set(v) => r.parse_usize(orig_key, v, 1, caps::CONTEXT)?,
                Slot::Null => {
                    return Err(r.null(
                        orig_key,
                        format!(
                            "transformers fills max_position_embeddings ({max_pos}) only when the \
                             key is absent, and fails on None"
                        ),
                    ));
                }
                Slot::Absent => {
                    n.add(
                        r.key(orig_key),
                        format!("absent, read as max_position_embeddings ({max_pos}), as transformers does"),
                    );
                    max_pos
                }
            },
        };
        let factor = match r.slot("factor") {
            Slot::Set(v) => r.parse_f64("factor", v)?,
            Slot::Null => {
                let f = max_pos as f64 / original as f64;
                n.add(
                    r.key("factor"),
                    format!(
                        "null, read as max_position_embeddings / original_max_position_embeddings \
                         ({f}), as transformers does"
                    ),
                );
                f
            }
            Slot::Absent => {
                return Err(ConfigError::Absent {
                    key: r.key("factor"),
                    why: "transformers requires it for yarn".into(),
                });
            }
        };
        if factor < 1.0 {
            return Err(r.invalid("factor", "a number >= 1", &json!(factor)));
        }
        // `rope_parameters.get("beta_fast") or 32`: absent, null and 0 all read as the default.
        let beta = |k: &str, default: f64, n: &mut Notes| -> Result<f64, ConfigError> {
            let state = match r.slot(k) {
                Slot::Absent => "absent",
                Slot::Null => "null",
                Slot::Set(v) => match v.as_f64() {
                    Some(0.0) => "0",
                    Some(x) if x.is_finite() && x > 0.0 => return Ok(x),
                    Some(x) if x.is_finite() => {
                        return Err(unsupported(
                            &r.key(k),
                            x,
                            "beta_fast and beta_slow must be positive",
                        ));
                    }
                    _ => return Err(r.invalid(k, "a positive number", v)),
                },
            };
            n.add(
                r.key(k),
                format!("{state}, read as {default} (transformers' `or {default}`)"),
            );
            Ok(default)
        };
        let beta_fast = beta("beta_fast", 32.0, n)?;
        let beta_slow = beta("beta_slow", 1.0, n)?;
        // `rope_parameters.get("truncate", True)`, then tested for truth.
        let truncate = match r.slot("truncate") {
            Slot::Absent => {
                n.add(
                    r.key("truncate"),
                    "absent, read as true (transformers' default: the correction range is \
                     floored and ceiled; gpt-oss's own configs say false)",
                );
                true
            }
            Slot::Null => {
                n.add(
                    r.key("truncate"),
                    "null, read as false: transformers tests its truth value",
                );
                false
            }
            Slot::Set(Value::Bool(b)) => *b,
            Slot::Set(v) => return Err(r.invalid("truncate", "true or false", v)),
        };
        let attention_factor = match r.slot("attention_factor") {
            Slot::Set(v) => match v.as_f64() {
                Some(a) if a.is_finite() && a > 0.0 => Some(a),
                _ => return Err(r.invalid("attention_factor", "a positive number", v)),
            },
            Slot::Absent | Slot::Null => {
                let m = r.opt_f64("mscale")?.filter(|&m| m != 0.0);
                let m_all = r.opt_f64("mscale_all_dim")?.filter(|&m| m != 0.0);
                match (m, m_all) {
                    (Some(m), Some(m_all)) => {
                        let a = get_mscale(factor, m) / get_mscale(factor, m_all);
                        n.add(
                            r.key("attention_factor"),
                            format!(
                                "derived from mscale / mscale_all_dim ({a}), as transformers does"
                            ),
                        );
                        Some(a)
                    }
                    _ => None,
                }
            }
        };
        // rope_theta: the dict's (transformers' setdefault keeps it), else the top-level key,
        // else GptOssConfig.default_theta.
        let rope_theta = match (r.slot("rope_theta"), o.slot("rope_theta")) {
            (Slot::Set(v), top) => {
                let t = r.parse_f64("rope_theta", v)?;
                if let Slot::Set(tv) = top
                    && tv.as_f64() != Some(t)
                {
                    n.add(
                        "rope_theta".into(),
                        format!(
                            "{tv} not read: transformers uses {} ({t})",
                            r.key("rope_theta")
                        ),
                    );
                }
                t
            }
            (Slot::Null, _) => {
                return Err(r.null(
                    "rope_theta",
                    "transformers keeps the null and fails computing the frequencies",
                ));
            }
            (Slot::Absent, Slot::Set(v)) => o.parse_f64("rope_theta", v)?,
            (Slot::Absent, Slot::Null) => {
                return Err(o.null(
                    "rope_theta",
                    "transformers copies the null into the rope parameters and fails computing \
                     the frequencies",
                ));
            }
            (Slot::Absent, Slot::Absent) => {
                n.add(
                    "rope_theta".into(),
                    format!(
                        "absent, read as {} (transformers' default for gpt-oss)",
                        defaults::ROPE_THETA
                    ),
                );
                defaults::ROPE_THETA
            }
        };
        Ok((
            rope_theta,
            Yarn {
                factor,
                beta_fast,
                beta_slow,
                original_max_position_embeddings: original,
                truncate,
                attention_factor,
            },
        ))
    }

    /// Reads OpenAI's `original/config.json`.
    pub fn from_original_json(v: &Value) -> Result<Config, ConfigError> {
        let o = object(v, "")?;
        let layers = o.usize_in("num_hidden_layers", 1, caps::LAYERS)?;
        let initial_context = o.usize_in("initial_context_length", 1, caps::CONTEXT)?;
        let factor = o.f64("rope_scaling_factor")?;
        if factor < 1.0 {
            return Err(o.invalid(
                "rope_scaling_factor",
                "a number >= 1",
                &o.map["rope_scaling_factor"],
            ));
        }
        let cfg = Config {
            vocab_size: o.usize_in("vocab_size", 1, caps::VOCAB)?,
            hidden_size: o.usize_in("hidden_size", 1, caps::HIDDEN)?,
            intermediate_size: o.usize_in("intermediate_size", 1, caps::HIDDEN)?,
            num_hidden_layers: layers,
            num_attention_heads: o.usize_in("num_attention_heads", 1, caps::HEADS)?,
            num_key_value_heads: o.usize_in("num_key_value_heads", 1, caps::HEADS)?,
            head_dim: o.usize_in("head_dim", 2, caps::HEAD_DIM)?,
            num_local_experts: o.usize_in("num_experts", 1, caps::EXPERTS)?,
            num_experts_per_tok: o.usize_in("experts_per_token", 1, caps::EXPERTS)?,
            sliding_window: o.usize_in("sliding_window", 1, caps::CONTEXT)?,
            // OpenAI's model.py: `sliding_window if layer_idx % 2 == 0 else 0`.
            layer_types: default_layer_types(layers),
            // OpenAI's RMSNorm default eps; the file has no key for it.
            rms_norm_eps: 1e-5,
            rope_theta: o.f64("rope_theta")?,
            rope_scaling: Yarn {
                factor,
                beta_fast: o.f64("rope_ntk_beta")?,
                beta_slow: o.f64("rope_ntk_alpha")?,
                original_max_position_embeddings: initial_context,
                truncate: false,
                attention_factor: None,
            },
            max_position_embeddings: ((initial_context as f64) * factor) as usize,
            swiglu_limit: o.f64("swiglu_limit")? as f32,
            swiglu_alpha: 1.702,
            token_ids: TokenIds::default(),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the relations between dimensions the forward pass and the codecs rely on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, expected: String, found: String| {
            Err(ConfigError::Invalid {
                key: key.into(),
                expected,
                found,
            })
        };
        // The caps the JSON readers enforce, again here for every other source of a config
        // (GGUF metadata), so no reader sizes an allocation or an offset from an absurd value.
        let capped = [
            ("vocab_size", self.vocab_size, 1, caps::VOCAB),
            ("hidden_size", self.hidden_size, 1, caps::HIDDEN),
            ("intermediate_size", self.intermediate_size, 1, caps::HIDDEN),
            ("num_hidden_layers", self.num_hidden_layers, 1, caps::LAYERS),
            (
                "num_attention_heads",
                self.num_attention_heads,
                1,
                caps::HEADS,
            ),
            (
                "num_key_value_heads",
                self.num_key_value_heads,
                1,
                caps::HEADS,
            ),
            ("head_dim", self.head_dim, 2, caps::HEAD_DIM),
            (
                "num_local_experts",
                self.num_local_experts,
                1,
                caps::EXPERTS,
            ),
            (
                "num_experts_per_tok",
                self.num_experts_per_tok,
                1,
                caps::EXPERTS,
            ),
            ("sliding_window", self.sliding_window, 1, caps::CONTEXT),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                1,
                caps::CONTEXT * 1024,
            ),
            (
                "rope_scaling.original_max_position_embeddings",
                self.rope_scaling.original_max_position_embeddings,
                1,
                caps::CONTEXT,
            ),
        ];
        for (key, v, min, max) in capped {
            if v < min || v > max {
                return bad(key, format!("an integer in {min}..={max}"), v.to_string());
            }
        }
        if self.layer_types.len() != self.num_hidden_layers {
            return bad(
                "layer_types",
                format!("{} entries (num_hidden_layers)", self.num_hidden_layers),
                self.layer_types.len().to_string(),
            );
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return bad(
                "num_key_value_heads",
                format!(
                    "a divisor of num_attention_heads ({})",
                    self.num_attention_heads
                ),
                self.num_key_value_heads.to_string(),
            );
        }
        if !self.head_dim.is_multiple_of(2) {
            return bad(
                "head_dim",
                "an even number (rope rotates halves)".into(),
                self.head_dim.to_string(),
            );
        }
        if self.num_experts_per_tok > self.num_local_experts {
            return bad(
                "num_experts_per_tok",
                format!("at most num_local_experts ({})", self.num_local_experts),
                self.num_experts_per_tok.to_string(),
            );
        }
        for (key, v) in [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
        ] {
            if v % 32 != 0 {
                return bad(
                    key,
                    "a multiple of 32 (MXFP4 and Q8_0 blocks)".into(),
                    v.to_string(),
                );
            }
        }
        if self.rms_norm_eps.is_nan() || self.rms_norm_eps <= 0.0 {
            return bad(
                "rms_norm_eps",
                "a positive number".into(),
                self.rms_norm_eps.to_string(),
            );
        }
        if self.rope_theta.is_nan() || self.rope_theta <= 1.0 {
            return bad(
                "rope_theta",
                "a number > 1".into(),
                self.rope_theta.to_string(),
            );
        }
        if self.swiglu_limit.is_nan() || self.swiglu_limit <= 0.0 {
            return bad(
                "swiglu_limit",
                "a positive number".into(),
                self.swiglu_limit.to_string(),
            );
        }
        Ok(())
    }

    /// Every field in which `other` is another model than `self`, as `field: a vs b`: each
    /// hyperparameter the forward pass reads, and `max_position_embeddings` (a variant that
    /// claims another context length is another runtime model: llama.cpp and transformers size
    /// their context from it). Only the token ids may differ (OpenAI's `original/config.json`
    /// has none).
    pub fn differences(&self, other: &Config) -> Vec<String> {
        // Destructured so that a new field must be placed on one side or the other.
        let Config {
            vocab_size,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            num_local_experts,
            num_experts_per_tok,
            sliding_window,
            layer_types,
            rms_norm_eps,
            rope_theta,
            rope_scaling,
            max_position_embeddings,
            swiglu_limit,
            swiglu_alpha,
            token_ids: _,
        } = self;
        let mut out = Vec::new();
        // Values as a user reads them (`sliding_window: 128 vs 64`), never Rust's debug form.
        macro_rules! cmp {
            ($($f:ident),*) => {$(
                if *$f != other.$f {
                    out.push(format!("{}: {} vs {}", stringify!($f), $f, other.$f));
                }
            )*};
        }
        cmp!(
            vocab_size,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            num_local_experts,
            num_experts_per_tok,
            sliding_window,
            rms_norm_eps,
            rope_theta,
            max_position_embeddings,
            swiglu_limit,
            swiglu_alpha
        );
        let kind = |t: &LayerType| match t {
            LayerType::Sliding => "sliding_attention",
            LayerType::Full => "full_attention",
        };
        if layer_types.len() != other.layer_types.len() {
            out.push(format!(
                "layer_types: {} layers vs {}",
                layer_types.len(),
                other.layer_types.len()
            ));
        } else if let Some((i, (a, b))) = layer_types
            .iter()
            .zip(&other.layer_types)
            .enumerate()
            .find(|(_, (a, b))| a != b)
        {
            out.push(format!("layer_types[{i}]: {} vs {}", kind(a), kind(b)));
        }
        let (a, b) = (rope_scaling, &other.rope_scaling);
        macro_rules! yarn {
            ($($f:ident),*) => {$(
                if a.$f != b.$f {
                    out.push(format!("rope_scaling.{}: {} vs {}", stringify!($f), a.$f, b.$f));
                }
            )*};
        }
        yarn!(
            factor,
            beta_fast,
            beta_slow,
            original_max_position_embeddings,
            truncate
        );
        if a.attention_factor != b.attention_factor {
            let show = |x: Option<f64>| x.map_or("absent".to_string(), |v| v.to_string());
            out.push(format!(
                "rope_scaling.attention_factor: {} vs {}",
                show(a.attention_factor),
                show(b.attention_factor)
            ));
        }
        out
    }

    /// True when `other` is the same model ([`Config::differences`] is empty).
    pub fn same_model(&self, other: &Config) -> bool {
        self.differences(other).is_empty()
    }

    /// Query heads per key/value head.
    pub fn q_per_kv(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }

    /// Width of the concatenated query heads.
    pub fn q_dim(&self) -> usize {
        self.num_attention_heads * self.head_dim
    }

    /// Width of the concatenated key (or value) heads.
    pub fn kv_dim(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }

    /// Parameter count, the way gguf-py counts it (every element of every tensor).
    pub fn parameter_count(&self) -> u64 {
        let (h, i, e, v) = (
            self.hidden_size as u64,
            self.intermediate_size as u64,
            self.num_local_experts as u64,
            self.vocab_size as u64,
        );
        let (q, kv, nh) = (
            self.q_dim() as u64,
            self.kv_dim() as u64,
            self.num_attention_heads as u64,
        );
        let attn = q * h + q + 2 * (kv * h + kv) + h * q + h + nh;
        let mlp = e * h + e + e * (2 * i * h + 2 * i) + e * (h * i + h);
        let layer = 2 * h + attn + mlp;
        2 * v * h + h + self.num_hidden_layers as u64 * layer
    }

    /// Weights one token multiplies by (its "active parameters"): attention, router, the
    /// `num_experts_per_tok` experts it routes to, and the unembedding (the embedding is a row
    /// lookup, not a product).
    pub fn active_parameters_per_token(&self) -> u64 {
        let (h, i, k, e) = (
            self.hidden_size as u64,
            self.intermediate_size as u64,
            self.num_experts_per_tok as u64,
            self.num_local_experts as u64,
        );
        let (q, kv) = (self.q_dim() as u64, self.kv_dim() as u64);
        let layer = q * h + 2 * kv * h + h * q + e * h + k * 3 * i * h;
        self.num_hidden_layers as u64 * layer + self.vocab_size as u64 * h
    }

    /// Floating-point operations of a forward pass over `n` tokens at positions `pos0 ..`:
    /// two per multiply-add of every active parameter, plus attention's `q·k` and `p·v` (two
    /// per multiply-add, per head, per key each query sees, within the window on sliding
    /// layers). Norms, RoPE, softmax and SwiGLU are left out: they are O(hidden) per token.
    pub fn forward_flops(&self, pos0: usize, n: usize) -> f64 {
        let mut flops = 2.0 * self.active_parameters_per_token() as f64 * n as f64;
        let per_key = 4.0 * (self.num_attention_heads * self.head_dim) as f64;
        for lt in &self.layer_types {
            for p in pos0..pos0 + n {
                let keys = match lt {
                    LayerType::Sliding => (p + 1).min(self.sliding_window),
                    LayerType::Full => p + 1,
                };
                flops += per_key * keys as f64;
            }
        }
        flops
    }
}

/// Config texts shared by the tests of this crate.
#[cfg(test)]
pub(crate) mod tests_support {
    /// The released gpt-oss-20b `config.json` (quantization_config omitted),
    /// <https://huggingface.co/openai/gpt-oss-20b/blob/main/config.json>.
    pub(crate) const GPT_OSS_20B: &str = r#"{"architectures":["GptOssForCausalLM"],"attention_bias":true,
      "attention_dropout":0.0,"eos_token_id":200002,"experts_per_token":4,"head_dim":64,"hidden_act":"silu",
      "hidden_size":2880,"initial_context_length":4096,"initializer_range":0.02,"intermediate_size":2880,
      "layer_types":["sliding_attention","full_attention","sliding_attention","full_attention",
      "sliding_attention","full_attention","sliding_attention","full_attention","sliding_attention",
      "full_attention","sliding_attention","full_attention","sliding_attention","full_attention",
      "sliding_attention","full_attention","sliding_attention","full_attention","sliding_attention",
      "full_attention","sliding_attention","full_attention","sliding_attention","full_attention"],
      "max_position_embeddings":131072,"model_type":"gpt_oss","num_attention_heads":64,
      "num_experts_per_tok":4,"num_hidden_layers":24,"num_key_value_heads":8,"num_local_experts":32,
      "output_router_logits":false,"pad_token_id":199999,"rms_norm_eps":1e-05,"rope_scaling":{"beta_fast":32.0,
      "beta_slow":1.0,"factor":32.0,"original_max_position_embeddings":4096,"rope_type":"yarn","truncate":false},
      "rope_theta":150000,"router_aux_loss_coef":0.9,"sliding_window":128,"swiglu_limit":7.0,
      "tie_word_embeddings":false,"transformers_version":"4.55.0.dev0","use_cache":true,"vocab_size":201088}"#;
}

#[cfg(test)]
mod tests {
    use super::tests_support::GPT_OSS_20B;
    use super::*;

    /// The 120b `original/config.json` with 20b's layer and expert counts
    /// (<https://huggingface.co/openai/gpt-oss-120b/blob/main/original/config.json>).
    const ORIGINAL_20B: &str = r#"{"num_hidden_layers": 24, "num_experts": 32, "experts_per_token": 4,
      "vocab_size": 201088, "hidden_size": 2880, "intermediate_size": 2880, "swiglu_limit": 7.0, "head_dim": 64,
      "num_attention_heads": 64, "num_key_value_heads": 8, "sliding_window": 128, "initial_context_length": 4096,
      "rope_theta": 150000, "rope_scaling_factor": 32.0, "rope_ntk_alpha": 1, "rope_ntk_beta": 32}"#;

    #[test]
    fn differences_name_each_field_and_ignore_token_ids() {
        let a = Config::from_json_str(GPT_OSS_20B).unwrap();
        let mut b = a.clone();
        assert!(a.same_model(&b));
        b.token_ids.pad = Some(3);
        b.token_ids.eos.clear();
        assert!(a.same_model(&b), "token ids are not the model");
        b.sliding_window = 64;
        b.max_position_embeddings = 8192;
        assert_eq!(
            a.differences(&b),
            [
                "sliding_window: 128 vs 64",
                "max_position_embeddings: 131072 vs 8192"
            ]
        );
        assert!(!a.same_model(&b));
        let mut c = a.clone();
        c.rope_scaling.truncate = true;
        c.rope_scaling.factor = 16.0;
        c.layer_types[3] = LayerType::Sliding;
        // Plain values, never Rust's debug form (`Yarn { factor: 32.0, ... }`).
        assert_eq!(
            a.differences(&c),
            [
                "layer_types[3]: full_attention vs sliding_attention",
                "rope_scaling.factor: 32 vs 16",
                "rope_scaling.truncate: false vs true"
            ]
        );
    }

    #[test]
    fn both_formats_of_the_20b_config_agree() {
        let hf = Config::from_json_str(GPT_OSS_20B).unwrap();
        let mut orig = Config::from_json_str(ORIGINAL_20B).unwrap();
        assert_eq!(hf.layer_types[0], LayerType::Sliding);
        assert_eq!(hf.layer_types[1], LayerType::Full);
        assert_eq!(hf.token_ids.eos, vec![200002]);
        orig.token_ids = hf.token_ids.clone();
        assert_eq!(hf, orig);
        // The element count of every tensor in openai/gpt-oss-20b's safetensors headers.
        assert_eq!(hf.parameter_count(), 20_914_757_184);
    }

    /// OpenAI's model card: gpt-oss-20b has 3.6B active parameters per token.
    #[test]
    fn active_parameters_and_flops_of_20b() {
        let c = Config::from_json_str(GPT_OSS_20B).unwrap();
        let active = c.active_parameters_per_token();
        assert!((3.55e9..3.65e9).contains(&(active as f64)), "{active}");
        // One token at position 0: each of the 24 layers sees one key.
        let per_key = 4.0 * 64.0 * 64.0;
        assert_eq!(c.forward_flops(0, 1), 2.0 * active as f64 + 24.0 * per_key);
        // Sliding layers see at most 128 keys.
        let late = c.forward_flops(1000, 1) - 2.0 * active as f64;
        assert_eq!(late, 12.0 * per_key * 128.0 + 12.0 * per_key * 1001.0);
    }

    #[test]
    fn validate_caps_every_config_however_it_was_built() {
        // A config built in code (as the GGUF reader builds one from metadata) gets the JSON caps.
        let ok = Config::from_json_str(GPT_OSS_20B).unwrap();
        let mut c = ok.clone();
        c.hidden_size = 1 << 20;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("hidden_size") && e.contains("1..=65536"), "{e}");
        let mut c = ok.clone();
        c.num_attention_heads = u32::MAX as usize;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("num_attention_heads")
        );
        let mut c = ok.clone();
        c.layer_types.pop();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("layer_types")
        );
        let mut c = ok;
        c.rope_scaling.original_max_position_embeddings = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("original_max_position_embeddings")
        );
    }

    #[test]
    fn parameter_count_of_120b() {
        let text = GPT_OSS_20B
            .replace("\"num_hidden_layers\":24", "\"num_hidden_layers\":36")
            .replace("\"num_local_experts\":32", "\"num_local_experts\":128");
        let v: Value = serde_json::from_str(&text).unwrap();
        let mut v = v;
        v.as_object_mut().unwrap().remove("layer_types");
        let c = Config::from_hf_json(&v).unwrap();
        assert_eq!(c.parameter_count(), 116_829_156_672);
    }

    #[test]
    fn unsupported_values_are_errors_not_defaults() {
        let cases = [
            (
                r#""rope_type":"yarn""#,
                r#""rope_type":"linear""#,
                "rope_type",
            ),
            (
                r#""tie_word_embeddings":false"#,
                r#""tie_word_embeddings":true"#,
                "tie_word_embeddings",
            ),
            (
                r#""truncate":false"#,
                r#""truncate":false,"partial_rotary_factor":0.5"#,
                "partial_rotary_factor",
            ),
            (
                r#""model_type":"gpt_oss""#,
                r#""model_type":"llama""#,
                "model_type",
            ),
            (
                r#""hidden_size":2880"#,
                r#""hidden_size":2881"#,
                "hidden_size",
            ),
            (
                r#""num_key_value_heads":8"#,
                r#""num_key_value_heads":7"#,
                "num_key_value_heads",
            ),
            (
                r#""sliding_window":128"#,
                r#""sliding_window":"128""#,
                "sliding_window",
            ),
            (
                r#""vocab_size":201088"#,
                r#""vocab_size":99999999999"#,
                "vocab_size",
            ),
        ];
        for (from, to, key) in cases {
            let text = GPT_OSS_20B.replace(from, to);
            assert_ne!(text, GPT_OSS_20B, "{from}");
            let err = Config::from_json_str(&text).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        let null = GPT_OSS_20B.replace(r#""rms_norm_eps":1e-05,"#, r#""rms_norm_eps":null,"#);
        assert!(
            matches!(Config::from_json_str(&null), Err(ConfigError::Null { key, .. }) if key == "rms_norm_eps")
        );
        let short = GPT_OSS_20B.replace(
            r#""sliding_attention","full_attention"],"#,
            r#""sliding_attention"],"#,
        );
        assert!(
            Config::from_json_str(&short)
                .unwrap_err()
                .to_string()
                .contains("layer_types")
        );
        assert!(matches!(
            Config::from_json_str("{not json"),
            Err(ConfigError::NotJson(_))
        ));
        assert!(matches!(
            Config::from_json_str("[1,2]"),
            Err(ConfigError::NotJson(_))
        ));
    }

    #[test]
    fn transformers_v5_rope_parameters_are_read() {
        let v5 = GPT_OSS_20B
            .replace(
                r#""rope_scaling":{"#,
                r#""rope_parameters":{"rope_theta":150000,"#,
            )
            .replace(r#""rope_theta":150000,"router"#, r#""router"#);
        let a = Config::from_json_str(&v5).unwrap();
        assert_eq!(a, Config::from_json_str(GPT_OSS_20B).unwrap());
    }

    /// `text` with `from` replaced by `to` (which must occur), parsed with its notes.
    fn edit(from: &str, to: &str) -> Result<(Config, Vec<ConfigNote>), ConfigError> {
        assert!(GPT_OSS_20B.contains(from), "{from}");
        Config::from_json_str_noted(&GPT_OSS_20B.replace(from, to))
    }

    fn note<'a>(notes: &'a [ConfigNote], key: &str) -> &'a str {
        &notes
            .iter()
            .find(|n| n.key == key)
            .unwrap_or_else(|| panic!("no note for {key}: {notes:?}"))
            .note
    }

    const ROPE: &str = r#""rope_scaling":{"beta_fast":32.0,
      "beta_slow":1.0,"factor":32.0,"original_max_position_embeddings":4096,"rope_type":"yarn","truncate":false},"#;

    /// transformers 5.x fills absent keys with `GptOssConfig`'s defaults: the same model, each
    /// default noted; no message names a key the file does not have.
    #[test]
    fn absent_keys_take_transformers_defaults_and_are_noted() {
        let base = Config::from_json_str(GPT_OSS_20B).unwrap();
        let (plain, notes) = Config::from_json_str_noted(GPT_OSS_20B).unwrap();
        assert_eq!(plain, base);
        assert!(notes.is_empty(), "{notes:?}");
        // transformers 4.x writes rope_theta beside rope_scaling; without it the default applies
        // (the old message asked for `rope_scaling.rope_theta`, a key no config has).
        let (c, notes) = edit(r#""rope_theta":150000,"#, "").unwrap();
        assert_eq!(c, base);
        assert!(note(&notes, "rope_theta").contains("150000"));
        // No rope dict at all, or a null one: gpt-oss's default yarn dict.
        let (c, notes) = edit(ROPE, "").unwrap();
        assert_eq!(c, base);
        assert!(note(&notes, "rope_parameters").contains("`rope_scaling` absent"));
        let (c, notes) = edit(ROPE, r#""rope_scaling":null,"#).unwrap();
        assert_eq!(c, base);
        assert!(note(&notes, "rope_parameters").contains("`rope_scaling` null"));
        for (from, key, want) in [
            (r#""rms_norm_eps":1e-05,"#, "rms_norm_eps", "1e-5"),
            (r#""swiglu_limit":7.0,"#, "swiglu_limit", "7"),
            (r#""sliding_window":128,"#, "sliding_window", "128"),
            (
                r#""max_position_embeddings":131072,"#,
                "max_position_embeddings",
                "131072",
            ),
            (r#""head_dim":64,"#, "head_dim", "64"),
            (r#""num_key_value_heads":8,"#, "num_key_value_heads", "8"),
            (r#""vocab_size":201088"#, "vocab_size", "201088"),
        ] {
            let text = GPT_OSS_20B.replace(from, "").replace(",}", "}");
            let (c, notes) = Config::from_json_str_noted(&text).unwrap();
            assert_eq!(c, base, "{key}");
            assert!(note(&notes, key).starts_with("absent"), "{key}");
            assert!(note(&notes, key).contains(want), "{key}: {notes:?}");
        }
        // A structural default: 36 layers and 128 experts when the keys are absent.
        let text = GPT_OSS_20B
            .replace(r#""num_hidden_layers":24,"#, "")
            .replace(r#""num_local_experts":32,"#, "");
        let mut v: Value = serde_json::from_str(&text).unwrap();
        v.as_object_mut().unwrap().remove("layer_types");
        let (c, notes) = Config::from_hf_json_noted(&v).unwrap();
        assert_eq!((c.num_hidden_layers, c.num_local_experts), (36, 128));
        assert_eq!(c.layer_types.len(), 36);
        assert!(note(&notes, "layer_types").starts_with("absent"));
        // `num_experts` is transformers' alias of num_local_experts.
        let (c, notes) = edit(r#""num_local_experts":32"#, r#""num_experts":32"#).unwrap();
        assert_eq!(c, base);
        assert!(note(&notes, "num_local_experts").contains("num_experts"));
        let e = edit(
            r#""num_local_experts":32"#,
            r#""num_local_experts":32,"num_experts":16"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("num_experts") && e.contains("16"), "{e}");
        // The yarn parameters transformers defaults: beta 32/1, truncate true, original context
        // = max_position_embeddings.
        let (c, notes) = edit(r#""beta_fast":32.0,"#, "").unwrap();
        assert_eq!(c, base);
        assert!(note(&notes, "rope_scaling.beta_fast").contains("32"));
        let (c, _) = edit(r#","truncate":false"#, "").unwrap();
        assert!(c.rope_scaling.truncate);
        let (c, notes) = edit(r#""original_max_position_embeddings":4096,"#, "").unwrap();
        assert_eq!(c.rope_scaling.original_max_position_embeddings, 131072);
        assert!(note(&notes, "rope_scaling.original_max_position_embeddings").contains("131072"));
        // v5's rope_parameters: the dict's rope_theta wins over a top-level one.
        let (c, notes) = edit(
            r#""rope_scaling":{"#,
            r#""rope_parameters":{"rope_theta":10000,"#,
        )
        .unwrap();
        assert_eq!(c.rope_theta, 10000.0);
        assert!(note(&notes, "rope_theta").contains("rope_parameters.rope_theta"));
        // A top-level original_max_position_embeddings replaces the dict's (Phi-3 rule).
        let (c, _) = edit(
            r#""rope_theta":150000,"#,
            r#""rope_theta":150000,"original_max_position_embeddings":8192,"#,
        )
        .unwrap();
        assert_eq!(c.rope_scaling.original_max_position_embeddings, 8192);
        // A key transformers' yarn does not read is ignored, and said so.
        let (c, notes) = edit(
            r#""truncate":false"#,
            r#""truncate":false,"low_freq_factor":1"#,
        )
        .unwrap();
        assert_eq!(c, base);
        assert!(note(&notes, "rope_scaling.low_freq_factor").starts_with("ignored"));
        // mscale / mscale_all_dim derive the attention factor when both are set.
        let (c, notes) = edit(
            r#""truncate":false"#,
            r#""truncate":false,"mscale":1.0,"mscale_all_dim":0.5"#,
        )
        .unwrap();
        let want = (0.1 * 32f64.ln() + 1.0) / (0.05 * 32f64.ln() + 1.0);
        assert_eq!(c.rope_scaling.attention_factor, Some(want));
        assert!(note(&notes, "rope_scaling.attention_factor").contains("mscale"));
        let (c, _) = edit(r#""truncate":false"#, r#""truncate":false,"mscale":1.0"#).unwrap();
        assert_eq!(c, base, "mscale alone changes nothing in transformers");
    }

    /// A null is a default exactly where transformers turns None into a value; elsewhere the
    /// refusal says "null", never "missing".
    #[test]
    fn null_keys_are_defaults_only_where_transformers_makes_them_so() {
        let base = Config::from_json_str(GPT_OSS_20B).unwrap();
        // Defaults for None in GptOssConfig.__post_init__ and _compute_yarn_parameters.
        let (c, notes) = edit(
            r#""num_key_value_heads":8"#,
            r#""num_key_value_heads":null"#,
        )
        .unwrap();
        assert_eq!(c.num_key_value_heads, 64);
        assert!(note(&notes, "num_key_value_heads").starts_with("null"));
        let (c, notes) = edit(r#""beta_slow":1.0"#, r#""beta_slow":null"#).unwrap();
        assert_eq!(c, base);
        assert!(note(&notes, "rope_scaling.beta_slow").starts_with("null"));
        let (c, _) = edit(r#""beta_fast":32.0"#, r#""beta_fast":0"#).unwrap();
        assert_eq!(c, base, "`or 32` turns 0 into 32");
        let (c, notes) = edit(r#""factor":32.0"#, r#""factor":null"#).unwrap();
        assert_eq!(c, base, "131072 / 4096 = 32");
        assert!(note(&notes, "rope_scaling.factor").contains("32"));
        // truncate: absent is true, null is falsy.
        let (c, notes) = edit(r#""truncate":false"#, r#""truncate":null"#).unwrap();
        assert_eq!(c, base);
        assert!(note(&notes, "rope_scaling.truncate").starts_with("null, read as false"));
        let (c, _) = edit(
            r#""truncate":false"#,
            r#""truncate":false,"attention_factor":null"#,
        )
        .unwrap();
        assert_eq!(c, base);
        let (c, _) = edit(r#""layer_types":["#, r#""layer_types":null,"x":["#).unwrap();
        assert_eq!(c, base);
        // head_dim null is hidden / heads = 45 here, which the forward pass cannot rotate.
        let e = edit(r#""head_dim":64"#, r#""head_dim":null"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("head_dim") && e.contains("45"), "{e}");
        // Everywhere else a null is refused, named as null.
        for (from, to, key) in [
            (
                r#""rms_norm_eps":1e-05"#,
                r#""rms_norm_eps":null"#,
                "rms_norm_eps",
            ),
            (
                r#""vocab_size":201088"#,
                r#""vocab_size":null"#,
                "vocab_size",
            ),
            (
                r#""sliding_window":128"#,
                r#""sliding_window":null"#,
                "sliding_window",
            ),
            (
                r#""rope_theta":150000"#,
                r#""rope_theta":null"#,
                "rope_theta",
            ),
            (
                r#""rope_type":"yarn""#,
                r#""rope_type":null"#,
                "rope_scaling.rope_type",
            ),
            (
                r#""original_max_position_embeddings":4096"#,
                r#""original_max_position_embeddings":null"#,
                "rope_scaling.original_max_position_embeddings",
            ),
            (
                r#""model_type":"gpt_oss""#,
                r#""model_type":null,"num_experts":1"#,
                "model_type",
            ),
            (
                r#""tie_word_embeddings":false"#,
                r#""tie_word_embeddings":null"#,
                "tie_word_embeddings",
            ),
        ] {
            let text = GPT_OSS_20B.replace(from, to);
            assert_ne!(text, GPT_OSS_20B, "{from}");
            let e = Config::from_hf_json(&serde_json::from_str(&text).unwrap()).unwrap_err();
            let msg = e.to_string();
            assert!(
                matches!(&e, ConfigError::Null { key: k, .. } if k == key),
                "{key}: {msg}"
            );
            assert!(msg.contains("is null") && !msg.contains("missing"), "{msg}");
        }
        // Absent rope_type: transformers would run plain RoPE; absent factor: it raises.
        let e = edit(r#","rope_type":"yarn""#, "").unwrap_err().to_string();
        assert!(
            e.contains("`rope_scaling.rope_type` is absent") && e.contains("plain RoPE"),
            "{e}"
        );
        let e = edit(r#""factor":32.0,"#, "").unwrap_err().to_string();
        assert!(e.contains("`rope_scaling.factor` is absent"), "{e}");
        // The legacy `type` key is read when rope_type is absent.
        let (c, _) = edit(r#""rope_type":"yarn""#, r#""type":"yarn""#).unwrap();
        assert_eq!(c, base);
    }
}
