//! The model hyperparameters, read from either config format the release ships.
//!
//! - HF `config.json` (transformers `configuration_gpt_oss.py`; the release's `config.json`):
//!   `model_type: "gpt_oss"`, `rope_scaling` (or transformers v5's `rope_parameters`) with
//!   `rope_type: "yarn"`.
//! - OpenAI `original/config.json` (mapped to HF keys by transformers'
//!   `convert_gpt_oss_weights_to_hf.py`): `num_experts`, `rope_scaling_factor`,
//!   `rope_ntk_alpha` (= beta_slow), `rope_ntk_beta` (= beta_fast); eps 1e-5, SwiGLU alpha 1.702
//!   and the even-layers-slide rule are hard-coded in OpenAI's code (openai/gpt-oss
//!   `gpt_oss/torch/model.py`).
//!
//! Every value the forward pass uses is read from the file. A key the release always writes
//! and this file lacks is an error; so is any value the pipeline does not implement (another
//! rope type, tied embeddings, mscale keys). The only defaults are the ones transformers itself
//! applies when a key is absent (documented on each field).

use serde_json::{Map, Value};

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

/// What is wrong with a config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not JSON, or not a JSON object.
    #[error("not a JSON object: {0}")]
    NotJson(String),
    /// A key every gpt-oss config carries is missing.
    #[error("missing key `{0}`")]
    Missing(String),
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

struct Obj<'a> {
    map: &'a Map<String, Value>,
    prefix: &'a str,
}

impl<'a> Obj<'a> {
    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
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
    fn usize_in(&self, k: &str, min: usize, max: usize) -> Result<usize, ConfigError> {
        let v = self.get(k)?;
        let n = v.as_u64().filter(|&n| n >= min as u64 && n <= max as u64);
        n.map(|n| n as usize)
            .ok_or_else(|| self.invalid(k, &format!("an integer in {min}..={max}"), v))
    }
    fn f64(&self, k: &str) -> Result<f64, ConfigError> {
        let v = self.get(k)?;
        v.as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| self.invalid(k, "a finite number", v))
    }
    fn opt_f64(&self, k: &str) -> Result<Option<f64>, ConfigError> {
        if self.map.get(k).is_none_or(Value::is_null) {
            Ok(None)
        } else {
            self.f64(k).map(Some)
        }
    }
    fn opt_bool(&self, k: &str) -> Result<Option<bool>, ConfigError> {
        match self.map.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.invalid(k, "true or false", v)),
        }
    }
    fn opt_str(&self, k: &str) -> Result<Option<&'a str>, ConfigError> {
        match self.map.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.invalid(k, "a string", v)),
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

