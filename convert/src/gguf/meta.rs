//! The metadata llama.cpp's converter writes for gpt-oss, in its order (llama.cpp
//! `conversion/base.py` `ModelBase.prepare_metadata`, `conversion/gpt_oss.py`, gguf-py
//! `gguf_writer.py`, `metadata.py`, `vocab.py`; as vendored in llama-cpp-python 0.3.36).
//!
//! | keys | from |
//! |---|---|
//! | `general.architecture`, `general.type` | constants `gpt-oss`, `model` |
//! | `general.name`, `general.version`, `general.finetune`, `general.basename`, `general.size_label` | the model directory's name, split the way gguf-py's `Metadata.get_model_id_components` does; `size_label` falls back to `utility.size_label` over the tensor shapes |
//! | `gpt-oss.*` hyperparameters, `general.file_type`, `general.quantization_version` | the config |
//! | `tokenizer.ggml.model` / `pre` | `gpt2` / `gpt-4o` (llama.cpp's choice for gpt-oss) |
//! | `tokenizer.ggml.tokens` / `token_type` | `tokenizer.json` vocab and added tokens; ids absent from the vocab become `[PAD{i}]` (UNUSED); ids at or past `vocab_size` are refused ([`tokens_past_vocab`]) unless `--truncate-vocab` leaves them out |
//! | `tokenizer.ggml.merges` | `tokenizer.json` `model.merges` (pairs joined by a space) |
//! | special token ids | `tokenizer_config.json` `*_token` contents looked up in the added tokens, then `config.json` `*_token_id` |
//! | `tokenizer.ggml.add_bos_token` / `add_eos_token` | `tokenizer_config.json` `add_*_token`, false when absent |
//! | `tokenizer.chat_template` | `tokenizer_config.json` `chat_template`, else `chat_template.jinja`, else `chat_template.json` |
//!
//! Tokenizer files are looked up in the model directory, and for an `original/` directory in its
//! parent (where the release keeps them).

use super::Value;
use super::names;
use super::value_type as vt;
use crate::checkpoint::read_json;
use crate::error::{ConvertError, Result};
use reference::Config;
use serde_json::Value as Json;
use std::path::Path;

/// gguf-py `LlamaFileType` values written in `general.file_type`.
pub mod file_type {
    /// MOSTLY_F16.
    pub const MOSTLY_F16: u32 = 1;
    /// MOSTLY_Q8_0.
    pub const MOSTLY_Q8_0: u32 = 7;
    /// MOSTLY_BF16.
    pub const MOSTLY_BF16: u32 = 32;
    /// MOSTLY_MXFP4_MOE (S26 labels every f16/bf16/f32 conversion of an MXFP4 source this way).
    pub const MOSTLY_MXFP4_MOE: u32 = 38;
}

/// A `general.file_type` value's llama.cpp name.
pub fn file_type_name(ft: u64) -> String {
    match ft {
        0 => "ALL_F32".into(),
        1 => "MOSTLY_F16".into(),
        32 => "MOSTLY_BF16".into(),
        38 => "MXFP4_MOE".into(),
        other => match crate::variant::Preset::ALL
            .into_iter()
            .find(|p| p.file_type() as u64 == other)
        {
            Some(p) => format!("MOSTLY_{}", p.name()),
            None => format!("file_type {other}"),
        },
    }
}

/// Token types (gguf-py `TokenType`).
mod token_type {
    pub const NORMAL: i32 = 1;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
}

/// Parameter counts the way gguf-py's `get_total_parameter_count` makes them from the tensor
/// shapes: `(total, shared, per-expert, experts)`. Expert biases (2-D) count as shared there.
pub fn parameter_counts(cfg: &Config) -> (u64, u64, u64, u64) {
    let (h, i, e) = (
        cfg.hidden_size as u64,
        cfg.intermediate_size as u64,
        cfg.num_local_experts as u64,
    );
    let total = cfg.parameter_count();
    let expert_weights_per_expert = cfg.num_hidden_layers as u64 * 3 * h * i;
    let shared = total - e * expert_weights_per_expert;
    (total, shared, expert_weights_per_expert, e)
}

