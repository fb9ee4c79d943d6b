//! Metadata check: everything a runtime reads from the variant besides its weights, compared
//! with what the original implies ([`convert::runtime::RuntimeMeta`] reads both sides the same
//! way, whatever their format and whichever tool wrote them).
//!
//! | compared | for | how |
//! |---|---|---|
//! | GGUF keys `general.architecture`, `gpt-oss.*`, `tokenizer.*` | every variant | key by key; numbers by value (an f32 and an f64 are equal when they round to the same f32), arrays element by element |
//! | `config.json`, `generation_config.json`, `tokenizer.json`, `tokenizer_config.json` (its chat template and special tokens apart) | safetensors variants | as JSON, key by key at every depth (numbers by value); config.json's `eos_token_id` only where generation reads it (no `eos_token_id` in `generation_config.json`, which transformers and mlx-lm read first; mlx-lm copies it into its config.json) |
//! | `special tokens`: `bos_token`, `eos_token`, `pad_token`, ... as transformers resolves them (`special_tokens_map.json` over `tokenizer_config.json`) | safetensors variants | as JSON |
//! | `chat template` as transformers resolves it (`chat_template.jinja`, else `tokenizer_config.json`'s, else `chat_template.json`'s) | safetensors variants | as text |
//!
//! Never compared ([`ignored_key`]): keys that name the producer or describe the variant's own
//! storage, which legitimately differ between an original and its variants:
//!
//! | where | keys | why |
//! |---|---|---|
//! | GGUF | `general.*` but `general.architecture` | names and describe the file (`general.name`, `general.file_type`, `general.quantization_version`, `general.quantized_by`, `general.alignment`, ...) |
//! | GGUF | `split.*` | how the file is split |
//! | GGUF | `quantize.*` | llama-quantize's notes (importance matrix used) |
//! | `config.json` | `quantization_config`, `quantization`, `torch_dtype`, `dtype` | the variant's storage |
//! | `config.json`, `generation_config.json` | `transformers_version`, `_name_or_path`, `_from_model_config` | the producer |
//! | `tokenizer_config.json` | `is_local`, `local_files_only`, `backend` | how the producer loaded the tokenizer (transformers 5 writes them; mlx-lm's outputs carry them) |
//!
//! Spelled differently, read the same (`same_tokenizer_spelling`): transformers 5 writes
//! `tokenizer_class: "TokenizersBackend"` where 4 wrote `"PreTrainedTokenizerFast"` (one class:
//! `PreTrainedTokenizerFast = TokenizersBackend` in transformers 5's
//! `src/transformers/tokenization_utils_tokenizers.py`), and leaves `added_tokens_decoder` out of
//! `tokenizer_config.json` since `tokenizer.json`'s `added_tokens` hold the same tokens: a
//! decoder on one side only is equal when it lists exactly the other side's `tokenizer.json`
//! added tokens (ids, contents and flags); decoders on both sides are compared as they are.
//!
//! A key or file the original implies and the variant lacks, or the reverse, is a difference.
//! When the original has no tokenizer at all, the tokenizer is not compared (a note says so).

use convert::gguf::Value;
use convert::runtime::{Container, FileContent, RuntimeMeta};
use serde_json::Value as Json;

/// Differences listed per JSON file before the rest are only counted.
const MAX_FILE_DIFFERENCES: usize = 10;
/// Characters of a value shown in a difference.
const SHOWN: usize = 80;

/// One difference between the original and the variant.
#[derive(Clone, Debug, PartialEq)]
pub struct Difference {
    /// The key (`tokenizer.ggml.eos_token_id`, `tokenizer.ggml.tokens[17]`,
    /// `generation_config.json: eos_token_id`, `chat_template.jinja`).
    pub key: String,
    /// What the original implies (shortened; `absent` when it implies nothing).
    pub original: String,
    /// What the variant holds (shortened; `absent`).
    pub variant: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: original {}, variant {}",
            self.key, self.original, self.variant
        )
    }
}

/// The metadata check of one variant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetadataCheck {
    /// GGUF keys and file keys compared.
    pub compared: usize,
    /// Keys present on either side and ignored by rule (see the module table), sorted.
    pub ignored: Vec<String>,
    /// Every difference (each one fails the variant).
    pub differences: Vec<Difference>,
    /// What was not compared and why, and tokens the original holds that no GGUF can.
    pub notes: Vec<String>,
}

