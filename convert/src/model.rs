//! Opening any model path: a safetensors directory (release, `original/`, or a variant
//! directory) or a GGUF file.

use crate::checkpoint::Checkpoint;
use crate::error::{ConvertError, Result};
use reference::WeightSource;
use std::path::{Path, PathBuf};

/// A model of any supported format.
pub enum AnyModel {
    /// A safetensors directory.
    Safetensors(Checkpoint),
}

impl AnyModel {
    /// Opens and validates `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<AnyModel> {
        let path = path.as_ref();
        if path.is_dir() {
            return Ok(AnyModel::Safetensors(Checkpoint::open(path)?));
        }
        if !path.exists() {
            return Err(ConvertError::format(path, "no such file or directory"));
        }
        Err(ConvertError::format(path, "not a model directory or a GGUF file"))
    }

    /// The model as a weight source.
    pub fn source(&self) -> &dyn WeightSource {
        match self {
            AnyModel::Safetensors(c) => c,
        }
    }

    /// The path it was opened from.
    pub fn path(&self) -> PathBuf {
        match self {
            AnyModel::Safetensors(c) => c.dir().to_path_buf(),
        }
    }

    /// A short description of the format ("hf-mxfp4", "original", "gguf MXFP4_MOE", ...).
    pub fn format_name(&self) -> String {
        match self {
            AnyModel::Safetensors(c) => c.layout().name().to_string(),
        }
    }
}
