//! `oss-forge verify`: lossless variants are identical, and the bugs converters really make
//! (another expert's bytes, gate and up swapped, a scale byte off by one) are caught.

use crate::util::{Run, TempDir, copy_dir, fixture, oss_forge, rewrite_shard, tiny_copy};
use std::path::Path;

/// Passes every tensor of every shard of the model in `dir` through `edit`.
fn edit_tensors(dir: &Path, mut edit: impl FnMut(&str, &mut Vec<u8>, &[usize])) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            rewrite_shard(&p, |mut t| {
                edit(&t.name, &mut t.data, &t.shape);
                Some(t)
            });
        }
    }
}

fn verify_tiny(variant: &Path, json: &Path) -> Run {
    let orig = fixture("tiny-gpt-oss");
    oss_forge(&[
        "verify",
        "--quiet",
        "--original",
        orig.to_str().unwrap(),
        variant.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ])
}

fn report(json: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

/// Asserts a verification failure (exit 1) whose report blames `tensor`.
fn assert_caught(run: &Run, json: &Path, tensor: &str) {
    assert_eq!(
        run.code, 1,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.contains("FAIL") && run.stdout.contains(tensor),
        "{}",
        run.stdout
    );
    let r = report(json);
    assert_eq!(r["pass"], false);
    let v = &r["variants"][0];
    assert_eq!(v["pass"], false);
    assert_eq!(v["lossless"], false);
    let bad: Vec<&str> = v["weights"]["per_tensor"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["violations"].as_u64().unwrap() > 0)
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        bad.contains(&tensor),
        "violations in {bad:?}, expected {tensor}"
    );
}

