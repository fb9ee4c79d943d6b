//! [`ConvertError`]: every error names the file, and the tensor where there is one.

use std::path::{Path, PathBuf};

/// Errors reading or writing model files.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// An operating-system error on a file.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The file's config could not be used.
    #[error("{}: {error}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        error: reference::ConfigError,
    },
    /// The file's structure is wrong (header, index, JSON).
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// One tensor is wrong (dtype, shape, offsets, values).
    #[error("{}: tensor `{tensor}`: {message}", path.display())]
    Tensor {
        /// The file holding the tensor (or the model directory).
        path: PathBuf,
        /// The tensor name as stored.
        tensor: String,
        /// What is wrong.
        message: String,
    },
    /// A tensor the config implies is absent.
    #[error("{}: missing tensor `{tensor}` (expected {expected})", path.display())]
    MissingTensor {
        /// The model directory or file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// Its expected dtype and shape.
        expected: String,
    },
    /// A tensor the config does not account for.
    #[error("{}: unexpected tensor `{tensor}` ({detail})", path.display())]
    UnexpectedTensor {
        /// The file holding it.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// Why it is unexpected.
        detail: String,
    },
    /// The disk filled up while writing an output (which was then removed).
    #[error("{}: no space left on device writing {file}: needed {needed} bytes, wrote {wrote}; the partial output was removed", path.display())]
    NoSpace {
        /// The output, under its final name (never created).
        path: PathBuf,
        /// The file being written when the disk filled (the output itself, or a file in it).
        file: String,
        /// Bytes the output needs.
        needed: u64,
        /// Bytes written before the error.
        wrote: u64,
    },
    /// Not enough free space to start writing an output.
    #[error("{}: not enough free space: needs {needed} bytes, {available} available on the file system of {}; nothing was written (--no-space-check skips this check)", path.display(), dir.display())]
    InsufficientSpace {
        /// The output, under its final name.
        path: PathBuf,
        /// The directory whose file system was measured.
        dir: PathBuf,
        /// Bytes the output needs.
        needed: u64,
        /// Bytes available to this user.
        available: u64,
    },
}

impl ConvertError {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        ConvertError::Io {
            path: path.as_ref().to_path_buf(),
            error: source,
        }
    }

    /// A structural error in `path`.
    pub fn format(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        ConvertError::Format {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }

    /// An error about one tensor of `path`.
    pub fn tensor(
        path: impl AsRef<Path>,
        tensor: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConvertError::Tensor {
            path: path.as_ref().to_path_buf(),
            tensor: tensor.into(),
            message: message.into(),
        }
    }

    /// An unusable config in `path`.
    pub fn config(path: impl AsRef<Path>, error: reference::ConfigError) -> Self {
        ConvertError::Config {
            path: path.as_ref().to_path_buf(),
            error,
        }
    }

    /// The writers' refusal of a source weight holding NaN or Inf (the same for every variant).
    pub fn nonfinite(src_path: impl AsRef<Path>, weight: reference::WeightId) -> Self {
        Self::tensor(
            src_path,
            weight.to_string(),
            "holds NaN or Inf values (pass --allow-nonfinite to convert anyway)",
        )
    }

    /// The writers' refusal of a source weight with an MXFP4 scale byte 255 (NaN).
    pub fn nan_scale(src_path: impl AsRef<Path>, weight: reference::WeightId) -> Self {
        Self::tensor(
            src_path,
            weight.to_string(),
            "an MXFP4 scale byte is 255 (NaN); pass --allow-nonfinite to convert anyway",
        )
    }
}

/// Results of this crate.
pub type Result<T, E = ConvertError> = std::result::Result<T, E>;
