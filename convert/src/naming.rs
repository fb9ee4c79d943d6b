//! What a model is called on the outputs: its name (file names, card titles) and its Hub
//! `base_model`, so that outputs can be uploaded as they are.
//!
//! | model path | name | base model |
//! |---|---|---|
//! | a Hugging Face cache snapshot, `…/models--ORG--NAME/snapshots/<hash>/` (or its `original/`) | `NAME` (never the hash) | `ORG/NAME` |
//! | any other directory (or a file's directory; the release directory of `original/`) | the directory's name | `openai/NAME` for `gpt-oss-*`, else `NAME` |
//!
//! A `config.json` whose `_name_or_path` is a Hub id (`org/name`; transformers writes it on
//! `save_pretrained`, so a fine-tune names the model it came from) gives the base model first.
//! The command line's `--name` and `--base-model` override both.

use std::path::Path;

/// `(org, name)` of a Hugging Face hub-cache snapshot holding `path`
/// (`…/models--ORG--NAME/snapshots/<hash>/…`).
pub fn hf_cache_repo(path: &Path) -> Option<(String, String)> {
    // A file in a snapshot is a symlink into `blobs/`: resolve its directory, not the file.
    let abs = if path.is_dir() {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    } else {
        crate::output::absolute(path)
    };
    let parts: Vec<String> = abs
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let i = parts.iter().rposition(|p| p == "snapshots")?;
    let repo = parts.get(i.checked_sub(1)?)?.strip_prefix("models--")?;
    parts.get(i + 1)?;
    let (org, name) = repo.split_once("--")?;
    (!org.is_empty() && !name.is_empty()).then(|| (org.to_string(), name.to_string()))
}

/// The model's name (see the module table).
pub fn model_name(path: &Path) -> String {
    if let Some((_, name)) = hf_cache_repo(path) {
        return name;
    }
    crate::companion::model_dir(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "model".into())
}

/// True for a Hub repository id: `org/name`, of letters, digits, `-`, `_` and `.`.
pub fn is_hub_id(s: &str) -> bool {
    let ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    s.split_once('/')
        .is_some_and(|(org, name)| ok(org) && ok(name))
}

/// The Hub `base_model` of the model at `path` (see the module table).
pub fn base_model(path: &Path) -> String {
    let from_config = crate::companion::find(path, "config.json")
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("_name_or_path")?.as_str().map(str::to_string))
        .filter(|s| is_hub_id(s));
    if let Some(id) = from_config {
        return id;
    }
    if let Some((org, name)) = hf_cache_repo(path) {
        return format!("{org}/{name}");
    }
    let name = model_name(path);
    if name.starts_with("gpt-oss-") {
        format!("openai/{name}")
    } else {
        name
    }
}

/// The file name of a GGUF variant stored as `suffix`: `NAME-MXFP4.gguf`, `NAME-Q8_0.gguf`, ...
pub fn gguf_file_name(model: &str, suffix: &str) -> String {
    format!("{model}-{suffix}.gguf")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hub_cache_snapshot_is_named_by_its_repository_never_its_hash() {
        let t = std::env::temp_dir().join(format!("ossf-naming-{}", std::process::id()));
        let snap = t.join(
            "hub/models--openai--gpt-oss-20b/snapshots/6cee5e81ee83917806bbde320786a8fb61efebee",
        );
        std::fs::create_dir_all(snap.join("original")).unwrap();
        assert_eq!(model_name(&snap), "gpt-oss-20b");
        assert_eq!(model_name(&snap.join("original")), "gpt-oss-20b");
        assert_eq!(base_model(&snap), "openai/gpt-oss-20b");
        assert_eq!(
            hf_cache_repo(&snap.join("original")),
            Some(("openai".into(), "gpt-oss-20b".into()))
        );
        // A plain directory: its name; gpt-oss-* is OpenAI's.
        let plain = t.join("gpt-oss-120b");
        std::fs::create_dir_all(&plain).unwrap();
        assert_eq!(model_name(&plain), "gpt-oss-120b");
        assert_eq!(base_model(&plain), "openai/gpt-oss-120b");
        // A fine-tune's config names its base; a local path there is not a Hub id.
        let ft = t.join("my-tune");
        std::fs::create_dir_all(&ft).unwrap();
        std::fs::write(
            ft.join("config.json"),
            r#"{"_name_or_path": "openai/gpt-oss-20b"}"#,
        )
        .unwrap();
        assert_eq!(base_model(&ft), "openai/gpt-oss-20b");
        std::fs::write(
            ft.join("config.json"),
            r#"{"_name_or_path": "/home/me/gpt-oss-20b"}"#,
        )
        .unwrap();
        assert_eq!(base_model(&ft), "my-tune");
        assert!(
            is_hub_id("a/b.c-d_e") && !is_hub_id("/a/b") && !is_hub_id("a") && !is_hub_id("a/b/c")
        );
        std::fs::remove_dir_all(&t).unwrap();
    }
}
