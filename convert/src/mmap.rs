//! Read-only memory maps: the only `unsafe` in the workspace.
//!
//! Model files are mapped, not read, so a 65 GB checkpoint costs no heap. Pages the process has
//! touched count toward its resident set, though, so [`MappedFile::release`] drops a byte range
//! from the process with `madvise(MADV_DONTNEED)` once it has been consumed: the pages stay in the
//! kernel's page cache (a later access is a cheap minor fault), but the process's RSS stays near
//! the working set of one tensor however large the model is.
//!
//! A mapped file that another process truncates makes every later access to the cut pages a
//! SIGBUS, which would kill the process with no message; one rewritten in place changes the
//! bytes under a view. So the size and modification time seen when the file was opened are
//! kept, and [`MappedFile::check_unchanged`] compares them with the open file's (`fstat`) now.
//! The readers call it before handing out a view of a tensor and the writers after each tensor
//! they wrote, turning a change into an error naming the file ([`ConvertError::Changed`]). The
//! residual risk: a truncation that lands between the check and the read of that one tensor
//! (an expert, or a few MiB of a dense weight) still faults.

use crate::error::{ConvertError, Result};
use memmap2::{Mmap, MmapOptions, UncheckedAdvice};
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A file mapped read-only.
pub struct MappedFile {
    path: PathBuf,
    map: Option<Mmap>,
    /// The open file, and its length and modification time when it was mapped.
    file: Option<(File, u64, Option<SystemTime>)>,
    /// Bytes held in memory instead of a mapping ([`MappedFile::from_bytes`]).
    owned: Vec<u8>,
}

impl MappedFile {
    /// Maps `path` read-only. An empty file maps to an empty slice.
    pub fn open(path: impl AsRef<Path>) -> Result<MappedFile> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| ConvertError::io(&path, e))?;
        let meta = file.metadata().map_err(|e| ConvertError::io(&path, e))?;
        let len = meta.len();
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the mapping is read-only and private. Like every mmap-based reader
            // (safetensors, llama.cpp), this relies on the file not being truncated or rewritten
            // by another process while it is mapped; every offset used later is checked against
            // the length seen here.
            #[allow(unsafe_code)]
            let map =
                unsafe { MmapOptions::new().map(&file) }.map_err(|e| ConvertError::io(&path, e))?;
            Some(map)
        };
        Ok(MappedFile {
            path,
            map,
            file: Some((file, len, meta.modified().ok())),
            owned: Vec::new(),
        })
    }

    /// Fails with [`ConvertError::Changed`] when the file's length or modification time is no
    /// longer what it was when it was mapped (see the module docs). Bytes in memory never
    /// change.
    pub fn check_unchanged(&self) -> Result<()> {
        let Some((file, len, mtime)) = &self.file else {
            return Ok(());
        };
        let meta = file
            .metadata()
            .map_err(|e| ConvertError::io(&self.path, e))?;
        let what = if meta.len() != *len {
            format!("{len} bytes when opened, now {}", meta.len())
        } else if meta.modified().ok() != *mtime {
            "rewritten after it was opened (its modification time changed)".to_string()
        } else {
            return Ok(());
        };
        Err(ConvertError::Changed {
            path: self.path.clone(),
            what,
        })
    }

    /// Bytes already in memory, presented as the file `path` (the fuzz targets and tests
    /// parse untrusted bytes this way without touching the disk).
    pub fn from_bytes(path: impl AsRef<Path>, bytes: Vec<u8>) -> MappedFile {
        MappedFile {
            path: path.as_ref().to_path_buf(),
            map: None,
            file: None,
            owned: bytes,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&self.owned)
    }

    /// Drops the pages wholly inside `range` from this process (see the module docs). Errors
    /// are ignored: this is only a hint.
    pub fn release(&self, range: Range<usize>) {
        let Some(map) = &self.map else { return };
        const PAGE: usize = 4096;
        let start = range.start.div_ceil(PAGE) * PAGE;
        let end = range.end.min(map.len()) / PAGE * PAGE;
        if end > start {
            // SAFETY: MADV_DONTNEED on a private, read-only file mapping only discards clean
            // pages; the next access reads the same bytes back from the file. No reference into
            // the mapping observes different contents.
            #[allow(unsafe_code)]
            let _ = unsafe {
                map.unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }
}

impl MappedFile {
    /// Maps the pages of `slice` in one call (`MADV_POPULATE_READ`) if it points into this
    /// mapping, instead of one page fault per 64 KiB while it is read. A hint: errors (a kernel
    /// before 5.14) are ignored.
    pub fn populate_slice(&self, slice: &[u8]) {
        let Some(map) = &self.map else { return };
        let base = map.as_ptr() as usize;
        let start = slice.as_ptr() as usize;
        if start >= base && start + slice.len() <= base + map.len() {
            let _ = map.advise_range(memmap2::Advice::PopulateRead, start - base, slice.len());
        }
    }

    /// Releases `slice` if it points into this mapping (see [`MappedFile::release`]).
    pub fn release_slice(&self, slice: &[u8]) {
        let Some(map) = &self.map else { return };
        let base = map.as_ptr() as usize;
        let start = slice.as_ptr() as usize;
        if start >= base && start + slice.len() <= base + map.len() {
            self.release(start - base..start - base + slice.len());
        }
    }
}
