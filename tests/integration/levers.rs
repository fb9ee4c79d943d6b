//! The forward passes `verify` skips and the logits it keeps, and that neither changes a verdict:
//! a variant whose weights are the original's passes `identical (by weights)` without a forward
//! pass (`--force-forward` runs it: max |Δ| = 0); the format floor runs only outside the plain
//! gates, and not at all when the variant's weights are the floor's rounding (forced, it gives
//! the variant's metrics bit for bit); a variant one nibble off still fails or is judged by its
//! logits; `--logits-cache` reads the original's logits back only for the same original, prompts
//! and build, and ignores a bad cache file with a warning.

use crate::util::{Run, TempDir, fixture, oss_forge, rewrite_shard, shards, tiny_copy};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `oss-forge convert MODEL --to VARIANT` into `t`.
fn convert(t: &TempDir, model: &Path, variant: &str) -> PathBuf {
    let out = if variant.starts_with("gguf") {
        t.join(&format!("{variant}.gguf"))
    } else {
        t.join(variant)
    };
    oss_forge(&["-q", "convert", s(model), "--to", variant, "-o", s(&out)]).ok();
    out
}

/// `verify --original ORIGINAL VARIANT --json FILE` with `extra` flags (not quiet: the cache
/// says what it did on stderr): the run and the report.
fn verify(original: &Path, variant: &Path, json: &Path, extra: &[&str]) -> (Run, Value) {
    let mut args = vec![
        "verify",
        "--original",
        s(original),
        s(variant),
        "--json",
        s(json),
    ];
    args.extend_from_slice(extra);
    let run = oss_forge(&args);
    assert!(
        (run.code == 0 || run.code == 1) && !run.stderr.contains("panicked"),
        "exit {}: {}",
        run.code,
        run.stderr
    );
    let r = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    (run, r)
}