impl MetadataCheck {
    /// True when nothing differs.
    pub fn passed(&self) -> bool {
        self.differences.is_empty()
    }
}

/// True for a GGUF key (no `file` given) or a top-level key of `file` that is never compared:
/// it names the producer or describes the variant's own storage (module table).
pub fn ignored_key(file: Option<&str>, key: &str) -> bool {
    match file {
        None => {
            (key.starts_with("general.") && key != "general.architecture")
                || key.starts_with("split.")
                || key.starts_with("quantize.")
        }
        Some("config.json") => matches!(
            key,
            "quantization_config"
                | "quantization"
                | "torch_dtype"
                | "dtype"
                | "transformers_version"
                | "_name_or_path"
        ),
        Some("generation_config.json") => {
            matches!(key, "transformers_version" | "_from_model_config")
        }
        // How the tokenizer was loaded, not what it is: transformers 5 saves the loader's own
        // arguments (`TokenizersBackend.__init__` keeps `from_pretrained`'s kwargs).
        Some("tokenizer_config.json") => {
            matches!(key, "is_local" | "local_files_only" | "backend")
        }
        Some(_) => false,
    }
}

/// A string cut to [`SHOWN`] characters.
fn shorten(s: &str) -> String {
    if s.chars().count() <= SHOWN {
        s.to_string()
    } else {
        let head: String = s.chars().take(SHOWN).collect();
        format!("{head}… ({} chars)", s.chars().count())
    }
}

/// Two texts that differ, each shown around their first differing character.
fn text_pair(a: &str, b: &str) -> (String, String) {
    let (ca, cb): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if ca.len() <= SHOWN && cb.len() <= SHOWN {
        return (format!("{a:?}"), format!("{b:?}"));
    }
    let at = ca.iter().zip(&cb).take_while(|(x, y)| x == y).count();
    let from = at.saturating_sub(20);
    let window = |c: &[char]| -> String {
        let end = (from + SHOWN).min(c.len());
        let piece: String = c[from.min(c.len())..end].iter().collect();
        format!(
            "{}{piece:?}{} ({} chars, first difference at char {at})",
            if from > 0 { "…" } else { "" },
            if end < c.len() { "…" } else { "" },
            c.len()
        )
    };
    (window(&ca), window(&cb))
}

/// A GGUF value for a difference.
fn show_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{:?}", shorten(s)),
        Value::Array(_, xs) => format!("[{} entries]", xs.len()),
        Value::F32(x) => format!("{x}"),
        Value::F64(x) => format!("{x}"),
        Value::Bool(b) => b.to_string(),
        other => other
            .as_u64()
            .map(|x| x.to_string())
            .unwrap_or_else(|| other.to_string()),
    }
}

/// An integer value of any width.
fn int_of(v: &Value) -> Option<i128> {
    Some(match *v {
        Value::U8(x) => x as i128,
        Value::I8(x) => x as i128,
        Value::U16(x) => x as i128,
        Value::I16(x) => x as i128,
        Value::U32(x) => x as i128,
        Value::I32(x) => x as i128,
        Value::U64(x) => x as i128,
        Value::I64(x) => x as i128,
        _ => return None,
    })
}

/// Values equal as a runtime reads them: integers of any width by value, floats at f32
/// precision (GGUF hyperparameters are f32), strings and booleans exactly.
fn gguf_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(_, x), Value::Array(_, y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| gguf_eq(p, q))
        }
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        _ => match (int_of(a), int_of(b), a.as_f64(), b.as_f64()) {
            (Some(x), Some(y), ..) => x == y,
            (_, _, Some(x), Some(y)) => (x as f32 == y as f32) || (x.is_nan() && y.is_nan()),
            _ => false,
        },
    }
}

/// The difference between two GGUF values of `key` (they are not [`gguf_eq`]).
fn gguf_difference(key: &str, a: &Value, b: &Value) -> Difference {
    if let (Value::Array(_, x), Value::Array(_, y)) = (a, b) {
        let first = x.iter().zip(y).position(|(p, q)| !gguf_eq(p, q));
        let differing = x.iter().zip(y).filter(|(p, q)| !gguf_eq(p, q)).count();
        let counts = if x.len() == y.len() {
            format!(" ({differing} of {} entries differ)", x.len())
        } else {
            format!(" ({} entries vs {})", x.len(), y.len())
        };
        return match first {
            Some(i) => Difference {
                key: format!("{key}[{i}]"),
                original: show_value(&x[i]),
                variant: format!("{}{counts}", show_value(&y[i])),
            },
            None => Difference {
                key: key.to_string(),
                original: format!("{} entries", x.len()),
                variant: format!("{} entries", y.len()),
            },
        };
    }
    let (original, variant) = match (a, b) {
        (Value::String(x), Value::String(y)) => text_pair(x, y),
        _ => (show_value(a), show_value(b)),
    };
    Difference {
        key: key.to_string(),
        original,
        variant,
    }
}