/// gguf-py `model_weight_count_rounded_notation`.
fn rounded_notation(n: u64, min_digits: usize) -> String {
    let n = n as f64;
    let (scaled, suffix) = if n > 1e12 {
        (n * 1e-12, "T")
    } else if n > 1e9 {
        (n * 1e-9, "B")
    } else if n > 1e6 {
        (n * 1e-6, "M")
    } else {
        (n * 1e-3, "K")
    };
    // Python's round() is half-to-even; str() of the integer, leading zeros stripped.
    let r = scaled.round_ties_even() as u64;
    let digits = if r == 0 { 0 } else { r.to_string().len() };
    let fix = min_digits.saturating_sub(digits);
    format!("{scaled:.fix$}{suffix}")
}

/// gguf-py `utility.size_label` (`8x639K` for tiny-gpt-oss).
pub fn size_label(cfg: &Config) -> String {
    let (_, shared, expert, experts) = parameter_counts(cfg);
    format!("{experts}x{}", rounded_notation(shared + expert, 2))
}

/// Python's `str.title()` for one word.
fn title(w: &str) -> String {
    let mut out = String::new();
    let mut prev_cased = false;
    for c in w.chars() {
        if prev_cased {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        prev_cased = c.is_alphabetic();
    }
    out
}

/// gguf-py `Metadata.id_to_title`.
fn id_to_title(s: &str) -> String {
    let is_lower =
        |w: &str| w.chars().any(char::is_alphabetic) && !w.chars().any(char::is_uppercase);
    let versionish = |w: &str| {
        w.starts_with(|c: char| c.is_ascii_digit()) || (w.starts_with('v') && is_version(w))
    };
    s.trim()
        .replace('-', " ")
        .split_whitespace()
        .map(|w| {
            if is_lower(w) && !versionish(w) {
                title(w)
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn digits(s: &[u8], i: usize) -> usize {
    s[i..].iter().take_while(|c| c.is_ascii_digit()).count()
}

/// `(v|iter)?\d+([.]\d+)*`, case-insensitive.
fn is_version(p: &str) -> bool {
    let l = p.to_ascii_lowercase();
    let s = l
        .strip_prefix("iter")
        .or_else(|| l.strip_prefix('v'))
        .unwrap_or(&l)
        .as_bytes();
    let mut i = digits(s, 0);
    if i == 0 {
        return false;
    }
    while i < s.len() {
        if s[i] != b'.' {
            return false;
        }
        let d = digits(s, i + 1);
        if d == 0 {
            return false;
        }
        i += 1 + d;
    }
    true
}

/// `i?q\d(_\w)*|b?fp?(16|32)`, case-insensitive.
fn is_quant_type(p: &str) -> bool {
    let l = p.to_ascii_lowercase();
    let s = l.strip_prefix('i').unwrap_or(&l);
    if let Some(rest) = s.strip_prefix('q') {
        let b = rest.as_bytes();
        if !b.first().is_some_and(u8::is_ascii_digit) {
            return false;
        }
        let mut i = 1;
        while i < b.len() {
            if b[i] != b'_'
                || !b
                    .get(i + 1)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            {
                return false;
            }
            i += 2;
        }
        return true;
    }
    let s = l.strip_prefix('b').unwrap_or(&l);
    let Some(s) = s.strip_prefix('f') else {
        return false;
    };
    let s = s.strip_prefix('p').unwrap_or(s);
    s == "16" || s == "32"
}

/// `(([A]|\d+[x])?\d+([._]\d+)?[KMBT][\d]?|small|mini|medium|large|x?xl)`, case-insensitive.
fn is_size(p: &str) -> bool {
    let l = p.to_ascii_lowercase();
    if ["small", "mini", "medium", "large", "xl", "xxl"].contains(&l.as_str()) {
        return true;
    }
    let s = l.as_bytes();
    let body = |start: usize| -> bool {
        let mut i = start;
        let d = digits(s, i);
        if d == 0 {
            return false;
        }
        i += d;
        if i < s.len() && (s[i] == b'.' || s[i] == b'_') {
            let d = digits(s, i + 1);
            if d > 0 {
                i += 1 + d;
            }
        }
        if i >= s.len() || !b"kmbt".contains(&s[i]) {
            return false;
        }
        i += 1;
        i == s.len() || (i + 1 == s.len() && s[i].is_ascii_digit())
    };
    if body(0) {
        return true;
    }
    if s.first() == Some(&b'a') && body(1) {
        return true;
    }
    let d = digits(s, 0);
    d > 0 && s.get(d) == Some(&b'x') && body(d + 1)
}

/// What gguf-py's `get_model_id_components` makes of a directory name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NameParts {
    /// `general.name`.
    pub name: String,
    /// `general.basename`.
    pub basename: Option<String>,
    /// `general.finetune`.
    pub finetune: Option<String>,
    /// `general.version`.
    pub version: Option<String>,
    /// `general.size_label`.
    pub size_label: Option<String>,
}

/// gguf-py's directory-name heuristics (`Metadata.get_model_id_components` + `id_to_title`).
pub fn name_parts(model_id: &str, total_params: u64) -> NameParts {
    let name = id_to_title(model_id);
    if model_id.contains(' ') {
        return NameParts {
            name: model_id.to_string(),
            ..Default::default()
        };
    }
    let mut parts: Vec<String> = model_id
        .split('-')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    #[derive(Default, Clone)]
    struct T {
        basename: bool,
        size: bool,
        finetune: bool,
        version: bool,
        ty: bool,
    }
    impl T {
        fn empty(&self) -> bool {
            !(self.basename || self.size || self.finetune || self.version || self.ty)
        }
        fn count(&self) -> usize {
            [
                self.basename,
                self.size,
                self.finetune,
                self.version,
                self.ty,
            ]
            .iter()
            .filter(|b| **b)
            .count()
        }
    }
    let mut types = vec![T::default(); parts.len()];
    for i in 0..parts.len() {
        let part = parts[i].clone();
        if is_version(&part) {
            types[i].version = true;
        } else if is_quant_type(&part) {
            types[i].ty = true;
            parts[i] = part.to_uppercase();
        } else if i > 0 && is_size(&part) {
            let mut p: Vec<char> = part.replace('_', ".").chars().collect();
            if p.last().is_some_and(|c| c.is_ascii_digit()) && p.len() >= 2 {
                // bloom-7b1 → 7.1b
                let n = p.len();
                let (a, b) = (p[n - 2], p[n - 1]);
                p.truncate(n - 2);
                p.extend(['.', b, a]);
            }
            let n = p.len();
            if n > 1 && p[n - 2].is_ascii_digit() && "kmbt".contains(p[n - 1]) {
                p[n - 1] = p[n - 1].to_ascii_uppercase();
            }
            if total_params != 0 {
                let head: String = p[..n - 1].iter().collect();
                let exp = " KMBT".find(p[n - 1]);
                if let (Ok(v), Some(exp)) = (head.parse::<f64>(), exp) {
                    let label = v * 1000f64.powi(exp as i32);
                    if (label - total_params as f64).abs() > (7 * total_params / 8) as f64 {
                        types[i].finetune = true;
                        p[n - 1] = p[n - 1].to_ascii_lowercase();
                    }
                }
            }
            if types[i].empty() {
                types[i].size = true;
            }
            parts[i] = p.into_iter().collect();
        } else if i > 0
            && ["chat", "instruct", "vision", "lora"].contains(&part.to_ascii_lowercase().as_str())
        {
            types[i].finetune = true;
        }
    }
    if parts
        .iter()
        .zip(&types)
        .any(|(p, t)| t.size && p.chars().any(|c| c.is_ascii_digit()))
    {
        for (p, t) in parts.iter().zip(types.iter_mut()) {
            if t.size && p.chars().all(char::is_alphabetic) {
                t.size = false;
            }
        }
    }
    let mut at_start = true;
    for (p, t) in parts.iter().zip(types.iter_mut()) {
        if at_start && ((t.empty() && p.starts_with(char::is_alphabetic)) || t.version) {
            t.basename = true;
        } else {
            at_start = false;
            if t.empty() {
                t.finetune = true;
            }
        }
    }
    for t in types.iter_mut().rev() {
        if t.basename && t.count() > 1 {
            t.basename = false;
        } else {
            break;
        }
    }
    let join = |f: &dyn Fn(&T) -> bool| {
        let mut seen: Vec<&str> = Vec::new();
        for (p, t) in parts.iter().zip(&types) {
            if f(t) && !seen.contains(&p.as_str()) {
                seen.push(p);
            }
        }
        (!seen.is_empty()).then(|| seen.join("-"))
    };
    let mut basename = join(&|t| t.basename);
    let size_label = join(&|t| t.size);
    let finetune = join(&|t| t.finetune);
    let version = join(&|t| t.version && !t.basename);
    if size_label.is_none() && finetune.is_none() && version.is_none() {
        basename = None;
    }
    NameParts {
        name,
        basename,
        finetune,
        version,
        size_label,
    }
}

fn does_token_look_special(t: &str) -> bool {
    ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].contains(&t)
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<｜") && t.ends_with("｜>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

/// A token: its id and text.
pub type Token = (u64, String);

/// Metadata pairs, and the tokens past `vocab_size` left out of them.
pub type Metadata = (Vec<(String, Value)>, Vec<Token>);

/// The tokens of a `tokenizer.json` (`model.vocab` and `added_tokens`) whose ids are at or past
/// `vocab_size`, as (id, text), sorted by id: tokens added to a tokenizer without resizing the
/// embedding (a fine-tune's special tokens). The model has no embedding row for them; llama.cpp's
/// converter stops on them (`conversion/base.py` `get_vocab_base`: `assert
/// max(tokenizer.vocab.values()) < vocab_size`, llama.cpp as vendored in llama-cpp-python
/// 0.3.36).
pub fn tokens_past_vocab(tok: &Json, vocab_size: usize) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = Vec::new();
    if let Some(vocab) = tok
        .get("model")
        .and_then(|m| m.get("vocab"))
        .and_then(Json::as_object)
    {
        for (text, id) in vocab {
            if let Some(id) = id.as_u64().filter(|&i| i >= vocab_size as u64) {
                out.push((id, text.clone()));
            }
        }
    }
    for a in tok
        .get("added_tokens")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(id), Some(content)) = (
            a.get("id").and_then(Json::as_u64),
            a.get("content").and_then(Json::as_str),
        ) && id >= vocab_size as u64
            && !out.iter().any(|(i, _)| *i == id)
        {
            out.push((id, content.to_string()));
        }
    }
    out.sort();
    out
}

/// Up to `max` tokens as `512 "<|extra_17|>", 513 "<|extra_18|>"`, then `and N more`.
pub fn list_tokens(tokens: &[(u64, String)], max: usize) -> String {
    let mut s: Vec<String> = tokens
        .iter()
        .take(max)
        .map(|(id, t)| format!("{id} {t:?}"))
        .collect();
    if tokens.len() > max {
        s.push(format!("and {} more", tokens.len() - max));
    }
    s.join(", ")
}

/// `3 tokens (512 "<|extra_17|>", 513 ...)`: a count and the first five tokens, for messages.
pub fn describe_tokens(tokens: &[(u64, String)]) -> String {
    format!(
        "{} token{} ({})",
        tokens.len(),
        if tokens.len() == 1 { "" } else { "s" },
        list_tokens(tokens, 5)
    )
}

/// The refusal of a tokenizer holding ids past `vocab_size`.
pub fn past_vocab_error(
    tok_path: &Path,
    past: &[(u64, String)],
    vocab_size: usize,
) -> ConvertError {
    ConvertError::format(
        tok_path,
        format!(
            "{} with ids at or past vocab_size {vocab_size}: the embedding has no row for them \
             (tokens added without resizing it). A GGUF cannot hold them and llama.cpp's converter \
             refuses them too; resize the embedding, or pass --truncate-vocab to leave them out",
            describe_tokens(past)
        ),
    )
}

/// The tokenizer keys (`tokenizer.*`), in llama.cpp's order, from the files in `dir`. Tokens
/// with ids past `vocab_size` are refused unless `truncate` ([`tokens_past_vocab`]), which
/// leaves them out and returns them as the second value.
pub fn tokenizer_kv(dir: &Path, cfg: &Config, truncate: bool) -> Result<Metadata> {
    let tok_path = dir.join("tokenizer.json");
    let tok = read_json(&tok_path)?;
    let past = tokens_past_vocab(&tok, cfg.vocab_size);
    if !past.is_empty() && !truncate {
        return Err(past_vocab_error(&tok_path, &past, cfg.vocab_size));
    }
    let model = tok
        .get("model")
        .ok_or_else(|| ConvertError::format(&tok_path, "no `model` object"))?;
    if model.get("type").and_then(Json::as_str) != Some("BPE") {
        return Err(ConvertError::format(
            &tok_path,
            "model.type is not BPE (gpt-oss uses a byte-level BPE)",
        ));
    }
    let vocab = model
        .get("vocab")
        .and_then(Json::as_object)
        .ok_or_else(|| ConvertError::format(&tok_path, "no model.vocab object"))?;
    let n = cfg.vocab_size;
    let mut tokens: Vec<Option<String>> = vec![None; n];
    let mut types = vec![token_type::UNUSED; n];
    let mut put = |id: u64, text: &str, ty: i32| {
        if let Some(slot) = tokens.get_mut(id as usize) {
            *slot = Some(text.to_string());
            types[id as usize] = ty;
        }
    };
    for (text, id) in vocab {
        let id = id.as_u64().ok_or_else(|| {
            ConvertError::format(&tok_path, format!("vocab id of {text:?} is not an integer"))
        })?;
        put(id, text, token_type::NORMAL);
    }
    let added = tok
        .get("added_tokens")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    for a in &added {
        let (Some(id), Some(content)) = (
            a.get("id").and_then(Json::as_u64),
            a.get("content").and_then(Json::as_str),
        ) else {
            return Err(ConvertError::format(
                &tok_path,
                format!("added token without id/content: {a}"),
            ));
        };
        let special = a.get("special").and_then(Json::as_bool).unwrap_or(false);
        if special || does_token_look_special(content) {
            put(id, content, token_type::CONTROL);
        } else {
            put(
                id,
                &content.replace('\u{2581}', " "),
                token_type::USER_DEFINED,
            );
        }
    }
    let tokens: Vec<Value> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| Value::String(t.unwrap_or_else(|| format!("[PAD{i}]"))))
        .collect();
    let merges: Vec<Value> = match model.get("merges") {
        Some(Json::Array(m)) => m
            .iter()
            .map(|x| match x {
                Json::String(s) => Ok(Value::String(s.clone())),
                Json::Array(p) if p.len() == 2 && p.iter().all(Json::is_string) => {
                    let enc = |s: &Json| s.as_str().unwrap_or_default().replace(' ', "\u{120}");
                    Ok(Value::String(format!("{} {}", enc(&p[0]), enc(&p[1]))))
                }
                other => Err(ConvertError::format(
                    &tok_path,
                    format!("unknown merges entry {other}"),
                )),
            })
            .collect::<Result<_>>()?,
        _ => Vec::new(),
    };
    let cfg_path = dir.join("tokenizer_config.json");
    let tc = if cfg_path.is_file() {
        read_json(&cfg_path)?
    } else {
        Json::Null
    };
    let s = |k: &str| Value::String(k.to_string());
    let mut kv: Vec<(String, Value)> = vec![
        ("tokenizer.ggml.model".into(), s("gpt2")),
        ("tokenizer.ggml.pre".into(), s("gpt-4o")),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(vt::STRING, tokens),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(vt::INT32, types.into_iter().map(Value::I32).collect()),
        ),
    ];
    if !merges.is_empty() {
        kv.push((
            "tokenizer.ggml.merges".into(),
            Value::Array(vt::STRING, merges),
        ));
    }
    // Special ids: tokenizer_config first, then config.json, first setting wins.
    const TYPES: [(&str, &str); 7] = names::SPECIAL_TOKENS;
    let mut ids: Vec<(&str, u64)> = Vec::new();
    let mut set = |typ: &'static str, id: Option<u64>| {
        if let Some(id) = id
            && id < n as u64
            && !ids.iter().any(|(t, _)| *t == typ)
        {
            ids.push((typ, id));
        }
    };
    for (typ, _) in TYPES {
        let content = match tc.get(format!("{typ}_token")) {
            Some(Json::String(c)) => Some(c.as_str()),
            Some(Json::Object(o)) => o.get("content").and_then(Json::as_str),
            _ => None,
        };
        if let Some(c) = content {
            set(
                typ,
                added
                    .iter()
                    .find(|a| a.get("content").and_then(Json::as_str) == Some(c))
                    .and_then(|a| a.get("id"))
                    .and_then(Json::as_u64),
            );
        }
    }
    let config_json = dir.join("config.json");
    if config_json.is_file() {
        let c = read_json(&config_json)?;
        for (typ, _) in TYPES {
            set(typ, c.get(format!("{typ}_token_id")).and_then(Json::as_u64));
        }
    }
    for (typ, id) in ids {
        let key = names::special_token_key(typ).unwrap_or_default();
        kv.push((key.to_string(), Value::U32(id as u32)));
    }
    for typ in ["bos", "eos"] {
        let v = tc
            .get(format!("add_{typ}_token"))
            .and_then(Json::as_bool)
            .unwrap_or(false);
        kv.push((format!("tokenizer.ggml.add_{typ}_token"), Value::Bool(v)));
    }
    let template = match tc.get("chat_template") {
        Some(Json::String(t)) => Some(t.clone()),
        _ => {
            let jinja = dir.join("chat_template.jinja");
            let json = dir.join("chat_template.json");
            if jinja.is_file() {
                Some(std::fs::read_to_string(&jinja).map_err(|e| ConvertError::io(&jinja, e))?)
            } else if json.is_file() {
                read_json(&json)?
                    .get("chat_template")
                    .and_then(Json::as_str)
                    .map(str::to_string)
            } else {
                None
            }
        }
    };
    if let Some(t) = template {
        kv.push(("tokenizer.chat_template".into(), Value::String(t)));
    }
    Ok((kv, past))
}

