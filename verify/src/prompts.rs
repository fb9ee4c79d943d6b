//! The prompts a verification runs: built-in harmony chats and window-crossing sequences, or a
//! file of text / token-id lines.
//!
//! Built-in set (deterministic, no files needed beyond the checkpoint's `tokenizer.json`):
//!
//! | name | what it exercises |
//! |---|---|
//! | `chat-system-user` | harmony system + user turn, open assistant turn |
//! | `chat-analysis` | developer instructions, an assistant analysis channel |
//! | `chat-tool-call` | a commentary-channel tool call with `<\|constrain\|>json` |
//! | `window-random` | `sliding_window + 16` pseudo-random ordinary tokens: keys fall out of the window |
//! | `window-periodic` | the same length, a period-7 pattern (sharp attention across the window edge) |
//!
//! The chats need the tokenizer; without one (a GGUF original) only the sequences run. Every
//! prompt is checked against the vocabulary: ids past the tokenizer's last token are padding rows
//! of the embedding (never trained), ids past `vocab_size` do not exist; both are refused.

use crate::VerifyError;
use reference::Config;
use tokenizers::Tokenizer;

/// One prompt: a name for reports and its token ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    /// Short name (`chat-analysis`, `file:3`, ...).
    pub name: String,
    /// Token ids.
    pub tokens: Vec<u32>,
}

/// The harmony chats of the built-in set, as text with the special tokens spelled out.
pub const CHATS: [(&str, &str); 3] = [
    (
        "chat-system-user",
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\nCurrent date: 2025-08-05\n\nReasoning: medium\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|><|start|>user<|message|>What is the capital of France, and why is it there?<|end|><|start|>assistant",
    ),
    (
        "chat-analysis",
        "<|start|>developer<|message|># Instructions\n\nAnswer in one short paragraph.<|end|><|start|>user<|message|>Explain a sliding-window attention layer to a 10-year-old.<|end|><|start|>assistant<|channel|>analysis<|message|>The user wants a simple explanation. Keep it short.<|end|><|start|>assistant<|channel|>final<|message|>",
    ),
    (
        "chat-tool-call",
        "<|start|>user<|message|>What's the weather in Paris right now?<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"location\": \"Paris, France\"}<|call|><|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{\"temperature_c\": 18, \"sky\": \"overcast\"}<|end|><|start|>assistant",
    ),
];

/// Loads a `tokenizer.json`.
pub fn load_tokenizer(json: &[u8], path: &str) -> Result<Tokenizer, VerifyError> {
    Tokenizer::from_bytes(json).map_err(|e| {
        VerifyError::Prompt(format!(
            "{path}: not a tokenizer.json this tool can read: {e}"
        ))
    })
}

/// Ids that are real tokens: `0..limit` where `limit` is the tokenizer's size (with its added
/// tokens), or the whole vocabulary without a tokenizer.
fn token_limit(cfg: &Config, tok: Option<&Tokenizer>) -> usize {
    tok.map_or(cfg.vocab_size, |t| {
        t.get_vocab_size(true).min(cfg.vocab_size)
    })
}

/// Encodes `text` (special tokens spelled out, as in harmony).
pub fn encode(tok: &Tokenizer, text: &str) -> Result<Vec<u32>, VerifyError> {
    let enc = tok
        .encode(text, false)
        .map_err(|e| VerifyError::Prompt(format!("cannot encode {text:?}: {e}")))?;
    Ok(enc.get_ids().to_vec())
}

/// Deterministic pseudo-random ids in `0..n` (a 64-bit LCG, high bits).
fn lcg_tokens(seed: u64, len: usize, n: usize) -> Vec<u32> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % n as u64) as u32
        })
        .collect()
}

/// The built-in prompt set for a model.
pub fn builtin(cfg: &Config, tok: Option<&Tokenizer>) -> Result<Vec<Prompt>, VerifyError> {
    let mut out = Vec::new();
    if let Some(t) = tok {
        for (name, text) in CHATS {
            out.push(Prompt {
                name: name.into(),
                tokens: encode(t, text)?,
            });
        }
    }
    // Ordinary tokens only: below the first special token when the tokenizer says where it is.
    let ordinary = tok
        .map_or(cfg.vocab_size, |t| t.get_vocab_size(false))
        .clamp(1, token_limit(cfg, tok));
    let len = cfg.sliding_window + 16;
    out.push(Prompt {
        name: "window-random".into(),
        tokens: lcg_tokens(0x05F0_0A11, len, ordinary),
    });
    let period: Vec<u32> = lcg_tokens(7, 7, ordinary);
    out.push(Prompt {
        name: "window-periodic".into(),
        tokens: (0..len).map(|i| period[i % 7]).collect(),
    });
    check(cfg, tok, &out)?;
    Ok(out)
}

