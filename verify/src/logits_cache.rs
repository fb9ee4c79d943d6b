//! The original's logits kept on disk between runs (`--logits-cache DIR`), so verifying one more
//! variant of a model costs one forward pass instead of two.
//!
//! An entry is keyed ([`CacheKey`]) by everything the logits depend on:
//! - the original's identity: the SHA-256 of every file of it (for a safetensors directory, every
//!   regular, non-hidden file in it, weights and config; for a GGUF model, every split) and the
//!   config those files were read as;
//! - the prompts: each one's name and token ids;
//! - the code that computed them: [`FORWARD_VERSION`], the tool's version and a hash of the
//!   sources of the crates the forward pass runs (`reference`, `quant`, `convert`) taken at
//!   build time, and the CPU architecture. A build whose forward pass may compute other bits
//!   never reads another build's logits.
//!
//! A changed checkpoint, prompt or tool therefore misses and writes its own entry.
//!
//! File `<DIR>/<key>.logits`: the magic `OSSFLGT1`, a little-endian u64 header length, a JSON
//! header (`key`, `forward`, `vocab`, each prompt's `name` and `tokens` count, the SHA-256 of the
//! data), then every prompt's logits in order as little-endian f32 (`[tokens × vocab]` each).
//! An entry is trusted only when its header names this key and these prompts, its length is
//! exactly what they imply, and its data hashes to the header's SHA-256; anything else (a
//! truncated write, a flipped byte, another file under this name) is reported
//! ([`Lookup::Ignored`]) and recomputed, never read, never an error. Entries are written under a
//! temporary name in `DIR` and renamed into place ([`convert::atomic::Staged`]), so a reader
//! sees a whole entry or none.

use crate::VerifyError;
use crate::prompts::Prompt;
use convert::error::ConvertError;
use convert::{AnyModel, Progress};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"OSSFLGT1";

/// Headers larger than this are not headers this module wrote.
const MAX_HEADER: u64 = 1 << 24;

/// The code that computes the logits: the tool's version and the build-time hash of the
/// sources of `reference`, `quant` and `convert` (`verify/build.rs`).
pub const FORWARD_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "+src.",
    env!("OSS_FORGE_FORWARD_SOURCE")
);

/// The key of one original's logits over one set of prompts (hex SHA-256 of their description).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key for an original whose files are `files` (`(name, sha256)`, any order) and whose
    /// config they were read as is `config`, run over `prompts` by this build's forward pass.
    pub fn new(
        files: &[(String, String)],
        config: &reference::Config,
        prompts: &[Prompt],
    ) -> CacheKey {
        let mut files = files.to_vec();
        files.sort();
        let mut text = format!(
            "oss-forge original logits\nforward {FORWARD_VERSION} {}\nconfig {config:?}\n",
            std::env::consts::ARCH
        );
        for (name, sha) in &files {
            text.push_str(&format!("file {sha} {name}\n"));
        }
        for p in prompts {
            let ids: Vec<String> = p.tokens.iter().map(u32::to_string).collect();
            text.push_str(&format!("prompt {:?} {}\n", p.name, ids.join(",")));
        }
        CacheKey(convert::publish::sha256_bytes(text.as_bytes()))
    }

    /// The key as hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The files whose bytes determine a model's weights and config, as `(name, path)` sorted by
