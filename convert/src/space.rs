//! Disk space: refuse to start a conversion that cannot fit, and when the disk fills anyway
//! (another process took the space, a quota), say which output, which file, how many bytes were
//! needed and how many got written. The partial output itself is removed by
//! [`Staged`](crate::atomic::Staged).

use crate::error::ConvertError;
use std::path::Path;

/// Bytes available to this user on the file system holding `dir` (`statvfs`: `f_bavail ·
/// f_frsize`). `None` when the file system does not say.
pub fn available(dir: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    st.f_bavail.checked_mul(st.f_frsize)
}

/// Fails with [`ConvertError::InsufficientSpace`] when `needed` bytes do not fit next to
/// `output` (whose parent directory must exist). Unknown free space passes.
pub fn ensure(output: &Path, needed: u64) -> Result<(), ConvertError> {
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match available(dir) {
        Some(available) if available < needed => Err(ConvertError::InsufficientSpace {
            path: output.to_path_buf(),
            dir: dir.to_path_buf(),
            needed,
            available,
        }),
        _ => Ok(()),
    }
}

/// True for the errors a full disk (or an exhausted quota) gives.
pub fn is_no_space(e: &std::io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    matches!(e.raw_os_error(), Some(ENOSPC | EDQUOT))
        || matches!(
            e.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        )
}

/// Bytes under `path` (a file, or a directory's files recursively).
pub fn bytes_under(path: &Path) -> u64 {
    if path.is_dir() {
        std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| bytes_under(&e.path()))
            .sum()
    } else {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }
}

/// Turns an I/O error on a temporary into [`ConvertError::NoSpace`] about `output` when it is a
/// full disk (and [`ConvertError::SizeLimit`] when a file-size limit stopped it); `written` is the temporary (file or directory) whose size tells what got written.
/// Other errors pass through.
pub fn name_full_disk(
    err: ConvertError,
    output: &Path,
    written: &Path,
    needed: u64,
) -> ConvertError {
    const EFBIG: i32 = 27;
    // The temporary itself is the output file: name it by its final name.
    let file = |path: &Path| {
        if path == written { output } else { path }
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    match &err {
        ConvertError::Io { path, error } if is_no_space(error) => ConvertError::NoSpace {
            path: output.to_path_buf(),
            file: file(path),
            needed,
            wrote: bytes_under(written),
        },
        ConvertError::Io { path, error } if error.raw_os_error() == Some(EFBIG) => {
            ConvertError::SizeLimit {
                path: output.to_path_buf(),
                file: file(path),
                needed,
                wrote: bytes_under(written),
            }
        }
        _ => err,
    }
}