/// The `general.*` naming keys and the `gpt-oss.*` hyperparameters, in llama.cpp's order, with
/// `general.file_type` = `file_type`. The tokenizer keys follow (see [`tokenizer_kv`]).
pub fn model_kv(cfg: &Config, name_dir: &Path, file_type: u32) -> Vec<(String, Value)> {
    let s = |v: &str| Value::String(v.to_string());
    let dir_name = name_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let (total, ..) = parameter_counts(cfg);
    let parts = name_parts(&dir_name, total);
    let mut kv: Vec<(String, Value)> = vec![
        (names::ARCHITECTURE_KEY.into(), s(names::ARCH)),
        ("general.type".into(), s("model")),
        ("general.name".into(), s(&parts.name)),
    ];
    if let Some(v) = &parts.version {
        kv.push(("general.version".into(), s(v)));
    }
    if let Some(v) = &parts.finetune {
        kv.push(("general.finetune".into(), s(v)));
    }
    if let Some(v) = &parts.basename {
        kv.push(("general.basename".into(), s(v)));
    }
    kv.push((
        "general.size_label".into(),
        s(&parts.size_label.unwrap_or_else(|| size_label(cfg))),
    ));
    kv.extend(names::hparams_kv(cfg, file_type));
    kv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_split_like_gguf_py() {
        let p = name_parts("gpt-oss-20b", 20_914_757_184);
        assert_eq!(
            (
                p.name.as_str(),
                p.basename.as_deref(),
                p.size_label.as_deref()
            ),
            ("Gpt Oss 20b", Some("gpt-oss"), Some("20B"))
        );
        let p = name_parts("gpt-oss-120b", 116_829_156_672);
        assert_eq!(
            (
                p.name.as_str(),
                p.basename.as_deref(),
                p.size_label.as_deref()
            ),
            ("Gpt Oss 120b", Some("gpt-oss"), Some("120B"))
        );
        let p = name_parts("tiny-gpt-oss", 1_326_768);
        assert_eq!(
            (p.name.as_str(), p.basename, p.size_label),
            ("Tiny Gpt Oss", None, None)
        );
        // A size far from the parameter count is a finetune (a context length, say).
        let p = name_parts("gpt-oss-20b", 1000);
        assert_eq!(p.size_label, None);
        assert_eq!(p.finetune.as_deref(), Some("20b"));
    }

    #[test]
    fn tokens_past_vocab_are_found_in_the_vocab_and_the_added_tokens() {
        let tok = serde_json::json!({
            "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "late": 5}},
            "added_tokens": [
                {"id": 2, "content": "<|x|>", "special": true},
                {"id": 4, "content": "<|y|>", "special": true},
                {"id": 7, "content": "<|z|>", "special": true}
            ]
        });
        let past = tokens_past_vocab(&tok, 4);
        assert_eq!(
            past,
            vec![(4, "<|y|>".into()), (5, "late".into()), (7, "<|z|>".into())]
        );
        assert_eq!(
            describe_tokens(&past),
            r#"3 tokens (4 "<|y|>", 5 "late", 7 "<|z|>")"#
        );
        assert_eq!(list_tokens(&past, 1), r#"4 "<|y|>", and 2 more"#);
        assert!(tokens_past_vocab(&tok, 8).is_empty());
    }

    #[test]
    fn size_labels_like_gguf_py() {
        assert_eq!(rounded_notation(638_640, 2), "639K");
        assert_eq!(rounded_notation(1_666_782, 2), "1.7M");
        assert_eq!(rounded_notation(5_000, 2), "5.0K");
        assert_eq!(rounded_notation(20_914_757_184, 2), "21B");
    }
}
