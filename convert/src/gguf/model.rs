//! [`GgufModel`]: a gpt-oss GGUF (one file, or llama.cpp splits found from the first) as a
//! [`WeightSource`].
//!
//! Weights map to llama.cpp's tensor names (`spec/gguf.md` §3.2); every expert is a row range of
//! its layer's stacked tensor, so nothing is copied:
//!
//! | weight | tensor | rows of the view |
//! |---|---|---|
//! | embedding / lm_head | `token_embd.weight` / `output.weight` `[H, V]` | all |
//! | final norm, attention norm, MLP norm | `output_norm.weight`, `blk.N.attn_norm.weight`, `blk.N.post_attention_norm.weight` | the one row |
//! | q, k, v, o (+ bias) | `blk.N.attn_{q,k,v,output}.{weight,bias}` | all |
//! | sinks | `blk.N.attn_sinks.weight` | the one row |
//! | router (+ bias) | `blk.N.ffn_gate_inp.{weight,bias}` `[H, E]` | all |
//! | expert e gate / up / down | `blk.N.ffn_{gate,up,down}_exps.weight` `[in, out, E]` | `e·out .. (e+1)·out` |
//! | expert e biases | `blk.N.ffn_{gate,up,down}_exps.bias` `[out, E]` | row `e` |
//!
//! The config comes from the `gpt-oss.*` keys (§2.2, §2.5). llama.cpp hard-codes what has no key
//! (SwiGLU alpha 1.702 and limit 7.0, even layers sliding, YaRN without truncation); so does this
//! reader. A key with an unexpected type or a value the forward pass does not implement
//! (another rope scaling type, a sliding-window pattern other than llama.cpp's default, key and
//! value lengths that differ) is an error.

use super::file::{GgufFile, GgufTensor};
use super::{Codec, Value, split_path};
use crate::error::{ConvertError, Result};
use reference::config::{TokenIds, Yarn};
use reference::{Config, DenseType, Encoding, LayerType, MatRef, WeightId};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The architecture name llama.cpp uses for gpt-oss.
pub const ARCH: &str = "gpt-oss";

/// A validated GGUF model.
pub struct GgufModel {
    files: Vec<GgufFile>,
    config: Config,
    names: HashMap<String, (usize, usize)>,
}

/// The GGUF tensor holding `id`, and the row range of it that `id` is: `(name, first row, rows,
/// cols)`.
pub fn locate(id: WeightId, cfg: &Config) -> (String, usize, usize, usize) {
    use WeightId::*;
    let (rows, cols) = id.shape(cfg);
    let blk = |l: usize, s: &str| format!("blk.{l}.{s}");
    let (name, first) = match id {
        Embedding => ("token_embd.weight".to_string(), 0),
        LmHead => ("output.weight".into(), 0),
        FinalNorm => ("output_norm.weight".into(), 0),
        AttnNorm(l) => (blk(l, "attn_norm.weight"), 0),
        MlpNorm(l) => (blk(l, "post_attention_norm.weight"), 0),
        QProj(l) => (blk(l, "attn_q.weight"), 0),
        QBias(l) => (blk(l, "attn_q.bias"), 0),
        KProj(l) => (blk(l, "attn_k.weight"), 0),
        KBias(l) => (blk(l, "attn_k.bias"), 0),
        VProj(l) => (blk(l, "attn_v.weight"), 0),
        VBias(l) => (blk(l, "attn_v.bias"), 0),
        OProj(l) => (blk(l, "attn_output.weight"), 0),
        OBias(l) => (blk(l, "attn_output.bias"), 0),
        Sinks(l) => (blk(l, "attn_sinks.weight"), 0),
        Router(l) => (blk(l, "ffn_gate_inp.weight"), 0),
        RouterBias(l) => (blk(l, "ffn_gate_inp.bias"), 0),
        Gate(l, e) => (blk(l, "ffn_gate_exps.weight"), e * rows),
        Up(l, e) => (blk(l, "ffn_up_exps.weight"), e * rows),
        Down(l, e) => (blk(l, "ffn_down_exps.weight"), e * rows),
        GateBias(l, e) => (blk(l, "ffn_gate_exps.bias"), e),
        UpBias(l, e) => (blk(l, "ffn_up_exps.bias"), e),
        DownBias(l, e) => (blk(l, "ffn_down_exps.bias"), e),
    };
    (name, first, rows, cols)
}

