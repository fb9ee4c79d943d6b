//! Dense fine-tunes back to MXFP4: the release's own safetensors layout (`safetensors-mxfp4`),
//! the rounding rules, and what verify says about requantized experts.

use crate::util::{TempDir, fixture, oss_forge};
use convert::AnyModel;
use reference::WeightId;
use std::path::Path;

fn convert_to(src: &Path, variant: &str, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "-q",
        "convert",
        src.to_str().unwrap(),
        "--to",
        variant,
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    oss_forge(&args).ok();
}

/// Every expert weight of two models, compared value for value (`-0 == +0`: MXFP4 has both
/// and the rules write zero differently): the number that differ.
fn expert_differences(a: &Path, b: &Path) -> usize {
    let (a, b) = (AnyModel::open(a).unwrap(), AnyModel::open(b).unwrap());
    let (sa, sb) = (a.source(), b.source());
    let cfg = sa.config();
    let mut differ = 0;
    for l in 0..cfg.num_hidden_layers {
        for e in 0..cfg.num_local_experts {
            for id in [
                WeightId::Gate(l, e),
                WeightId::Up(l, e),
                WeightId::Down(l, e),
            ] {
                let (x, y) = (
                    sa.weight(id).unwrap().to_f32(),
                    sb.weight(id).unwrap().to_f32(),
                );
                differ += x.iter().zip(&y).filter(|(p, q)| p != q).count();
            }
        }
    }
    differ
}

