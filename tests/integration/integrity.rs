//! Checkpoint integrity: NaN/Inf in BF16 weights and the NaN scale byte 255 are named by
//! `inspect` (text and JSON), and refused by `convert` to every variant (both writers, from a
//! safetensors source and from a GGUF source) and by `pipeline`, unless `--allow-nonfinite`.

use crate::util::{Run, TempDir, oss_forge, rewrite_shard, tiny_copy};
use std::path::Path;

/// The HF tensor poisoned with one NaN and one +Inf, and the weight name errors use for it.
const BF16_TENSOR: &str = "model.layers.1.self_attn.q_proj.weight";
const BF16_WEIGHT: &str = "layers.1.q_proj";
/// The HF scale tensor whose first block gets the NaN scale byte.
const SCALES_TENSOR: &str = "model.layers.0.mlp.experts.gate_up_proj_scales";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Applies `edit` to the tensor `name` of whichever shard of `dir` holds it.
fn poison(dir: &Path, name: &str, edit: impl Fn(&mut Vec<u8>)) {
    let mut found = false;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            rewrite_shard(&p, |mut t| {
                if t.name == name {
                    edit(&mut t.data);
                    found = true;
                }
                Some(t)
            });
        }
    }
    assert!(found, "{name} not found in {}", dir.display());
}

fn nan_bf16_model(tag: &str) -> TempDir {
    let t = tiny_copy(tag);
    poison(&t.join("m"), BF16_TENSOR, |d| {
        d[10..12].copy_from_slice(&0x7fc0u16.to_le_bytes()); // NaN
        d[20..22].copy_from_slice(&0x7f80u16.to_le_bytes()); // +Inf
    });
    t
}

fn nan_scale_model(tag: &str) -> TempDir {
    let t = tiny_copy(tag);
    poison(&t.join("m"), SCALES_TENSOR, |d| d[0] = 255);
    t
}

/// No output and no temporary next to it.
fn assert_nothing_written(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "a refused conversion left {left:?} in {}",
        dir.display()
    );
}

fn inspect_json(model: &Path) -> serde_json::Value {
    let run = oss_forge(&["inspect", "--json", s(model)]);
    run.ok();
    serde_json::from_str(&run.stdout).unwrap()
}

/// Converts `model` to every variant: each must fail naming `needle`, writing nothing.
fn every_variant_refuses(model: &Path, out_dir: &Path, needle: &str, why: &str) {
    for v in convert::Variant::ALL {
        let out = out_dir.join(v.name());
        let run = oss_forge(&[
            "convert",
            "--quiet",
            s(model),
            "--to",
            v.name(),
            "-o",
            s(&out),
        ]);
        run.fails_with(&[needle, why, "--allow-nonfinite"]);
        assert!(!out.exists(), "{v}: output exists after a refusal");
    }
    assert_nothing_written(out_dir);
}

fn convert_allowing(model: &Path, variant: &str, out: &Path) -> Run {
    let run = oss_forge(&[
        "convert",
        "--quiet",
        s(model),
        "--to",
        variant,
        "-o",
        s(out),
        "--allow-nonfinite",
    ]);
    run.ok();
    run
}

#[test]
fn nan_and_inf_weights_are_named_and_refused_unless_allowed() {
    let t = nan_bf16_model("nan-bf16");
    let m = t.join("m");
    let text = oss_forge(&["inspect", s(&m)]);
    text.ok();
    assert!(
        text.stdout.contains(&format!(
            "tensor `{BF16_TENSOR}` holds 1 NaN and 1 Inf values"
        )),
        "{}",
        text.stdout
    );
    let j = inspect_json(&m);
    assert_eq!(
        j["non_finite"],
        serde_json::json!([{"tensor": BF16_TENSOR, "nan": 1, "inf": 1}])
    );

    every_variant_refuses(&m, &t.join("out"), BF16_WEIGHT, "NaN or Inf");
    // Allowed: both writers go through, and the GGUF keeps the values, so inspecting the output
    // names the GGUF tensor; converting *from* that GGUF is refused again.
    convert_allowing(&m, "safetensors-bf16", &t.join("ok-st"));
    let gguf = t.join("ok.gguf");
    convert_allowing(&m, "gguf-bf16", &gguf);
    let j = inspect_json(&gguf);
    assert_eq!(
        j["non_finite"][0]["tensor"], "blk.1.attn_q.weight",
        "{}",
        j["non_finite"]
    );
    let run = oss_forge(&[
        "convert",
        "--quiet",
        s(&gguf),
        "--to",
        "gguf-f16",
        "-o",
        s(&t.join("again.gguf")),
    ]);
    run.fails_with(&[BF16_WEIGHT, "NaN or Inf", "--allow-nonfinite"]);
}

#[test]
fn nan_scale_byte_is_named_and_refused_unless_allowed() {
    let t = nan_scale_model("nan-scale");
    let m = t.join("m");
    let text = oss_forge(&["inspect", s(&m)]);
    text.ok();
    assert!(
        text.stdout.contains(&format!(
            "tensor `{SCALES_TENSOR}` has 1 MXFP4 blocks with scale byte 255"
        )),
        "{}",
        text.stdout
    );
    let j = inspect_json(&m);
    assert_eq!(
        j["nan_scales"],
        serde_json::json!([{"tensor": SCALES_TENSOR, "blocks": 1}])
    );
    assert_eq!(j["mxfp4_scales"]["nan_255"], 1);

    // Scale 0 of gate_up is the first block of row 0: gate row 0 of expert 0 (rows interleave).
    every_variant_refuses(&m, &t.join("out"), "layers.0.experts.0.gate", "");
    convert_allowing(&m, "safetensors-int8", &t.join("ok-st"));
    let gguf = t.join("ok.gguf");
    convert_allowing(&m, "gguf-mxfp4", &gguf);
    let j = inspect_json(&gguf);
    assert_eq!(
        j["nan_scales"],
        serde_json::json!([{"tensor": "blk.0.ffn_gate_exps.weight", "blocks": 1}])
    );
    // The MXFP4 copy from a GGUF source checks the ggml blocks too.
    let run = oss_forge(&[
        "convert",
        "--quiet",
        s(&gguf),
        "--to",
        "gguf-mxfp4-f16",
        "-o",
        s(&t.join("again.gguf")),
    ]);
    run.fails_with(&["layers.0.experts.0.gate", "255", "--allow-nonfinite"]);
}

#[test]
fn pipeline_refuses_a_checkpoint_with_nan_weights() {
    let t = nan_bf16_model("nan-pipeline");
    let out = t.join("pub");
    let run = oss_forge(&[
        "pipeline",
        "--quiet",
        s(&t.join("m")),
        "-o",
        s(&out),
        "--variants",
        "gguf-bf16,safetensors-bf16",
    ]);
    run.fails_with(&[BF16_WEIGHT, "NaN or Inf", "--allow-nonfinite"]);
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "a refused pipeline left {leftovers:?} in {}",
        out.display()
    );
}