/// Parses a prompts file: one prompt per non-empty line, `#` starts a comment line. A line of
/// integers (separated by commas and/or spaces) is token ids; any other line is text, where
/// `\n` and `\\` are escapes, encoded with the tokenizer.
pub fn parse_file(
    text: &str,
    cfg: &Config,
    tok: Option<&Tokenizer>,
    path: &str,
) -> Result<Vec<Prompt>, VerifyError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let name = format!("{path}:{}", i + 1);
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let is_ids = trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || c == ',' || c.is_whitespace());
        let tokens = if is_ids {
            trimmed
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<u32>().map_err(|_| {
                        VerifyError::Prompt(format!("{name}: {s:?} is not a token id"))
                    })
                })
                .collect::<Result<Vec<u32>, _>>()?
        } else {
            let t = tok.ok_or_else(|| {
                VerifyError::Prompt(format!(
                    "{name}: a text prompt needs the original's tokenizer.json, and none was found"
                ))
            })?;
            encode(t, &unescape(line))?
        };
        if tokens.is_empty() {
            return Err(VerifyError::Prompt(format!(
                "{name}: the line encodes to no tokens"
            )));
        }
        out.push(Prompt { name, tokens });
    }
    if out.is_empty() {
        return Err(VerifyError::Prompt(format!(
            "{path}: no prompts (every line is empty or a comment)"
        )));
    }
    check(cfg, tok, &out)?;
    Ok(out)
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('n')) => {
                out.push('\n');
                chars.next();
            }
            ('\\', Some('\\')) => {
                out.push('\\');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// Refuses prompts with ids past the tokenizer (padding) or past the vocabulary.
pub fn check(cfg: &Config, tok: Option<&Tokenizer>, prompts: &[Prompt]) -> Result<(), VerifyError> {
    let limit = token_limit(cfg, tok);
    for p in prompts {
        for (pos, &t) in p.tokens.iter().enumerate() {
            let t = t as usize;
            if t >= cfg.vocab_size {
                return Err(VerifyError::Prompt(format!(
                    "prompt {}: token {t} at position {pos} is outside the vocabulary (vocab_size {})",
                    p.name, cfg.vocab_size
                )));
            }
            if t >= limit || tok.is_some_and(|k| k.id_to_token(t as u32).is_none()) {
                return Err(VerifyError::Prompt(format!(
                    "prompt {}: token {t} at position {pos} is a padding id (the tokenizer has no token {t}; its embedding row was never trained)",
                    p.name
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        let mut c = reference::Config::from_hf_json(&convert::synth::preset_config(
            convert::synth::Preset::Gpt20b,
            None,
        ))
        .unwrap();
        c.vocab_size = 1000;
        c.sliding_window = 8;
        c
    }

    #[test]
    fn builtin_sequences_cross_the_window_and_stay_in_vocabulary() {
        let c = cfg();
        let p = builtin(&c, None).unwrap();
        assert_eq!(p.len(), 2);
        assert!(
            p.iter()
                .all(|p| p.tokens.len() == 24 && p.tokens.iter().all(|&t| (t as usize) < 1000))
        );
        assert_eq!(p, builtin(&c, None).unwrap(), "deterministic");
        assert_eq!(p[1].tokens[0], p[1].tokens[7]);
    }

    #[test]
    fn file_lines_are_ids_or_text() {
        let c = cfg();
        let p = parse_file("# comment\n\n1, 2,3\n 4 5 6 \n", &c, None, "p.txt").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].name.as_str(), &p[0].tokens[..]),
            ("p.txt:3", &[1u32, 2, 3][..])
        );
        let e = parse_file("hello\n", &c, None, "p.txt")
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.txt:1") && e.contains("tokenizer.json"), "{e}");
        let e = parse_file("1, 1000\n", &c, None, "p.txt")
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside the vocabulary"), "{e}");
        assert!(parse_file("# only\n", &c, None, "p.txt").is_err());
        assert_eq!(unescape(r"a\nb\\n"), "a\nb\\n");
    }
}