/// name: every regular, non-hidden file of a safetensors directory (as `pipeline` lists its
/// inputs); every split of a GGUF model.
pub fn model_files(m: &AnyModel) -> Result<Vec<(String, PathBuf)>, VerifyError> {
    let mut out = Vec::new();
    match m {
        AnyModel::Safetensors(c) => {
            let dir = c.dir();
            let entries = std::fs::read_dir(dir).map_err(|e| ConvertError::io(dir, e))?;
            for e in entries {
                let e = e.map_err(|err| ConvertError::io(dir, err))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') && e.path().is_file() {
                    out.push((name, e.path()));
                }
            }
        }
        AnyModel::Gguf(g) => {
            for f in g.files() {
                let p = f.path().to_path_buf();
                let name = p
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                out.push((name, p));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// [`model_files`] with their SHA-256 (files hashed in parallel), the bytes read reported to
/// `progress` as one phase.
pub fn hash_model_files(
    m: &AnyModel,
    progress: &dyn Progress,
) -> Result<Vec<(String, String)>, VerifyError> {
    let files = model_files(m)?;
    let total = files
        .iter()
        .map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    progress.begin("hashing the original for the logits cache", total);
    let r = files
        .par_iter()
        .map(|(name, path)| {
            Ok((
                name.clone(),
                convert::publish::sha256_file_with(path, progress)?,
            ))
        })
        .collect();
    progress.end();
    r
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Header {
    key: String,
    forward: String,
    vocab: usize,
    prompts: Vec<PromptHeader>,
    data_sha256: String,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct PromptHeader {
    name: String,
    tokens: usize,
}

/// What [`LogitsCache::load`] found.
#[derive(Debug)]
pub enum Lookup {
    /// The entry: every prompt's logits (`[tokens × vocab]` each).
    Hit(Vec<Vec<f32>>),
    /// No entry for this key.
    Miss,
    /// A file is there but is not a whole entry for this key and these prompts: why.
    Ignored(String),
}

/// A directory of cached logits.
#[derive(Clone, Debug)]
pub struct LogitsCache {
    dir: PathBuf,
}

impl LogitsCache {
    /// The cache in `dir` (created on the first store).
    pub fn new(dir: impl Into<PathBuf>) -> LogitsCache {
        LogitsCache { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `key`'s entry lives.
    pub fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.logits", key.as_str()))
    }

    /// The logits stored under `key` for `prompts` over a vocabulary of `vocab`. Never fails:
    /// whatever is wrong with a file makes it [`Lookup::Ignored`].
    pub fn load(&self, key: &CacheKey, prompts: &[Prompt], vocab: usize) -> Lookup {
        let path = self.path(key);
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Miss,
            Err(e) => return Lookup::Ignored(format!("cannot be read: {e}")),
        };
        match read_entry(f, key, prompts, vocab) {
            Ok(l) => Lookup::Hit(l),
            Err(why) => Lookup::Ignored(why),
        }
    }

    /// Stores `logits` (one `[tokens × vocab]` block per prompt) under `key`, replacing any
    /// entry there: written under a temporary name, synced, then renamed into place.
    pub fn store(
        &self,
        key: &CacheKey,
        prompts: &[Prompt],
        vocab: usize,
        logits: &[Vec<f32>],
    ) -> Result<(), VerifyError> {
        assert_eq!(
            logits.len(),
            prompts.len(),
            "one block of logits per prompt"
        );
        let path = self.path(key);
        let staged = convert::atomic::Staged::create(&path, false, true)?;
        let io = |e| ConvertError::io(staged.path(), e);
        let mut hash = Sha256::new();
        let mut buf = Vec::new();
        for l in logits {
            le_bytes(l, &mut buf);
            hash.update(&buf);
        }
        let header = serde_json::to_vec(&Header {
            key: key.as_str().to_string(),
            forward: FORWARD_VERSION.to_string(),
            vocab,
            prompts: prompt_headers(prompts),
            data_sha256: hex(&hash.finalize()),
        })
        .expect("strings and numbers always serialize");
        let file = std::fs::File::create(staged.path()).map_err(io)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        w.write_all(MAGIC).map_err(io)?;
        w.write_all(&(header.len() as u64).to_le_bytes())
            .map_err(io)?;
        w.write_all(&header).map_err(io)?;
        for l in logits {
            le_bytes(l, &mut buf);
            w.write_all(&buf).map_err(io)?;
        }
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        drop(file);
        staged.commit()?;
        Ok(())
    }
}

/// Reads a whole entry from `f`, or says why it is not one for `key` and `prompts`.
fn read_entry(
    mut f: std::fs::File,
    key: &CacheKey,
    prompts: &[Prompt],
    vocab: usize,
) -> Result<Vec<Vec<f32>>, String> {
    let file_len = f
        .metadata()
        .map_err(|e| format!("cannot be read: {e}"))?
        .len();
    let not_ours = || "not a logits cache file of this tool".to_string();
    let mut head = [0u8; 16];
    f.read_exact(&mut head).map_err(|_| not_ours())?;
    let header_len = u64::from_le_bytes(head[8..].try_into().expect("8 bytes"));
    if head[..8] != *MAGIC || header_len > MAX_HEADER || 16 + header_len > file_len {
        return Err(not_ours());
    }
    let mut header = vec![0u8; header_len as usize];
    f.read_exact(&mut header).map_err(|_| not_ours())?;
    let header: Header = serde_json::from_slice(&header).map_err(|_| not_ours())?;
    if header.key != key.as_str() {
        return Err(format!(
            "holds the entry of another key ({}), renamed or copied here",
            header.key
        ));
    }
    if header.forward != FORWARD_VERSION
        || header.vocab != vocab
        || header.prompts != prompt_headers(prompts)
    {
        return Err("its header does not describe this original and these prompts".into());
    }
    let data_len: u64 = prompts
        .iter()
        .map(|p| (p.tokens.len() * vocab * 4) as u64)
        .sum();
    let want = 16 + header_len + data_len;
    if file_len != want {
        return Err(format!(
            "{} bytes where the entry is {want} (truncated or appended to)",
            file_len
        ));
    }
    let mut hash = Sha256::new();
    let mut out = Vec::with_capacity(prompts.len());
    let mut bytes = Vec::new();
    for p in prompts {
        bytes.resize(p.tokens.len() * vocab * 4, 0);
        f.read_exact(&mut bytes)
            .map_err(|e| format!("cannot be read: {e}"))?;
        hash.update(&bytes);
        out.push(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        );
    }
    if hex(&hash.finalize()) != header.data_sha256 {
        return Err("corrupt: its data does not match the SHA-256 in its header".into());
    }
    Ok(out)
}

/// `xs` as little-endian bytes, into `buf` (cleared first).
fn le_bytes(xs: &[f32], buf: &mut Vec<u8>) {
    buf.clear();
    buf.reserve(xs.len() * 4);
    for x in xs {
        buf.extend_from_slice(&x.to_le_bytes());
    }
}

fn prompt_headers(prompts: &[Prompt]) -> Vec<PromptHeader> {
    prompts
        .iter()
        .map(|p| PromptHeader {
            name: p.name.clone(),
            tokens: p.tokens.len(),
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompts() -> Vec<Prompt> {
        vec![
            Prompt {
                name: "a".into(),
                tokens: vec![1, 2, 3],
            },
            Prompt {
                name: "b".into(),
                tokens: vec![4],
            },
        ]
    }

    fn config() -> reference::Config {
        reference::Config::from_hf_json(&convert::synth::preset_config(
            convert::synth::Preset::Tiny,
            Some(1),
        ))
        .unwrap()
    }

    fn bits(l: &[Vec<f32>]) -> Vec<u32> {
        l.concat().iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn entries_round_trip_and_anything_else_is_ignored() {
        let dir =
            std::env::temp_dir().join(format!("oss-forge-logits-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = LogitsCache::new(&dir);
        let cfg = config();
        let files = vec![("model.safetensors".to_string(), "ab".repeat(32))];
        let key = CacheKey::new(&files, &cfg, &prompts());
        let vocab = 5;
        let logits = vec![
            (0..15).map(|i| i as f32 * 0.5 - 3.0).collect::<Vec<f32>>(),
            vec![f32::NAN, 1.0, -0.0, f32::INFINITY, 2.5],
        ];
        assert!(matches!(cache.load(&key, &prompts(), vocab), Lookup::Miss));
        cache.store(&key, &prompts(), vocab, &logits).unwrap();
        let Lookup::Hit(back) = cache.load(&key, &prompts(), vocab) else {
            panic!("a stored entry is read back");
        };
        assert_eq!(bits(&back), bits(&logits));
        // No temporary is left beside it.
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);

        // Another file hash, other tokens, another config: other keys.
        let other = CacheKey::new(
            &[("model.safetensors".into(), "cd".repeat(32))],
            &cfg,
            &prompts(),
        );
        assert_ne!(other, key);
        assert!(matches!(
            cache.load(&other, &prompts(), vocab),
            Lookup::Miss
        ));
        let mut p2 = prompts();
        p2[1].tokens = vec![5];
        assert_ne!(CacheKey::new(&files, &cfg, &p2), key);
        let mut cfg2 = cfg.clone();
        cfg2.rope_theta *= 2.0;
        assert_ne!(CacheKey::new(&files, &cfg2, &prompts()), key);
        // Files given in another order: the same key.
        let two = vec![
            ("a".to_string(), "00".repeat(32)),
            ("b".to_string(), "11".repeat(32)),
        ];
        let rev: Vec<_> = two.iter().rev().cloned().collect();
        assert_eq!(
            CacheKey::new(&two, &cfg, &prompts()),
            CacheKey::new(&rev, &cfg, &prompts())
        );
        // The same key asked with another vocabulary: the header does not describe it.
        assert!(matches!(
            cache.load(&key, &prompts(), 6),
            Lookup::Ignored(_)
        ));

        let path = cache.path(&key);
        let good = std::fs::read(&path).unwrap();
        let ignored = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            match cache.load(&key, &prompts(), vocab) {
                Lookup::Ignored(why) => why,
                other => panic!("{other:?}"),
            }
        };
        // A flipped data byte: the data's hash no longer matches.
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(ignored(&flipped).starts_with("corrupt"));
        // Truncated anywhere: in the data, in the header, in the magic.
        for cut in [good.len() - 1, 20, 3, 0] {
            ignored(&good[..cut]);
        }
        assert!(ignored(&good[..good.len() - 4]).contains("truncated"));
        // Another key's entry under this name (renamed or copied by hand).
        cache.store(&other, &prompts(), vocab, &logits).unwrap();
        let other_entry = std::fs::read(cache.path(&other)).unwrap();
        assert!(ignored(&other_entry).contains("another key"));
        // Something else entirely, and a header length past the file.
        assert!(ignored(b"GGUF and then some bytes").contains("not a logits cache"));
        let mut huge = good.clone();
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        ignored(&huge);
        // A store replaces it.
        cache.store(&key, &prompts(), vocab, &logits).unwrap();
        assert!(matches!(
            cache.load(&key, &prompts(), vocab),
            Lookup::Hit(_)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
