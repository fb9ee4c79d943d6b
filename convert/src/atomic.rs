//! Output that appears under its final name only when complete.
//!
//! A [`Staged`] output is written at a hidden sibling path, `.<name>.partial-<pid>`, and renamed
//! to `<name>` by [`Staged::commit`]. Dropped without a commit (an error, a panic) it removes its
//! temporary. A run that was killed cannot clean up after itself, so creating a staged output
//! first removes any `.<name>.partial-<pid>` whose process no longer exists.

use crate::error::{ConvertError, Result};
use std::path::{Path, PathBuf};

/// A file or directory being written under a temporary name.
#[derive(Debug)]
pub struct Staged {
    final_path: PathBuf,
    tmp_path: PathBuf,
    is_dir: bool,
    force: bool,
    committed: bool,
}

fn partial_prefix(final_path: &Path) -> String {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.partial-")
}

fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes temporaries of `final_path` left by runs that no longer exist. Returns how many.
pub fn clean_stale(final_path: &Path) -> usize {
    let parent = final_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let prefix = partial_prefix(final_path);
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !pid_alive(pid) {
            let p = e.path();
            let ok = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            removed += ok.is_ok() as usize;
        }
    }
    removed
}

impl Staged {
    /// Starts writing `final_path` (a directory when `is_dir`). Refuses an existing output
    /// unless `force`.
    pub fn create(final_path: &Path, is_dir: bool, force: bool) -> Result<Staged> {
        if final_path.exists() && !force {
            return Err(ConvertError::format(
                final_path,
                "already exists (pass --force to overwrite)",
            ));
        }
        let parent = final_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !parent.is_dir() {
            std::fs::create_dir_all(parent).map_err(|e| ConvertError::io(parent, e))?;
        }
        clean_stale(final_path);
        let tmp_path = parent.join(format!(
            "{}{}",
            partial_prefix(final_path),
            std::process::id()
        ));
        if tmp_path.exists() {
            let _ = if tmp_path.is_dir() {
                std::fs::remove_dir_all(&tmp_path)
            } else {
                std::fs::remove_file(&tmp_path)
            };
        }
        if is_dir {
            std::fs::create_dir(&tmp_path).map_err(|e| ConvertError::io(&tmp_path, e))?;
        }
        Ok(Staged {
            final_path: final_path.to_path_buf(),
            tmp_path,
            is_dir,
            force,
            committed: false,
        })
    }

    /// Where to write now.
    pub fn path(&self) -> &Path {
        &self.tmp_path
    }

    /// The name the output gets on commit.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Moves the finished output to its final name (replacing an old one when forced).
    pub fn commit(mut self) -> Result<PathBuf> {
        if self.final_path.exists() {
            if !self.force {
                return Err(ConvertError::format(
                    &self.final_path,
                    "appeared while writing; not overwritten",
                ));
            }
            let old = self.tmp_path.with_extension("old");
            std::fs::rename(&self.final_path, &old)
                .map_err(|e| ConvertError::io(&self.final_path, e))?;
            let _ = if old.is_dir() {
                std::fs::remove_dir_all(&old)
            } else {
                std::fs::remove_file(&old)
            };
        }
        std::fs::rename(&self.tmp_path, &self.final_path)
            .map_err(|e| ConvertError::io(&self.final_path, e))?;
        self.committed = true;
        Ok(self.final_path.clone())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = if self.is_dir {
                std::fs::remove_dir_all(&self.tmp_path)
            } else {
                std::fs::remove_file(&self.tmp_path)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_under_the_final_name_until_commit() {
        let base = std::env::temp_dir().join(format!("ossf-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let out = base.join("out");
        {
            let s = Staged::create(&out, true, false).unwrap();
            std::fs::write(s.path().join("f"), b"x").unwrap();
            assert!(!out.exists());
        } // dropped: temporary removed
        assert_eq!(std::fs::read_dir(&base).unwrap().count(), 0);
        let s = Staged::create(&out, true, false).unwrap();
        std::fs::write(s.path().join("f"), b"x").unwrap();
        s.commit().unwrap();
        assert!(out.join("f").is_file());
        assert!(
            Staged::create(&out, true, false).is_err(),
            "refuses to overwrite"
        );
        let s = Staged::create(&out, true, true).unwrap();
        std::fs::write(s.path().join("g"), b"y").unwrap();
        s.commit().unwrap();
        assert!(out.join("g").is_file() && !out.join("f").exists());
        // A temporary left by a dead process is removed by the next run.
        let stale = base.join(".out2.partial-999999999");
        std::fs::create_dir(&stale).unwrap();
        let s = Staged::create(&base.join("out2"), false, false).unwrap();
        assert!(!stale.exists());
        drop(s);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
