//! What a runtime reads from a model besides its weights, read the same way for every format so
//! that `verify` can compare a variant with its original key by key.
//!
//! | part | a GGUF | a safetensors model |
//! |---|---|---|
//! | [`RuntimeMeta::kv`]: `general.*`, `gpt-oss.*`, `tokenizer.*` (what llama.cpp reads) | its own metadata (the first split's) | the keys llama.cpp's converter writes for it ([`crate::gguf::meta`]): hyperparameters from its config, tokenizer keys from its `tokenizer.json`, `tokenizer_config.json`, chat template and `config.json` |
//! | [`RuntimeMeta::files`]: what transformers and vLLM read besides the weights | the same files, when they lie beside it | `config.json` (the HF config the safetensors writer starts from: the model's own, the release's for `original/`, else one rebuilt from the hyperparameters), `generation_config.json`, `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`, `chat_template.jinja`, `chat_template.json`, found by [`crate::companion`]'s rule |
//!
//! Tokens whose ids are past `vocab_size` cannot be in a GGUF: a safetensors model's `kv` leaves
//! them out and lists them in [`RuntimeMeta::tokens_past_vocab`]. Parts that cannot be read
//! (no `tokenizer.json`, a file that is not JSON) are listed in [`RuntimeMeta::unreadable`]
//! rather than failing the whole read: the comparison decides what they mean.

use crate::error::chain;
use crate::gguf::Value;
use crate::model::AnyModel;
use serde_json::Value as Json;

/// The files beside a model that transformers and vLLM read, in the order they are compared.
pub const FILES: [&str; 7] = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
];

/// The content of a file beside a model.
#[derive(Clone, Debug, PartialEq)]
pub enum FileContent {
    /// A JSON file, parsed.
    Json(Json),
    /// A text file (`chat_template.jinja`).
    Text(String),
}

/// Which container a model is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// A GGUF file (or split set): llama.cpp reads its metadata and nothing else.
    Gguf,
    /// A safetensors directory: transformers and vLLM read the files beside the weights.
    Safetensors,
}

/// Everything a runtime reads from a model besides its weights (see the module table).
#[derive(Clone, Debug, PartialEq)]
pub struct RuntimeMeta {
    /// The container.
    pub container: Container,
    /// GGUF metadata keys and values, in file order.
    pub kv: Vec<(String, Value)>,
    /// Files beside the model, in [`FILES`] order; absent files are not listed.
    pub files: Vec<(String, FileContent)>,
    /// Parts that could not be read, as (part, why): `tokenizer.json` when it is absent or
    /// unusable (the `tokenizer.*` keys of a safetensors model come from it), or a file name.
    pub unreadable: Vec<(String, String)>,
    /// Tokens of the tokenizer whose ids are at or past `vocab_size`, as (id, text): a
    /// safetensors model's `kv` leaves them out, as `--truncate-vocab` does.
    pub tokens_past_vocab: Vec<(u64, String)>,
}

impl RuntimeMeta {
    /// Reads what a runtime reads from `model`. Never fails: what cannot be read is listed in
    /// [`RuntimeMeta::unreadable`].
    pub fn read(model: &AnyModel) -> RuntimeMeta {
        let cfg = model.source().config();
        let mut unreadable = Vec::new();
        let mut tokens_past_vocab = Vec::new();
        let (container, kv) = match model {
            AnyModel::Gguf(g) => (Container::Gguf, g.files()[0].kv().to_vec()),
            AnyModel::Safetensors(_) => {
                let mut kv = crate::gguf::meta::model_kv(cfg, &model.name_dir(), 0);
                if model.companion("tokenizer.json").is_none() {
                    unreadable.push((
                        "tokenizer.json".to_string(),
                        "not found beside the model".to_string(),
                    ));
                } else {
                    match crate::variant::gguf::tokenizer_kv_of(model, true) {
                        Ok((tok, past)) => {
                            kv.extend(tok);
                            tokens_past_vocab = past;
                        }
                        Err(e) => unreadable.push(("tokenizer.json".to_string(), chain(&e))),
                    }
                }
                (Container::Safetensors, kv)
            }
        };
        let mut files = Vec::new();
        for name in FILES {
            let content = if name == "config.json" {
                crate::variant::st::meta::base_config(model, cfg).map(FileContent::Json)
            } else {
                let Some(path) = model.companion(name) else {
                    continue;
                };
                if name.ends_with(".json") {
                    crate::checkpoint::read_json(&path).map(FileContent::Json)
                } else {
                    std::fs::read_to_string(&path)
                        .map(FileContent::Text)
                        .map_err(|e| crate::ConvertError::io(&path, e))
                }
            };
            match content {
                Ok(c) => files.push((name.to_string(), c)),
                Err(e) => {
                    if !unreadable.iter().any(|(p, _)| p == name) {
                        unreadable.push((name.to_string(), chain(&e)));
                    }
                }
            }
        }
        RuntimeMeta {
            container,
            kv,
            files,
            unreadable,
            tokens_past_vocab,
        }
    }

    /// The value of GGUF key `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kv.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The content of the file `name`.
    pub fn file(&self, name: &str) -> Option<&FileContent> {
        self.files.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    /// Why `part` could not be read, if it could not.
    pub fn unreadable(&self, part: &str) -> Option<&str> {
        self.unreadable
            .iter()
            .find(|(p, _)| p == part)
            .map(|(_, w)| w.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(p: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(p)
    }

    #[test]
    fn a_release_and_llama_cpps_gguf_of_it_read_the_same_runtime_keys() {
        let release = RuntimeMeta::read(&AnyModel::open(fixture("tiny-gpt-oss")).unwrap());
        let gguf = RuntimeMeta::read(
            &AnyModel::open(fixture("llamacpp/tiny-gpt-oss.llamacpp-auto.gguf")).unwrap(),
        );
        assert_eq!(release.container, Container::Safetensors);
        assert!(release.unreadable.is_empty(), "{:?}", release.unreadable);
        for (k, v) in &gguf.kv {
            if !k.starts_with("general.") {
                assert_eq!(release.get(k), Some(v), "{k}");
            }
        }
        let names: Vec<&str> = release.files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, FILES[..6]);
        // The GGUF has no files beside it but the HF config rebuilt from its hyperparameters.
        assert_eq!(gguf.files.len(), 1);
    }

    #[test]
    fn the_original_folder_reads_the_release_files() {
        let release = RuntimeMeta::read(&AnyModel::open(fixture("tiny-gpt-oss")).unwrap());
        let original =
            RuntimeMeta::read(&AnyModel::open(fixture("tiny-gpt-oss/original")).unwrap());
        assert_eq!(original.files, release.files);
        let tokenizer = |m: &RuntimeMeta| -> Vec<(String, Value)> {
            m.kv.iter()
                .filter(|(k, _)| !k.starts_with("general."))
                .cloned()
                .collect()
        };
        assert_eq!(tokenizer(&original), tokenizer(&release));
    }
}
