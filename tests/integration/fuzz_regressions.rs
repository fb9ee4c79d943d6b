//! The fuzz targets' findings and seeds, replayed under stable `cargo test`.
//!
//! * `tests/fixtures/fuzz-regressions/<target>/*`: every input that made a fuzz target panic,
//!   abort or over-allocate before it was fixed. Each must now be rejected with an error.
//! * `fuzz/seeds/<target>/*`: the starting corpora. The generated ones (a minimal gpt-oss GGUF,
//!   a small valid safetensors file) must be byte-identical to what [`generated_seeds`] makes
//!   today and must parse: this proves the harness reaches past the header into the config,
//!   the tensor set and the weight views. `OSS_FORGE_WRITE_SEEDS=1 cargo test --test
//!   integration fuzz` rewrites them after a deliberate format change.

use crate::util::fixture;
use convert::Variant;
use convert::fuzzing;
use convert::gguf::meta;
use convert::gguf::writer::{PlannedTensor, write_file};
use convert::variant::gguf as write;
use std::path::{Path, PathBuf};

/// A target's harness, its verdict as a message.
type Harness = fn(&[u8]) -> Result<(), String>;

const TARGETS: [(&str, Harness); 3] = [
    ("safetensors_header", |b| {
        fuzzing::safetensors_header(b).map_err(|e| e.to_string())
    }),
    ("gguf", |b| fuzzing::gguf(b).map_err(|e| e.to_string())),
    ("config", |b| fuzzing::config(b).map_err(|e| e.to_string())),
];

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    out.retain(|p| p.file_name().is_some_and(|n| n != "README.md"));
    out.sort();
    out
}

#[test]
fn every_saved_fuzz_finding_is_now_a_clean_error() {
    let mut replayed = 0;
    for (target, harness) in TARGETS {
        for f in files_in(&fixture(&format!("fuzz-regressions/{target}"))) {
            let bytes = std::fs::read(&f).unwrap();
            let verdict = std::panic::catch_unwind(|| harness(&bytes));
            let Ok(verdict) = verdict else {
                panic!("{target}: {} still panics", f.display())
            };
            let err = verdict.expect_err(&format!(
                "{target}: {} is hostile and must be rejected",
                f.display()
            ));
            assert!(!err.is_empty(), "{}: empty error message", f.display());
            replayed += 1;
        }
    }
    assert!(
        replayed > 0,
        "no regression inputs found under tests/fixtures/fuzz-regressions"
    );
}

/// A gpt-oss config small enough that a whole GGUF of it is a few kilobytes.
fn minimal_config() -> reference::Config {
    reference::Config::from_json_str(
        r#"{"model_type":"gpt_oss","vocab_size":4,"hidden_size":32,"intermediate_size":32,"num_hidden_layers":2,
        "num_attention_heads":2,"num_key_value_heads":1,"head_dim":16,"num_local_experts":2,"num_experts_per_tok":1,
        "sliding_window":4,"layer_types":["sliding_attention","full_attention"],"rms_norm_eps":1e-5,"rope_theta":150000,
        "rope_scaling":{"rope_type":"yarn","factor":32.0,"beta_fast":32.0,"beta_slow":1.0,"original_max_position_embeddings":4096,"truncate":false},
        "max_position_embeddings":131072,"swiglu_limit":7.0,"eos_token_id":3,"pad_token_id":2,"tie_word_embeddings":false}"#,
    )
    .unwrap()
}

/// A complete GGUF of `variant` for [`minimal_config`], tensor bytes from a fixed pattern.
fn minimal_gguf(variant: Variant, dir: &Path) -> Vec<u8> {
    let cfg = minimal_config();
    let storage = variant.storage();
    let kv = meta::model_kv(&cfg, Path::new("seed"), storage.file_type.unwrap());
    let order = convert::names::sorted_release_names(&cfg);
    let tensors: Vec<PlannedTensor> = write::plan(&storage, &cfg, &order)
        .into_iter()
        .map(|i| i.tensor)
        .collect();
    let path = dir.join(format!("{variant}.gguf"));
    let mut state = 0x9e37_79b9u32;
    write_file(&path, &kv, &tensors, &mut |i, w| {
        // Small BF16/F16 values and MXFP4 scales near 127: finite, varied bytes.
        let bytes: Vec<u8> = (0..tensors[i].nbytes())
            .map(|k| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                if k % 2 == 1 {
                    0x3c
                } else {
                    (state >> 24) as u8
                }
            })
            .collect();
        std::io::Write::write_all(w, &bytes).map_err(|e| convert::ConvertError::io(&path, e))
    })
    .unwrap();
    std::fs::read(&path).unwrap()
}

/// A small valid safetensors file: BF16, U8 and F32 tensors and `__metadata__`.
fn minimal_safetensors() -> Vec<u8> {
    let mut header = r#"{"__metadata__":{"format":"pt"},"a.weight":{"dtype":"BF16","shape":[2,4],"data_offsets":[0,16]},"a.scales":{"dtype":"U8","shape":[2,1],"data_offsets":[16,18]},"b":{"dtype":"F32","shape":[1],"data_offsets":[18,22]}}"#.to_string();
    while !header.len().is_multiple_of(8) {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend((0..22u8).map(|i| i.wrapping_mul(37)));
    out
}

/// The seeds this test generates: (target, file name, bytes).
fn generated_seeds(tmp: &Path) -> Vec<(&'static str, String, Vec<u8>)> {
    vec![
        (
            "gguf",
            "minimal-bf16.gguf".into(),
            minimal_gguf(Variant::GgufBf16, tmp),
        ),
        (
            "gguf",
            "minimal-mxfp4.gguf".into(),
            minimal_gguf(Variant::GgufMxfp4, tmp),
        ),
        (
            "gguf",
            "minimal-q8_0.gguf".into(),
            minimal_gguf(Variant::GgufQ8_0, tmp),
        ),
        (
            "safetensors_header",
            "minimal.safetensors".into(),
            minimal_safetensors(),
        ),
    ]
}

#[test]
fn generated_fuzz_seeds_are_current_and_parse() {
    let tmp = crate::util::TempDir::new("seeds");
    let rewrite = std::env::var_os("OSS_FORGE_WRITE_SEEDS").is_some();
    for (target, name, bytes) in generated_seeds(tmp.path()) {
        let harness = TARGETS.iter().find(|(t, _)| *t == target).unwrap().1;
        harness(&bytes).unwrap_or_else(|e| panic!("{target} seed {name} must parse: {e}"));
        let path = repo(&format!("fuzz/seeds/{target}/{name}"));
        if rewrite {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (OSS_FORGE_WRITE_SEEDS=1 writes it)",
                path.display()
            )
        });
        assert!(
            committed == bytes,
            "{} is stale (OSS_FORGE_WRITE_SEEDS=1 rewrites it)",
            path.display()
        );
    }
}

#[test]
fn every_config_seed_parses() {
    let dir = repo("fuzz/seeds/config");
    let seeds = files_in(&dir);
    assert!(
        seeds.len() >= 3,
        "config seeds missing in {}",
        dir.display()
    );
    for f in seeds {
        fuzzing::config(&std::fs::read(&f).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}
