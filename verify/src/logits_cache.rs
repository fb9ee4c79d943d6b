//! The original's logits kept on disk between runs (`--logits-cache DIR`), so verifying one more
//! variant of a model costs one forward pass instead of two.
//!
//! An entry is keyed by everything the logits depend on: the SHA-256 of every file of the
//! original (its weights and config; for a directory, every regular file in it), the prompts'
//! token ids, and [`reference::ARITHMETIC`], which names the reference forward pass's arithmetic
//! (changed whenever an output bit may change). A changed checkpoint, prompt or tool therefore
//! never reads another's logits: it misses and writes its own entry.
//!
//! File `<DIR>/<key>.logits`: the magic `OSSFLGT1`, a little-endian u64 header length, a JSON
//! header (`key`, `vocab`, each prompt's `name` and `tokens` count, the SHA-256 of the data),
//! then every prompt's logits in order as little-endian f32 (`[tokens × vocab]` each). An entry
//! that does not match its key, its prompts, its length or its data's SHA-256 is a miss (and is
//! overwritten), never an error. Entries are written under a temporary name and renamed.

use crate::VerifyError;
use crate::prompts::Prompt;
use convert::AnyModel;
use convert::error::ConvertError;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;

const MAGIC: &[u8; 8] = b"OSSFLGT1";

/// The key of one original's logits over one set of prompts (hex SHA-256).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key for an original whose files are `files` (`(name, sha256)`, any order) run over
    /// `prompts` by this build's reference forward pass.
    pub fn new(files: &[(String, String)], prompts: &[Prompt]) -> CacheKey {
        let mut files = files.to_vec();
        files.sort();
        let mut text = format!(
            "oss-forge original logits\nreference {}\n",
            reference::ARITHMETIC
        );
        for (name, sha) in &files {
            text.push_str(&format!("file {sha} {name}\n"));
        }
        for p in prompts {
            let ids: Vec<String> = p.tokens.iter().map(u32::to_string).collect();
            text.push_str(&format!("prompt {} {}\n", p.name, ids.join(",")));
        }
        CacheKey(convert::publish::sha256_bytes(text.as_bytes()))
    }

    /// The key as hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The files whose bytes determine a model's weights and config, as `(name, path)`: every