/// Every tensor a gpt-oss GGUF of `cfg` holds, with its `ne`, in no particular order.
pub fn expected_tensors(cfg: &Config) -> Vec<(String, Vec<u64>)> {
    let (h, i, e, v) = (
        cfg.hidden_size as u64,
        cfg.intermediate_size as u64,
        cfg.num_local_experts as u64,
        cfg.vocab_size as u64,
    );
    let (q, kv, nh) = (
        cfg.q_dim() as u64,
        cfg.kv_dim() as u64,
        cfg.num_attention_heads as u64,
    );
    let mut out = vec![
        ("token_embd.weight".to_string(), vec![h, v]),
        ("output.weight".to_string(), vec![h, v]),
        ("output_norm.weight".to_string(), vec![h]),
    ];
    for l in 0..cfg.num_hidden_layers {
        let t = |s: &str, ne: Vec<u64>| (format!("blk.{l}.{s}"), ne);
        out.extend([
            t("attn_norm.weight", vec![h]),
            t("post_attention_norm.weight", vec![h]),
            t("attn_q.weight", vec![h, q]),
            t("attn_q.bias", vec![q]),
            t("attn_k.weight", vec![h, kv]),
            t("attn_k.bias", vec![kv]),
            t("attn_v.weight", vec![h, kv]),
            t("attn_v.bias", vec![kv]),
            t("attn_output.weight", vec![q, h]),
            t("attn_output.bias", vec![h]),
            t("attn_sinks.weight", vec![nh]),
            t("ffn_gate_inp.weight", vec![h, e]),
            t("ffn_gate_inp.bias", vec![e]),
            t("ffn_gate_exps.weight", vec![h, i, e]),
            t("ffn_up_exps.weight", vec![h, i, e]),
            t("ffn_down_exps.weight", vec![i, h, e]),
            t("ffn_gate_exps.bias", vec![i, e]),
            t("ffn_up_exps.bias", vec![i, e]),
            t("ffn_down_exps.bias", vec![h, e]),
        ]);
    }
    out
}

