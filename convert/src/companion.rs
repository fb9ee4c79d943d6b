//! Files that travel with a model (`tokenizer.json`, `tokenizer_config.json`,
//! `generation_config.json`, `chat_template.jinja`, `config.json`, ...), found by one rule:
//!
//! | model path | searched, in order |
//! |---|---|
//! | a model directory | the directory |
//! | OpenAI's `original/` directory | `original/`, then its parent (the release keeps the tokenizer files beside `original/`) |
//! | a file (a GGUF) | its directory |
//!
//! The same rule names the model: [`model_dir`] is the directory whose name a model takes
//! (the release directory for `original/`).

use std::path::{Path, PathBuf};

/// The directories searched for a model at `model` (see the module table).
pub fn search_dirs(model: &Path) -> Vec<PathBuf> {
    let dir = if model.is_dir() {
        model.to_path_buf()
    } else {
        match model.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    };
    let mut dirs = vec![dir.clone()];
    if dir.file_name().is_some_and(|n| n == "original")
        && let Some(p) = dir.parent().filter(|p| !p.as_os_str().is_empty())
    {
        dirs.push(p.to_path_buf());
    }
    dirs
}

/// Every existing file called `name` for the model at `model`, in search order.
pub fn candidates(model: &Path, name: &str) -> Vec<PathBuf> {
    search_dirs(model)
        .into_iter()
        .map(|d| d.join(name))
        .filter(|p| p.is_file())
        .collect()
}

/// The first file called `name` for the model at `model`.
pub fn find(model: &Path, name: &str) -> Option<PathBuf> {
    candidates(model, name).into_iter().next()
}

/// The directory that names the model at `model`: its own directory (a file's directory), or
/// the release directory of an `original/` folder. Canonicalized when it exists, so `.` and
/// relative paths give the real name.
pub fn model_dir(model: &Path) -> PathBuf {
    let dirs = search_dirs(model);
    let dir = dirs.last().expect("at least one directory");
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_falls_back_to_its_parent_and_other_directories_do_not() {
        let t = std::env::temp_dir().join(format!("oss-forge-companion-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        let release = t.join("gpt-oss-x");
        std::fs::create_dir_all(release.join("original")).unwrap();
        std::fs::write(release.join("tokenizer.json"), "{}").unwrap();
        std::fs::write(release.join("original/config.json"), "{}").unwrap();
        std::fs::write(release.join("config.json"), "{}").unwrap();
        let orig = release.join("original");
        assert_eq!(
            find(&orig, "tokenizer.json"),
            Some(release.join("tokenizer.json"))
        );
        assert_eq!(
            candidates(&orig, "config.json"),
            vec![orig.join("config.json"), release.join("config.json")]
        );
        assert_eq!(model_dir(&orig).file_name().unwrap(), "gpt-oss-x");
        // A plain directory never looks above itself.
        let other = t.join("other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(t.join("tokenizer.json"), "{}").unwrap();
        assert_eq!(find(&other, "tokenizer.json"), None);
        // A file's companions sit beside it.
        let gguf = release.join("m.gguf");
        std::fs::write(&gguf, "GGUF").unwrap();
        assert_eq!(
            find(&gguf, "tokenizer.json"),
            Some(release.join("tokenizer.json"))
        );
        assert_eq!(model_dir(&gguf).file_name().unwrap(), "gpt-oss-x");
        std::fs::remove_dir_all(&t).unwrap();
    }
}
