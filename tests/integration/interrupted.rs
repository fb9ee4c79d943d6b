//! Interrupted runs: `convert` and `pipeline` killed with SIGKILL while they write (no chance to
//! clean up) leave nothing under a final name; the next run removes the stale temporaries and
//! produces exactly what an uninterrupted run produces.

use crate::util::{TempDir, fixture, oss_forge};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every temporary (`.NAME.partial-PID`) under `dir`, recursively.
fn partials(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if e.file_name().to_string_lossy().contains(".partial-") {
            out.push(p.clone());
        }
        if p.is_dir() {
            out.extend(partials(&p));
        }
    }
    out
}

/// Every file under `dir` with its bytes, sorted by relative path.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push((
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    let mut out = Vec::new();
    if dir.is_file() {
        out.push((PathBuf::new(), std::fs::read(dir).unwrap()));
    } else {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_oss-forge"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until `ready()` holds, then `extra` more, and SIGKILLs `child`. False if the child
/// exited first (the moment was missed).
fn kill_when(child: &mut Child, ready: impl Fn() -> bool, extra: Duration) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    std::thread::sleep(extra);
    let finished = child.try_wait().unwrap().is_some();
    child.kill().unwrap_or_default();
    child.wait().unwrap();
    !finished
}

#[test]
fn convert_killed_mid_write_leaves_no_output_and_the_next_run_cleans_up() {
    let model = fixture("small-gpt-oss");
    let t = TempDir::new("killed-convert");
    for variant in ["gguf-bf16", "safetensors-bf16"] {
        let clean = t.join(&format!("clean-{variant}"));
        oss_forge(&[
            "convert",
            "--quiet",
            s(&model),
            "--to",
            variant,
            "-o",
            s(&clean),
        ])
        .ok();
        let mut hits = 0;
        for extra_ms in [0, 20, 60, 120] {
            let dir = t.join(&format!("{variant}-{extra_ms}"));
            std::fs::create_dir_all(&dir).unwrap();
            let out = dir.join("out");
            let mut child = spawn(&[
                "convert",
                "--quiet",
                s(&model),
                "--to",
                variant,
                "-o",
                s(&out),
            ]);
            if !kill_when(
                &mut child,
                || !partials(&dir).is_empty(),
                Duration::from_millis(extra_ms),
            ) {
                continue; // finished before the kill: nothing interrupted, nothing to check
            }
            if out.exists() {
                // Killed after the rename and before the exit: the output must then be whole.
                assert!(
                    snapshot(&out) == snapshot(&clean),
                    "{variant}: killed {extra_ms} ms into writing, yet a partial {} exists",
                    out.display()
                );
                continue;
            }
            hits += 1;
            let stale = partials(&dir);
            assert!(
                !stale.is_empty(),
                "{variant}: the killed run's temporary is gone (who removed it?)"
            );
            oss_forge(&[
                "convert",
                "--quiet",
                s(&model),
                "--to",
                variant,
                "-o",
                s(&out),
            ])
            .ok();
            assert_eq!(
                partials(&dir),
                Vec::<PathBuf>::new(),
                "{variant}: the re-run left stale temporaries {stale:?}"
            );
            assert!(
                snapshot(&out) == snapshot(&clean),
                "{variant}: the re-run's output differs from an uninterrupted run"
            );
        }
        assert!(
            hits >= 2,
            "{variant}: only {hits} of 4 kills landed while writing; the conversion is too fast to test"
        );
    }
}