/// The other split files of `first`, if its metadata says it is split (`spec/gguf.md` §1.4).
fn split_paths(first: &GgufFile) -> Result<Vec<PathBuf>> {
    let path = first.path();
    let count = match first.get("split.count") {
        None => return Ok(vec![path.to_path_buf()]),
        Some(Value::U16(n)) => *n as usize,
        Some(v) => {
            return Err(ConvertError::format(
                path,
                format!("split.count must be u16, found {}", v.type_name()),
            ));
        }
    };
    if count <= 1 {
        return Ok(vec![path.to_path_buf()]);
    }
    match first.get("split.no") {
        Some(Value::U16(0)) => {}
        Some(v) => {
            return Err(ConvertError::format(
                path,
                format!(
                    "is split {v:?} of {count}: open the first split (-00001-of-{count:05}.gguf)"
                ),
            ));
        }
        None => {
            return Err(ConvertError::format(
                path,
                "split.count is set but split.no is missing",
            ));
        }
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix = format!("-00001-of-{count:05}.gguf");
    let Some(stem) = name.strip_suffix(&suffix) else {
        return Err(ConvertError::format(
            path,
            format!("split 1 of {count} must be named PREFIX{suffix}"),
        ));
    };
    let base = path.with_file_name(format!("{stem}.gguf"));
    Ok((0..count).map(|i| split_path(&base, i, count)).collect())
}

impl GgufModel {
    /// Opens a GGUF file (the first split of a split model) and validates everything.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufModel> {
        GgufModel::from_first(GgufFile::open(path.as_ref())?)
    }

    /// Validates a model whose first (or only) file is already parsed; other splits are
    /// opened from disk next to it.
    pub fn from_first(first: GgufFile) -> Result<GgufModel> {
        let paths = split_paths(&first)?;
        let mut files = vec![first];
        for (i, p) in paths.iter().enumerate().skip(1) {
            if !p.is_file() {
                return Err(ConvertError::format(
                    files[0].path(),
                    format!(
                        "split {} of {} is missing: {}",
                        i + 1,
                        paths.len(),
                        p.display()
                    ),
                ));
            }
            let f = GgufFile::open(p)?;
            match f.get("split.no") {
                Some(Value::U16(n)) if *n as usize == i => {}
                other => {
                    return Err(ConvertError::format(
                        p,
                        format!("split.no is {other:?}, expected {i}"),
                    ));
                }
            }
            files.push(f);
        }
        let total: usize = files.iter().map(|f| f.tensors().len()).sum();
        if paths.len() > 1 {
            match files[0].get("split.tensors.count") {
                Some(Value::I32(n)) if *n as i64 == total as i64 => {}
                other => {
                    return Err(ConvertError::format(
                        files[0].path(),
                        format!(
                            "split.tensors.count is {other:?} but the splits hold {total} tensors"
                        ),
                    ));
                }
            }
        }
        let mut names = HashMap::new();
        for (fi, f) in files.iter().enumerate() {
            for (ti, t) in f.tensors().iter().enumerate() {
                if let Some((other, _)) = names.insert(t.name.clone(), (fi, ti)) {
                    let other: &GgufFile = &files[other];
                    return Err(ConvertError::tensor(
                        f.path(),
                        &t.name,
                        format!("also stored in {}", other.path().display()),
                    ));
                }
            }
        }
        let vocab = names
            .get("token_embd.weight")
            .and_then(|&(f, t)| files[f].tensors()[t].ne.get(1).copied())
            .ok_or_else(|| ConvertError::MissingTensor {
                path: files[0].path().to_path_buf(),
                tensor: "token_embd.weight".into(),
                expected: "[hidden, vocab]".into(),
            })?;
        let config = config_from_metadata(&files[0], vocab)?;
        let model = GgufModel {
            files,
            config,
            names,
        };
        model.check_tensors()?;
        Ok(model)
    }

    /// The files (one, or the splits in order).
    pub fn files(&self) -> &[GgufFile] {
        &self.files
    }

    /// The first file's metadata value for `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.files[0].get(key)
    }

    /// A tensor by name, with its file.
    pub fn tensor(&self, name: &str) -> Option<(&GgufFile, &GgufTensor)> {
        self.names
            .get(name)
            .map(|&(f, t)| (&self.files[f], &self.files[f].tensors()[t]))
    }

    fn check_tensors(&self) -> Result<()> {
        let expected = expected_tensors(&self.config);
        let path = self.files[0].path();
        for (name, ne) in &expected {
            let Some((f, t)) = self.tensor(name) else {
                return Err(ConvertError::MissingTensor {
                    path: path.to_path_buf(),
                    tensor: name.clone(),
                    expected: format!("ne {ne:?}"),
                });
            };
            if &t.ne != ne {
                return Err(ConvertError::tensor(
                    f.path(),
                    name,
                    format!("is {}, the metadata implies ne {ne:?}", t.describe()),
                ));
            }
        }
        if self.names.len() != expected.len() {
            let known: std::collections::HashSet<&str> =
                expected.iter().map(|(n, _)| n.as_str()).collect();
            for f in &self.files {
                if let Some(t) = f
                    .tensors()
                    .iter()
                    .find(|t| !known.contains(t.name.as_str()))
                {
                    return Err(ConvertError::UnexpectedTensor {
                        path: f.path().to_path_buf(),
                        tensor: t.name.clone(),
                        detail: format!(
                            "not part of a {}-layer gpt-oss GGUF",
                            self.config.num_hidden_layers
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    fn view(&self, id: WeightId) -> Result<MatRef<'_>> {
        let (name, first, rows, cols) = locate(id, &self.config);
        let (f, t) = self
            .tensor(&name)
            .ok_or_else(|| ConvertError::MissingTensor {
                path: self.files[0].path().to_path_buf(),
                tensor: name.clone(),
                expected: "a tensor".into(),
            })?;
        let data = f.data(t);
        let rb = t.ty.row_bytes(cols);
        let slice = data.get(first * rb..(first + rows) * rb).ok_or_else(|| {
            ConvertError::tensor(
                f.path(),
                &name,
                format!(
                    "{} is too small for rows {first}..{}",
                    t.describe(),
                    first + rows
                ),
            )
        })?;
        let enc = match t.ty {
            Codec::F32 => Encoding::Dense {
                dtype: DenseType::F32,
                data: slice,
                row_stride: cols,
                col_stride: 1,
            },
            Codec::F16 => Encoding::Dense {
                dtype: DenseType::F16,
                data: slice,
                row_stride: cols,
                col_stride: 1,
            },
            Codec::BF16 => Encoding::Dense {
                dtype: DenseType::BF16,
                data: slice,
                row_stride: cols,
                col_stride: 1,
            },
            codec => Encoding::Ggml {
                codec,
                data: slice,
                row_step: 1,
            },
        };
        MatRef::new(rows, cols, enc)
            .map_err(|e| ConvertError::tensor(f.path(), &name, e.to_string()))
    }
}

crate::mapped_weight_source!(GgufModel);

/// Reads the gpt-oss hyperparameters from GGUF metadata.
fn config_from_metadata(f: &GgufFile, vocab: u64) -> Result<Config> {
    let path = f.path();
    let bad =
        |key: &str, msg: String| ConvertError::format(path, format!("metadata `{key}`: {msg}"));
    match f.get("general.architecture") {
        Some(Value::String(a)) if a == ARCH => {}
        Some(v) => {
            return Err(bad(
                "general.architecture",
                format!("is {v:?}; only {ARCH:?} is supported"),
            ));
        }
        None => return Err(bad("general.architecture", "missing".into())),
    }
    let key = |k: &str| format!("{ARCH}.{k}");
    let get = |k: &str| f.get(&key(k));
    let u32_req = |k: &str| -> Result<usize> {
        match get(k) {
            Some(Value::U32(v)) => Ok(*v as usize),
            Some(v) => Err(bad(
                &key(k),
                format!("must be u32, found {}", v.type_name()),
            )),
            None => Err(bad(&key(k), "missing".into())),
        }
    };
    let f32_opt = |k: &str| -> Result<Option<f64>> {
        match get(k) {
            Some(Value::F32(v)) => Ok(Some(*v as f64)),
            Some(v) => Err(bad(
                &key(k),
                format!("must be f32, found {}", v.type_name()),
            )),
            None => Ok(None),
        }
    };
    let f32_req = |k: &str| f32_opt(k)?.ok_or_else(|| bad(&key(k), "missing".into()));
    let layers = u32_req("block_count")?;
    if layers > 4096 {
        return Err(bad(
            &key("block_count"),
            format!("{layers} layers is beyond any gpt-oss"),
        ));
    }
    let heads = u32_req("attention.head_count")?;
    let kv_heads = match get("attention.head_count_kv") {
        None => heads,
        Some(_) => u32_req("attention.head_count_kv")?,
    };
    let head_dim = u32_req("attention.key_length")?;
    if u32_req("attention.value_length")? != head_dim {
        return Err(bad(
            &key("attention.value_length"),
            "differs from key_length; gpt-oss uses one head width".into(),
        ));
    }
    if let Some(v) = get("attention.sliding_window_pattern") {
        return Err(bad(
            &key("attention.sliding_window_pattern"),
            format!("{v:?}: only llama.cpp's default (even layers slide) is implemented"),
        ));
    }
    match get("rope.scaling.type") {
        Some(Value::String(s)) if s == "yarn" => {}
        Some(v) => {
            return Err(bad(
                &key("rope.scaling.type"),
                format!("{v:?}: gpt-oss uses yarn; nothing else is implemented"),
            ));
        }
        None => {
            return Err(bad(
                &key("rope.scaling.type"),
                "missing (llama.cpp would apply linear scaling)".into(),
            ));
        }
    }
    let context = u32_req("context_length")?;
    let original = match get("rope.scaling.original_context_length") {
        None => context,
        Some(_) => u32_req("rope.scaling.original_context_length")?,
    };
    let token_id = |k: &str| -> Result<Option<u32>> {
        match f.get(k) {
            None => Ok(None),
            Some(Value::U32(v)) => Ok(Some(*v)),
            Some(v) => Err(bad(k, format!("must be u32, found {}", v.type_name()))),
        }
    };
    let cfg = Config {
        vocab_size: usize::try_from(vocab)
            .map_err(|_| bad("token_embd.weight", "vocab too large".into()))?,
        hidden_size: u32_req("embedding_length")?,
        intermediate_size: u32_req("expert_feed_forward_length")?,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        head_dim,
        num_local_experts: u32_req("expert_count")?,
        num_experts_per_tok: u32_req("expert_used_count")?,
        sliding_window: u32_req("attention.sliding_window")?,
        layer_types: (0..layers)
            .map(|i| {
                if i % 2 == 0 {
                    LayerType::Sliding
                } else {
                    LayerType::Full
                }
            })
            .collect(),
        rms_norm_eps: f32_req("attention.layer_norm_rms_epsilon")? as f32,
        rope_theta: f32_opt("rope.freq_base")?.unwrap_or(10000.0),
        rope_scaling: Yarn {
            factor: f32_req("rope.scaling.factor")?,
            beta_fast: f32_opt("rope.scaling.yarn_beta_fast")?.unwrap_or(32.0),
            beta_slow: f32_opt("rope.scaling.yarn_beta_slow")?.unwrap_or(1.0),
            original_max_position_embeddings: original,
            truncate: false,
            attention_factor: None,
        },
        max_position_embeddings: context,
        swiglu_limit: 7.0,
        swiglu_alpha: 1.702,
        token_ids: TokenIds {
            eos: token_id("tokenizer.ggml.eos_token_id")?
                .into_iter()
                .collect(),
            pad: token_id("tokenizer.ggml.padding_token_id")?,
            bos: token_id("tokenizer.ggml.bos_token_id")?,
        },
    };
    for (k, v) in [
        ("block_count", cfg.num_hidden_layers),
        ("attention.head_count", heads),
        ("attention.key_length", head_dim),
        ("expert_count", cfg.num_local_experts),
        ("embedding_length", cfg.hidden_size),
    ] {
        if v == 0 {
            return Err(bad(&key(k), "must be positive".into()));
        }
    }
    if cfg.rope_scaling.factor < 1.0 {
        return Err(bad(
            &key("rope.scaling.factor"),
            format!("{} is below 1", cfg.rope_scaling.factor),
        ));
    }
    cfg.validate().map_err(|e| ConvertError::config(path, e))?;
    Ok(cfg)
}
