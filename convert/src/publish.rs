//! File helpers for publishing: SHA-256 of files, small files written atomically, and the
//! companion files (tokenizer, generation config) found next to a model.

use crate::error::{ConvertError, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;

/// Hex SHA-256 of a file, read in 1 MiB chunks (never the whole file in memory).
pub fn sha256_file(path: &Path) -> Result<String> {
    sha256_file_with(path, &crate::variant::NoProgress)
}

/// [`sha256_file`], reporting each chunk's bytes to `progress` (whose phase the caller begins
/// and ends) and stopping with [`ConvertError::Interrupted`] once a stop is asked for
/// ([`crate::cancel`]).
pub fn sha256_file_with(path: &Path, progress: &dyn crate::variant::Progress) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| ConvertError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        crate::cancel::check(path)?;
        let n = f.read(&mut buf).map_err(|e| ConvertError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        progress.advance(n as u64);
    }
    Ok(hex(&h.finalize()))
}

/// Hex SHA-256 of bytes.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `path` through a temporary sibling, synced, then renamed: readers see the
/// old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let staged = crate::atomic::Staged::create(path, false, true)?;
    let mut f =
        std::fs::File::create(staged.path()).map_err(|e| ConvertError::io(staged.path(), e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| ConvertError::io(path, e))?;
    staged.commit()?;
    Ok(())
}

/// Reads a file whole (small files only: configs, tokenizers, reports).
pub fn read_small(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| ConvertError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let p = std::env::temp_dir().join(format!("ossf-sha-{}", std::process::id()));
        write_atomic(&p, b"abc").unwrap();
        assert_eq!(sha256_file(&p).unwrap(), sha256_bytes(b"abc"));
        std::fs::remove_file(&p).unwrap();
    }
}