#[test]
fn pipeline_killed_mid_variant_resumes_and_check_passes() {
    let model = fixture("tiny-gpt-oss");
    let t = TempDir::new("killed-pipeline");
    let out = t.join("pub");
    let args = [
        "pipeline",
        "--quiet",
        s(&model),
        "-o",
        s(&out),
        "--variants",
        "gguf-bf16,safetensors-bf16",
    ];
    // Killed while the second variant is being written: the first is complete in the manifest.
    let mut child = spawn(&args);
    let st_partial = || {
        partials(&out).iter().any(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy()
                    .starts_with(".safetensors-bf16.partial-")
            })
        })
    };
    assert!(
        kill_when(&mut child, st_partial, Duration::ZERO),
        "the pipeline finished before it could be killed"
    );
    assert!(
        !out.join("safetensors-bf16").exists(),
        "the interrupted variant appeared under its final name"
    );
    // `check` flags the leftover temporary (and that the run never finished: no SHA256SUMS yet,
    // or one that does not list the temporary).
    let check = oss_forge(&["check", s(&out)]);
    assert_ne!(
        check.code, 0,
        "check passed a directory with an interrupted run: {}",
        check.stdout
    );

    let resumed = oss_forge(&args);
    resumed.ok();
    let line = |v: &str| {
        resumed
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{v} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("gguf-bf16").contains("up to date"),
        "the finished variant was redone: {}",
        resumed.stdout
    );
    assert!(
        !line("safetensors-bf16").contains("up to date")
            && line("safetensors-bf16").contains("PASS"),
        "{}",
        resumed.stdout
    );
    assert_eq!(
        partials(&out),
        Vec::<PathBuf>::new(),
        "stale temporaries remain"
    );
    let check = oss_forge(&["check", s(&out)]);
    check.ok();
    assert!(!check.stdout.contains("UNLISTED"), "{}", check.stdout);
}

#[test]
fn check_reports_unlisted_files_and_corrupt_sums() {
    let model = fixture("tiny-gpt-oss");
    let t = TempDir::new("check-unlisted");
    let out = t.join("pub");
    oss_forge(&[
        "pipeline",
        "--quiet",
        s(&model),
        "-o",
        s(&out),
        "--variants",
        "gguf-mxfp4",
    ])
    .ok();
    oss_forge(&["check", s(&out)]).ok();
    // A file slipped in after publishing, and a temporary an interrupted run left.
    std::fs::write(out.join("gguf-mxfp4/extra.bin"), b"x").unwrap();
    std::fs::write(out.join(".gguf-mxfp4.partial-999999999"), b"x").unwrap();
    let run = oss_forge(&["check", s(&out)]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("UNLISTED gguf-mxfp4/extra.bin")
            && run
                .stdout
                .contains("UNLISTED .gguf-mxfp4.partial-999999999"),
        "{}",
        run.stdout
    );
    std::fs::remove_file(out.join("gguf-mxfp4/extra.bin")).unwrap();
    std::fs::remove_file(out.join(".gguf-mxfp4.partial-999999999")).unwrap();
    oss_forge(&["check", s(&out)]).ok();
    // The manifest records another hash for a file than SHA256SUMS does.
    let mpath = out.join("manifest.json");
    let original = std::fs::read_to_string(&mpath).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&original).unwrap();
    let f = &mut m["variants"][0]["files"][0];
    let rel = f["path"].as_str().unwrap().to_string();
    f["sha256"] = "0".repeat(64).into();
    std::fs::write(&mpath, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let run = oss_forge(&["check", s(&out)]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!(
            "INCONSISTENT {rel} (SHA256SUMS and manifest.json disagree)"
        )),
        "{}",
        run.stdout
    );
    std::fs::write(&mpath, original).unwrap();
    // A SHA256SUMS line that is not `<64 hex>  <relative path>` is an error (exit 2), not a pass.
    let sums = out.join("SHA256SUMS");
    let good = std::fs::read_to_string(&sums).unwrap();
    for bad in [
        "not a checksum line\n",
        "abc  gguf-mxfp4/x\n",
        &format!("{}  ../escape\n", "0".repeat(64)),
    ] {
        std::fs::write(&sums, format!("{good}{bad}")).unwrap();
        oss_forge(&["check", s(&out)]).fails_with(&["SHA256SUMS", "line"]);
    }
}
