//! Output that appears under its final name only when complete.
//!
//! A [`Staged`] output is written at a hidden sibling path, `.<name>.partial-<pid>`, and renamed
//! to `<name>` by [`Staged::commit`]. Dropped without a commit (an error, a panic, a stop asked
//! for by Ctrl-C) it removes its temporary. A run that was killed cannot clean up after itself,
//! so creating a staged output first removes any `.<name>.partial-<pid>` whose process no
//! longer exists.
//!
//! A directory output may go where a directory already is ([`Staged::create_dir`]): an empty
//! one is replaced; one holding files only with `force`, and then only the files the writer
//! owns are replaced (those it wrote now, and stale ones it would write, by a rule the writer
//! gives); every other file stays.

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
    /// A directory output going into an existing directory that holds files: the names the
    /// writer owns there (see [`Staged::create_dir`]).
    merge: Option<fn(&str) -> bool>,
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
        if !is_dir && final_path.is_dir() {
            return Err(ConvertError::format(
                final_path,
                "is a directory, not a file: not replaced",
            ));
        }
        Self::start(final_path, is_dir, force, None)
    }

    /// Starts writing the directory `final_path`. Where a directory already is: an empty one
    /// is replaced; one holding files is refused unless `force`, and then, on commit, the new
    /// files replace those of the same name and the files `owns` names that were not written
    /// this time are removed; every other file stays. A file there is refused.
    pub fn create_dir(final_path: &Path, force: bool, owns: fn(&str) -> bool) -> Result<Staged> {
        let mut merge = None;
        if final_path.is_dir() {
            let has_files = std::fs::read_dir(final_path)
                .map_err(|e| ConvertError::io(final_path, e))?
                .next()
                .is_some();
            if has_files {
                if !force {
                    return Err(ConvertError::format(
                        final_path,
                        "already exists and holds files (pass --force to replace the files \
                         oss-forge writes there; other files are kept)",
                    ));
                }
                merge = Some(owns);
            }
        } else if final_path.exists() {
            return Err(ConvertError::format(
                final_path,
                "is a file: this output is a directory (name a directory to create, or an \
                 existing one)",
            ));
        }
        Self::start(final_path, true, true, merge)
    }

    fn start(
        final_path: &Path,
        is_dir: bool,
        force: bool,
        merge: Option<fn(&str) -> bool>,
    ) -> Result<Staged> {
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
            merge,
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
        if let Some(owns) = self.merge {
            self.merge_into(owns)?;
            self.committed = true;
            let _ = std::fs::remove_dir_all(&self.tmp_path);
            return Ok(self.final_path.clone());
        }
        if self.is_dir && self.final_path.is_dir() {
            // Empty when created; refilled meanwhile only by a racing writer, which the rename
            // below then refuses (ENOTEMPTY) rather than overwrites.
            let _ = std::fs::remove_dir(&self.final_path);
        }
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

impl Staged {
    /// Moves each new file into the existing final directory (replacing one of the same name)
    /// and removes the owned files this run did not write.
    fn merge_into(&self, owns: fn(&str) -> bool) -> Result<()> {
        merge_dir(&self.tmp_path, &self.final_path, owns)
    }
}

/// Moves the entries of `from` into the existing directory `to` (files replace files of the
/// same name, directories merge recursively) after removing the files of `to` that `owns`
/// names and `from` lacks.
fn merge_dir(from: &Path, to: &Path, owns: fn(&str) -> bool) -> Result<()> {
    let names = |dir: &Path| -> Result<Vec<std::ffi::OsString>> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| ConvertError::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        v.sort();
        Ok(v)
    };
    let new = names(from)?;
    for old in names(to)? {
        let p = to.join(&old);
        if owns(&old.to_string_lossy()) && !new.contains(&old) && p.is_file() {
            std::fs::remove_file(&p).map_err(|e| ConvertError::io(&p, e))?;
        }
    }
    for n in new {
        let (src, dst) = (from.join(&n), to.join(&n));
        match (src.is_dir(), dst.is_dir()) {
            (true, true) => merge_dir(&src, &dst, owns)?,
            (false, true) => {
                return Err(ConvertError::format(
                    &dst,
                    "is a directory where oss-forge writes a file: not replaced",
                ));
            }
            _ => std::fs::rename(&src, &dst).map_err(|e| ConvertError::io(&dst, e))?,
        }
    }
    Ok(())
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

    #[test]
    fn a_directory_output_into_an_existing_directory_replaces_only_what_the_writer_owns() {
        let base = std::env::temp_dir().join(format!("ossf-atomic-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let out = base.join("out");
        std::fs::create_dir_all(&out).unwrap();
        let owns = |n: &str| n.starts_with("model") && n.ends_with(".safetensors");
        // An empty directory is simply filled.
        let s = Staged::create_dir(&out, false, owns).unwrap();
        std::fs::write(s.path().join("model-00001-of-00002.safetensors"), b"a").unwrap();
        std::fs::write(s.path().join("model-00002-of-00002.safetensors"), b"b").unwrap();
        std::fs::write(s.path().join("config.json"), b"{}").unwrap();
        s.commit().unwrap();
        std::fs::write(out.join("notes.txt"), b"mine").unwrap();
        // Holding files: refused without force.
        let e = Staged::create_dir(&out, false, owns)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pass --force"), "{e}");
        // With force: one shard now; the stale second shard goes, notes.txt stays.
        let s = Staged::create_dir(&out, true, owns).unwrap();
        std::fs::write(s.path().join("model-00001-of-00001.safetensors"), b"c").unwrap();
        std::fs::write(s.path().join("config.json"), b"{\"x\":1}").unwrap();
        s.commit().unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "config.json",
                "model-00001-of-00001.safetensors",
                "notes.txt"
            ]
        );
        assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"mine");
        assert_eq!(
            std::fs::read(out.join("config.json")).unwrap(),
            b"{\"x\":1}"
        );
        // No temporary is left beside it, and a file is never taken for the directory.
        assert_eq!(std::fs::read_dir(&base).unwrap().count(), 1);
        let e = Staged::create_dir(&out.join("notes.txt"), true, owns).unwrap_err();
        assert!(e.to_string().contains("is a file"), "{e}");
        let e = Staged::create(&out, false, true).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
