//! GGUF quant presets and requantized MXFP4 experts: the files equal what llama-quantize writes,
//! byte for byte (SHA-256 of the shared fixtures in `tests/fixtures/llamacpp-quants.sha256`).

use crate::util::{TempDir, fixture, oss_forge};
use std::collections::BTreeMap;
use std::path::Path;

/// `fixture file name -> sha256` from `tests/fixtures/llamacpp-quants.sha256`.
fn llamacpp_hashes() -> BTreeMap<String, String> {
    std::fs::read_to_string(fixture("llamacpp-quants.sha256"))
        .unwrap()
        .lines()
        .map(|l| {
            let (hash, path) = l.split_once("  ").unwrap();
            let name = path.rsplit('/').next().unwrap();
            (name.to_string(), hash.to_string())
        })
        .collect()
}

fn sha256(p: &Path) -> String {
    convert::publish::sha256_file(p).unwrap()
}

/// Converts `model` to `variant` and checks the file's hash against llama.cpp's `want` file.
fn same_as_llamacpp(t: &TempDir, model: &str, variant: &str, want: &str) {
    let out = t.join(&format!("{model}.{variant}.gguf"));
    oss_forge(&[
        "-q",
        "convert",
        fixture(model).to_str().unwrap(),
        "--to",
        variant,
        "-o",
        out.to_str().unwrap(),
    ])
    .ok();
    let hashes = llamacpp_hashes();
    assert_eq!(
        sha256(&out),
        hashes[want],
        "{model} -> {variant} differs from llama.cpp's {want}"
    );
}

/// Every preset of llama-quantize, in oss-forge's variant names.
const PRESETS: [&str; 15] = [
    "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M",
    "Q5_K_S", "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS",
];

#[test]
fn every_preset_from_a_dense_fine_tune_equals_llama_quantize() {
    let t = TempDir::new("presets-dense");
    for p in PRESETS {
        let variant = format!("gguf-{}", p.to_lowercase());
        same_as_llamacpp(
            &t,
            "wide-gpt-oss-ft",
            &variant,
            &format!("wide-gpt-oss-ft.llamacpp-{p}.gguf"),
        );
    }
}

#[test]
fn every_preset_from_mxfp4_keeps_the_experts_and_equals_llama_quantize() {
    let t = TempDir::new("presets-mxfp4");
    for p in PRESETS {
        let variant = format!("gguf-{}", p.to_lowercase());
        same_as_llamacpp(
            &t,
            "wide-gpt-oss",
            &variant,
            &format!("wide-gpt-oss.llamacpp-mxfp4-{p}.gguf"),
        );
    }
}

/// A dense fine-tune's experts are requantized to MXFP4 by ggml's rule: `gguf-mxfp4-q8_0` is
/// llama-quantize's `MXFP4_MOE` of llama.cpp's bf16 conversion, tensor for tensor and key for key.
#[test]
fn mxfp4_q8_0_from_a_dense_fine_tune_equals_llama_quantize_mxfp4_moe() {
    let t = TempDir::new("mxfp4-moe");
    for model in ["tiny-gpt-oss-ft", "wide-gpt-oss-ft"] {
        same_as_llamacpp(
            &t,
            model,
            "gguf-mxfp4-q8_0",
            &format!("{model}.llamacpp-mxfp4_moe.gguf"),
        );
        // The converter's own q8_0 stays as it was.
        same_as_llamacpp(
            &t,
            model,
            "gguf-q8_0",
            &format!("{model}.llamacpp-q8_0.gguf"),
        );
    }
}