/// JSON values equal as a runtime reads them: numbers by value.
fn json_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// A JSON value for a difference.
fn show_json(v: &Json) -> String {
    match v {
        Json::Array(xs) if xs.len() > 8 => format!("[{} entries]", xs.len()),
        Json::Object(o) if o.len() > 8 => format!("{{{} keys}}", o.len()),
        other => shorten(&other.to_string()),
    }
}

/// A JSON key for a path: bare when it is a plain identifier, else quoted.
fn json_key(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

/// Every difference between `a` and `b` under `path` (appended to `out`), in key order.
fn json_diff(path: &str, a: &Json, b: &Json, out: &mut Vec<Difference>) {
    let join = |k: &str| {
        if path.is_empty() {
            json_key(k)
        } else {
            format!("{path}.{}", json_key(k))
        }
    };
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => json_diff(&join(k), v, w, out),
                    None => out.push(Difference {
                        key: join(k),
                        original: show_json(v),
                        variant: "absent".into(),
                    }),
                }
            }
            for (k, w) in y.iter().filter(|(k, _)| !x.contains_key(*k)) {
                out.push(Difference {
                    key: join(k),
                    original: "absent".into(),
                    variant: show_json(w),
                });
            }
        }
        (Json::Array(x), Json::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                json_diff(&format!("{path}[{i}]"), v, w, out);
            }
        }
        (Json::String(x), Json::String(y)) if x != y => {
            let (original, variant) = text_pair(x, y);
            out.push(Difference {
                key: path.to_string(),
                original,
                variant,
            });
        }
        _ if !json_eq(a, b) => {
            let (original, variant) = match (a, b) {
                (Json::Array(x), Json::Array(y)) => {
                    let i = x.iter().zip(y).position(|(p, q)| !json_eq(p, q));
                    let at = |v: &Vec<Json>| match i {
                        Some(i) => format!("{} entries, [{i}] = {}", v.len(), show_json(&v[i])),
                        None => format!("{} entries", v.len()),
                    };
                    (at(x), at(y))
                }
                _ => (show_json(a), show_json(b)),
            };
            out.push(Difference {
                key: path.to_string(),
                original,
                variant,
            });
        }
        _ => {}
    }
}

/// Compares what a runtime reads from `variant` with what `original` implies (module docs).
pub fn compare(original: &RuntimeMeta, variant: &RuntimeMeta) -> MetadataCheck {
    let mut check = MetadataCheck::default();
    let mut ignored = std::collections::BTreeSet::new();
    // The tokenizer of a safetensors model comes from its tokenizer.json: without one on the
    // original's side there is nothing to compare with; without one on the variant's, a single
    // difference says so instead of one per key.
    let orig_tok = original.unreadable("tokenizer.json");
    let var_tok = variant.unreadable("tokenizer.json");
    if let Some(why) = orig_tok {
        check.notes.push(format!(
            "the tokenizer is not compared: the original's tokenizer.json: {why}"
        ));
    } else if let Some(why) = var_tok {
        check.differences.push(Difference {
            key: "tokenizer.json".into(),
            original: "a tokenizer".into(),
            variant: why.to_string(),
        });
    }
    let skip_tokenizer = orig_tok.is_some() || var_tok.is_some();
    let skipped = |k: &str| skip_tokenizer && k.starts_with("tokenizer.");
    for (k, a) in &original.kv {
        if ignored_key(None, k) {
            ignored.insert(k.clone());
            continue;
        }
        if skipped(k) {
            continue;
        }
        check.compared += 1;
        match variant.get(k) {
            Some(b) if gguf_eq(a, b) => {}
            Some(b) => check.differences.push(gguf_difference(k, a, b)),
            None => check.differences.push(Difference {
                key: k.clone(),
                original: show_value(a),
                variant: "absent".into(),
            }),
        }
    }
    for (k, b) in &variant.kv {
        if original.get(k).is_some() || skipped(k) {
            continue;
        }
        if ignored_key(None, k) {
            ignored.insert(k.clone());
            continue;
        }
        check.compared += 1;
        check.differences.push(Difference {
            key: k.clone(),
            original: "absent".into(),
            variant: show_value(b),
        });
    }
    if !original.tokens_past_vocab.is_empty() {
        check.notes.push(format!(
            "the original's tokenizer holds {} at or past vocab_size: no GGUF can hold them (llama.cpp refuses them; `convert --truncate-vocab` leaves them out)",
            convert::gguf::meta::describe_tokens(&original.tokens_past_vocab)
        ));
    }
    if variant.container == Container::Safetensors {
        compare_files(original, variant, &mut check, &mut ignored);
    }
    check.ignored = ignored.into_iter().collect();
    check
}

