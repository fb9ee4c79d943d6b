//! One run per output: an advisory lock (`flock`) on a file beside the output, held while the
//! run writes.
//!
//! The lock file is `.<name>.lock` in the output's parent directory (outside the output, so a
//! published directory never lists it), holding the owner's pid for the message the other run
//! prints. A second run into the same output is refused at once with
//! [`ConvertError::Locked`], naming the pid; nothing waits. The lock is the kernel's, so a run
//! that is killed releases it; the file it leaves is reused, and removed by the next run that
//! finishes. Removing a lock file while others may open it needs care: a run that locked a
//! file which was then removed (and replaced by another run's new file) finds that the path no
//! longer names its file, and locks again.

use crate::error::{ConvertError, Result};
use rustix::fs::{FlockOperation, flock};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A held lock on an output; released (and its file removed) when dropped.
#[derive(Debug)]
pub struct OutputLock {
    file: File,
    path: PathBuf,
}

/// The lock file of `output`: `.<name>.lock` beside it.
pub fn lock_path(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    output.with_file_name(format!(".{name}.lock"))
}

impl OutputLock {
    /// Takes the lock of `output` (creating its parent directory if needed), or fails with
    /// [`ConvertError::Locked`] when another run holds it.
    pub fn acquire(output: &Path) -> Result<OutputLock> {
        let path = lock_path(output);
        if let Some(parent) = path.parent()
            && !parent.is_dir()
        {
            std::fs::create_dir_all(parent).map_err(|e| ConvertError::io(parent, e))?;
        }
        loop {
            let mut file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| {
                    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
                    ConvertError::format(
                        dir.unwrap_or(Path::new(".")),
                        format!("cannot write an output here ({e}); nothing was started"),
                    )
                })?;
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    let mut text = String::new();
                    let _ = file.read_to_string(&mut text);
                    return Err(ConvertError::Locked {
                        path: output.to_path_buf(),
                        pid: text.trim().parse().ok(),
                        lock: path,
                    });
                }
                Err(e) => return Err(ConvertError::io(&path, e.into())),
            }
            // The holder before us may have removed the file after we opened it: then the path
            // names another file (or none), and our lock guards nothing.
            let ours = file.metadata().map_err(|e| ConvertError::io(&path, e))?;
            let now = std::fs::metadata(&path);
            if !now.is_ok_and(|m| m.dev() == ours.dev() && m.ino() == ours.ino()) {
                continue;
            }
            let pid = std::process::id().to_string();
            file.set_len(0)
                .and_then(|_| file.rewind())
                .and_then(|_| file.write_all(pid.as_bytes()))
                .map_err(|e| ConvertError::io(&path, e))?;
            return Ok(OutputLock { file, path });
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Removed while still locked: a run waiting on this file finds it gone and starts over.
        let _ = std::fs::remove_file(&self.path);
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_output_is_refused_with_the_holder_s_pid() {
        let dir = std::env::temp_dir().join(format!("ossf-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = dir.join("sub/out.gguf");
        let held = OutputLock::acquire(&out).unwrap();
        assert_eq!(held.path(), dir.join("sub/.out.gguf.lock"));
        // flock locks belong to the open file: a second open in the same process conflicts too.
        let err = OutputLock::acquire(&out).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())) && msg.contains(".out.gguf.lock"),
            "{msg}"
        );
        // Another output is free.
        let other = OutputLock::acquire(&dir.join("sub/other")).unwrap();
        drop(held);
        assert!(
            !dir.join("sub/.out.gguf.lock").exists(),
            "removed on release"
        );
        let again = OutputLock::acquire(&out).unwrap();
        drop((again, other));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