/// regular, non-hidden file of a safetensors directory; every split of a GGUF model.
pub fn model_files(m: &AnyModel) -> Result<Vec<(String, PathBuf)>, VerifyError> {
    let mut out = Vec::new();
    match m {
        AnyModel::Safetensors(c) => {
            let dir = c.dir();
            let entries = std::fs::read_dir(dir).map_err(|e| ConvertError::io(dir, e))?;
            for e in entries.flatten() {
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

/// [`model_files`] with their SHA-256 (files hashed in parallel).
pub fn hash_model_files(m: &AnyModel) -> Result<Vec<(String, String)>, VerifyError> {
    model_files(m)?
        .par_iter()
        .map(|(name, path)| Ok((name.clone(), convert::publish::sha256_file(path)?)))
        .collect()
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Header {
    key: String,
    vocab: usize,
    prompts: Vec<PromptHeader>,
    data_sha256: String,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct PromptHeader {
    name: String,
    tokens: usize,
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

    /// Where `key`'s entry lives.
    pub fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.logits", key.as_str()))
    }

    /// The logits stored under `key` for `prompts` (`[tokens × vocab]` each), or `None` when
    /// there is no entry or it does not hold exactly that (a miss, whatever the reason).
    pub fn load(&self, key: &CacheKey, prompts: &[Prompt], vocab: usize) -> Option<Vec<Vec<f32>>> {
        let path = self.path(key);
        let mut f = std::fs::File::open(&path).ok()?;
        let mut magic = [0u8; 8];
        f.read_exact(&mut magic).ok()?;
        let mut len = [0u8; 8];
        f.read_exact(&mut len).ok()?;
        let len = usize::try_from(u64::from_le_bytes(len)).ok()?;
        if magic != *MAGIC || len > 1 << 24 {
            return None;
        }
        let mut header = vec![0u8; len];
        f.read_exact(&mut header).ok()?;
        let header: Header = serde_json::from_slice(&header).ok()?;
        let want = Header {
            key: key.as_str().to_string(),
            vocab,
            prompts: prompt_headers(prompts),
            data_sha256: header.data_sha256.clone(),
        };
        let file_len = f.metadata().ok()?.len();
        let data_len: u64 = prompts
            .iter()
            .map(|p| (p.tokens.len() * vocab * 4) as u64)
            .sum();
        if header != want || file_len != 16 + len as u64 + data_len {
            return None;
        }
        let mut hash = Sha256::new();
        let mut out = Vec::with_capacity(prompts.len());
        let mut bytes = Vec::new();
        for p in prompts {
            bytes.resize(p.tokens.len() * vocab * 4, 0);
            f.read_exact(&mut bytes).ok()?;
            hash.update(&bytes);
            out.push(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            );
        }
        (hex(&hash.finalize()) == header.data_sha256).then_some(out)
    }

    /// Stores `logits` (one `[tokens × vocab]` block per prompt) under `key`, replacing any
    /// entry there.
    pub fn store(
        &self,
        key: &CacheKey,
        prompts: &[Prompt],
        vocab: usize,
        logits: &[Vec<f32>],
    ) -> Result<(), VerifyError> {
        let path = self.path(key);
        let staged = convert::atomic::Staged::create(&path, false, true)?;
        let io = |e| ConvertError::io(staged.path(), e);
        let mut hash = Sha256::new();
        let mut buf = Vec::new();
        for l in logits {
            buf.clear();
            buf.extend(l.iter().flat_map(|x| x.to_le_bytes()));
            hash.update(&buf);
        }
        let header = serde_json::to_vec(&Header {
            key: key.as_str().to_string(),
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
            buf.clear();
            buf.extend(l.iter().flat_map(|x| x.to_le_bytes()));
            w.write_all(&buf).map_err(io)?;
        }
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        drop(file);
        staged.commit()?;
        Ok(())
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

    #[test]
    fn entries_round_trip_and_anything_else_is_a_miss() {
        let dir =
            std::env::temp_dir().join(format!("oss-forge-logits-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = LogitsCache::new(&dir);
        let files = vec![("model.safetensors".to_string(), "ab".repeat(32))];
        let key = CacheKey::new(&files, &prompts());
        let vocab = 5;
        let logits = vec![
            (0..15).map(|i| i as f32 * 0.5 - 3.0).collect::<Vec<f32>>(),
            vec![f32::NAN, 1.0, -0.0, f32::INFINITY, 2.5],
        ];
        assert!(cache.load(&key, &prompts(), vocab).is_none(), "empty cache");
        cache.store(&key, &prompts(), vocab, &logits).unwrap();
        let back = cache.load(&key, &prompts(), vocab).unwrap();
        let bits = |l: &[Vec<f32>]| -> Vec<u32> { l.concat().iter().map(|x| x.to_bits()).collect() };
        assert_eq!(bits(&back), bits(&logits));
        // Another file hash, other prompts, another vocabulary: other keys or a mismatch.
        let other = CacheKey::new(&[("model.safetensors".into(), "cd".repeat(32))], &prompts());
        assert_ne!(other, key);
        assert!(cache.load(&other, &prompts(), vocab).is_none());
        let mut p2 = prompts();
        p2[1].tokens = vec![5];
        assert_ne!(CacheKey::new(&files, &p2), key);
        assert!(cache.load(&key, &prompts(), 6).is_none());
        // A flipped data byte: the data's hash no longer matches.
        let path = cache.path(&key);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(cache.load(&key, &prompts(), vocab).is_none());
        // A store replaces it.
        cache.store(&key, &prompts(), vocab, &logits).unwrap();
        assert!(cache.load(&key, &prompts(), vocab).is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