/// The JSON file `name` without its ignored top-level keys (recorded in `ignored`). Only a
/// file that has some is copied (a 20b's tokenizer.json is 27 MB).
fn strip<'a>(
    name: &str,
    v: &'a Json,
    ignored: &mut std::collections::BTreeSet<String>,
) -> std::borrow::Cow<'a, Json> {
    let Json::Object(o) = v else {
        return std::borrow::Cow::Borrowed(v);
    };
    let drop: Vec<&String> = o.keys().filter(|k| ignored_key(Some(name), k)).collect();
    if drop.is_empty() {
        return std::borrow::Cow::Borrowed(v);
    }
    let mut o = o.clone();
    for k in drop {
        ignored.insert(format!("{name}: {k}"));
        o.remove(k);
    }
    std::borrow::Cow::Owned(Json::Object(o))
}

/// Special-token entries of `tokenizer_config.json` and `special_tokens_map.json`.
const SPECIAL_TOKEN_KEYS: [&str; 8] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
    "additional_special_tokens",
];

/// What transformers reads from a safetensors model's files, as entries to compare: the JSON
/// files (`tokenizer_config.json` without the chat template and special tokens, compared as the
/// two effective entries that follow), the special tokens as transformers resolves them
/// (`special_tokens_map.json` overriding `tokenizer_config.json`), and the chat template as
/// transformers resolves it (`chat_template.jinja`, else `tokenizer_config.json`'s
/// `chat_template`, else `chat_template.json`'s): transformers' `PreTrainedTokenizerBase.
/// from_pretrained` (a separate template file clobbers the config's; the special-tokens map's
/// entries override the config's).
/// True when `generation_config.json` lists end-of-sequence ids, which generation then stops on
/// instead of config.json's (transformers' `GenerationConfig`; mlx-lm's `load_config`, which
/// also writes them into the config.json it saves).
fn has_generation_eos(m: &RuntimeMeta) -> bool {
    match m.file("generation_config.json") {
        Some(FileContent::Json(g)) => g
            .get("eos_token_id")
            .is_some_and(|e| !e.is_null() && e.as_array().is_none_or(|a| !a.is_empty())),
        _ => false,
    }
}

/// `drop_config_eos`: leave config.json's `eos_token_id` out, because generation_config.json
/// decides on one side at least ([`has_generation_eos`]): there config.json's ids are not what
/// a runtime reads, and generation_config.json is compared itself (its absence on one side
/// included), so comparing config.json's would only report the same difference again, as if
/// it were another.
fn transformers_view(m: &RuntimeMeta, drop_config_eos: bool) -> Vec<(&'static str, FileContent)> {
    let json = |name: &str| match m.file(name) {
        Some(FileContent::Json(v)) => Some(v),
        _ => None,
    };
    let mut out = Vec::new();
    for name in ["config.json", "generation_config.json", "tokenizer.json"] {
        if let Some(v) = json(name) {
            let mut v = v.clone();
            if let (true, "config.json", Json::Object(o)) = (drop_config_eos, name, &mut v) {
                o.remove("eos_token_id");
            }
            out.push((name, FileContent::Json(v)));
        }
    }
    let tc = json("tokenizer_config.json").and_then(Json::as_object);
    if let Some(o) = tc {
        let mut o = o.clone();
        o.remove("chat_template");
        for k in SPECIAL_TOKEN_KEYS {
            o.remove(k);
        }
        out.push(("tokenizer_config.json", FileContent::Json(Json::Object(o))));
    }
    let map = json("special_tokens_map.json").and_then(Json::as_object);
    if tc.is_some() || map.is_some() {
        let mut special = serde_json::Map::new();
        for k in SPECIAL_TOKEN_KEYS {
            let v = map
                .and_then(|o| o.get(k))
                .or_else(|| tc.and_then(|o| o.get(k)))
                .filter(|v| !v.is_null());
            if let Some(v) = v {
                special.insert(k.to_string(), special_token(v));
            }
        }
        out.push(("special tokens", FileContent::Json(Json::Object(special))));
    }
    let template = match m.file("chat_template.jinja") {
        Some(FileContent::Text(t)) => Some(t.clone()),
        _ => tc
            .and_then(|o| o.get("chat_template"))
            .or_else(|| json("chat_template.json").and_then(|v| v.get("chat_template")))
            .map(|v| match v {
                Json::String(t) => t.clone(),
                other => other.to_string(),
            }),
    };
    if let Some(t) = template {
        out.push(("chat template", FileContent::Text(t)));
    }
    out
}

