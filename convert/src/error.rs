//! [`ConvertError`]: every error names the file, and the tensor where there is one. An
//! underlying error (the OS error, the config error) is kept as the [`source`](std::error::Error::source)
//! (std::error::Error::source) rather than copied into the message: `anyhow`'s `{:#}` prints the
//! whole chain, `path: error`.

use std::path::{Path, PathBuf};

/// Errors reading or writing model files.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// An operating-system error on a file.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        error: std::io::Error,
    },
    /// The file's config could not be used.
    #[error("{}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
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
    /// A file-size limit (`ulimit -f`, `EFBIG`) stopped the write of an output (which was then
    /// removed).
    #[error("{}: the file-size limit (ulimit -f) stopped the write of {file} after {wrote} bytes of {needed}; the partial output was removed", path.display())]
    SizeLimit {
        /// The output, under its final name (never created).
        path: PathBuf,
        /// The file being written when the limit was hit.
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
    /// The run was asked to stop (Ctrl-C, SIGTERM) and did; its partial output was removed
    /// ([`crate::cancel`]).
    #[error("{}: interrupted", path.display())]
    Interrupted {
        /// What was being written or read.
        path: PathBuf,
    },
    /// Another run holds the lock of this output ([`crate::lock`]).
    #[error("{}: another oss-forge run{} is writing this output (lock {}); wait for it to finish, or stop it", path.display(), pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), lock.display())]
    Locked {
        /// The output.
        path: PathBuf,
        /// The process holding the lock, when the lock file says.
        pid: Option<u32>,
        /// The lock file.
        lock: PathBuf,
    },
    /// An input file changed while it was being read (truncated or rewritten by another
    /// process): reading on through its memory map would have read other bytes, or faulted.
    #[error("{}: changed on disk while being read ({what}): another process truncated or rewrote it", path.display())]
    Changed {
        /// The input file.
        path: PathBuf,
        /// What changed (`123 bytes when opened, now 64`).
        what: String,
    },
    /// The output would overwrite an input, or sit inside one.
    #[error("{}: output is the input: {relation} the model being read ({}); choose an output outside it", path.display(), input.display())]
    OutputIsInput {
        /// The output.
        path: PathBuf,
        /// `is`, `is inside` or `contains`.
        relation: &'static str,
        /// The input (a model directory or file).
        input: PathBuf,
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

    /// [`ConvertError::nonfinite`] with the place: the first non-finite value `value` at `row`,
    /// `col` of the weight (in 32-value block `col / 32` of that row).
    pub fn nonfinite_at(
        src_path: impl AsRef<Path>,
        weight: reference::WeightId,
        row: usize,
        col: usize,
        value: f32,
    ) -> Self {
        Self::tensor(
            src_path,
            weight.to_string(),
            format!(
                "holds NaN or Inf values, the first {value} at row {row}, column {col} (32-value block {} of that row); pass --allow-nonfinite to convert anyway",
                col / 32
            ),
        )
    }

    /// The writers' refusal of a finite source value that the output would store as NaN or
    /// ±Inf (float16 overflow), naming the weight, row, column, block and value.
    pub fn overflow(
        src_path: impl AsRef<Path>,
        weight: reference::WeightId,
        at: &crate::variant::Overflow,
    ) -> Self {
        let src = src_path.as_ref();
        Self::tensor(
            src,
            weight.to_string(),
            format!(
                "{at}; pass --allow-nonfinite to convert anyway (`oss-forge inspect {}` lists every tensor with values past float16's range)",
                src.display()
            ),
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

/// `error` and its sources, joined by `: ` (what `anyhow`'s `{:#}` prints), for messages that
/// embed an error in text.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}

/// Results of this crate.
pub type Result<T, E = ConvertError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn io_and_config_errors_keep_their_source() {
        let os = std::io::Error::from(std::io::ErrorKind::NotFound);
        let text = os.to_string();
        let e = ConvertError::io("/m/x.safetensors", os);
        assert_eq!(e.to_string(), "/m/x.safetensors");
        let source = e.source().expect("the OS error");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        assert_eq!(chain(&e), format!("/m/x.safetensors: {text}"));

        let e = ConvertError::config(
            "/m/config.json",
            reference::ConfigError::Missing("x".into()),
        );
        assert_eq!(chain(&e), "/m/config.json: missing key `x`");
        assert!(e.source().is_some());
    }

    #[test]
    fn format_and_tensor_errors_name_file_and_tensor() {
        let e = ConvertError::tensor("/m/a.gguf", "blk.0.attn_q.weight", "is wrong");
        assert_eq!(
            e.to_string(),
            "/m/a.gguf: tensor `blk.0.attn_q.weight`: is wrong"
        );
        assert!(e.source().is_none());
        let e = ConvertError::nonfinite("/m", reference::WeightId::Sinks(2));
        assert!(e.to_string().contains("--allow-nonfinite"), "{e}");
    }
}
