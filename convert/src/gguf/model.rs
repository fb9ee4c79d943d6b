//! [`GgufModel`]: a gpt-oss GGUF (one file, or llama.cpp splits found from the first) as a
//! [`WeightSource`].
//!
//! Weights map to llama.cpp's tensor names ([`names`](super::names) has the table); every
//! expert is a row range of its layer's stacked tensor (`[in, out, E]` weights: rows
//! `e·out .. (e+1)·out`; `[out, E]` biases: row `e`), so nothing is copied.
//!
//! The config comes from the `gpt-oss.*` keys ([`names::hparam`](super::names::hparam)), as
//! llama.cpp's `src/llama-model.cpp` (`LLM_ARCH_OPENAI_MOE`) loads them. llama.cpp hard-codes
//! what has no key (SwiGLU alpha 1.702 and limit 7.0, even layers sliding, YaRN without
//! truncation); so does this reader. A key with an unexpected type or a value the forward pass does not implement
//! (another rope scaling type, a sliding-window pattern other than llama.cpp's default, key and
//! value lengths that differ) is an error.

use super::file::{GgufFile, GgufTensor};
use super::names::{self, Content, Location, hparam as k, locate};
use super::{Codec, Value, split_path};
use crate::error::{ConvertError, Result};
use reference::config::{TokenIds, Yarn};
use reference::{Config, DenseType, Encoding, LayerType, MatRef, WeightId};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use super::names::ARCH;

/// A validated GGUF model.
pub struct GgufModel {
    files: Vec<GgufFile>,
    config: Config,
    names: HashMap<String, (usize, usize)>,
    /// The directory it was opened from, when given as one (a pipeline's `variants/gguf-*/`):
    /// an input too, since another model written into it would unmake it.
    dir: Option<PathBuf>,
}