/// The release's tensors are copied bit for bit, and a release dequantized to BF16 and
/// requantized comes back with every value identical under every rounding rule.
#[test]
fn safetensors_mxfp4_round_trips_the_release() {
    let t = TempDir::new("st-mxfp4-trip");
    let release = fixture("tiny-gpt-oss");
    let direct = t.join("direct");
    convert_to(&release, "safetensors-mxfp4", &direct, &[]);
    let bf16 = t.join("bf16");
    convert_to(&release, "safetensors-bf16", &bf16, &[]);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(direct.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["quantization_config"]["quant_method"], "mxfp4");
    assert!(
        config["quantization_config"]["modules_to_not_convert"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("lm_head"))
    );
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(direct.join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    assert!(index["metadata"]["total_size"].as_u64().unwrap() > 0);
    assert_eq!(AnyModel::open(&direct).unwrap().format_name(), "hf-mxfp4");
    assert_eq!(expert_differences(&release, &direct), 0);
    for rule in ["ggml", "ocp", "triton", "mlx", "mse"] {
        let back = t.join(&format!("back-{rule}"));
        convert_to(
            &bf16,
            "safetensors-mxfp4",
            &back,
            &["--mxfp4-rounding", rule],
        );
        assert_eq!(expert_differences(&release, &back), 0, "{rule}");
        let v = oss_forge(&[
            "verify",
            "--original",
            release.to_str().unwrap(),
            back.to_str().unwrap(),
        ]);
        v.ok();
        assert!(v.stdout.contains("identical"), "{rule}: {}", v.stdout);
    }
}

/// From a dense fine-tune the experts are requantized by ggml's rule by default: the same values
/// as llama-quantize's MXFP4_MOE (our `gguf-mxfp4-q8_0`, byte-identical to it in `presets.rs`),
/// in the release's layout; another rule gives other values.
#[test]
fn dense_fine_tune_to_safetensors_mxfp4_uses_the_chosen_rule() {
    let t = TempDir::new("st-mxfp4-ft");
    let ft = fixture("tiny-gpt-oss-ft");
    let st = t.join("st");
    convert_to(&ft, "safetensors-mxfp4", &st, &[]);
    let gguf = t.join("moe.gguf");
    convert_to(&ft, "gguf-mxfp4-q8_0", &gguf, &[]);
    assert_eq!(expert_differences(&st, &gguf), 0);
    let mse = t.join("mse");
    convert_to(&ft, "safetensors-mxfp4", &mse, &["--mxfp4-rounding", "mse"]);
    assert!(expert_differences(&st, &mse) > 0);
    // The original's logits through the requantized checkpoint: it reads and runs.
    oss_forge(&[
        "logits",
        "--model",
        st.to_str().unwrap(),
        "--tokens",
        "1,2,3",
    ])
    .ok();
}

/// The byte range of tensor `name` in a GGUF file.
fn gguf_tensor_range(path: &Path, name: &str) -> std::ops::Range<usize> {
    let f = convert::gguf::GgufFile::open(path).unwrap();
    f.tensors()
        .iter()
        .find(|t| t.name == name)
        .unwrap()
        .range
        .clone()
}

fn verify_json(
    original: &Path,
    variants: &[&Path],
    out: &Path,
) -> (crate::util::Run, serde_json::Value) {
    let mut args = vec!["verify", "--original", original.to_str().unwrap()];
    args.extend(variants.iter().map(|v| v.to_str().unwrap()));
    args.extend(["--json", out.to_str().unwrap()]);
    let run = oss_forge(&args);
    let json = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    (run, json)
}

/// A correct requantization passes and says which rule made it; one changed expert nibble fails,
/// naming the tensor, whatever the logits say.
#[test]
fn verify_names_the_rule_of_requantized_experts_and_fails_one_changed_nibble() {
    let t = TempDir::new("verify-requant");
    let ft = fixture("tiny-gpt-oss-ft");
    let moe = t.join("moe.gguf");
    convert_to(&ft, "gguf-mxfp4-q8_0", &moe, &[]);
    let mse = t.join("mse");
    convert_to(&ft, "safetensors-mxfp4", &mse, &["--mxfp4-rounding", "mse"]);
    let (run, json) = verify_json(&ft, &[&moe, &mse], &t.join("r.json"));
    run.ok();
    assert!(
        run.stdout.contains("reproduced by ggml rule 100%"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("mse rule 100%"), "{}", run.stdout);
    let v = &json["variants"][0];
    assert_eq!(v["pass"], true);
    assert!(
        v["requantization"][0]
            .as_str()
            .unwrap()
            .contains("ggml rule 100%")
    );
    // One nibble of one expert block (layer 1, expert 0, first block: element 0's code).
    let bad = t.join("bad.gguf");
    let mut bytes = std::fs::read(&moe).unwrap();
    let at = gguf_tensor_range(&moe, "blk.1.ffn_gate_exps.weight").start + 1;
    bytes[at] ^= 0x01;
    std::fs::write(&bad, bytes).unwrap();
    let (run, json) = verify_json(&ft, &[&bad], &t.join("bad.json"));
    assert_eq!(run.code, 1, "{}", run.stdout);
    let failures = json["variants"][0]["failures"].to_string();
    assert!(
        failures.contains("layers.1.experts.gate") && failures.contains("MXFP4 rounding rule"),
        "{failures}"
    );
}

/// `pipeline` on a dense fine-tune: every default variant (the MXFP4 ones requantized) is written
/// and passes, the checksums hold, and the cards say what was requantized, from what.
#[test]
fn pipeline_on_a_dense_fine_tune_passes_and_publishes() {
    let t = TempDir::new("pipeline-ft");
    let out = t.join("out");
    let run = oss_forge(&[
        "pipeline",
        "--quiet",
        fixture("tiny-gpt-oss-ft").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    run.ok();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("verify.json")).unwrap()).unwrap();
    assert_eq!(report["pass"], true, "{}", run.stdout);
    let variants = report["variants"].as_array().unwrap();
    assert_eq!(variants.len(), convert::Variant::defaults().len());
    for name in ["gguf-mxfp4-q8_0", "safetensors-mxfp4"] {
        let v = variants
            .iter()
            .find(|v| v["path"].as_str().unwrap().starts_with(name))
            .unwrap();
        assert!(
            v["requantization"][0]
                .as_str()
                .unwrap()
                .contains("ggml rule 100%"),
            "{name}: {v}"
        );
    }
    let card = std::fs::read_to_string(out.join("safetensors-mxfp4/README.md")).unwrap();
    assert!(
        card.contains("Requantized from the original's weights"),
        "{card}"
    );
    crate::pipeline::sha256sum_c(&out);
}
