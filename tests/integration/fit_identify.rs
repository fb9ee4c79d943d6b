//! `fit MODEL` names the variant the model given is, for every kind oss-forge writes: the MLX
//! variants (ours and mlx-lm's), the GGUF presets from an MXFP4 release or a dense fine-tune
//! and a pipeline's output (llama-quantize's own files by the same rule: checked by hand).

use crate::util::*;
use std::path::Path;

/// The variant `fit --json` marks as the model given (`None` when it matches none).
fn given(model: &Path) -> Option<String> {
    let run = oss_forge(&[
        "fit",
        model.to_str().unwrap(),
        "--gpu-mem",
        "8GiB",
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let rows = v["rows"].as_array().unwrap_or_else(|| panic!("{v}"));
    rows.iter()
        .find(|r| r["given"] == true)
        .map(|r| r["variant"].as_str().unwrap().to_string())
        .filter(|name| !name.contains('/'))
}

fn convert(src: &Path, variant: &str, out: &Path) {
    oss_forge(&[
        "convert",
        src.to_str().unwrap(),
        "--to",
        variant,
        "-o",
        out.to_str().unwrap(),
        "-q",
    ])
    .ok();
}

#[test]
fn fit_recognises_mlx_outputs_ours_and_mlx_lms() {
    let t = TempDir::new("fit-mlx");
    for (dir, variant) in [
        ("tiny-gpt-oss.mlx-q8", "mlx-mxfp4-q8"),
        ("tiny-gpt-oss.mlx-q4", "mlx-mxfp4-q4"),
        // Same bytes as safetensors-bf16: the MLX layout tells them apart.
        ("tiny-gpt-oss.mlx-bf16", "mlx-bf16"),
    ] {
        assert_eq!(
            given(&fixture(&format!("mlx/{dir}"))).as_deref(),
            Some(variant)
        );
    }
    for variant in ["mlx-mxfp4-q8", "mlx-mxfp4-q4"] {
        let out = t.join(variant);
        convert(&fixture("tiny-gpt-oss"), variant, &out);
        assert_eq!(given(&out).as_deref(), Some(variant));
    }
}

#[test]
fn fit_recognises_gguf_presets_from_a_release_a_fine_tune_and_a_pipeline() {
    let t = TempDir::new("fit-presets");
    for (src, variant) in [
        ("wide-gpt-oss-ft", "gguf-q4_k_m"),
        ("wide-gpt-oss-ft", "gguf-iq4_xs"),
        ("wide-gpt-oss-ft", "gguf-q3_k_s"),
        ("wide-gpt-oss", "gguf-q5_k_s"),
        ("wide-gpt-oss", "gguf-iq4_nl"),
        ("tiny-gpt-oss", "gguf-q4_k_m"),
    ] {
        let out = t.join(&format!("{src}-{variant}.gguf"));
        convert(&fixture(src), variant, &out);
        assert_eq!(given(&out).as_deref(), Some(variant), "{src}");
    }
    // A pipeline's output file, found beside its manifest.
    let out = t.join("pipe");
    oss_forge(&[
        "pipeline",
        fixture("wide-gpt-oss-ft").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--variants",
        "gguf-q4_k_s",
        "-q",
    ])
    .ok();
    let file = std::fs::read_dir(out.join("gguf-q4_k_s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "gguf"))
        .unwrap();
    assert_eq!(given(&file).as_deref(), Some("gguf-q4_k_s"));
}