/// A special token as transformers uses it: its text, or (an `AddedToken` dict with other
/// flags than the defaults) the dict.
fn special_token(v: &Json) -> Json {
    match v {
        Json::Object(o) => {
            let defaults = o.iter().all(|(k, x)| {
                k == "content"
                    || k == "__type"
                    || (k == "special" && x == &Json::Bool(true))
                    || (k != "normalized" && x == &Json::Bool(false))
            });
            match o.get("content") {
                Some(c) if defaults => c.clone(),
                _ => v.clone(),
            }
        }
        Json::Array(xs) => Json::Array(xs.iter().map(special_token).collect()),
        other => other.clone(),
    }
}

/// Tokenizer classes transformers maps to the same fast tokenizer: transformers 5 renamed
/// `PreTrainedTokenizerFast` to `TokenizersBackend` and kept the old name as an alias
/// (`src/transformers/tokenization_utils_tokenizers.py`).
const FAST_TOKENIZER_CLASSES: [&str; 2] = ["PreTrainedTokenizerFast", "TokenizersBackend"];

/// `tokenizer.json`'s `added_tokens` as an `added_tokens_decoder` map (id → content and flags),
/// if it has them.
fn decoder_of_tokenizer_json(view: &[(&'static str, FileContent)]) -> Option<Json> {
    let Some((_, FileContent::Json(t))) = view.iter().find(|(n, _)| *n == "tokenizer.json") else {
        return None;
    };
    let mut out = serde_json::Map::new();
    for tok in t.get("added_tokens")?.as_array()? {
        let mut o = tok.as_object()?.clone();
        let id = o.remove("id")?;
        out.insert(id.as_u64()?.to_string(), Json::Object(o));
    }
    Some(Json::Object(out))
}

/// Makes the two sides' `tokenizer_config.json` spell what transformers reads alike (module
/// docs): the fast tokenizer's two class names become one, and an `added_tokens_decoder` on one
/// side only is dropped when it equals the other side's `tokenizer.json` added tokens (a note
/// says so), kept (and so reported) when it does not.
fn same_tokenizer_spelling(
    a: &mut [(&'static str, FileContent)],
    b: &mut [(&'static str, FileContent)],
    check: &mut MetadataCheck,
) {
    let (da, db) = (decoder_of_tokenizer_json(a), decoder_of_tokenizer_json(b));
    let mut ca = a.iter_mut().find_map(|(n, c)| match (*n, c) {
        ("tokenizer_config.json", FileContent::Json(Json::Object(o))) => Some(o),
        _ => None,
    });
    let mut cb = b.iter_mut().find_map(|(n, c)| match (*n, c) {
        ("tokenizer_config.json", FileContent::Json(Json::Object(o))) => Some(o),
        _ => None,
    });
    for o in [&mut ca, &mut cb].into_iter().flatten() {
        if let Some(Json::String(c)) = o.get("tokenizer_class")
            && FAST_TOKENIZER_CLASSES.contains(&c.as_str())
        {
            o.insert(
                "tokenizer_class".into(),
                Json::String(FAST_TOKENIZER_CLASSES[0].into()),
            );
        }
    }
    let (Some(ca), Some(cb)) = (ca, cb) else {
        return;
    };
    let key = "added_tokens_decoder";
    let (has, lacks, other_tokens) = match (ca.contains_key(key), cb.contains_key(key)) {
        (true, false) => (ca, "variant", db),
        (false, true) => (cb, "original", da),
        _ => return,
    };
    let equal = other_tokens.is_some_and(|t| has.get(key).is_some_and(|d| json_eq(d, &t)));
    if equal {
        has.remove(key);
        check.notes.push(format!(
            "tokenizer_config.json: added_tokens_decoder absent on the {lacks}'s side, equal to its tokenizer.json added tokens (transformers 5 writes it so)"
        ));
    }
}

/// The files a safetensors runtime reads, as transformers resolves them ([`transformers_view`]).
fn compare_files(
    original: &RuntimeMeta,
    variant: &RuntimeMeta,
    check: &mut MetadataCheck,
    ignored: &mut std::collections::BTreeSet<String>,
) {
    // A file that cannot be read: a failure on the variant's side (its runtime fails too), a
    // note on the original's. An unreadable tokenizer.json is reported by `compare` already.
    for (name, why) in &variant.unreadable {
        if name != "tokenizer.json" {
            check.differences.push(Difference {
                key: name.clone(),
                original: if original.file(name).is_some() {
                    "present".into()
                } else {
                    "absent".into()
                },
                variant: why.clone(),
            });
        }
    }
    for (name, why) in &original.unreadable {
        if name != "tokenizer.json" {
            check
                .notes
                .push(format!("{name} is not compared: the original's: {why}"));
        }
    }
    let skip = |name: &str| {
        original.unreadable(name).is_some()
            || variant.unreadable(name).is_some()
            || (name == "special tokens"
                && ["tokenizer_config.json", "special_tokens_map.json"]
                    .iter()
                    .any(|f| original.unreadable(f).is_some()))
    };
    let drop_config_eos = has_generation_eos(original) || has_generation_eos(variant);
    let (mut a, mut b) = (
        transformers_view(original, drop_config_eos),
        transformers_view(variant, drop_config_eos),
    );
    same_tokenizer_spelling(&mut a, &mut b, check);
    let get = |v: &[(&'static str, FileContent)], name: &str| {
        v.iter().find(|(n, _)| *n == name).map(|(_, c)| c.clone())
    };
    for name in [
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special tokens",
        "chat template",
    ] {
        if skip(name) {
            continue;
        }
        match (get(&a, name), get(&b, name)) {
            (None, None) => {}
            (Some(_), None) => {
                check.compared += 1;
                check.differences.push(Difference {
                    key: name.into(),
                    original: "present".into(),
                    variant: "absent".into(),
                });
            }
            (None, Some(_)) => {
                check.compared += 1;
                check.differences.push(Difference {
                    key: name.into(),
                    original: "absent".into(),
                    variant: "present".into(),
                });
            }
            (Some(FileContent::Text(x)), Some(FileContent::Text(y))) => {
                check.compared += 1;
                if x != y {
                    let (original, variant) = text_pair(&x, &y);
                    check.differences.push(Difference {
                        key: name.into(),
                        original,
                        variant,
                    });
                }
            }
            (Some(FileContent::Json(x)), Some(FileContent::Json(y))) => {
                let (x, y) = (strip(name, &x, ignored), strip(name, &y, ignored));
                check.compared += match x.as_ref() {
                    Json::Object(o) => o.len(),
                    _ => 1,
                };
                let mut diffs = Vec::new();
                json_diff("", &x, &y, &mut diffs);
                let n = diffs.len();
                for mut d in diffs.into_iter().take(MAX_FILE_DIFFERENCES) {
                    d.key = if d.key.is_empty() {
                        name.to_string()
                    } else {
                        format!("{name}: {}", d.key)
                    };
                    check.differences.push(d);
                }
                if n > MAX_FILE_DIFFERENCES {
                    check.differences.push(Difference {
                        key: name.into(),
                        original: "…".into(),
                        variant: format!("and {} more differences", n - MAX_FILE_DIFFERENCES),
                    });
                }
            }
            (Some(_), Some(_)) => unreachable!("each entry has one kind"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The differences `compare` finds, as report lines.
    fn differences(a: &RuntimeMeta, b: &RuntimeMeta) -> Vec<String> {
        compare(a, b)
            .differences
            .iter()
            .map(ToString::to_string)
            .collect()
    }
    use serde_json::json;

    fn meta(container: Container, kv: Vec<(&str, Value)>) -> RuntimeMeta {
        RuntimeMeta {
            container,
            kv: kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            files: Vec::new(),
            unreadable: Vec::new(),
            tokens_past_vocab: Vec::new(),
        }
    }

    fn tokens(xs: &[&str]) -> Value {
        Value::Array(
            convert::gguf::value_type::STRING,
            xs.iter().map(|s| Value::String(s.to_string())).collect(),
        )
    }

    #[test]
    fn producer_and_storage_keys_are_ignored_and_the_rest_compared_by_value() {
        let a = meta(
            Container::Safetensors,
            vec![
                ("general.architecture", Value::String("gpt-oss".into())),
                ("general.name", Value::String("Tiny Gpt Oss".into())),
                ("general.file_type", Value::U32(32)),
                ("tokenizer.ggml.eos_token_id", Value::U32(484)),
                ("gpt-oss.rope.freq_base", Value::F32(150000.0)),
            ],
        );
        let b = meta(
            Container::Gguf,
            vec![
                ("general.architecture", Value::String("gpt-oss".into())),
                ("general.name", Value::String("other".into())),
                ("general.file_type", Value::U32(7)),
                ("general.quantized_by", Value::String("someone".into())),
                ("split.count", Value::U16(2)),
                ("tokenizer.ggml.eos_token_id", Value::I32(484)),
                ("gpt-oss.rope.freq_base", Value::F64(150000.0)),
            ],
        );
        let c = compare(&a, &b);
        assert!(c.passed(), "{:?}", c.differences);
        assert_eq!(c.compared, 3);
        assert_eq!(
            c.ignored,
            [
                "general.file_type",
                "general.name",
                "general.quantized_by",
                "split.count"
            ]
        );
    }

    #[test]
    fn an_eos_change_a_renamed_token_and_an_added_key_are_named_with_both_values() {
        let a = meta(
            Container::Safetensors,
            vec![
                ("tokenizer.ggml.eos_token_id", Value::U32(484)),
                ("tokenizer.ggml.tokens", tokens(&["a", "b", "c"])),
            ],
        );
        let b = meta(
            Container::Gguf,
            vec![
                ("tokenizer.ggml.eos_token_id", Value::U32(483)),
                ("tokenizer.ggml.tokens", tokens(&["a", "B", "c"])),
                ("tokenizer.ggml.add_sep_token", Value::Bool(true)),
            ],
        );
        let d: Vec<String> = differences(&a, &b);
        assert_eq!(
            d,
            [
                "tokenizer.ggml.eos_token_id: original 484, variant 483",
                "tokenizer.ggml.tokens[1]: original \"b\", variant \"B\" (1 of 3 entries differ)",
                "tokenizer.ggml.add_sep_token: original absent, variant true",
            ]
        );
    }

    #[test]
    fn a_long_text_is_shown_around_its_first_difference() {
        let x = "{%- for message in messages -%}".repeat(10);
        let mut y = x.clone();
        y.replace_range(200..201, "X");
        let (a, b) = text_pair(&x, &y);
        assert!(a.contains("first difference at char 200"), "{a}");
        assert!(b.contains('X') && !a.contains('X'), "{a} / {b}");
        assert!(a.len() < 200 && b.len() < 200);
    }

    #[test]
    fn json_files_compare_at_every_depth_without_storage_keys() {
        let mut a = meta(Container::Safetensors, vec![]);
        let mut b = meta(Container::Safetensors, vec![]);
        a.files = vec![
            (
                "config.json".into(),
                FileContent::Json(json!({
                    "rope_theta": 150000, "torch_dtype": "bfloat16",
                    "quantization_config": {"quant_method": "mxfp4"},
                    "rope_scaling": {"factor": 32.0, "beta_fast": 32.0}
                })),
            ),
            (
                "generation_config.json".into(),
                FileContent::Json(
                    json!({"eos_token_id": [484, 483], "transformers_version": "4.55.0"}),
                ),
            ),
        ];
        b.files = vec![
            (
                "config.json".into(),
                FileContent::Json(json!({
                    "rope_theta": 150000.0, "dtype": "float16",
                    "rope_scaling": {"factor": 16.0, "beta_fast": 32.0}
                })),
            ),
            (
                "generation_config.json".into(),
                FileContent::Json(
                    json!({"eos_token_id": [484, 200012], "transformers_version": "5.0"}),
                ),
            ),
            ("chat_template.jinja".into(), FileContent::Text("x".into())),
        ];
        let c = compare(&a, &b);
        let d: Vec<String> = c.differences.iter().map(ToString::to_string).collect();
        assert_eq!(
            d,
            [
                "config.json: rope_scaling.factor: original 32.0, variant 16.0",
                "generation_config.json: eos_token_id[1]: original 483, variant 200012",
                "chat template: original absent, variant present",
            ]
        );
        assert!(
            c.ignored
                .contains(&"config.json: quantization_config".to_string())
        );
        assert!(c.ignored.contains(&"config.json: dtype".to_string()));
        // A GGUF variant is judged on its keys only: the files beside it are not read by llama.cpp.
        b.container = Container::Gguf;
        assert!(compare(&a, &b).passed());
    }

    #[test]
    fn the_template_and_special_tokens_compare_as_transformers_resolves_them() {
        let file = |n: &str, v: Json| (n.to_string(), FileContent::Json(v));
        let mut a = meta(Container::Safetensors, vec![]);
        a.files = vec![
            file(
                "tokenizer_config.json",
                json!({"eos_token": "<|return|>", "chat_template": "T", "model_max_length": 9}),
            ),
            file(
                "special_tokens_map.json",
                json!({"eos_token": {"content": "<|return|>", "lstrip": false, "special": true}}),
            ),
            ("chat_template.jinja".into(), FileContent::Text("T".into())),
        ];
        // Without the separate files, the same template and tokens from tokenizer_config.json.
        let mut b = meta(Container::Safetensors, vec![]);
        b.files = vec![a.files[0].clone()];
        assert!(
            compare(&a, &b).passed(),
            "{:?}",
            compare(&a, &b).differences
        );
        // The map overrides the config; the separate template clobbers the config's.
        b.files.push(file(
            "special_tokens_map.json",
            json!({"eos_token": "<|endoftext|>"}),
        ));
        b.files
            .push(("chat_template.jinja".into(), FileContent::Text("U".into())));
        let d: Vec<String> = differences(&a, &b);
        assert_eq!(
            d,
            [
                "special tokens: eos_token: original \"<|return|>\", variant \"<|endoftext|>\"",
                "chat template: original \"T\", variant \"U\"",
            ]
        );
    }

    #[test]
    fn without_a_tokenizer_on_the_original_side_the_tokenizer_is_not_compared() {
        let mut a = meta(Container::Safetensors, vec![]);
        a.unreadable = vec![("tokenizer.json".into(), "not found beside the model".into())];
        let b = meta(
            Container::Gguf,
            vec![("tokenizer.ggml.eos_token_id", Value::U32(1))],
        );
        let c = compare(&a, &b);
        assert!(c.passed() && c.notes.len() == 1, "{c:?}");
        // The reverse: the variant lost its tokenizer.
        let c = compare(&b, &a);
        assert_eq!(c.differences.len(), 1);
        assert_eq!(c.differences[0].key, "tokenizer.json");
    }

    #[test]
    fn config_eos_overridden_by_generation_config_is_not_compared() {
        // mlx-lm writes generation_config.json's eos ids into the config.json it saves.
        let files = |cfg_eos: Json| {
            let mut m = meta(Container::Safetensors, vec![]);
            m.files = vec![
                (
                    "config.json".into(),
                    FileContent::Json(json!({"eos_token_id": cfg_eos, "vocab_size": 512})),
                ),
                (
                    "generation_config.json".into(),
                    FileContent::Json(json!({"eos_token_id": [484, 483, 494]})),
                ),
            ];
            m
        };
        let c = compare(&files(json!(484)), &files(json!([484, 483, 494])));
        assert!(c.differences.is_empty(), "{:?}", c.differences);
        // Without generation ids, config.json's are the ones read, and compared.
        let mut a = files(json!(484));
        let mut b = files(json!(483));
        for m in [&mut a, &mut b] {
            m.files.truncate(1);
        }
        let d: Vec<String> = differences(&a, &b);
        assert_eq!(d, ["config.json: eos_token_id: original 484, variant 483"]);
        // generation_config.json on one side only: that file's absence is the difference
        // reported, not config.json's eos ids a second time.
        let (a, mut b) = (files(json!(484)), files(json!(484)));
        b.files.truncate(1);
        let d: Vec<String> = differences(&a, &b);
        assert_eq!(
            d,
            ["generation_config.json: original present, variant absent"],
            "{d:?}"
        );
    }
}
