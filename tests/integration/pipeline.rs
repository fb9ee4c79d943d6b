//! `oss-forge pipeline`, `check` and `demo`: every variant converted and verified, published
//! with checksums, a manifest and model cards; byte-identical re-runs; resume; tamper detection.

use crate::util::{TempDir, fixture, oss_forge};
use std::path::Path;

const LOSSLESS: [&str; 3] = ["gguf-mxfp4", "gguf-bf16", "safetensors-bf16"];

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Every file under `dir` with its bytes, sorted by relative path.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push((
                    p.strip_prefix(root).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

pub fn sha256sum_c(dir: &Path) {
    let out = std::process::Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(dir)
        .output()
        .expect("sha256sum (coreutils) is installed");
    assert!(
        out.status.success(),
        "sha256sum -c: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pipeline_checks(name: &str) {
    let t = TempDir::new(&format!("pipeline-{name}"));
    let model = fixture(name);
    let (a, b) = (t.join("a"), t.join("b"));
    let run = oss_forge(&[
        "pipeline",
        "--quiet",
        model.to_str().unwrap(),
        "-o",
        a.to_str().unwrap(),
    ]);
    run.ok();
    let report = json(&a.join("verify.json"));
    assert_eq!(report["pass"], true);
    let variants = report["variants"].as_array().unwrap();
    // The default set: every variant but safetensors-int8 (which stock runtimes load with
    // random experts), the GGUF presets, mlx-mxfp4-q4 and mlx-bf16; those are written only when
    // named.
    assert_eq!(variants.len(), convert::Variant::defaults().len());
    assert_eq!(variants.len(), 10);
    assert!(!a.join("safetensors-int8").exists());
    for v in variants {
        let path = v["path"].as_str().unwrap();
        let variant = path.split('/').next().unwrap();
        for k in [
            "positions",
            "max_abs",
            "nmse",
            "kld_mean",
            "kld_p99",
            "kld_max",
            "top1",
            "top5_overlap",
            "argmax_changed",
            "nonfinite",
        ] {
            assert!(
                v["metrics"][k].is_number(),
                "{path}: metric {k} missing: {}",
                v["metrics"]
            );
        }
        assert_eq!(v["weights"]["violations"], 0, "{path}");
        if LOSSLESS.contains(&variant) {
            assert_eq!(
                v["lossless"], true,
                "{path} should be identical: {}",
                v["weights"]
            );
            assert_eq!(v["metrics"]["max_abs"], 0.0, "{path}");
        }
        assert!(
            run.stdout.contains(variant),
            "table lacks {variant}: {}",
            run.stdout
        );
    }
    // Experts stay bit-exact in every MXFP4 GGUF and in gguf-q8_0: the expert tensors are identical.
    for v in variants.iter().filter(|v| {
        v["path"].as_str().unwrap().starts_with("gguf-mxfp4")
            || v["path"].as_str().unwrap().starts_with("gguf-q8_0")
    }) {
        for t in v["weights"]["per_tensor"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["name"].as_str().unwrap().contains(".experts."))
        {
            assert_eq!(t["differing"], 0, "{}: {}", v["path"], t);
        }
    }
    let manifest = json(&a.join("manifest.json"));
    assert_eq!(manifest["tool"]["name"], "oss-forge");
    assert!(
        manifest["source"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "config.json" && f["sha256"].as_str().unwrap().len() == 64)
    );
    for e in manifest["variants"].as_array().unwrap() {
        assert!(
            e["bytes"].as_u64().unwrap() > 0
                && e["settings"].is_object()
                && e["verification"]["metrics"].is_object()
        );
        let card =
            std::fs::read_to_string(a.join(e["variant"].as_str().unwrap()).join("README.md"))
                .unwrap();
        assert!(
            card.starts_with("---\nbase_model: ")
                && card.contains("\nlicense: apache-2.0\n")
                && card.contains("## Verification")
                && card.contains("## Fits on"),
            "{card}"
        );
        // The card states the gates and whether the format floor was used.
        let by = e["verification"]["passed_by"].as_str().unwrap();
        assert!(
            card.contains(&format!("(passed by: {by})"))
                && card.contains("Gates: lossless: every weight identical and max |Δlogit| = 0")
                && card.contains(match by {
                    "format floor" => "(the format floor was used",
                    "gates" => "(the format floor was not used)",
                    _ => "every weight identical",
                }),
            "{card}"
        );
    }
    assert_eq!(manifest["tolerance"]["format_floor"], true);
    sha256sum_c(&a);
    // A second run elsewhere writes the same bytes; a re-run in place redoes nothing.
    oss_forge(&[
        "pipeline",
        "--quiet",
        model.to_str().unwrap(),
        "-o",
        b.to_str().unwrap(),
    ])
    .ok();
    let snap = snapshot(&a);
    assert_eq!(
        snap.iter().map(|f| &f.0).collect::<Vec<_>>(),
        snapshot(&b).iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert!(snap == snapshot(&b), "second run differs");
    let again = oss_forge(&[
        "pipeline",
        "--quiet",
        model.to_str().unwrap(),
        "-o",
        a.to_str().unwrap(),
    ]);
    again.ok();
    assert_eq!(
        again.stdout.matches("up to date").count(),
        convert::Variant::defaults().len(),
        "{}",
        again.stdout
    );
    assert!(snap == snapshot(&a), "resumed run changed files");
}

#[test]
fn pipeline_on_the_tiny_fixture() {
    pipeline_checks("tiny-gpt-oss");
}

#[test]
fn pipeline_on_the_small_fixture() {
    pipeline_checks("small-gpt-oss");
}

#[test]
fn check_finds_changed_and_missing_files_and_pipeline_redoes_only_those_variants() {
    let t = TempDir::new("pipeline-check");
    let model = fixture("tiny-gpt-oss");
    let out = t.join("out");
    let args = [
        "pipeline",
        "--quiet",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--variants",
        "gguf-mxfp4,safetensors-int8",
    ];
    oss_forge(&args).ok();
    let ok = oss_forge(&["check", out.to_str().unwrap()]);
    ok.ok();
    assert!(ok.stdout.contains("files intact"));
    // Flip one byte of the GGUF, delete the int8 config.
    let gguf = out.join("gguf-mxfp4/tiny-gpt-oss-MXFP4.gguf");
    let mut bytes = std::fs::read(&gguf).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x40;
    std::fs::write(&gguf, bytes).unwrap();
    std::fs::remove_file(out.join("safetensors-int8/config.json")).unwrap();
    let bad = oss_forge(&["check", out.to_str().unwrap()]);
    assert_eq!(bad.code, 1, "{}", bad.stdout);
    assert!(
        bad.stdout
            .contains("CHANGED  gguf-mxfp4/tiny-gpt-oss-MXFP4.gguf"),
        "{}",
        bad.stdout
    );
    assert!(
        bad.stdout.contains("MISSING  safetensors-int8/config.json"),
        "{}",
        bad.stdout
    );
    // The pipeline notices and redoes both; everything is intact again.
    let redo = oss_forge(&args);
    redo.ok();
    assert_eq!(
        redo.stdout.matches("up to date").count(),
        0,
        "{}",
        redo.stdout
    );
    oss_forge(&["check", out.to_str().unwrap()]).ok();
    let same = oss_forge(&args);
    assert_eq!(
        same.stdout.matches("up to date").count(),
        2,
        "{}",
        same.stdout
    );
    // A missing SHA256SUMS is an error, not a pass.
    std::fs::remove_file(out.join("SHA256SUMS")).unwrap();
    oss_forge(&["check", out.to_str().unwrap()]).fails_with(&["SHA256SUMS"]);
}

#[test]
fn demo_runs_the_whole_chain_without_downloads() {
    let t = TempDir::new("demo");
    let run = oss_forge(&["demo", "--quiet", "-o", t.join("d").to_str().unwrap()]);
    run.ok();
    assert!(
        run.stdout.contains("PASS: 10 of 10 variants verified"),
        "{}",
        run.stdout
    );
    sha256sum_c(&t.join("d/variants"));
    // The "Next:" line names a binary that runs from here: this one is not on PATH.
    let next = run.stdout.lines().find(|l| l.contains("Next:")).unwrap();
    assert!(
        !next.contains("`oss-forge check")
            && next.contains("oss-forge check")
            && next.contains("cargo install --path ."),
        "{next}"
    );
    let me = std::path::Path::new(env!("CARGO_BIN_EXE_oss-forge"));
    let shown = next
        .split('`')
        .nth(1)
        .unwrap()
        .split(" check")
        .next()
        .unwrap();
    assert_eq!(
        std::fs::canonicalize(shown).ok(),
        std::fs::canonicalize(me).ok(),
        "{next}"
    );
}

#[test]
fn verify_accepts_llama_cpps_own_ggufs() {
    let t = TempDir::new("verify-llamacpp");
    for fx in ["tiny-gpt-oss", "small-gpt-oss"] {
        let orig = fixture(fx);
        let files: Vec<String> = ["auto", "f16", "q8_0"]
            .iter()
            .map(|o| {
                fixture(&format!("llamacpp/{fx}.llamacpp-{o}.gguf"))
                    .display()
                    .to_string()
            })
            .collect();
        let json_path = t.join(&format!("{fx}.json"));
        let mut args = vec![
            "verify",
            "--quiet",
            "--original",
            orig.to_str().unwrap(),
            "--json",
            json_path.to_str().unwrap(),
        ];
        args.extend(files.iter().map(String::as_str));
        oss_forge(&args).ok();
        let r = json(&json_path);
        for v in r["variants"].as_array().unwrap() {
            assert_eq!(v["pass"], true, "{}", v["failures"]);
            for t in v["weights"]["per_tensor"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["name"].as_str().unwrap().contains(".experts."))
            {
                assert_eq!(
                    t["differing"], 0,
                    "{}: expert tensor {} differs",
                    v["path"], t["name"]
                );
            }
        }
        // `auto` (BF16 dense, MXFP4 experts) is the release, bit for bit.
        assert_eq!(r["variants"][0]["lossless"], true);
        assert_eq!(r["variants"][0]["metrics"]["max_abs"], 0.0);
    }
}

/// `pipeline` on a GGUF (a file, or a directory holding one) is refused first, before any
/// note about the prompts it would have run, and writes nothing.
#[test]
fn a_gguf_source_is_refused_before_anything_else_is_said() {
    let t = TempDir::new("pipeline-gguf");
    let out = t.join("out");
    let run = oss_forge(&[
        "pipeline",
        fixture("llamacpp/tiny-gpt-oss.llamacpp-q8_0.gguf")
            .to_str()
            .unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    run.fails_with(&["pipeline converts a release checkpoint (a safetensors directory)"]);
    assert!(!run.stderr.contains("note:"), "{}", run.stderr);
    assert!(!out.exists());
}
