//! `verify` judges everything a runtime reads and says how it judged: metadata edits with
//! identical weights fail naming the key and both values (GGUF and safetensors variants), an Inf
//! in an expert no prompt routes to fails the weight check, an explicit `--tolerance` is applied
//! as given, `--strict` turns the format floor off, and `--json -` writes the report to stdout.

use crate::util::{Run, TempDir, copy_dir, fixture, kv_mut, oss_forge, rewrite_gguf_kv};
use convert::gguf::Value;
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `verify --original tiny-gpt-oss VARIANT --json -` with `extra` flags: the run and its report.
fn verify_json(variant: &Path, extra: &[&str]) -> (Run, serde_json::Value) {
    let orig = fixture("tiny-gpt-oss");
    let mut args = vec!["verify", "--quiet", "--original", s(&orig), s(variant)];
    args.extend_from_slice(&["--json", "-"]);
    args.extend_from_slice(extra);
    let run = oss_forge(&args);
    assert!(
        run.code == 0 || run.code == 1,
        "exit {}: {}",
        run.code,
        run.stderr
    );
    let json: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("--json - must print JSON alone ({e}): {}", run.stdout));
    (run, json)
}

/// Asserts a failure whose only cause is the metadata key `key` (weights and logits identical),
/// named with both values.
fn assert_metadata_failure(
    run: &Run,
    r: &serde_json::Value,
    key: &str,
    original: &str,
    variant: &str,
) {
    assert_eq!(run.code, 1, "{}", run.stderr);
    let v = &r["variants"][0];
    assert_eq!(
        (v["pass"].as_bool(), v["lossless"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(v["passed_by"], serde_json::Value::Null);
    assert_eq!(
        v["metrics"]["max_abs"], 0.0,
        "weights and logits are identical"
    );
    let diffs = v["metadata"]["differences"].as_array().unwrap();
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert_eq!(diffs[0]["key"], key);
    assert!(
        diffs[0]["original"].as_str().unwrap().contains(original)
            && diffs[0]["variant"].as_str().unwrap().contains(variant),
        "{diffs:?}"
    );
    assert_eq!(v["failures"].as_array().unwrap().len(), 1);
    // The table on stderr (stdout holds the JSON) names the key with both values.
    let line = format!("metadata {key}: original ");
    assert!(run.stderr.contains(&line), "{}", run.stderr);
}

#[test]
fn llama_cpps_own_ggufs_pass_and_say_how() {
    let (run, r) = verify_json(&fixture("llamacpp/tiny-gpt-oss.llamacpp-auto.gguf"), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = &r["variants"][0];
    assert_eq!(v["passed_by"], "identical (by weights)");
    assert_eq!(v["gate"], serde_json::Value::Null);
    let md = &v["metadata"];
    assert_eq!(md["differences"], serde_json::json!([]));
    // general.architecture, 20 gpt-oss.* keys, 11 tokenizer keys.
    assert!(md["compared"].as_u64().unwrap() >= 30, "{md}");
    let ignored: Vec<&str> = md["ignored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    for k in [
        "general.name",
        "general.file_type",
        "general.quantization_version",
    ] {
        assert!(ignored.contains(&k), "{ignored:?}");
    }
    assert!(
        run.stderr.contains("PASS (identical (by weights))"),
        "{}",
        run.stderr
    );
    assert_eq!(r["tolerance"]["format_floor"], true);
    assert_eq!(r["tolerance"]["explicit"], false);
}

#[test]
fn gguf_metadata_edits_with_identical_weights_fail_naming_the_key() {
    let t = TempDir::new("verdict-gguf-meta");
    let base = fixture("llamacpp/tiny-gpt-oss.llamacpp-auto.gguf");
    // The chat template replaced.
    let p = t.join("template.gguf");
    rewrite_gguf_kv(&base, &p, |kv| {
        *kv_mut(kv, "tokenizer.chat_template") =
            Value::String("{{ messages[0]['content'] }}".into());
    });
    let (run, r) = verify_json(&p, &[]);
    assert_metadata_failure(
        &run,
        &r,
        "tokenizer.chat_template",
        "{%- for message in messages -%}",
        "{{ messages[0]['content'] }}",
    );
    // The EOS id changed (484 <|return|> to 483 <|endoftext|>).
    let p = t.join("eos.gguf");
    rewrite_gguf_kv(&base, &p, |kv| {
        *kv_mut(kv, "tokenizer.ggml.eos_token_id") = Value::U32(483);
    });
    let (run, r) = verify_json(&p, &[]);
    assert_metadata_failure(&run, &r, "tokenizer.ggml.eos_token_id", "484", "483");
    // One token renamed.
    let p = t.join("token.gguf");
    let mut renamed = String::new();
    rewrite_gguf_kv(&base, &p, |kv| {
        if let Value::Array(_, tokens) = kv_mut(kv, "tokenizer.ggml.tokens") {
            renamed = tokens[17].as_str().unwrap().to_string();
            tokens[17] = Value::String("hacked".into());
        }
    });
    let (run, r) = verify_json(&p, &[]);
    assert_metadata_failure(
        &run,
        &r,
        "tokenizer.ggml.tokens[17]",
        &format!("{renamed:?}"),
        "\"hacked\" (1 of 512 entries differ)",
    );
    // A producer key changed: ignored, still identical.
    let p = t.join("name.gguf");
    rewrite_gguf_kv(&base, &p, |kv| {
        *kv_mut(kv, "general.name") = Value::String("Something Else".into());
        kv.push(("general.quantized_by".into(), Value::String("me".into())));
    });
    let (run, r) = verify_json(&p, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(r["variants"][0]["passed_by"], "identical (by weights)");
}

#[test]
fn safetensors_metadata_edits_fail_and_storage_keys_are_ignored() {
    let t = TempDir::new("verdict-st-meta");
    let v = t.join("v");
    let run = oss_forge(&[
        "convert",
        "--quiet",
        s(&fixture("tiny-gpt-oss")),
        "--to",
        "safetensors-bf16",
        "-o",
        s(&v),
    ]);
    run.ok();
    // No quantization_config, a torch_dtype of its own: the variant's storage, not compared.
    let (run, r) = verify_json(&v, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let md = &r["variants"][0]["metadata"];
    assert_eq!(md["differences"], serde_json::json!([]));
    assert!(
        md["ignored"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("config.json: quantization_config")),
        "{md}"
    );
    let edit = |file: &str, from: &str, to: &str| {
        let w = t.join(&format!("w-{file}"));
        copy_dir(&v, &w);
        let p = w.join(file);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "{file} lacks {from}");
        std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
        w
    };
    // generation_config.json's EOS ids: [484, 483, 494] with 483 replaced.
    let w = edit("generation_config.json", "483", "999");
    let (run, r) = verify_json(&w, &[]);
    assert_metadata_failure(
        &run,
        &r,
        "generation_config.json: eos_token_id[1]",
        "483",
        "999",
    );
    // The chat template file.
    let w = edit("chat_template.jinja", "<|start|>assistant", "<|start|>user");
    let (run, r) = verify_json(&w, &[]);
    assert_metadata_failure(&run, &r, "chat template", "assistant", "user");
    // config.json: a key transformers reads, outside the forward pass's config.
    let w = edit("config.json", "\"use_cache\": true", "\"use_cache\": false");
    let (run, r) = verify_json(&w, &[]);
    assert_metadata_failure(&run, &r, "config.json: use_cache", "true", "false");
}

#[test]
fn an_inf_in_an_expert_no_prompt_routes_fails_the_weight_check() {
    let t = crate::util::tiny_copy("verdict-inf");
    let m = t.join("m");
    // Layer 0's expert 1 is never routed (router bias -1e4) and holds 6 x 2^14 = 98304 in the
    // first value of its gate (scale byte 141, code 7; the rest of the block 0): float16 rounds
    // it to Inf.
    for e in std::fs::read_dir(&m).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            crate::util::rewrite_shard(&p, |mut t| {
                let (e, rows, blocks) = (1, 128, 4);
                match t.name.as_str() {
                    "model.layers.0.mlp.router.bias" => {
                        let b = quant::float::f32_to_bf16_bits(-1e4).to_le_bytes();
                        t.data[2 * e..2 * e + 2].copy_from_slice(&b);
                    }
                    "model.layers.0.mlp.experts.gate_up_proj_scales" => {
                        t.data[e * rows * blocks] = 141;
                    }
                    "model.layers.0.mlp.experts.gate_up_proj_blocks" => {
                        let at = e * rows * blocks * 16;
                        t.data[at..at + 16].fill(0);
                        t.data[at] = 0x07;
                    }
                    _ => {}
                }
                Some(t)
            });
        }
    }
    let out = t.join("f16.gguf");
    // convert refuses it, naming the weight, place, value and scale byte...
    let run = oss_forge(&[
        "convert",
        "--quiet",
        s(&m),
        "--to",
        "gguf-f16",
        "-o",
        s(&out),
    ]);
    run.fails_with(&[
        "layers.0.experts.1.gate",
        "row 0, column 0",
        "value 98304",
        "scale byte 141",
        "--allow-nonfinite",
    ]);
    // ... and writes it when told to; verify then fails on the weight whatever the logits say.
    oss_forge(&[
        "convert",
        "--quiet",
        s(&m),
        "--to",
        "gguf-f16",
        "-o",
        s(&out),
        "--allow-nonfinite",
    ])
    .ok();
    let json = t.join("r.json");
    let run = oss_forge(&[
        "verify",
        "--quiet",
        "--original",
        s(&m),
        s(&out),
        "--json",
        s(&json),
    ]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let v = &r["variants"][0];
    assert_eq!(v["metrics"]["nonfinite"], 0, "no prompt reaches the Inf");
    assert_eq!(v["weights"]["nonfinite"], 1);
    let gate = v["weights"]["per_tensor"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "layers.0.experts.gate")
        .unwrap();
    assert_eq!(
        gate["first_nonfinite"],
        "layers.0.experts.1.gate row 0 column 0: inf where the original holds 98304"
    );
    assert!(
        run.stdout.contains("1 NaN/Inf")
            && run.stdout.contains(
                "layers.0.experts.gate: 1 of 65536 values are NaN or Inf where the original's are finite"
            ),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("≤inf"), "{}", run.stdout);
}

#[test]
fn an_explicit_tolerance_is_applied_as_given_and_strict_turns_the_floor_off() {
    let q8 = fixture("llamacpp/tiny-gpt-oss.llamacpp-q8_0.gguf");
    // Default gates: the fixture's Q8_0 noise (KLD ~7e-2) passes by its format floor.
    let (run, r) = verify_json(&q8, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = &r["variants"][0];
    assert_eq!(v["passed_by"], "format floor");
    assert_eq!(v["gate"]["source"], "format floor");
    assert!(v["gate"]["kld_mean"].as_f64().unwrap() > 5e-3);
    assert!(
        run.stderr.contains("PASS (format floor)")
            && run.stderr.contains("format floor gate: mean KLD ≤"),
        "{}",
        run.stderr
    );
    // Explicit gates: applied as given, the floor is not run.
    let (run, r) = verify_json(&q8, &["--tolerance", "kld=0.001,top1=0.99"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let v = &r["variants"][0];
    assert_eq!(
        (&r["tolerance"]["explicit"], &r["tolerance"]["format_floor"]),
        (&serde_json::json!(true), &serde_json::json!(false))
    );
    assert_eq!(
        v["gate"],
        serde_json::json!({"kld_mean": 0.001, "top1": 0.99, "source": "tolerance"})
    );
    assert_eq!(v["format_floor"], serde_json::Value::Null);
    assert!(
        run.stderr
            .contains("mean KLD ≤ 1.000e-3 and top-1 ≥ 0.9900 (--tolerance, applied as given"),
        "{}",
        run.stderr
    );
    // --strict: the default gates, never relaxed.
    let (run, r) = verify_json(&q8, &["--strict"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        r["variants"][0]["gate"],
        serde_json::json!({"kld_mean": 0.005, "top1": 0.9, "source": "tolerance"})
    );
    assert!(
        run.stderr.contains("--strict: no format floor"),
        "{}",
        run.stderr
    );
}

/// A variant whose weights are right but whose hyperparameters are not (experts per token,
/// RoPE base, norm epsilon, context length): a runtime would run it wrong, so it fails
/// (exit 1) naming the field, and the other variants of the run are still judged and reported.
#[test]
fn wrong_hyperparameters_fail_the_variant_not_the_run() {
    use convert::gguf::Value;
    let t = crate::util::TempDir::new("verdict-hparams");
    let orig = crate::util::fixture("tiny-gpt-oss");
    let good = crate::util::fixture("llamacpp/tiny-gpt-oss.llamacpp-auto.gguf");
    let mut args = vec!["-q".to_string(), "verify".into(), "--original".into()];
    args.push(orig.to_str().unwrap().into());
    args.push(good.to_str().unwrap().into());
    let edits: [(&str, Value, &str); 4] = [
        (
            "gpt-oss.expert_used_count",
            Value::U32(2),
            "num_experts_per_tok",
        ),
        ("gpt-oss.rope.freq_base", Value::F32(10000.0), "rope_theta"),
        (
            "gpt-oss.attention.layer_norm_rms_epsilon",
            Value::F32(1e-6),
            "rms_norm_eps",
        ),
        (
            "gpt-oss.context_length",
            Value::U32(4096),
            "max_position_embeddings",
        ),
    ];
    for (i, (key, value, _)) in edits.iter().enumerate() {
        let dst = t.join(&format!("bad{i}.gguf"));
        crate::util::rewrite_gguf_kv(&good, &dst, |kv| {
            *crate::util::kv_mut(kv, key) = value.clone();
        });
        args.push(dst.to_str().unwrap().into());
    }
    let json = t.join("r.json");
    args.extend(["--json".into(), json.to_str().unwrap().into()]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = crate::util::oss_forge(&a);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let vs = report["variants"].as_array().unwrap();
    assert_eq!(vs.len(), 5);
    assert_eq!(vs[0]["pass"], true, "{}", vs[0]);
    for (v, (_, _, field)) in vs[1..].iter().zip(&edits) {
        assert_eq!(v["pass"], false);
        assert!(v["failures"].to_string().contains(field), "{field}: {v}");
    }
}
