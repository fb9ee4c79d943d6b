//! Opening any model path: a safetensors directory (release, `original/`, or a variant
//! directory) or a GGUF file.

use crate::checkpoint::Checkpoint;
use crate::error::{ConvertError, Result};
use crate::gguf::{GgufFile, GgufModel};
use crate::names::Layout;
use reference::WeightSource;
use std::path::{Path, PathBuf};

/// For a path that names a file of a model directory (a shard, `config.json`, an index):
/// `; the model is the directory holding it: pass DIR`.
fn directory_hint(path: &Path) -> String {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let model_file = name.ends_with(".safetensors") || name.ends_with(".json");
    if model_file && (parent.join("config.json").is_file() || path.is_file()) {
        format!(
            "; a model is the directory holding its files: pass {}",
            parent.display()
        )
    } else {
        String::new()
    }
}

/// A model of any supported format.
pub enum AnyModel {
    /// A safetensors directory.
    Safetensors(Checkpoint),
    /// A GGUF file (the first split of a split model).
    Gguf(GgufModel),
}

/// The `.gguf` files directly in `dir` (any case; hidden files left out), in name order.
pub(crate) fn gguf_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut ggufs: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| ConvertError::io(dir, e))? {
        let p = entry.map_err(|e| ConvertError::io(dir, e))?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_file()
            && !name.starts_with('.')
            && p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        {
            ggufs.push(p);
        }
    }
    ggufs.sort();
    Ok(ggufs)
}

/// The GGUF model a directory without `config.json` holds, as `pipeline` writes a GGUF variant
/// (`variants/gguf-q8_0/MODEL-Q8_0.gguf`): its only `.gguf` file, or the first split of its only
/// split set (`-00001-of-N.gguf`). `None` when it holds no `.gguf` file (the directory's own
/// error follows); an error naming them when it holds more than one model.
fn lone_gguf(dir: &Path) -> Result<Option<PathBuf>> {
    let ggufs = gguf_files(dir)?;
    // A split set counts once, by its first split.
    let models: Vec<&PathBuf> = ggufs
        .iter()
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !is_later_split(name)
        })
        .collect();
    match models.as_slice() {
        [] if !ggufs.is_empty() => Err(ConvertError::format(
            dir,
            format!(
                "no config.json, and no first split among its GGUF files ({}): a split set opens from its -00001-of- file",
                ggufs
                    .iter()
                    .filter_map(|p| p.file_name().and_then(|n| n.to_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        many => Err(ConvertError::format(
            dir,
            format!(
                "no config.json, and {} GGUF models in it: pass one of them ({})",
                many.len(),
                many.iter()
                    .filter_map(|p| p.file_name().and_then(|n| n.to_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// True for `NAME-0000K-of-0000N.gguf` with `K > 1` (llama.cpp's split naming), whatever the
/// extension's case.
fn is_later_split(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    crate::gguf::split_name_parts(&lower).is_some_and(|(_, k, _)| k > 1)
}

impl AnyModel {
    /// Opens and validates `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<AnyModel> {
        let path = path.as_ref();
        if path.is_dir() {
            if !path.join("config.json").exists()
                && let Some(gguf) = lone_gguf(path)?
            {
                return Ok(AnyModel::Gguf(GgufModel::open(gguf)?.opened_from(path)));
            }
            return Ok(AnyModel::Safetensors(Checkpoint::open(path)?));
        }
        if !path.exists() {
            return Err(ConvertError::format(
                path,
                format!("no such file or directory{}", directory_hint(path)),
            ));
        }
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
            || GgufFile::has_magic(path)
        {
            return Ok(AnyModel::Gguf(GgufModel::open(path)?));
        }
        Err(ConvertError::format(
            path,
            format!(
                "is a file, not a model directory or a GGUF file{}",
                directory_hint(path)
            ),
        ))
    }

    /// Fails with [`ConvertError::Changed`] when one of the model's files was truncated or
    /// rewritten since it was opened ([`crate::mmap::MappedFile::check_unchanged`]).
    pub fn check_unchanged(&self) -> Result<()> {
        match self {
            AnyModel::Safetensors(c) => c
                .files()
                .iter()
                .try_for_each(|f| f.mapped().check_unchanged()),
            AnyModel::Gguf(g) => g
                .files()
                .iter()
                .try_for_each(|f| f.mapped().check_unchanged()),
        }
    }

    /// Bytes of tensor data in the model's files (headers and padding aside): what `fit`
    /// compares with a variant's planned weights.
    pub fn tensor_bytes(&self) -> u64 {
        match self {
            AnyModel::Safetensors(c) => c
                .files()
                .iter()
                .flat_map(|f| f.tensors())
                .map(|t| t.range.len() as u64)
                .sum(),
            AnyModel::Gguf(g) => g
                .files()
                .iter()
                .flat_map(|f| f.tensors())
                .map(|t| t.range.len() as u64)
                .sum(),
        }
    }

    /// The model as a weight source.
    pub fn source(&self) -> &dyn WeightSource {
        match self {
            AnyModel::Safetensors(c) => c,
            AnyModel::Gguf(g) => g,
        }
    }

    /// The path it was opened from.
    pub fn path(&self) -> PathBuf {
        match self {
            AnyModel::Safetensors(c) => c.dir().to_path_buf(),
            AnyModel::Gguf(g) => g.files()[0].path().to_path_buf(),
        }
    }

    /// A short description of the format ("hf-mxfp4", "original", "gguf MXFP4_MOE", ...).
    pub fn format_name(&self) -> String {
        match self {
            AnyModel::Safetensors(c) => c.layout().describe(),
            AnyModel::Gguf(g) => match g
                .get("general.file_type")
                .and_then(crate::gguf::Value::as_u64)
            {
                Some(ft) => format!("gguf {}", crate::gguf::meta::file_type_name(ft)),
                None => "gguf".to_string(),
            },
        }
    }

    /// The tensor order llama.cpp's converter walks this model in: for a release checkpoint or
    /// transformers' dense layout, its shards in file-name order with the names sorted within
    /// each shard; for any other model, every release tensor name sorted, as one shard.
    pub fn release_order(&self) -> Vec<String> {
        if let AnyModel::Safetensors(c) = self
            && matches!(c.layout(), Layout::Release | Layout::Dense)
        {
            let mut order = Vec::new();
            for f in c.files() {
                let mut names: Vec<String> = f.tensors().iter().map(|t| t.name.clone()).collect();
                names.sort();
                order.extend(names);
            }
            return order;
        }
        crate::names::sorted_release_names(self.source().config())
    }

    /// The GGUF model, for a GGUF source (its metadata travels into GGUF outputs).
    pub fn gguf(&self) -> Option<&GgufModel> {
        match self {
            AnyModel::Gguf(g) => Some(g),
            AnyModel::Safetensors(_) => None,
        }
    }

    /// Every existing companion file called `name` (`tokenizer.json`, `config.json`, ...), in
    /// the order [`crate::companion`] searches.
    pub fn companions(&self, name: &str) -> Vec<PathBuf> {
        crate::companion::candidates(&self.path(), name)
    }

    /// The first companion file called `name`.
    pub fn companion(&self, name: &str) -> Option<PathBuf> {
        self.companions(name).into_iter().next()
    }

    /// The directory whose name the model takes ([`crate::companion::model_dir`]).
    pub fn name_dir(&self) -> PathBuf {
        crate::companion::model_dir(&self.path())
    }
}