/// Positions of the built-in prompts on the tiny fixture, from a report.
fn positions(r: &Value) -> u64 {
    r["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["tokens"].as_u64().unwrap())
        .sum()
}

/// Flips `mask` in byte `at` of tensor `name`'s data in the GGUF file `path`.
fn flip_gguf(path: &Path, name: &str, at: usize, mask: u8) {
    let range = {
        let f = convert::gguf::GgufFile::open(path).unwrap();
        f.tensors()
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} not in {}", path.display()))
            .range
            .clone()
    };
    let mut bytes = std::fs::read(path).unwrap();
    bytes[range.start + at] ^= mask;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_lossless_variant_passes_by_its_weights_and_forced_gives_identical_logits() {
    let t = TempDir::new("lever-identical");
    let orig = fixture("tiny-gpt-oss");
    let v = convert(&t, &orig, "gguf-mxfp4");
    let (run, r) = verify(&orig, &v, &t.join("a.json"), &[]);
    run.ok();
    let n = positions(&r);
    assert!(n > 500, "{n}");
    let a = &r["variants"][0];
    assert_eq!(a["passed_by"], "identical (by weights)");
    assert_eq!(a["logits_by_weights"], true);
    assert_eq!(a["forward_positions"], 0, "no forward pass of the variant");
    assert_eq!(a["metrics"]["max_abs"], 0.0);
    assert_eq!(a["metrics"]["positions"], n);
    assert!(
        run.stdout.contains("PASS (identical (by weights))")
            && run
                .stdout
                .contains("forward pass skipped: every weight identical"),
        "{}",
        run.stdout
    );
    // Forced: the variant's own forward pass, bit-identical logits.
    let (run, r) = verify(&orig, &v, &t.join("b.json"), &["--force-forward"]);
    run.ok();
    let b = &r["variants"][0];
    assert_eq!(b["passed_by"], "identical");
    assert_eq!(b.get("logits_by_weights"), None);
    assert_eq!(b["forward_positions"], n);
    for k in ["max_abs", "nmse", "kld_mean", "kld_max"] {
        assert_eq!(b["metrics"][k], 0.0, "{k}");
    }
    assert_eq!(b["metrics"]["top1"], 1.0);
    assert!(
        !run.stdout.contains("forward pass skipped"),
        "{}",
        run.stdout
    );
    // Both say the same of every prompt.
    assert_eq!(a["per_prompt"], b["per_prompt"]);
}

#[test]
fn the_format_floor_runs_only_outside_the_gates_and_not_when_the_weights_are_its_rounding() {
    let t = TempDir::new("lever-floor");
    let orig = fixture("tiny-gpt-oss");
    // safetensors-fp16 rounds the BF16 dense weights to F16: lossy, well within the gates.
    let fp16 = convert(&t, &orig, "safetensors-fp16");
    let (run, r) = verify(&orig, &fp16, &t.join("fp16.json"), &[]);
    run.ok();
    let n = positions(&r);
    let v = &r["variants"][0];
    assert_eq!(
        (v["lossless"].as_bool(), v["passed_by"].as_str()),
        (Some(false), Some("gates"))
    );
    assert_eq!(v["format_floor"], Value::Null, "no floor inside the gates");
    assert_eq!(v["forward_positions"], n, "the variant's pass only");

    // Q8_0 attention on random weights: outside the default gates, judged by the floor, whose
    // weights are exactly the variant's: the floor's pass is skipped.
    let q8 = convert(&t, &orig, "gguf-mxfp4-q8_0");
    let (run, r) = verify(&orig, &q8, &t.join("q8.json"), &[]);
    run.ok();
    let v = &r["variants"][0];
    assert_eq!(v["passed_by"], "format floor");
    assert_eq!(v["format_floor_by_weights"], true);
    assert_eq!(v["forward_positions"], n);
    assert_eq!(v["format_floor"], v["metrics"]);
    assert!(
        run.stdout.contains("format floor's forward pass skipped"),
        "{}",
        run.stdout
    );
    // Forced, the floor's own pass gives the same metrics bit for bit: the claim holds.
    let (run, forced) = verify(&orig, &q8, &t.join("q8f.json"), &["--force-forward"]);
    run.ok();
    let f = &forced["variants"][0];
    assert_eq!(f.get("format_floor_by_weights"), None);
    assert_eq!(f["forward_positions"], 2 * n);
    assert_eq!(f["format_floor"], v["format_floor"]);
    assert_eq!(f["passed_by"], "format floor");
    // --strict: no floor at all.
    let (run, r) = verify(&orig, &q8, &t.join("q8s.json"), &["--strict"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let v = &r["variants"][0];
    assert_eq!(
        (&v["format_floor"], &v["forward_positions"]),
        (&Value::Null, &n.into())
    );
}

#[test]
fn a_variant_one_nibble_off_still_fails_or_is_judged_by_its_logits() {
    let t = TempDir::new("lever-nibble");
    let orig = fixture("tiny-gpt-oss");
    // One E2M1 code of expert 0 in layer 0 (byte 1 of the first block follows its scale byte):
    // the copy is no longer lossless and fails the exact bound.
    let mx = convert(&t, &orig, "gguf-mxfp4");
    flip_gguf(&mx, "blk.0.ffn_gate_exps.weight", 1, 0x01);
    let (run, r) = verify(&orig, &mx, &t.join("mx.json"), &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let v = &r["variants"][0];
    let n = positions(&r);
    assert_eq!(
        (v["lossless"].as_bool(), v["passed_by"].is_null()),
        (Some(false), true)
    );
    assert_eq!(v.get("logits_by_weights"), None);
    assert!(v["forward_positions"].as_u64().unwrap() >= n);
    let failures = v["failures"].to_string();
    assert!(failures.contains("layers.0.experts.gate"), "{failures}");

    // The high nibble of one Q8_0 code (64 steps): outside the Q8_0 bound, and the floor's
    // weights are no longer the variant's, so the floor's pass is run.
    let q8 = convert(&t, &orig, "gguf-mxfp4-q8_0");
    flip_gguf(&q8, "blk.0.attn_q.weight", 2, 0x40);
    let (run, r) = verify(&orig, &q8, &t.join("q8.json"), &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let v = &r["variants"][0];
    assert_eq!(v.get("format_floor_by_weights"), None);
    assert_eq!(v["forward_positions"], 2 * n);
    assert!(
        v["failures"].to_string().contains("layers.0.q_proj"),
        "{}",
        v["failures"]
    );

    // One nibble of a Q4_0 block, a type judged by the logits alone: the floor is run (its
    // weights differ by that block) and the report counts the block that is not ggml's.
    let q4 = convert(&t, &orig, "gguf-q4_0");
    let (_, clean) = verify(&orig, &q4, &t.join("q4a.json"), &[]);
    let c = &clean["variants"][0];
    assert_eq!(
        (
            c["format_floor_by_weights"].as_bool(),
            c["forward_positions"].as_u64()
        ),
        (Some(true), Some(n))
    );
    flip_gguf(&q4, "blk.0.attn_q.weight", 2, 0x01);
    let (_, r) = verify(&orig, &q4, &t.join("q4.json"), &[]);
    let v = &r["variants"][0];
    assert_eq!(v.get("format_floor_by_weights"), None);
    assert_eq!(v["forward_positions"], 2 * n);
    assert_ne!(v["metrics"], c["metrics"]);
    // "N of N quantized blocks (100.0%) equal ggml's reference quantizer" before, N - 1 after.
    let blocks = |r: &Value| -> Vec<u64> {
        let lines = r["requantization"].as_array().unwrap();
        let line = lines
            .iter()
            .filter_map(Value::as_str)
            .find(|l| l.contains("quantized blocks"))
            .unwrap_or_else(|| panic!("{lines:?}"));
        let w: Vec<&str> = line.split_whitespace().collect();
        vec![w[0].parse().unwrap(), w[2].parse().unwrap()]
    };
    let n_blocks = blocks(c)[1];
    assert_eq!(blocks(c), [n_blocks, n_blocks]);
    assert_eq!(blocks(v), [n_blocks - 1, n_blocks]);
}

/// The cache files in `dir`.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Rewrites a cache entry's logits through `edit`, with a header that matches them (so the
/// entry stays valid): what a later run then reads shows the cache is what it read.
fn rewrite_entry(path: &Path, edit: impl Fn(f32) -> f32) {
    let bytes = std::fs::read(path).unwrap();
    let len = u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize;
    let mut header: Value = serde_json::from_slice(&bytes[16..16 + len]).unwrap();
    let data: Vec<u8> = bytes[16 + len..]
        .chunks_exact(4)
        .flat_map(|b| edit(f32::from_le_bytes(b.try_into().unwrap())).to_le_bytes())
        .collect();
    header["data_sha256"] = convert::publish::sha256_bytes(&data).into();
    let header = serde_json::to_vec(&header).unwrap();
    let mut out = bytes[..8].to_vec();
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&data);
    std::fs::write(path, out).unwrap();
}

#[test]
fn the_logits_cache_is_read_back_only_for_the_same_original_and_prompts() {
    let t = tiny_copy("lever-cache");
    let m = t.join("m");
    let cache = t.join("cache");
    let v = convert(&t, &m, "gguf-mxfp4-q8_0");
    let c = ["--logits-cache", s(&cache)];
    let (run, first) = verify(&m, &v, &t.join("1.json"), &c);
    run.ok();
    assert!(
        run.stderr.contains("original's logits stored in"),
        "{}",
        run.stderr
    );
    let stored = entries(&cache);
    assert_eq!(stored.len(), 1, "one entry, no temporaries: {stored:?}");
    let good = std::fs::read(&stored[0]).unwrap();

    // Again: read back, the same report.
    let (run, second) = verify(&m, &v, &t.join("2.json"), &c);
    run.ok();
    assert!(
        run.stderr.contains("original's logits read from"),
        "{}",
        run.stderr
    );
    assert_eq!(first["variants"], second["variants"]);
    // What it read is what the metrics are computed from: logits halved in the entry (its
    // checksum updated) move every metric.
    rewrite_entry(&stored[0], |x| x * 0.5);
    let (run, doctored) = verify(&m, &v, &t.join("3.json"), &c);
    assert!(run.stderr.contains("read from"), "{}", run.stderr);
    assert_ne!(
        doctored["variants"][0]["metrics"]["kld_mean"],
        first["variants"][0]["metrics"]["kld_mean"]
    );

    // A corrupt entry (one flipped byte), a truncated one and a foreign file: ignored with a
    // warning, the logits computed again (the same report), the entry replaced.
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 0x20;
    for (bad, why) in [
        (flipped, "corrupt"),
        (good[..good.len() / 2].to_vec(), "truncated"),
        (b"not logits at all".to_vec(), "not a logits cache file"),
    ] {
        std::fs::write(&stored[0], &bad).unwrap();
        let (run, r) = verify(&m, &v, &t.join("4.json"), &c);
        run.ok();
        assert!(
            run.stderr.contains("warning: logits cache") && run.stderr.contains(why),
            "{why}: {}",
            run.stderr
        );
        assert!(run.stderr.contains("stored in"), "{}", run.stderr);
        assert_eq!(r["variants"], first["variants"], "{why}");
        assert_eq!(std::fs::read(&stored[0]).unwrap(), good, "{why}: replaced");
    }

    // Other prompts: another entry.
    let prompts = t.join("prompts.txt");
    std::fs::write(&prompts, "1,2,3,4,5\n7,8,9\n").unwrap();
    let (run, _) = verify(
        &m,
        &v,
        &t.join("5.json"),
        &[c[0], c[1], "--prompts", s(&prompts)],
    );
    assert!(run.stderr.contains("stored in"), "{}", run.stderr);
    assert_eq!(entries(&cache).len(), 2);
    let (run, _) = verify(
        &m,
        &v,
        &t.join("6.json"),
        &[c[0], c[1], "--prompts", s(&prompts)],
    );
    assert!(run.stderr.contains("read from"), "{}", run.stderr);

    // A changed original (one bias value): another entry, whose logits differ.
    for p in shards(&m) {
        rewrite_shard(&p, |mut t| {
            if t.name == "model.layers.0.self_attn.q_proj.bias" {
                t.data[1] ^= 0x04;
            }
            Some(t)
        });
    }
    let (run, changed) = verify(&m, &v, &t.join("7.json"), &c);
    assert!(run.stderr.contains("stored in"), "{}", run.stderr);
    assert_eq!(entries(&cache).len(), 3);
    assert_ne!(
        changed["variants"][0]["metrics"],
        first["variants"][0]["metrics"]
    );
}

#[test]
fn pipeline_shares_the_cache_with_verify_and_force_forward_redoes_skipped_passes() {
    let t = tiny_copy("lever-pipeline");
    let (m, out, cache) = (t.join("m"), t.join("out"), t.join("cache"));
    let pipeline = |extra: &[&str]| {
        let mut args = vec![
            "pipeline",
            s(&m),
            "-o",
            s(&out),
            "--variants",
            "gguf-mxfp4",
            "--logits-cache",
            s(&cache),
        ];
        args.extend_from_slice(extra);
        let run = oss_forge(&args);
        run.ok();
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("verify.json")).unwrap())
                .unwrap();
        (run, report)
    };
    let (run, r) = pipeline(&[]);
    assert!(
        run.stderr.contains("original's logits stored in"),
        "{}",
        run.stderr
    );
    let v = &r["variants"][0];
    assert_eq!(v["passed_by"], "identical (by weights)");
    assert_eq!(v["forward_positions"], 0);
    let card = std::fs::read_to_string(out.join("gguf-mxfp4/README.md")).unwrap();
    assert!(
        card.contains("(passed by: identical (by weights))")
            && card.contains("Its forward pass was not run"),
        "{card}"
    );
    // verify reads what the pipeline stored (the same key for the same original and prompts).
    let gguf = std::fs::read_dir(out.join("gguf-mxfp4"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "gguf"))
        .unwrap();
    let (run, _) = verify(&m, &gguf, &t.join("v.json"), &["--logits-cache", s(&cache)]);
    assert!(
        run.stderr.contains("original's logits read from"),
        "{}",
        run.stderr
    );
    // A re-run keeps the variant; with --force-forward the skipped pass is run, the original's
    // logits coming from the cache.
    let (run, _) = pipeline(&[]);
    assert!(run.stderr.contains("up to date"), "{}", run.stderr);
    let (run, r) = pipeline(&["--force-forward"]);
    assert!(
        !run.stderr.contains("up to date") && run.stderr.contains("original's logits read from"),
        "{}",
        run.stderr
    );
    let v = &r["variants"][0];
    assert_eq!(v["passed_by"], "identical");
    assert_eq!(v["forward_positions"], positions(&r));
    assert_eq!(v["metrics"]["max_abs"], 0.0);
}