/// The other split files of `first`, if its metadata says it is split (`split.*` keys and
/// names as llama.cpp's `gguf-split` and `src/llama.cpp` `llama_split_path` make them).
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
            // split.no counts from 0; people count splits from 1.
            let no = v.as_u64().map_or(format!("{v}"), |n| (n + 1).to_string());
            return Err(ConvertError::format(
                path,
                format!(
                    "is split {no} of {count}: open the first split (-00001-of-{count:05}.gguf)"
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
                    // split.no counts from 0, file names from 1.
                    let found = other.map_or("missing".to_string(), |v| format!("{v}"));
                    return Err(ConvertError::format(
                        p,
                        format!(
                            "split.no is {found}, expected {i}: split file {} of {} (named -{:05}-of-{:05}, counting from 1) holds split.no {i}, as split.no counts from 0",
                            i + 1,
                            paths.len(),
                            i + 1,
                            paths.len()
                        ),
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
                    let found = other.map_or("missing".to_string(), |v| format!("{v}"));
                    return Err(ConvertError::format(
                        files[0].path(),
                        format!(
                            "split.tensors.count is {found} but the splits hold {total} tensors"
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
        let embedding = Content::Single(WeightId::Embedding).name();
        let vocab = names
            .get(&embedding)
            .and_then(|&(f, t)| files[f].tensors()[t].ne.get(1).copied())
            .ok_or_else(|| ConvertError::MissingTensor {
                path: files[0].path().to_path_buf(),
                tensor: embedding.clone(),
                expected: "[hidden, vocab]".into(),
            })?;
        let config = config_from_metadata(&files[0], vocab)?;
        let model = GgufModel {
            files,
            config,
            names,
            dir: None,
        };
        model.check_tensors()?;
        Ok(model)
    }

    /// The files (one, or the splits in order).
    pub fn files(&self) -> &[GgufFile] {
        &self.files
    }

    /// Records that the model was opened from directory `dir` holding it alone.
    pub(crate) fn opened_from(mut self, dir: &Path) -> GgufModel {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// The directory the model was opened from, when given as one.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
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
        let expected: Vec<(String, Vec<u64>)> = names::contents(&self.config)
            .into_iter()
            .map(|c| (c.name(), c.shape(&self.config)))
            .collect();
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
        let Location {
            name,
            first,
            rows,
            cols,
        } = locate(id, &self.config);
        let (f, t) = self
            .tensor(&name)
            .ok_or_else(|| ConvertError::MissingTensor {
                path: self.files[0].path().to_path_buf(),
                tensor: name.clone(),
                expected: "a tensor".into(),
            })?;
        // A stop asked for, or a file changed under its map, ends the read here (no SIGBUS).
        crate::cancel::check(f.path())?;
        f.mapped().check_unchanged()?;
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
    match f.get(names::ARCHITECTURE_KEY) {
        Some(Value::String(a)) if a == ARCH => {}
        Some(v) => {
            return Err(bad(
                names::ARCHITECTURE_KEY,
                format!("is {v}; only \"{ARCH}\" is supported"),
            ));
        }
        None => return Err(bad(names::ARCHITECTURE_KEY, "missing".into())),
    }
    let key = names::key;
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
    let layers = u32_req(k::BLOCK_COUNT)?;
    if layers > 4096 {
        return Err(bad(
            &key(k::BLOCK_COUNT),
            format!("{layers} layers is beyond any gpt-oss"),
        ));
    }
    let heads = u32_req(k::HEAD_COUNT)?;
    let kv_heads = match get(k::HEAD_COUNT_KV) {
        None => heads,
        Some(_) => u32_req(k::HEAD_COUNT_KV)?,
    };
    let head_dim = u32_req(k::KEY_LENGTH)?;
    if u32_req(k::VALUE_LENGTH)? != head_dim {
        return Err(bad(
            &key(k::VALUE_LENGTH),
            "differs from key_length; gpt-oss uses one head width".into(),
        ));
    }
    if let Some(v) = get(k::SLIDING_WINDOW_PATTERN) {
        return Err(bad(
            &key(k::SLIDING_WINDOW_PATTERN),
            format!("{v}: only llama.cpp's default (even layers slide) is implemented"),
        ));
    }
    match get(k::ROPE_SCALING_TYPE) {
        Some(Value::String(s)) if s == "yarn" => {}
        Some(v) => {
            return Err(bad(
                &key(k::ROPE_SCALING_TYPE),
                format!("{v}: gpt-oss uses yarn; nothing else is implemented"),
            ));
        }
        None => {
            return Err(bad(
                &key(k::ROPE_SCALING_TYPE),
                "missing (llama.cpp would apply linear scaling)".into(),
            ));
        }
    }
    let context = u32_req(k::CONTEXT_LENGTH)?;
    let original = match get(k::ROPE_ORIGINAL_CONTEXT) {
        None => context,
        Some(_) => u32_req(k::ROPE_ORIGINAL_CONTEXT)?,
    };
    let token_id = |k: &str| -> Result<Option<u32>> {
        match f.get(k) {
            None => Ok(None),
            Some(Value::U32(v)) => Ok(Some(*v)),
            Some(v) => Err(bad(k, format!("must be u32, found {}", v.type_name()))),
        }
    };
    let cfg = Config {
        vocab_size: usize::try_from(vocab).map_err(|_| {
            bad(
                &Content::Single(WeightId::Embedding).name(),
                "vocab too large".into(),
            )
        })?,
        hidden_size: u32_req(k::EMBEDDING_LENGTH)?,
        intermediate_size: u32_req(k::EXPERT_FEED_FORWARD_LENGTH)?,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        head_dim,
        num_local_experts: u32_req(k::EXPERT_COUNT)?,
        num_experts_per_tok: u32_req(k::EXPERT_USED_COUNT)?,
        sliding_window: u32_req(k::SLIDING_WINDOW)?,
        layer_types: (0..layers)
            .map(|i| {
                if i % 2 == 0 {
                    LayerType::Sliding
                } else {
                    LayerType::Full
                }
            })
            .collect(),
        rms_norm_eps: f32_req(k::RMS_EPS)? as f32,
        rope_theta: f32_opt(k::ROPE_FREQ_BASE)?.unwrap_or(10000.0),
        rope_scaling: Yarn {
            factor: f32_req(k::ROPE_SCALING_FACTOR)?,
            beta_fast: f32_opt(k::YARN_BETA_FAST)?.unwrap_or(32.0),
            beta_slow: f32_opt(k::YARN_BETA_SLOW)?.unwrap_or(1.0),
            original_max_position_embeddings: original,
            truncate: false,
            attention_factor: None,
        },
        max_position_embeddings: context,
        swiglu_limit: 7.0,
        swiglu_alpha: 1.702,
        token_ids: TokenIds {
            eos: token_id(names::EOS_ID_KEY)?.into_iter().collect(),
            pad: token_id(names::PAD_ID_KEY)?,
            bos: token_id(names::BOS_ID_KEY)?,
        },
    };
    for (k, v) in [
        (k::BLOCK_COUNT, cfg.num_hidden_layers),
        (k::HEAD_COUNT, heads),
        (k::KEY_LENGTH, head_dim),
        (k::EXPERT_COUNT, cfg.num_local_experts),
        (k::EMBEDDING_LENGTH, cfg.hidden_size),
    ] {
        if v == 0 {
            return Err(bad(&key(k), "must be positive".into()));
        }
    }
    if cfg.rope_scaling.factor < 1.0 {
        return Err(bad(
            &key(k::ROPE_SCALING_FACTOR),
            format!("{} is below 1", cfg.rope_scaling.factor),
        ));
    }
    cfg.validate().map_err(|e| ConvertError::config(path, e))?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::writer::{PlannedTensor, encode_header};
    use crate::gguf::{DEFAULT_ALIGNMENT, pad};
    use crate::synth::{Preset, preset_config};

    fn cfg() -> Config {
        Config::from_hf_json(&preset_config(Preset::Tiny, Some(1))).unwrap()
    }

    /// The metadata of a gpt-oss GGUF of `cfg` (no tokenizer: the reader does not need one).
    fn metadata(cfg: &Config) -> Vec<(String, Value)> {
        let mut kv = vec![(
            names::ARCHITECTURE_KEY.to_string(),
            Value::String(ARCH.into()),
        )];
        kv.extend(names::hparams_kv(cfg, 0));
        kv
    }

    /// Every tensor of a gpt-oss GGUF of `cfg`, F32.
    fn tensors(cfg: &Config) -> Vec<PlannedTensor> {
        names::contents(cfg)
            .into_iter()
            .map(|c| PlannedTensor {
                name: c.name(),
                ne: c.shape(cfg),
                ty: Codec::F32,
            })
            .collect()
    }

    /// A whole file: header, then zeroed data.
    fn file(kv: &[(String, Value)], tensors: &[PlannedTensor]) -> Vec<u8> {
        let mut b = encode_header(kv, tensors);
        let data: u64 = tensors
            .iter()
            .map(|t| pad(t.nbytes(), DEFAULT_ALIGNMENT))
            .sum();
        b.resize(b.len() + data as usize, 0);
        b
    }

    fn open(path: &str, kv: &[(String, Value)], tensors: &[PlannedTensor]) -> Result<GgufModel> {
        GgufModel::from_first(GgufFile::from_bytes(path, file(kv, tensors))?)
    }

    /// The error of a model whose metadata `edit` changed.
    fn meta_err(edit: impl FnOnce(&mut Vec<(String, Value)>)) -> String {
        let cfg = cfg();
        let mut kv = metadata(&cfg);
        edit(&mut kv);
        match open("m.gguf", &kv, &tensors(&cfg)) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    /// The error of a model whose tensor list `edit` changed.
    fn tensor_err(edit: impl FnOnce(&mut Vec<PlannedTensor>)) -> String {
        let cfg = cfg();
        let mut t = tensors(&cfg);
        edit(&mut t);
        match open("m.gguf", &metadata(&cfg), &t) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    fn set(kv: &mut [(String, Value)], key: &str, v: Value) {
        kv.iter_mut().find(|(k, _)| k == key).expect(key).1 = v;
    }

    #[test]
    fn a_model_reads_back_its_config_and_views_experts_in_place() {
        let cfg = cfg();
        let m = open("m.gguf", &metadata(&cfg), &tensors(&cfg)).unwrap();
        assert!(
            m.config.same_model(&cfg),
            "{:?}",
            m.config.differences(&cfg)
        );
        let up = m.view(WeightId::Up(0, 1)).unwrap();
        assert_eq!((up.rows(), up.cols()), WeightId::Up(0, 1).shape(&cfg));
        let (_, t) = m.tensor("blk.0.ffn_up_exps.weight").unwrap();
        let Encoding::Dense { data, .. } = *up.encoding() else {
            panic!("F32 is dense")
        };
        let rows = cfg.intermediate_size * cfg.hidden_size * 4;
        assert_eq!(data.len(), rows);
        assert_eq!(
            data.as_ptr() as usize,
            m.files[0].data(t).as_ptr() as usize + rows
        );
    }

    #[test]
    fn another_architecture() {
        let e = meta_err(|kv| set(kv, "general.architecture", Value::String("llama".into())));
        assert!(
            e.contains("`general.architecture`") && e.contains("only \"gpt-oss\""),
            "{e}"
        );
    }

    #[test]
    fn a_required_key_is_missing() {
        let e = meta_err(|kv| kv.retain(|(k, _)| k != "gpt-oss.block_count"));
        assert!(e.contains("metadata `gpt-oss.block_count`: missing"), "{e}");
    }

    #[test]
    fn a_key_has_the_wrong_type() {
        let e = meta_err(|kv| set(kv, "gpt-oss.expert_count", Value::F32(8.0)));
        assert!(
            e.contains("`gpt-oss.expert_count`: must be u32, found f32"),
            "{e}"
        );
        let e = meta_err(|kv| set(kv, "gpt-oss.rope.freq_base", Value::U32(1)));
        assert!(
            e.contains("`gpt-oss.rope.freq_base`: must be f32, found u32"),
            "{e}"
        );
    }

    #[test]
    fn value_and_key_lengths_differ() {
        let e = meta_err(|kv| set(kv, "gpt-oss.attention.value_length", Value::U32(7)));
        assert!(
            e.contains("attention.value_length`: differs from key_length"),
            "{e}"
        );
    }

    #[test]
    fn a_sliding_window_pattern_is_refused() {
        let e = meta_err(|kv| {
            kv.push((
                "gpt-oss.attention.sliding_window_pattern".into(),
                Value::U32(3),
            ))
        });
        assert!(
            e.contains("only llama.cpp's default (even layers slide)"),
            "{e}"
        );
    }

    #[test]
    fn rope_scaling_other_than_yarn() {
        let e = meta_err(|kv| {
            set(
                kv,
                "gpt-oss.rope.scaling.type",
                Value::String("linear".into()),
            )
        });
        assert!(e.contains("gpt-oss uses yarn"), "{e}");
        let e = meta_err(|kv| kv.retain(|(k, _)| k != "gpt-oss.rope.scaling.type"));
        assert!(e.contains("llama.cpp would apply linear scaling"), "{e}");
        let e = meta_err(|kv| set(kv, "gpt-oss.rope.scaling.factor", Value::F32(0.5)));
        assert!(e.contains("rope.scaling.factor`: 0.5 is below 1"), "{e}");
    }

    #[test]
    fn zero_or_absurd_sizes() {
        let e = meta_err(|kv| set(kv, "gpt-oss.expert_count", Value::U32(0)));
        assert!(
            e.contains("`gpt-oss.expert_count`: must be positive"),
            "{e}"
        );
        let e = meta_err(|kv| set(kv, "gpt-oss.block_count", Value::U32(5000)));
        assert!(e.contains("5000 layers is beyond any gpt-oss"), "{e}");
    }

    #[test]
    fn a_tensor_is_missing() {
        let e = tensor_err(|t| t.retain(|t| t.name != "blk.0.attn_sinks.weight"));
        assert!(
            e.contains("missing tensor `blk.0.attn_sinks.weight`"),
            "{e}"
        );
        let e = tensor_err(|t| t.retain(|t| t.name != "token_embd.weight"));
        assert!(
            e.contains("missing tensor `token_embd.weight` (expected [hidden, vocab])"),
            "{e}"
        );
    }

    #[test]
    fn a_tensor_has_the_wrong_shape() {
        let e = tensor_err(|t| {
            t.iter_mut()
                .find(|t| t.name == "blk.0.attn_sinks.weight")
                .unwrap()
                .ne = vec![3]
        });
        assert!(
            e.contains("tensor `blk.0.attn_sinks.weight`: is F32[3], the metadata implies ne"),
            "{e}"
        );
    }

    #[test]
    fn an_unexpected_tensor() {
        let e = tensor_err(|t| {
            t.push(PlannedTensor {
                name: "blk.1.attn_sinks.weight".into(),
                ne: vec![1],
                ty: Codec::F32,
            })
        });
        assert!(
            e.contains(
                "unexpected tensor `blk.1.attn_sinks.weight` (not part of a 1-layer gpt-oss GGUF)"
            ),
            "{e}"
        );
    }

    #[test]
    fn split_count_of_the_wrong_type() {
        let e = meta_err(|kv| kv.push(("split.count".into(), Value::U32(2))));
        assert!(e.contains("split.count must be u16, found u32"), "{e}");
    }

    #[test]
    fn a_later_split_is_not_an_entry_point() {
        let e = meta_err(|kv| {
            kv.push(("split.no".into(), Value::U16(1)));
            kv.push(("split.count".into(), Value::U16(2)));
        });
        assert!(
            e.contains("open the first split (-00001-of-00002.gguf)"),
            "{e}"
        );
        let e = meta_err(|kv| kv.push(("split.count".into(), Value::U16(2))));
        assert!(
            e.contains("split.count is set but split.no is missing"),
            "{e}"
        );
    }

    #[test]
    fn the_first_split_must_be_named_like_one() {
        let e = meta_err(|kv| {
            kv.push(("split.no".into(), Value::U16(0)));
            kv.push(("split.count".into(), Value::U16(2)));
        });
        assert!(
            e.contains("split 1 of 2 must be named PREFIX-00001-of-00002.gguf"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_split_is_named() {
        let cfg = cfg();
        let mut kv = metadata(&cfg);
        kv.extend([
            ("split.no".into(), Value::U16(0)),
            ("split.count".into(), Value::U16(2)),
        ]);
        let path = "/nonexistent/m-00001-of-00002.gguf";
        let e = open(path, &kv, &tensors(&cfg)).err().unwrap().to_string();
        assert!(
            e.contains("split 2 of 2 is missing: /nonexistent/m-00002-of-00002.gguf"),
            "{e}"
        );
    }
}
