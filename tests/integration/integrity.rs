//! Checkpoint integrity: NaN/Inf in BF16 weights and the NaN scale byte 255 are named by
//! `inspect` (text and JSON), and refused by `convert` to every variant (both writers, from a
//! safetensors source and from a GGUF source) and by `pipeline`, unless `--allow-nonfinite`.
//! Values past float16's range are flagged by `inspect` and refused by the variants that would
//! store them as Inf; tokens past `vocab_size` are refused by GGUF variants unless
//! `--truncate-vocab` (the shapes of `shared/fixtures/hunt/`, derived from the tiny fixture).

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

/// The tiny fixture with the shapes of the hunt inputs: `block` (layer 0, expert 1, gate row
/// 0, block 0: 32 values 6 x 2^14 = 98304, scale byte 141), `scale150` (the same block with
/// scale byte 150: 6 x 2^23), `dense` (o_proj of layer 0 [3, 7] = 299008, embedding [5, 0] =
/// 99840).
fn overflow_model(tag: &str, kind: &str) -> TempDir {
    let t = tiny_copy(tag);
    let m = t.join("m");
    let (e, rows, blocks) = (1, 128, 4);
    let bf16 = |x: f32| quant::float::f32_to_bf16_bits(x).to_le_bytes();
    match kind {
        "block" | "scale150" => {
            let scale = if kind == "block" { 141 } else { 150 };
            poison(&m, SCALES_TENSOR, |d| d[e * rows * blocks] = scale);
            poison(&m, "model.layers.0.mlp.experts.gate_up_proj_blocks", |d| {
                let at = e * rows * blocks * 16;
                d[at..at + 16].fill(0x77);
            });
        }
        _ => {
            poison(&m, "model.layers.0.self_attn.o_proj.weight", |d| {
                let at = 2 * (3 * 256 + 7);
                d[at..at + 2].copy_from_slice(&bf16(299008.0));
            });
            poison(&m, "model.embed_tokens.weight", |d| {
                let at = 2 * (5 * 128);
                d[at..at + 2].copy_from_slice(&bf16(99840.0));
            });
        }
    }
    t
}

/// Converts `model` to every variant: those in `refused` fail naming every `needle`, writing
/// nothing; the others succeed.
fn refused_by_exactly(model: &Path, out_dir: &Path, refused: &[&str], needles: &[&str]) {
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
        if refused.contains(&v.name()) {
            let mut all = needles.to_vec();
            all.push("--allow-nonfinite");
            run.fails_with(&all);
            assert!(!out.exists(), "{v}: output exists after a refusal");
        } else {
            assert_eq!(run.code, 0, "{v}: {}", run.stderr);
        }
    }
}