#[test]
fn the_original_layout_verifies_identical_with_a_complete_report() {
    let t = TempDir::new("verify-orig");
    let json = t.join("r.json");
    // Its forward pass run (not inferred from the weights): the layout's reader must give the
    // release's logits bit for bit.
    let orig = fixture("tiny-gpt-oss");
    let run = oss_forge(&[
        "verify",
        "--quiet",
        "--force-forward",
        "--original",
        orig.to_str().unwrap(),
        fixture("tiny-gpt-oss/original").to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    run.ok();
    assert!(
        run.stdout.contains("identical") && run.stdout.contains("PASS"),
        "{}",
        run.stdout
    );
    let r = report(&json);
    assert_eq!(r["pass"], true);
    let names: Vec<&str> = r["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "chat-system-user",
            "chat-analysis",
            "chat-tool-call",
            "window-random",
            "window-periodic"
        ]
    );
    let v = &r["variants"][0];
    assert_eq!(v["lossless"], true);
    assert_eq!(v["passed_by"], "identical");
    assert_eq!(v.get("logits_by_weights"), None);
    for k in ["max_abs", "nmse", "kld_mean", "kld_p99", "kld_max"] {
        assert_eq!(v["metrics"][k], 0.0, "{k}");
    }
    assert_eq!(
        (
            v["metrics"]["top1"].as_f64(),
            v["metrics"]["top5_overlap"].as_f64()
        ),
        (Some(1.0), Some(1.0))
    );
    assert_eq!(v["metrics"]["argmax_changed"], 0);
    assert_eq!(v["per_prompt"].as_array().unwrap().len(), 5);
    // 4 layers × (10 attention + 3 router/norm + 6 expert groups) + embedding, final norm, lm_head.
    assert_eq!(v["weights"]["tensors"], 4 * 19 + 3);
    assert_eq!(v["weights"]["identical"], 4 * 19 + 3);
}

#[test]
fn one_experts_bytes_changed_is_caught() {
    let t = tiny_copy("verify-expert");
    let m = t.join("m");
    // Expert 3 of layer 1 gets expert 2's gate_up bytes (a wrong offset in a converter).
    edit_tensors(&m, |name, data, shape| {
        if name == "model.layers.1.mlp.experts.gate_up_proj_blocks" {
            let per_expert = data.len() / shape[0];
            let src = data[2 * per_expert..3 * per_expert].to_vec();
            data[3 * per_expert..4 * per_expert].copy_from_slice(&src);
        }
    });
    let json = t.join("r.json");
    let run = verify_tiny(&m, &json);
    assert_caught(&run, &json, "layers.1.experts.gate");
    assert_caught(&run, &json, "layers.1.experts.up");
}

#[test]
fn gate_and_up_swapped_is_caught() {
    let t = tiny_copy("verify-swap");
    let m = t.join("m");
    // De-interleaving the wrong way round: even rows (gate) and odd rows (up) exchanged in
    // every layer, blocks, scales and bias alike.
    edit_tensors(&m, |name, data, shape| {
        let row_bytes = match name {
            n if n.ends_with("gate_up_proj_blocks") => shape[2] * shape[3],
            n if n.ends_with("gate_up_proj_scales") => shape[2],
            n if n.ends_with("gate_up_proj_bias") => 2,
            _ => return,
        };
        for pair in data.chunks_exact_mut(2 * row_bytes) {
            let (a, b) = pair.split_at_mut(row_bytes);
            a.swap_with_slice(b);
        }
    });
    let json = t.join("r.json");
    let run = verify_tiny(&m, &json);
    for l in 0..4 {
        assert_caught(&run, &json, &format!("layers.{l}.experts.gate"));
        assert_caught(&run, &json, &format!("layers.{l}.experts.up.bias"));
    }
}

#[test]
fn one_scale_byte_off_by_one_is_caught() {
    let t = tiny_copy("verify-scale");
    let m = t.join("m");
    let mut done = false;
    edit_tensors(&m, |name, data, _| {
        if name == "model.layers.2.mlp.experts.down_proj_scales" {
            // The last scale of the tensor (expert 7): its block is not all-zero in the fixture.
            let last = data.len() - 1;
            data[last] += 1;
            done = true;
        }
    });
    assert!(done);
    let json = t.join("r.json");
    let run = verify_tiny(&m, &json);
    assert_caught(&run, &json, "layers.2.experts.down");
    let v = &report(&json)["variants"][0];
    let down = v["weights"]["per_tensor"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "layers.2.experts.down")
        .unwrap();
    assert!(
        down["violations"].as_u64().unwrap() <= 32,
        "one block only: {down}"
    );
}

#[test]
fn a_different_model_is_an_error_not_a_failure() {
    let t = TempDir::new("verify-other-model");
    let json = t.join("r.json");
    // Other shapes: another model, nothing to compare.
    let run = oss_forge(&[
        "verify",
        "-q",
        "--original",
        fixture("tiny-gpt-oss").to_str().unwrap(),
        fixture("small-gpt-oss").to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    run.fails_with(&["not the same model", "hidden_size"]);
    assert!(!json.exists(), "no report for a run that could not compare");
    // The same shapes with another hyperparameter: the variant fails, naming it.
    let t = tiny_copy("verify-config");
    let cfg = t.join("m/config.json");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"sliding_window\": 8", "\"sliding_window\": 16");
    std::fs::write(&cfg, text).unwrap();
    let run = verify_tiny(&t.join("m"), &json);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        report(&json)["variants"][0]["failures"]
            .to_string()
            .contains("sliding_window: 8 vs 16"),
        "{}",
        run.stderr
    );
}

#[test]
fn prompts_file_with_padding_or_unknown_ids_is_refused() {
    let t = TempDir::new("verify-prompts");
    let orig = fixture("tiny-gpt-oss");
    let run_with = |text: &str| {
        let p = t.join("p.txt");
        std::fs::write(&p, text).unwrap();
        oss_forge(&[
            "verify",
            "--quiet",
            "--original",
            orig.to_str().unwrap(),
            fixture("tiny-gpt-oss/original").to_str().unwrap(),
            "--prompts",
            p.to_str().unwrap(),
        ])
    };
    // The tiny tokenizer holds 495 tokens; the embedding has 512 rows.
    run_with("1, 2, 500\n").fails_with(&["token 500", "padding id"]);
    run_with("1, 2, 512\n").fails_with(&["token 512", "outside the vocabulary"]);
    let ok = run_with(
        "# a comment\n<|start|>user<|message|>Hello\\nthere<|end|><|start|>assistant\n5, 6, 7, 8\n",
    );
    ok.ok();
    assert!(ok.stdout.contains("prompts: 2"), "{}", ok.stdout);
}

#[test]
fn a_copy_of_the_small_fixture_passes_and_a_missing_variant_is_an_error() {
    let t = TempDir::new("verify-small");
    copy_dir(&fixture("small-gpt-oss"), &t.join("m"));
    let orig = fixture("small-gpt-oss");
    oss_forge(&[
        "verify",
        "--quiet",
        "--original",
        orig.to_str().unwrap(),
        t.join("m").to_str().unwrap(),
    ])
    .ok();
    oss_forge(&[
        "verify",
        "--quiet",
        "--original",
        orig.to_str().unwrap(),
        "/nonexistent/variant.gguf",
    ])
    .fails_with(&["/nonexistent/variant.gguf"]);
}

/// A directory holding one GGUF model (as `pipeline` writes `variants/gguf-q8_0/`), a single
/// file or one split set, opens as that model for `verify`, `inspect` and `fit`; one holding two
/// models is an error naming both.
#[test]
fn a_directory_of_one_gguf_model_opens_as_it() {
    let t = TempDir::new("gguf-dir");
    let orig = fixture("tiny-gpt-oss");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let one = t.join("one");
    std::fs::create_dir_all(&one).unwrap();
    oss_forge(&[
        "convert",
        &s(&orig),
        "--to",
        "gguf-q8_0",
        "-o",
        &s(&one.join("m-Q8_0.gguf")),
        "-q",
    ])
    .ok();
    let split = t.join("split");
    std::fs::create_dir_all(&split).unwrap();
    oss_forge(&[
        "convert",
        &s(&orig),
        "--to",
        "gguf-mxfp4",
        "--split-max-size",
        "300KB",
        "-o",
        &s(&split.join("m-MXFP4.gguf")),
        "-q",
    ])
    .ok();
    assert!(
        std::fs::read_dir(&split).unwrap().count() > 1,
        "a split set"
    );
    let run = oss_forge(&[
        "verify",
        "-q",
        "--original",
        &s(&orig),
        &s(&one),
        &s(&split),
    ]);
    run.ok();
    assert!(run.stdout.contains("PASS: 2 of 2"), "{}", run.stdout);
    oss_forge(&["inspect", &s(&one)]).ok();
    oss_forge(&["fit", &s(&one), "--gpu-mem", "8GiB"]).ok();
    // Only later splits: the missing first one is named.
    let later = t.join("later");
    std::fs::create_dir_all(&later).unwrap();
    for e in std::fs::read_dir(&split).unwrap() {
        let p = e.unwrap().path();
        if !p.to_str().unwrap().contains("-00001-of-") {
            std::fs::copy(&p, later.join(p.file_name().unwrap())).unwrap();
        }
    }
    oss_forge(&["inspect", &s(&later)]).fails_with(&["no first split among its GGUF files"]);
    std::fs::copy(one.join("m-Q8_0.gguf"), split.join("other.gguf")).unwrap();
    oss_forge(&["inspect", &s(&split)]).fails_with(&[
        "no config.json, and 2 GGUF models in it: pass one of them",
        "m-MXFP4-00001-of-",
        "other.gguf",
    ]);
}
