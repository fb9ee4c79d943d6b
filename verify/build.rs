//! Names the code that computes a model's logits, for the logits cache (`src/logits_cache.rs`):
//! a hash of the sources of the crates the reference forward pass runs (`reference`, `quant`,
//! `convert`) and of the lock file (their dependencies), exported as `OSS_FORGE_FORWARD_SOURCE`.
//! Any edit to them gives another hash, so logits cached by one build are never read by a build
//! whose forward pass may compute other bits.

use std::path::{Path, PathBuf};

/// FNV-1a, 64 bits, continued from `h`: no dependency, the same on every host.
fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs" || x == "toml") {
            out.push(p);
        }
    }
}

fn main() {
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = here
        .parent()
        .expect("verify/ is inside the workspace")
        .to_path_buf();
    let mut paths = Vec::new();
    for krate in ["reference", "quant", "convert"] {
        let dir = root.join(krate);
        println!("cargo:rerun-if-changed={}", dir.join("src").display());
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("Cargo.toml").display()
        );
        files(&dir.join("src"), &mut paths);
        paths.push(dir.join("Cargo.toml"));
    }
    let lock = root.join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    paths.push(lock);
    paths.sort();
    // Over each file's name, length and contents, in name order.
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut read = 0usize;
    for p in &paths {
        let Ok(bytes) = std::fs::read(p) else {
            continue;
        };
        let name = p.strip_prefix(&root).unwrap_or(p).to_string_lossy();
        for part in [name.as_bytes(), &(bytes.len() as u64).to_le_bytes(), &bytes] {
            h = fnv(part, h);
        }
        read += 1;
    }
    let hash = if read == 0 {
        // Outside the workspace (a packaged crate): the version alone names the code.
        "unknown".to_string()
    } else {
        format!("{h:016x}")
    };
    println!("cargo:rustc-env=OSS_FORGE_FORWARD_SOURCE={hash}");
}