#[test]
fn an_mxfp4_block_past_float16_is_flagged_and_refused_by_float16_variants() {
    let t = overflow_model("f16-block", "block");
    let m = t.join("m");
    let text = oss_forge(&["inspect", s(&m)]);
    text.ok();
    assert!(
        text.stdout.contains(
            "tensor `model.layers.0.mlp.experts.gate_up_proj_blocks`: 1 MXFP4 block with values past float16's range (largest finite 65504), up to 98304"
        ),
        "{}",
        text.stdout
    );
    assert_eq!(
        inspect_json(&m)["past_f16"],
        serde_json::json!([{"tensor": "model.layers.0.mlp.experts.gate_up_proj_blocks",
                            "count": 1, "unit": "MXFP4 blocks", "max": 98304.0}])
    );
    // Float16 experts cannot hold it; MXFP4, BF16, int8 and Q8_0 (scale 141 is exact) can.
    refused_by_exactly(
        &m,
        &t.join("out"),
        &["gguf-f16", "safetensors-fp16"],
        &[
            "layers.0.experts.1.gate",
            "value 98304 at row 0, column 0 (in 32-value block 0)",
            "past float16's largest finite value 65504",
            "scale byte 141 (2^14)",
        ],
    );
    // Allowed: written with Inf (the tally says so), and verify fails on the weight.
    let out = t.join("allowed.gguf");
    let run = convert_allowing(&m, "gguf-f16", &out);
    assert!(run.stdout.contains("max abs error inf"), "{}", run.stdout);
    let run = oss_forge(&["verify", "--quiet", "--original", s(&m), s(&out)]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("layers.0.experts.gate: 32 of 65536 values are NaN or Inf where the original's are finite"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_scale_byte_too_large_for_float16_and_q8_0_is_refused() {
    let t = overflow_model("f16-scale150", "scale150");
    let m = t.join("m");
    let text = oss_forge(&["inspect", s(&m)]);
    text.ok();
    assert!(
        text.stdout.contains("up to 50331648")
            && text
                .stdout
                .contains("nor can Q8_0 (its float16 block scale amax/127 overflows)"),
        "{}",
        text.stdout
    );
    // 6 x 2^23 / 127 = 396,000: past even a Q8_0 block's float16 scale.
    refused_by_exactly(
        &m,
        &t.join("out"),
        &["gguf-f16", "safetensors-fp16", "gguf-q8_0"],
        &[
            "layers.0.experts.1.gate",
            "value 50331648 at row 0, column 0",
            "scale byte 150 (2^23)",
        ],
    );
    let run = oss_forge(&[
        "convert",
        "--quiet",
        s(&m),
        "--to",
        "gguf-q8_0",
        "-o",
        s(&t.join("q8.gguf")),
    ]);
    run.fails_with(&["cannot be stored in Q8_0: the block's float16 scale overflows"]);
}

#[test]
fn dense_values_past_float16_are_flagged_and_refused_by_float16_variants() {
    let t = overflow_model("f16-dense", "dense");
    let m = t.join("m");
    let text = oss_forge(&["inspect", s(&m)]);
    text.ok();
    for (tensor, max) in [
        ("model.layers.0.self_attn.o_proj.weight", "299008"),
        ("model.embed_tokens.weight", "99840"),
    ] {
        assert!(
            text.stdout.contains(&format!(
                "tensor `{tensor}`: 1 value past float16's range (largest finite 65504), up to {max}"
            )),
            "{}",
            text.stdout
        );
    }
    // gguf-mxfp4-f16 and gguf-f16 write o_proj first; safetensors-fp16 the embedding.
    refused_by_exactly(
        &m,
        &t.join("out"),
        &["gguf-mxfp4-f16", "gguf-f16", "safetensors-fp16"],
        &["past float16's largest finite value 65504"],
    );
    let run = oss_forge(&[
        "convert",
        "--quiet",
        s(&m),
        "--to",
        "gguf-f16",
        "-o",
        s(&t.join("f16.gguf")),
    ]);
    run.fails_with(&["layers.0.o_proj", "value 299008 at row 3, column 7"]);
}

/// A dense value that overflows a Q8_0 block's float16 scale (amax/127 > 65504) is named
/// itself, with its column and its block of the output type, not the block's first value
/// (every value of the block would decode to Inf/NaN with it).
#[test]
fn a_q8_0_scale_overflow_names_the_value_that_caused_it() {
    let t = tiny_copy("q8-overflow");
    let m = t.join("m");
    poison(&m, "model.layers.0.self_attn.o_proj.weight", |d| {
        let at = 2 * (3 * 256 + 39);
        d[at..at + 2].copy_from_slice(&quant::float::f32_to_bf16_bits(1e9).to_le_bytes());
    });
    let run = oss_forge(&[
        "convert",
        "--quiet",
        s(&m),
        "--to",
        "gguf-q8_0",
        "-o",
        s(&t.join("q8.gguf")),
    ]);
    run.fails_with(&[
        "layers.0.o_proj",
        "value 998244352 at row 3, column 39 (in 32-value block 1) cannot be stored in Q8_0",
    ]);
}

/// The tiny fixture with 20 special tokens `<|extra_0|>` ... added at ids 495..=514, the last
/// three past `vocab_size` 512 (the embedding not resized).
fn tokens_past_vocab_model(tag: &str) -> TempDir {
    let t = tiny_copy(tag);
    let p = t.join("m/tokenizer.json");
    let mut tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let added = tok["added_tokens"].as_array_mut().unwrap();
    for i in 0..20 {
        added.push(
            serde_json::json!({"id": 495 + i, "content": format!("<|extra_{i}|>"),
            "single_word": false, "lstrip": false, "rstrip": false, "normalized": false,
            "special": true}),
        );
    }
    std::fs::write(&p, serde_json::to_string(&tok).unwrap()).unwrap();
    t
}

#[test]
fn tokens_past_vocab_size_are_refused_unless_truncated_and_then_listed() {
    let t = tokens_past_vocab_model("past-vocab");
    let m = t.join("m");
    let listed = r#"512 "<|extra_17|>", 513 "<|extra_18|>", 514 "<|extra_19|>""#;
    let text = oss_forge(&["inspect", s(&m)]);
    text.ok();
    assert!(
        text.stdout.contains(&format!(
            "tokenizer.json holds 3 tokens ({listed}) with ids at or past vocab_size 512"
        )),
        "{}",
        text.stdout
    );
    assert_eq!(
        inspect_json(&m)["tokens_past_vocab"][2],
        serde_json::json!({"id": 514, "token": "<|extra_19|>"})
    );
    let out = t.join("v.gguf");
    let convert = |extra: &[&str]| {
        let mut args = vec![
            "convert",
            "--quiet",
            s(&m),
            "--to",
            "gguf-mxfp4",
            "-o",
            s(&out),
        ];
        args.extend_from_slice(extra);
        oss_forge(&args)
    };
    convert(&[]).fails_with(&[
        "tokenizer.json",
        &format!("3 tokens ({listed}) with ids at or past vocab_size 512"),
        "--truncate-vocab",
    ]);
    assert!(!out.exists());
    let run = convert(&["--truncate-vocab"]);
    run.ok();
    assert!(
        run.stderr.contains(&format!(
            "--truncate-vocab: left out 3 token(s) whose ids are at or past vocab_size 512 (no embedding row): {listed}"
        )),
        "{}",
        run.stderr
    );
    // The GGUF holds the 512 tokens the embedding has; verify passes and lists the others.
    let run = oss_forge(&["verify", "--quiet", "--original", s(&m), s(&out)]);
    run.ok();
    assert!(
        run.stdout.contains("PASS (identical (by weights))")
            && run.stdout.contains(&format!(
                "the original's tokenizer holds 3 tokens ({listed}) at or past vocab_size"
            )),
        "{}",
        run.stdout
    );
    // A safetensors variant copies the tokenizer files unchanged, and says so.
    let st = t.join("st");
    let run = oss_forge(&[
        "convert",
        "--quiet",
        s(&m),
        "--to",
        "safetensors-bf16",
        "-o",
        s(&st),
    ]);
    run.ok();
    assert!(
        run.stderr
            .contains("copied unchanged with the tokenizer files"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read(st.join("tokenizer.json")).unwrap(),
        std::fs::read(m.join("tokenizer.json")).unwrap()
    );
}