impl Config {
    /// Parses the text of a config file in either format, deciding the format from its keys
    /// (`model_type` → HF; `num_experts` without `model_type` → original).
    pub fn from_json_str(text: &str) -> Result<Config, ConfigError> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| ConfigError::NotJson(e.to_string()))?;
        let o = object(&v, "")?;
        if o.map.contains_key("model_type") || !o.map.contains_key("num_experts") {
            Config::from_hf_json(&v)
        } else {
            Config::from_original_json(&v)
        }
    }

    /// Reads an HF-format `config.json`.
    pub fn from_hf_json(v: &Value) -> Result<Config, ConfigError> {
        let o = object(v, "")?;
        match o.opt_str("model_type")? {
            Some("gpt_oss") => {}
            Some(other) => {
                return Err(unsupported(
                    "model_type",
                    other,
                    "only gpt_oss is implemented",
                ));
            }
            None => return Err(ConfigError::Missing("model_type".into())),
        }
        if o.opt_bool("tie_word_embeddings")? == Some(true) {
            return Err(unsupported(
                "tie_word_embeddings",
                true,
                "gpt-oss has a separate lm_head",
            ));
        }
        if o.opt_bool("attention_bias")? == Some(false) {
            return Err(unsupported(
                "attention_bias",
                false,
                "gpt-oss attention has q/k/v/o biases",
            ));
        }
        let layers = o.usize_in("num_hidden_layers", 1, caps::LAYERS)?;
        let layer_types = match o.map.get("layer_types") {
            None | Some(Value::Null) => default_layer_types(layers),
            Some(Value::Array(items)) => {
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
            Some(other) => return Err(o.invalid("layer_types", "an array", other)),
        };
        // transformers v4 writes `rope_scaling` beside `rope_theta`; v5 folds both into
        // `rope_parameters`.
        let (rope_key, rope) = match (o.map.get("rope_scaling"), o.map.get("rope_parameters")) {
            (Some(r), _) if !r.is_null() => ("rope_scaling", r),
            (_, Some(r)) if !r.is_null() => ("rope_parameters", r),
            _ => return Err(ConfigError::Missing("rope_scaling".into())),
        };
        let prefix = format!("{rope_key}.");
        let r = object(rope, &prefix)?;
        let rope_theta = match o.opt_f64("rope_theta")? {
            Some(t) => t,
            None => r.f64("rope_theta")?,
        };
        let rope_scaling = Self::yarn(&r, rope_key)?;
        let swiglu_alpha = o.opt_f64("swiglu_alpha")?.unwrap_or(1.702) as f32;
        let cfg = Config {
            vocab_size: o.usize_in("vocab_size", 1, caps::VOCAB)?,
            hidden_size: o.usize_in("hidden_size", 1, caps::HIDDEN)?,
            intermediate_size: o.usize_in("intermediate_size", 1, caps::HIDDEN)?,
            num_hidden_layers: layers,
            num_attention_heads: o.usize_in("num_attention_heads", 1, caps::HEADS)?,
            num_key_value_heads: o.usize_in("num_key_value_heads", 1, caps::HEADS)?,
            head_dim: o.usize_in("head_dim", 2, caps::HEAD_DIM)?,
            num_local_experts: o.usize_in("num_local_experts", 1, caps::EXPERTS)?,
            num_experts_per_tok: o.usize_in("num_experts_per_tok", 1, caps::EXPERTS)?,
            sliding_window: o.usize_in("sliding_window", 1, caps::CONTEXT)?,
            layer_types,
            rms_norm_eps: o.f64("rms_norm_eps")? as f32,
            rope_theta,
            rope_scaling,
            max_position_embeddings: o.usize_in("max_position_embeddings", 1, caps::CONTEXT)?,
            swiglu_limit: o.f64("swiglu_limit")? as f32,
            swiglu_alpha,
            token_ids: TokenIds {
                eos: o.token_ids("eos_token_id")?,
                pad: o.token_ids("pad_token_id")?.first().copied(),
                bos: o.token_ids("bos_token_id")?.first().copied(),
            },
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn yarn(r: &Obj<'_>, rope_key: &str) -> Result<Yarn, ConfigError> {
        const KNOWN: [&str; 9] = [
            "rope_type",
            "type",
            "factor",
            "beta_fast",
            "beta_slow",
            "original_max_position_embeddings",
            "truncate",
            "attention_factor",
            "rope_theta",
        ];
        let rope_type = r.opt_str("rope_type")?.or(r.opt_str("type")?);
        match rope_type {
            Some("yarn") => {}
            Some(other) => {
                return Err(unsupported(
                    &r.key("rope_type"),
                    other,
                    "gpt-oss uses yarn; nothing else is implemented",
                ));
            }
            None => return Err(ConfigError::Missing(r.key("rope_type"))),
        }
        if let Some(k) = r.map.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(unsupported(
                &format!("{rope_key}.{k}"),
                &r.map[k],
                "this yarn parameter is not implemented",
            ));
        }
        let y = Yarn {
            factor: r.f64("factor")?,
            beta_fast: r.f64("beta_fast")?,
            beta_slow: r.f64("beta_slow")?,
            original_max_position_embeddings: r.usize_in(
                "original_max_position_embeddings",
                1,
                caps::CONTEXT,
            )?,
            truncate: r.opt_bool("truncate")?.unwrap_or(true),
            attention_factor: r.opt_f64("attention_factor")?,
        };
        if y.factor < 1.0 {
            return Err(r.invalid("factor", "a number >= 1", &r.map["factor"]));
        }
        if y.beta_fast <= 0.0 || y.beta_slow <= 0.0 {
            return Err(unsupported(
                &r.key("beta_fast"),
                y.beta_fast,
                "beta_fast and beta_slow must be positive",
            ));
        }
        Ok(y)
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
        macro_rules! cmp {
            ($($f:ident),*) => {$(
                if *$f != other.$f {
                    out.push(format!("{}: {:?} vs {:?}", stringify!($f), $f, other.$f));
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
            layer_types,
            rms_norm_eps,
            rope_theta,
            rope_scaling,
            max_position_embeddings,
            swiglu_limit,
            swiglu_alpha
        );
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
        assert_eq!(a.differences(&c).len(), 1);
        assert!(a.differences(&c)[0].starts_with("rope_scaling: "));
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
                r#""truncate":false,"mscale":1.0"#,
                "mscale",
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
        let missing = GPT_OSS_20B.replace(r#""rms_norm_eps":1e-05,"#, "");
        assert!(
            matches!(Config::from_json_str(&missing), Err(ConfigError::Missing(k)) if k == "rms_norm_eps")
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
}
