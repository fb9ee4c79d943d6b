//! Where an output may go: never onto or into the model being read, and into an existing
//! directory by one rule.
//!
//! | `-o` names | GGUF variant | safetensors variant |
//! |---|---|---|
//! | nothing yet | the file (or, with splits, `NAME-0000K-of-0000N.gguf` beside it) | the directory, created |
//! | an existing directory | the file `DIR/MODEL-SUFFIX.gguf` inside it (the name `pipeline` gives it) | the directory: an empty one is filled; one holding files needs `--force`, which replaces only the files oss-forge writes (shards, index, config, tokenizer files, README.md) and keeps the rest |
//! | an existing file | replaced with `--force` (with a split set of the same name: every file of it) | refused: a safetensors variant is a directory |
//!
//! An output that is an input, lies inside an input, or contains one is refused before
//! anything is written ([`ConvertError::OutputIsInput`]): `--force` would otherwise replace the
//! checkpoint being read. The inputs are the model's files and, for a model directory, the
//! directory (with the release directory around an `original/` folder, which its tokenizer
//! files come from; for a directory holding one GGUF model, that directory). A GGUF output is
//! also refused when an input is one of the files it may write or, with `--force`, remove: its
//! split files `STEM-0000K-of-0000N.gguf` ([`refuse_gguf_family`]).

use crate::error::{ConvertError, Result};
use crate::model::AnyModel;
use std::path::{Component, Path, PathBuf};

/// `path` made absolute (`.` and `..` folded as written), with symlinks resolved as far as it
/// exists, so two spellings of one place compare equal.
pub fn absolute(path: &Path) -> PathBuf {
    let mut lexical = if path.is_absolute() {
        PathBuf::new()
    } else {
        std::env::current_dir().unwrap_or_default()
    };
    for c in path.components() {
        match c {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            c => lexical.push(c),
        }
    }
    let mut existing = lexical.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(mut out) = std::fs::canonicalize(existing) {
            out.extend(rest.iter().rev());
            return out;
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return lexical,
        }
    }
}

/// The paths a conversion reads (see the module docs), absolute.
pub fn inputs(model: &AnyModel) -> Vec<PathBuf> {
    match model {
        AnyModel::Safetensors(c) => crate::companion::search_dirs(c.dir())
            .iter()
            .map(|d| absolute(d))
            .collect(),
        AnyModel::Gguf(g) => g
            .files()
            .iter()
            .map(|f| absolute(f.path()))
            .chain(g.dir().map(absolute))
            .collect(),
    }
}

/// True when file name `name` is `STEM-0000K-of-0000N.gguf`, a split of the GGUF `STEM.gguf`
/// (llama.cpp's `llama_split_path`).
pub fn is_split_of(stem: &str, name: &str) -> bool {
    crate::gguf::split_name_parts(name).is_some_and(|(s, _, _)| s == stem)
}

/// Refuses a GGUF output `out` when an input is one of the files the writer may write or, with
/// `--force`, remove: `out` itself and its split files `STEM-0000K-of-0000N.gguf` beside it.
/// (A split set given as the input and `-o` naming its base file would otherwise be replaced.)
pub fn refuse_gguf_family(inputs: &[PathBuf], out: &Path) -> Result<()> {
    let o = absolute(out);
    let (Some(dir), Some(name)) = (o.parent(), o.file_name().and_then(|n| n.to_str())) else {
        return Ok(());
    };
    let stem = name.strip_suffix(".gguf").unwrap_or(name);
    for i in inputs {
        let same_family = i.parent() == Some(dir)
            && i.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == name || is_split_of(stem, n));
        if same_family {
            return Err(ConvertError::OutputIsInput {
                path: out.to_path_buf(),
                relation: "its split files would replace",
                input: i.clone(),
            });
        }
    }
    Ok(())
}

/// Refuses an output `out` that is one of `inputs`, lies inside one, or contains one.
pub fn refuse_overlap(inputs: &[PathBuf], out: &Path) -> Result<()> {
    let o = absolute(out);
    for i in inputs {
        let relation = if o == *i {
            "it is"
        } else if o.starts_with(i) {
            "it is inside"
        } else if i.starts_with(&o) {
            "it contains"
        } else {
            continue;
        };
        return Err(ConvertError::OutputIsInput {
            path: out.to_path_buf(),
            relation,
            input: i.clone(),
        });
    }
    Ok(())
}

/// Where a GGUF variant whose files end in `suffix` goes when `-o` is `out`: inside it as
/// `MODEL-SUFFIX.gguf` when it is an existing directory, else `out` itself.
pub fn gguf_target(model: &AnyModel, suffix: &str, out: &Path) -> PathBuf {
    if out.is_dir() {
        out.join(crate::naming::gguf_file_name(
            &crate::naming::model_name(&model.path()),
            suffix,
        ))
    } else {
        out.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_on_in_or_around_an_input_are_refused() {
        let t = std::env::temp_dir().join(format!("ossf-output-{}", std::process::id()));
        let m = t.join("m");
        std::fs::create_dir_all(m.join("original")).unwrap();
        let inputs = vec![absolute(&m)];
        for (out, rel) in [
            (m.clone(), "it is"),
            (m.join("x.gguf"), "it is inside"),
            (m.join("original/../new/x"), "it is inside"),
            (t.clone(), "it contains"),
            (t.join("m/./"), "it is"),
        ] {
            let e = refuse_overlap(&inputs, &out).unwrap_err().to_string();
            assert!(
                e.contains(&format!("output is the input: {rel} the model")),
                "{out:?}: {e}"
            );
        }
        refuse_overlap(&inputs, &t.join("m2")).unwrap();
        refuse_overlap(&inputs, &t.join("out/m")).unwrap();
        std::fs::remove_dir_all(&t).unwrap();
    }
}
