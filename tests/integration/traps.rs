//! The traps a packager, an operator and a CI author hit, one test per kind: outputs that
//! would replace the input or a directory's other files, split sets that must publish,
//! partial re-runs that must merge, Ctrl-C, two runs at once, an input changed under a
//! conversion, and the names, messages and units users bring from other tools.

use crate::util::{TempDir, copy_dir, fixture, oss_forge, tiny_copy};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Every file under `dir` (recursively, hidden ones too) with its bytes, sorted.
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
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Temporaries (`.NAME.partial-PID`) under `dir`, recursively.
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

#[test]
fn output_on_around_or_inside_the_input_is_refused_and_the_model_is_untouched() {
    let t = tiny_copy("traps-overlap");
    let m = t.join("m");
    let before = snapshot(&m);
    let gguf_in_m = m.join("x.gguf");
    let cases: Vec<Vec<&str>> = vec![
        // The reported trap: the output is the model directory itself.
        vec![
            "convert",
            s(&m),
            "--to",
            "safetensors-bf16",
            "-o",
            s(&m),
            "--force",
        ],
        // A GGUF "into" the model directory, and one inside it by name.
        vec![
            "convert",
            s(&m),
            "--to",
            "gguf-mxfp4",
            "-o",
            s(&m),
            "--force",
        ],
        vec!["convert", s(&m), "--to", "gguf-mxfp4", "-o", s(&gguf_in_m)],
        // The directory around the model, and the release directory around `original/`.
        vec![
            "convert",
            s(&m),
            "--to",
            "safetensors-int8",
            "-o",
            s(t.path()),
            "--force",
        ],
    ];
    let orig = m.join("original");
    let mut cases = cases;
    cases.push(vec![
        "convert",
        s(&orig),
        "--to",
        "gguf-bf16",
        "-o",
        s(&gguf_in_m),
    ]);
    let pipe_out = m.join("published");
    cases.push(vec![
        "pipeline",
        s(&m),
        "-o",
        s(&pipe_out),
        "--variants",
        "gguf-mxfp4",
    ]);
    for args in &cases {
        oss_forge(args).fails_with(&["output is the input"]);
    }
    assert!(before == snapshot(&m), "the model changed");
    assert!(partials(t.path()).is_empty());
}

#[test]
fn force_replaces_only_what_oss_forge_writes() {
    let t = TempDir::new("traps-force");
    let model = fixture("tiny-gpt-oss");
    // A GGUF into an existing directory holding other files goes inside it, by the
    // pipeline's name; the other files stay.
    let dir = t.join("dir");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    for _ in 0..2 {
        oss_forge(&[
            "convert",
            "-q",
            s(&model),
            "--to",
            "gguf-mxfp4",
            "-o",
            s(&dir),
            "--force",
        ])
        .ok();
    }
    assert_eq!(names(&dir), ["notes.txt", "tiny-gpt-oss-MXFP4.gguf"]);
    // A safetensors variant into a directory holding files: refused without --force; with
    // it, a stale shard of an earlier, differently sharded output goes, the rest stays.
    let st = t.join("st");
    oss_forge(&[
        "convert",
        "-q",
        s(&model),
        "--to",
        "safetensors-bf16",
        "-o",
        s(&st),
        "--max-shard-size",
        "300KB",
    ])
    .ok();
    let shards_before = names(&st)
        .iter()
        .filter(|n| n.ends_with(".safetensors"))
        .count();
    assert!(shards_before > 1, "{:?}", names(&st));
    std::fs::write(st.join("notes.txt"), "mine").unwrap();
    oss_forge(&[
        "convert",
        s(&model),
        "--to",
        "safetensors-bf16",
        "-o",
        s(&st),
    ])
    .fails_with(&["already exists and holds files", "--force"]);
    oss_forge(&[
        "convert",
        "-q",
        s(&model),
        "--to",
        "safetensors-bf16",
        "-o",
        s(&st),
        "--force",
    ])
    .ok();
    let after = names(&st);
    assert!(after.contains(&"notes.txt".to_string()), "{after:?}");
    assert_eq!(
        after
            .iter()
            .filter(|n| n.ends_with(".safetensors"))
            .collect::<Vec<_>>(),
        ["model-00001-of-00001.safetensors"],
        "stale shards remain: {after:?}"
    );
    assert_eq!(
        std::fs::read_to_string(st.join("notes.txt")).unwrap(),
        "mine"
    );
    // The directory reads back as a model.
    oss_forge(&["inspect", s(&st)]).ok();
    // A split set is one output: without --force an existing set of the same name is
    // refused; with it, the whole set is replaced (no stale split left).
    let g = t.join("g/m.gguf");
    oss_forge(&[
        "convert",
        "-q",
        s(&model),
        "--to",
        "gguf-mxfp4",
        "-o",
        s(&g),
        "--split-max-size",
        "300KB",
    ])
    .ok();
    let splits = names(&t.join("g"));
    assert!(
        splits.len() > 2 && splits.iter().all(|n| n.contains("-of-")),
        "{splits:?}"
    );
    oss_forge(&["convert", s(&model), "--to", "gguf-mxfp4", "-o", s(&g)])
        .fails_with(&["already exists", "--force"]);
    oss_forge(&[
        "convert",
        "-q",
        s(&model),
        "--to",
        "gguf-mxfp4",
        "-o",
        s(&g),
        "--force",
    ])
    .ok();
    assert_eq!(names(&t.join("g")), ["m.gguf"]);
}

#[test]
fn pipeline_with_splits_publishes_a_checked_split_set() {
    let t = TempDir::new("traps-split-pipeline");
    let model = fixture("tiny-gpt-oss");
    let out = t.join("pub");
    let args = [
        "pipeline",
        "--quiet",
        s(&model),
        "-o",
        s(&out),
        "--variants",
        "gguf-mxfp4,gguf-q8_0",
        "--split-max-size",
        "300KB",
    ];
    let run = oss_forge(&args);
    run.ok();
    assert!(run.stdout.contains("PASS: 2 of 2"), "{}", run.stdout);
    let m = json(&out.join("manifest.json"));
    for v in m["variants"].as_array().unwrap() {
        let files: Vec<&str> = v["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .filter(|p| p.ends_with(".gguf"))
            .collect();
        assert!(files.len() > 1, "{files:?}");
        assert!(
            files[0].ends_with("-00001-of-0000".to_string().as_str())
                || files[0].contains("-00001-of-")
        );
        assert_eq!(v["settings"]["split_max_size"], 300_000);
        assert_eq!(v["verification"]["pass"], true);
        // The verification opened the set at its first split.
        assert!(
            v["verification"]["path"]
                .as_str()
                .unwrap()
                .contains("-00001-of-")
        );
    }
    oss_forge(&["check", s(&out)]).ok();
    let sums = Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(sums.status.success());
    // A re-run keeps both.
    let again = oss_forge(&args);
    again.ok();
    assert_eq!(
        again.stdout.matches("up to date").count(),
        2,
        "{}",
        again.stdout
    );
}

#[test]
fn fewer_variants_keep_the_others_listed_and_merge_joins_per_variant_runs() {
    let t = TempDir::new("traps-merge");
    let model = fixture("tiny-gpt-oss");
    let out = t.join("pub");
    let run = |variants: &str, dir: &Path| {
        let r = oss_forge(&[
            "pipeline",
            "--quiet",
            s(&model),
            "-o",
            s(dir),
            "--variants",
            variants,
        ]);
        r.ok();
        r
    };
    run("gguf-mxfp4,safetensors-int8", &out);
    // Fewer variants: the other stays listed, the named one is kept (its files match).
    let second = run("gguf-mxfp4", &out);
    assert!(
        second.stdout.contains("safetensors-int8")
            && second.stdout.contains("kept from an earlier run"),
        "{}",
        second.stdout
    );
    let m = json(&out.join("manifest.json"));
    let listed: Vec<&str> = m["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["variant"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["gguf-mxfp4", "safetensors-int8"]);
    let check = oss_forge(&["check", s(&out)]);
    check.ok();
    assert!(!check.stdout.contains("UNLISTED"), "{}", check.stdout);
    // A new variant is added, the others are not redone.
    let third = run("gguf-q8_0", &out);
    assert!(!third.stdout.contains("up to date"), "{}", third.stdout);
    assert_eq!(
        third.stdout.matches("kept from an earlier run").count(),
        2,
        "{}",
        third.stdout
    );
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    for v in [
        "gguf-mxfp4/",
        "safetensors-int8/",
        "gguf-q8_0/",
        "README.md",
        "verify.json",
    ] {
        assert!(sums.contains(v), "{v} missing from SHA256SUMS:\n{sums}");
    }
    assert_eq!(
        json(&out.join("verify.json"))["variants"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Fan-out: one variant per job, then merged into one directory.
    let jobs: Vec<PathBuf> = ["gguf-mxfp4", "safetensors-int8", "gguf-q8_0"]
        .iter()
        .map(|v| {
            let d = t.join(&format!("job-{v}"));
            run(v, &d);
            d
        })
        .collect();
    let merged = t.join("merged");
    let mut args = vec!["merge", "-q", "-o", s(&merged)];
    args.extend(jobs.iter().map(|p| s(p)));
    let m = oss_forge(&args);
    m.ok();
    assert!(m.stdout.contains("PASS: 3 of 3"), "{}", m.stdout);
    oss_forge(&["check", s(&merged)]).ok();
    // The same bytes as one pipeline run of the three: manifest, sums, report, files.
    let strip = |snap: Vec<(PathBuf, Vec<u8>)>| -> Vec<(PathBuf, Vec<u8>)> {
        snap.into_iter()
            .filter(|(p, _)| !p.to_string_lossy().starts_with('.'))
            .collect()
    };
    assert!(
        strip(snapshot(&merged)) == strip(snapshot(&out)),
        "merged differs from one run"
    );
    // The same part twice, however spelled, is refused.
    let again = format!("{}/", s(&jobs[0]));
    oss_forge(&["merge", "-q", "-o", s(&t.join("m1")), s(&jobs[0]), &again])
        .fails_with(&["given twice", "pass each part once"]);
    // A part that no longer matches its checksums, or made from other inputs, is refused.
    std::fs::write(jobs[1].join("safetensors-int8/config.json"), "{}").unwrap();
    oss_forge(&[
        "merge",
        "-q",
        "-o",
        s(&t.join("m2")),
        s(&jobs[0]),
        s(&jobs[1]),
    ])
    .fails_with(&[
        "does not match its SHA256SUMS",
        "safetensors-int8/config.json",
    ]);
    let other = t.join("other");
    oss_forge(&[
        "pipeline",
        "--quiet",
        s(&model),
        "-o",
        s(&other),
        "--variants",
        "gguf-bf16",
        "--tolerance",
        "kld=0.5,top1=0.5",
    ])
    .ok();
    oss_forge(&[
        "merge",
        "-q",
        "-o",
        s(&t.join("m3")),
        s(&jobs[0]),
        s(&other),
    ])
    .fails_with(&["made from other inputs"]);
}

/// Sends `sig` to `pid` with kill(1) (the tests use no `unsafe`).
fn signal(pid: u32, sig: &str) {
    Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
}

/// Starts `args`, waits until `ready()`, sends SIGINT; returns the exit code and stderr, or
/// `None` when the run finished before the signal landed.
fn interrupt_when(args: &[&str], ready: impl Fn() -> bool) -> Option<(i32, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oss-forge"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_micros(300));
    }
    if child.try_wait().unwrap().is_some() {
        return None;
    }
    signal(child.id(), "-INT");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code().unwrap_or(-1);
    (code != 0).then_some((code, stderr))
}

#[test]
fn ctrl_c_in_convert_removes_the_partial_output_and_says_so() {
    let model = fixture("small-gpt-oss");
    let t = TempDir::new("traps-ctrl-c");
    let mut hits = 0;
    for variant in [
        "gguf-bf16",
        "safetensors-bf16",
        "gguf-q8_0",
        "safetensors-int8",
    ] {
        for attempt in 0..4 {
            let dir = t.join(&format!("{variant}-{attempt}"));
            std::fs::create_dir_all(&dir).unwrap();
            let out = dir.join("out");
            let Some((code, stderr)) = interrupt_when(
                &[
                    "convert",
                    "--quiet",
                    s(&model),
                    "--to",
                    variant,
                    "-o",
                    s(&out),
                ],
                || !partials(&dir).is_empty(),
            ) else {
                continue;
            };
            hits += 1;
            assert_eq!(code, 130, "{variant}: {stderr}");
            assert!(
                stderr.contains("interrupted (Ctrl-C)")
                    && stderr.contains("partial output was removed"),
                "{variant}: {stderr}"
            );
            assert!(!out.exists(), "{variant}: an output appeared");
            assert_eq!(
                partials(&dir),
                Vec::<PathBuf>::new(),
                "{variant}: temporaries left"
            );
            break;
        }
    }
    assert!(hits >= 2, "only {hits} interrupts landed while writing");
}

#[test]
fn ctrl_c_in_pipeline_keeps_finished_variants() {
    let model = fixture("tiny-gpt-oss");
    let t = TempDir::new("traps-ctrl-c-pipeline");
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
    // Interrupted once the second variant has started.
    let (code, stderr) = interrupt_when(&args, || out.join("manifest.json").is_file())
        .expect("the pipeline finished before it could be interrupted");
    assert_eq!(code, 130, "{stderr}");
    assert!(
        stderr.contains("interrupted (Ctrl-C)") && stderr.contains("finished ones are kept"),
        "{stderr}"
    );
    assert!(!out.join("safetensors-bf16").exists());
    assert!(partials(&out).is_empty(), "{:?}", partials(&out));
    // What finished is published and checks clean.
    let check = oss_forge(&["check", s(&out)]);
    check.ok();
    assert!(check.stdout.contains("gguf-bf16/"), "{}", check.stdout);
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
        "{}",
        resumed.stdout
    );
    assert!(
        line("safetensors-bf16").contains("PASS")
            && !line("safetensors-bf16").contains("up to date")
    );
}

#[test]
fn a_second_run_into_a_locked_output_is_refused() {
    let t = TempDir::new("traps-lock");
    let model = fixture("tiny-gpt-oss");
    let out = t.join("x.gguf");
    // Another run holds the output (this test process stands in for it).
    let held = convert::lock::OutputLock::acquire(&out).unwrap();
    let pid = std::process::id().to_string();
    oss_forge(&["convert", s(&model), "--to", "gguf-mxfp4", "-o", s(&out)]).fails_with(&[
        "another oss-forge run",
        &pid,
        ".x.gguf.lock",
    ]);
    let pubdir = t.join("pub");
    let held2 = convert::lock::OutputLock::acquire(&pubdir).unwrap();
    oss_forge(&[
        "pipeline",
        s(&model),
        "-o",
        s(&pubdir),
        "--variants",
        "gguf-mxfp4",
    ])
    .fails_with(&["another oss-forge run", &pid]);
    assert!(!out.exists() && !pubdir.exists());
    drop((held, held2));
    oss_forge(&[
        "convert",
        "-q",
        s(&model),
        "--to",
        "gguf-mxfp4",
        "-o",
        s(&out),
    ])
    .ok();
    assert!(
        !t.join(".x.gguf.lock").exists(),
        "the lock file outlived the run"
    );
}

/// A weight source that truncates (or rewrites in place) one of the model's shards just
/// before the `after`-th weight is read: what another process doing so mid-conversion does.
struct Saboteur<'a> {
    inner: &'a dyn reference::WeightSource,
    shard: PathBuf,
    after: usize,
    truncate: bool,
    calls: std::sync::atomic::AtomicUsize,
}

impl reference::WeightSource for Saboteur<'_> {
    fn config(&self) -> &reference::Config {
        self.inner.config()
    }
    fn weight(
        &self,
        id: reference::WeightId,
    ) -> Result<reference::MatRef<'_>, reference::SourceError> {
        if self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == self.after {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&self.shard)
                .unwrap();
            let len = f.metadata().unwrap().len();
            if self.truncate {
                f.set_len(len / 2).unwrap();
            } else {
                use std::os::unix::fs::FileExt;
                std::thread::sleep(Duration::from_millis(20));
                f.write_all_at(&[0u8; 64], len - 64).unwrap();
            }
        }
        self.inner.weight(id)
    }
    fn release(&self, id: reference::WeightId) {
        self.inner.release(id)
    }
    fn prefetch(&self, bytes: &[u8]) {
        self.inner.prefetch(bytes)
    }
}

#[test]
fn an_input_truncated_or_rewritten_mid_conversion_is_an_error_naming_it() {
    for (variant, truncate) in [
        (convert::Variant::GgufBf16, true),
        (convert::Variant::SafetensorsBf16, true),
        (convert::Variant::GgufMxfp4, false),
        (convert::Variant::SafetensorsInt8, false),
    ] {
        let t = TempDir::new("traps-sigbus");
        copy_dir(&fixture("small-gpt-oss"), &t.join("m"));
        let model = convert::AnyModel::open(t.join("m")).unwrap();
        // The biggest shard: the one the experts are read from.
        let shard = std::fs::read_dir(t.join("m"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .max_by_key(|p| std::fs::metadata(p).unwrap().len())
            .unwrap();
        let sab = Saboteur {
            inner: model.source(),
            shard: shard.clone(),
            after: 5,
            truncate,
            calls: Default::default(),
        };
        let out = t.join("out");
        let err = convert::variant::convert_weights(
            &model,
            &sab,
            variant,
            &out,
            &convert::ConvertOptions::default(),
            &convert::variant::NoProgress,
        )
        .expect_err("a changed input must stop the conversion");
        let msg = convert::error::chain(&err);
        assert!(
            msg.contains(shard.file_name().unwrap().to_str().unwrap())
                && msg.contains("changed on disk while being read"),
            "{variant}: {msg}"
        );
        assert!(
            !out.exists() && partials(t.path()).is_empty(),
            "{variant}: output left"
        );
    }
}

#[test]
fn llamacpp_outtype_and_outfile_are_aliases_and_misspellings_get_a_suggestion() {
    let t = TempDir::new("traps-outtype");
    let model = fixture("tiny-gpt-oss");
    for (outtype, variant) in [
        ("auto", "gguf-mxfp4"),
        ("bf16", "gguf-mxfp4"),
        ("f16", "gguf-mxfp4-f16"),
        ("q8_0", "gguf-mxfp4-q8_0"),
    ] {
        let a = t.join(&format!("{outtype}.gguf"));
        let b = t.join(&format!("{outtype}-to.gguf"));
        let run = oss_forge(&[
            "convert",
            s(&model),
            "--outtype",
            outtype,
            "--outfile",
            s(&a),
        ]);
        run.ok();
        assert!(
            run.stderr.contains(&format!("--outtype {outtype}"))
                && run.stderr.contains(&format!("is `{variant}`")),
            "{}",
            run.stderr
        );
        oss_forge(&["convert", "-q", s(&model), "--to", variant, "-o", s(&b)]).ok();
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "{outtype}"
        );
    }
    // `auto` is llama.cpp's guess from the first 2-D BF16/F16 tensor: a checkpoint stored F16
    // gives F16 (MXFP4 experts kept), a dense F16 fine-tune gives F16 throughout.
    for (name, variant) in [
        ("tiny-gpt-oss", "gguf-mxfp4-f16"),
        ("tiny-gpt-oss-ft", "gguf-f16"),
    ] {
        let m = t.join(&format!("{name}-f16"));
        copy_dir(&fixture(name), &m);
        for shard in crate::util::shards(&m) {
            crate::util::rewrite_shard(&shard, |t| {
                Some(if t.dtype == safetensors::Dtype::BF16 {
                    crate::util::recast(t, safetensors::Dtype::F16)
                } else {
                    t
                })
            });
        }
        let (a, b) = (
            t.join(&format!("{name}-auto.gguf")),
            t.join(&format!("{name}-to.gguf")),
        );
        let run = oss_forge(&["convert", s(&m), "--outtype", "auto", "-o", s(&a)]);
        run.ok();
        assert!(
            run.stderr.contains("here f16") && run.stderr.contains(&format!("is `{variant}`")),
            "{}",
            run.stderr
        );
        oss_forge(&["convert", "-q", s(&m), "--to", variant, "-o", s(&b)]).ok();
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "{name}"
        );
    }
    // The note says where the names differ.
    let f16 = oss_forge(&[
        "convert",
        s(&model),
        "--outtype",
        "f16",
        "-o",
        s(&t.join("n.gguf")),
    ]);
    assert!(
        f16.stderr
            .contains("`gguf-f16` also dequantizes the experts"),
        "{}",
        f16.stderr
    );
    // llama.cpp's own f16 of this model is what --outtype f16 wrote.
    assert!(
        std::fs::read(t.join("f16.gguf")).unwrap()
            == std::fs::read(fixture("llamacpp/tiny-gpt-oss.llamacpp-f16.gguf")).unwrap()
    );
    oss_forge(&[
        "convert",
        s(&model),
        "--outtype",
        "f32",
        "-o",
        s(&t.join("x.gguf")),
    ])
    .fails_with(&["--outtype f32"]);
    oss_forge(&[
        "convert",
        s(&model),
        "--to",
        "gguf-mxpf4",
        "-o",
        s(&t.join("y.gguf")),
    ])
    .fails_with(&["did you mean `gguf-mxfp4`?"]);
    oss_forge(&[
        "pipeline",
        s(&model),
        "-o",
        s(&t.join("p")),
        "--variants",
        "gguf-mxfp4,safetensors-int",
    ])
    .fails_with(&["did you mean `safetensors-int8`?"]);
    oss_forge(&[
        "pipeline",
        s(&model),
        "-o",
        s(&t.join("p")),
        "--variants",
        "q8_0",
    ])
    .fails_with(&["llama.cpp --outtype"]);
}

#[test]
fn logits_takes_the_model_positionally_and_text_through_the_tokenizer() {
    let model = fixture("tiny-gpt-oss");
    let text = oss_forge(&[
        "logits",
        s(&model),
        "--text",
        "<|start|>user<|message|>Hi<|end|>",
        "--top",
        "2",
    ]);
    text.ok();
    let ids = text
        .stdout
        .lines()
        .next()
        .unwrap()
        .strip_prefix("tokens: ")
        .unwrap()
        .to_string();
    assert!(ids.split(',').count() >= 4, "{}", text.stdout);
    let by_ids = oss_forge(&["logits", s(&model), "--tokens", &ids, "--top", "2"]);
    by_ids.ok();
    assert_eq!(
        text.stdout.lines().skip(1).collect::<Vec<_>>(),
        by_ids.stdout.lines().collect::<Vec<_>>()
    );
    // The old spelling still works.
    let old = oss_forge(&[
        "logits",
        "--model",
        s(&model),
        "--tokens",
        &ids,
        "--top",
        "2",
    ]);
    assert_eq!(old.ok().stdout, by_ids.stdout);
}

#[test]
fn hub_ready_names_readme_and_edited_cards_do_not_reconvert() {
    let t = TempDir::new("traps-hub");
    // A Hugging Face cache snapshot: named by its repository, never by its hash.
    let snap = t.join(
        "hub/models--openai--gpt-oss-tiny/snapshots/0123456789abcdef0123456789abcdef01234567",
    );
    copy_dir(&fixture("tiny-gpt-oss"), &snap);
    let out = t.join("pub");
    let args = [
        "pipeline",
        "--quiet",
        s(&snap),
        "-o",
        s(&out),
        "--variants",
        "gguf-mxfp4",
    ];
    oss_forge(&args).ok();
    assert!(
        out.join("gguf-mxfp4/gpt-oss-tiny-MXFP4.gguf").is_file(),
        "{:?}",
        names(&out.join("gguf-mxfp4"))
    );
    let card = std::fs::read_to_string(out.join("gguf-mxfp4/README.md")).unwrap();
    assert!(card.contains("base_model: openai/gpt-oss-tiny\n"), "{card}");
    assert!(!card.contains("0123456789abcdef"), "{card}");
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(
        readme.starts_with("---\nbase_model: openai/gpt-oss-tiny\n"),
        "{readme}"
    );
    assert!(readme.contains("[`gguf-mxfp4`](gguf-mxfp4/)"), "{readme}");
    assert!(
        std::fs::read_to_string(out.join("SHA256SUMS"))
            .unwrap()
            .contains("  README.md\n")
    );
    // An edited card is an output: kept, re-listed, and no reason to convert again.
    let edited = card.replace("## Verification", "Our notes.\n\n## Verification");
    std::fs::write(out.join("gguf-mxfp4/README.md"), &edited).unwrap();
    let again = oss_forge(&args);
    again.ok();
    assert!(again.stdout.contains("up to date"), "{}", again.stdout);
    assert_eq!(
        std::fs::read_to_string(out.join("gguf-mxfp4/README.md")).unwrap(),
        edited
    );
    oss_forge(&["check", s(&out)]).ok();
    // --name and --base-model.
    let named = t.join("named");
    oss_forge(&[
        "pipeline",
        "--quiet",
        s(&snap),
        "-o",
        s(&named),
        "--variants",
        "gguf-mxfp4",
        "--name",
        "my-model",
        "--base-model",
        "me/base",
    ])
    .ok();
    assert!(named.join("gguf-mxfp4/my-model-MXFP4.gguf").is_file());
    assert!(
        std::fs::read_to_string(named.join("gguf-mxfp4/README.md"))
            .unwrap()
            .contains("base_model: me/base\n")
    );
}

#[test]
fn fit_reads_plain_gib_warns_marks_the_file_recommends_and_offloads() {
    let t = TempDir::new("traps-fit");
    let plain = oss_forge(&["fit", "--preset", "20b", "--gpu-mem", "24"]);
    plain.ok();
    assert!(
        plain.stdout.contains("GPU memory 24.00 GiB"),
        "{}",
        plain.stdout
    );
    assert!(plain.stderr.contains("read as GiB"), "{}", plain.stderr);
    assert!(
        plain.stdout.contains("best fit for llama.cpp: gguf-mxfp4"),
        "{}",
        plain.stdout
    );
    assert!(!plain.stdout.contains(" GB"), "one unit: {}", plain.stdout);
    let long = oss_forge(&[
        "fit",
        "--preset",
        "20b",
        "--gpu-mem",
        "80GiB",
        "--context",
        "200000",
    ]);
    assert!(
        long.ok()
            .stderr
            .contains("exceeds the model's maximum of 131072"),
        "{}",
        long.stderr
    );
    // 120b on 24 GiB: nothing fits whole; experts on the CPU do.
    let big = oss_forge(&["fit", "--preset", "120b", "--gpu-mem", "24GiB"]);
    big.ok();
    assert!(big.stdout.contains("--n-cpu-moe"), "{}", big.stdout);
    let j = oss_forge(&["fit", "--preset", "120b", "--gpu-mem", "24GiB", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&j.ok().stdout).unwrap();
    let o = &doc["offload"][0];
    assert_eq!(o["variant"], "gguf-mxfp4");
    assert!(o["n_cpu_moe"].as_u64().unwrap() > 0 && o["gpu"].as_u64().unwrap() <= 24 << 30);
    // A file given is marked; with a pipeline's verification beside it, its quality is said.
    let out = t.join("pub");
    oss_forge(&[
        "pipeline",
        "--quiet",
        s(&fixture("tiny-gpt-oss")),
        "-o",
        s(&out),
        "--variants",
        "gguf-q8_0,gguf-mxfp4",
    ])
    .ok();
    let file = out.join("gguf-q8_0/tiny-gpt-oss-Q8_0.gguf");
    let marked = oss_forge(&["fit", s(&file), "--gpu-mem", "8GiB"]);
    marked.ok();
    let row = marked
        .stdout
        .lines()
        .find(|l| l.starts_with("gguf-q8_0"))
        .unwrap();
    assert!(
        row.contains(&format!("<- {}", file.display())),
        "{}",
        marked.stdout
    );
    assert!(
        marked.stdout.contains("best fit for llama.cpp: gguf-mxfp4")
            && marked.stdout.contains("lossless (verified"),
        "{}",
        marked.stdout
    );
    let j = oss_forge(&["fit", s(&file), "--gpu-mem", "8GiB", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&j.ok().stdout).unwrap();
    let given: Vec<&serde_json::Value> = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["given"] == true)
        .collect();
    assert_eq!(given.len(), 1);
    assert_eq!(given[0]["variant"], "gguf-q8_0");
    assert_eq!(given[0]["quality"]["pass"], true);
    oss_forge(&["fit", "--preset", "20b", "--gpu-mem", "24B"]).fails_with(&["GPU memory"]);
}

#[test]
fn quiet_summary_lines_and_check_output() {
    let t = TempDir::new("traps-output");
    let model = fixture("tiny-gpt-oss");
    let q = oss_forge(&[
        "convert",
        "-q",
        s(&model),
        "--to",
        "gguf-mxfp4",
        "-o",
        s(&t.join("a.gguf")),
    ]);
    assert_eq!(q.ok().stdout, "", "-q prints nothing");
    // int8 from a dense source: one line per kind, not one per expert.
    let dense = t.join("dense");
    oss_forge(&[
        "convert",
        "-q",
        s(&model),
        "--to",
        "safetensors-fp16",
        "-o",
        s(&dense),
    ])
    .ok();
    let int8 = oss_forge(&[
        "convert",
        s(&dense),
        "--to",
        "safetensors-int8",
        "-o",
        s(&t.join("i8")),
    ]);
    int8.ok();
    let inexact: Vec<&str> = int8
        .stdout
        .lines()
        .filter(|l| l.starts_with("inexact:"))
        .collect();
    assert!(!inexact.is_empty() && inexact.len() <= 2, "{}", int8.stdout);
    assert!(
        inexact
            .iter()
            .any(|l| l.contains(" tensors (max abs error")),
        "{}",
        int8.stdout
    );
    assert!(
        int8.stdout.contains(" MiB") && !int8.stdout.contains(" GB"),
        "{}",
        int8.stdout
    );
    // check -q: only problems; --json.
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
    assert_eq!(oss_forge(&["check", "-q", s(&out)]).ok().stdout, "");
    std::fs::write(out.join("gguf-mxfp4/extra.bin"), "x").unwrap();
    let bad = oss_forge(&["check", "-q", s(&out)]);
    assert_eq!(bad.code, 1);
    assert_eq!(
        bad.stdout.lines().filter(|l| l.starts_with("OK")).count(),
        0,
        "{}",
        bad.stdout
    );
    assert!(
        bad.stdout.contains("UNLISTED gguf-mxfp4/extra.bin"),
        "{}",
        bad.stdout
    );
    let j = oss_forge(&["check", "--json", s(&out)]);
    assert_eq!(j.code, 1);
    let doc: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(doc["pass"], false);
    assert!(
        doc["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["state"] == "UNLISTED")
    );
}

#[test]
fn inspect_of_a_later_split_path_errors_and_directory_hints() {
    let t = TempDir::new("traps-messages");
    let model = fixture("tiny-gpt-oss");
    let g = t.join("s.gguf");
    oss_forge(&[
        "convert",
        "-q",
        s(&model),
        "--to",
        "gguf-mxfp4",
        "-o",
        s(&g),
        "--split-max-size",
        "300KB",
    ])
    .ok();
    let n = names(t.path()).len();
    let second = t.join(&format!("s-00002-of-{n:05}.gguf"));
    let i = oss_forge(&["inspect", s(&second)]);
    i.ok();
    assert!(
        i.stdout.contains(&format!("split     2 of {n}")),
        "{}",
        i.stdout
    );
    let first = oss_forge(&["inspect", s(&t.join(&format!("s-00001-of-{n:05}.gguf")))]);
    assert!(
        first.ok().stdout.contains(&format!("split 2 of {n}")),
        "{}",
        first.stdout
    );
    // The path once, and a hint for a file where a directory is expected.
    let missing = model.join("model.safetensors");
    let e = oss_forge(&["inspect", s(&missing)]);
    e.fails_with(&["no such file or directory", "pass"]);
    assert_eq!(e.stderr.matches(s(&missing)).count(), 1, "{}", e.stderr);
    let shard = model.join("model-00000-of-00001.safetensors");
    oss_forge(&[
        "convert",
        s(&shard),
        "--to",
        "gguf-mxfp4",
        "-o",
        s(&t.join("z.gguf")),
    ])
    .fails_with(&["is a file", &format!("pass {}", model.display())]);
    oss_forge(&[
        "check",
        s(&g.with_file_name(format!("s-00001-of-{n:05}.gguf"))),
    ])
    .fails_with(&["is a file", "takes a directory"]);
}

/// `oss-forge ARGS` run in the directory `cwd` (for outputs named without a directory).
fn oss_forge_in(cwd: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_oss-forge"))
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap()
}

/// `--force` onto a GGUF named without a directory (`-o a.gguf`, a split set `-o s.gguf`):
/// the files just written are the output, never taken for stale ones of the same name.
#[test]
fn force_onto_a_bare_file_name_keeps_what_it_wrote() {
    let t = tiny_copy("force-bare");
    let m = t.join("m");
    for (out, extra) in [
        ("a.gguf", &[][..]),
        ("s.gguf", &["--split-max-size", "1MB"][..]),
    ] {
        for force in [false, true] {
            let mut args = vec!["-q", "convert", s(&m), "--to", "gguf-bf16", "-o", out];
            args.extend(extra);
            if force {
                args.push("--force");
            }
            let r = oss_forge_in(&t.0, &args);
            assert!(r.status.success(), "{out} force={force}: {r:?}");
        }
    }
    let left = names(&t.0);
    assert!(left.contains(&"a.gguf".to_string()), "{left:?}");
    let splits: Vec<_> = left.iter().filter(|n| n.starts_with("s-0")).collect();
    assert!(splits.len() >= 2, "{left:?}");
    let a = convert::AnyModel::open(t.join("a.gguf")).unwrap();
    let src = convert::AnyModel::open(&m).unwrap();
    assert!(a.source().config().same_model(src.source().config()));
}

/// `logits --out` and `verify --json` refuse a path onto or into a model they read, and
/// leave it as it was.
#[test]
fn reports_never_overwrite_the_models_they_read() {
    let t = tiny_copy("report-onto-input");
    let m = t.join("m");
    let v = t.join("v.gguf");
    oss_forge(&["-q", "convert", s(&m), "--to", "gguf-bf16", "-o", s(&v)]).ok();
    let before = (snapshot(&m), std::fs::read(&v).unwrap());
    let shard = crate::util::shards(&m)[0].clone();
    oss_forge(&["logits", s(&m), "--tokens", "1,2", "--out", s(&shard)])
        .fails_with(&["output is the input", "inside the model being read"]);
    oss_forge(&["logits", s(&v), "--tokens", "1,2", "--out", s(&v)])
        .fails_with(&["output is the input"]);
    let cfg = m.join("config.json");
    for json in [&v, &cfg] {
        oss_forge(&[
            "-q",
            "verify",
            "--original",
            s(&m),
            s(&v),
            "--json",
            s(json),
        ])
        .fails_with(&["output is the input"]);
    }
    assert!(before == (snapshot(&m), std::fs::read(&v).unwrap()));
}

/// A pipeline never removes published variants unasked: a re-run from other inputs (another
/// name, a changed config) is refused, naming what changed, until `--force`; a README or
/// LICENSE added beside the checkpoint is not an input; a directory holding other files, or
/// one inside another pipeline output, is refused.
#[test]
fn pipeline_keeps_earlier_variants_unless_forced_and_stays_checkable() {
    let t = tiny_copy("pipeline-force");
    let m = t.join("m");
    let out = t.join("pub");
    let run = |extra: &[&str]| {
        let mut a = vec![
            "-q",
            "pipeline",
            s(&m),
            "-o",
            s(&out),
            "--variants",
            "gguf-bf16",
        ];
        a.extend(extra);
        oss_forge(&a)
    };
    run(&[]).ok();
    let published = snapshot(&out.join("gguf-bf16"));
    // Not inputs: the run keeps everything.
    std::fs::write(m.join("LICENSE"), "x").unwrap();
    std::fs::write(m.join("README.md"), "x").unwrap();
    run(&[]).ok();
    assert!(snapshot(&out.join("gguf-bf16")) == published);
    // Another name: refused, named, nothing removed.
    run(&["--name", "other"]).fails_with(&["other inputs", "name", "--force"]);
    assert!(snapshot(&out.join("gguf-bf16")) == published);
    // A changed input file: refused, naming it.
    crate::util::edit_config(&m, |c| {
        c.insert("rms_norm_eps".into(), serde_json::json!(1e-6));
    });
    run(&[]).fails_with(&["config.json", "--force"]);
    assert!(snapshot(&out.join("gguf-bf16")) == published);
    run(&["--force"]).ok();
    oss_forge(&["check", s(&out)]).ok();
    // A directory of other files; an output inside a pipeline output.
    let other = t.join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "x").unwrap();
    let r = oss_forge(&[
        "-q",
        "pipeline",
        s(&m),
        "-o",
        s(&other),
        "--variants",
        "gguf-bf16",
    ]);
    r.fails_with(&["notes.txt", "--force"]);
    let nested = out.join("nested");
    oss_forge(&[
        "-q",
        "pipeline",
        s(&m),
        "-o",
        s(&nested),
        "--variants",
        "gguf-bf16",
    ])
    .fails_with(&["inside the pipeline output"]);
    assert!(!nested.exists());
    oss_forge(&["check", s(&out)]).ok();
}

/// A split set read as the input, and `-o` naming its base file with `--force`: the writer
/// would replace (or remove, as stale splits) the very shards being read. Refused, whether the
/// set is given by its first split or by the directory holding it alone, and nothing is
/// written into a directory that was given as the model.
#[test]
fn force_onto_the_base_name_of_a_split_input_is_refused_and_keeps_it() {
    let t = TempDir::new("split-family");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let set = t.join("m");
    std::fs::create_dir_all(&set).unwrap();
    oss_forge(&[
        "convert",
        &s(&fixture("tiny-gpt-oss")),
        "--to",
        "gguf-q8_0",
        "--split-max-size",
        "400KB",
        "-o",
        &s(&set.join("m.gguf")),
        "-q",
    ])
    .ok();
    // Every file of the set with its bytes, in name order.
    let snapshot = || -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(&set)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (s(&p), std::fs::read(&p).unwrap()))
            .collect();
        v.sort();
        v
    };
    let before = snapshot();
    assert!(before.len() > 1, "a split set");
    let first = s(&std::path::PathBuf::from(&before[0].0));
    for (input, to, extra) in [
        (first.clone(), "gguf-q4_0", vec![]),
        (
            first.clone(),
            "gguf-q8_0",
            vec!["--split-max-size", "400KB"],
        ),
        (s(&set), "gguf-q4_0", vec![]),
    ] {
        let base = s(&set.join("m.gguf"));
        let mut args = vec!["convert", &input, "--to", to, "-o", &base, "--force", "-q"];
        args.extend(extra.iter().copied());
        oss_forge(&args).fails_with(&["output is the input"]);
    }
    // The directory given as the model: nothing goes into it, under any name.
    oss_forge(&[
        "convert",
        &s(&set),
        "--to",
        "gguf-q8_0",
        "-o",
        &s(&set.join("x.gguf")),
    ])
    .fails_with(&["output is the input: it is inside the model being read"]);
    let after = snapshot();
    assert!(before == after, "the input set changed");
}

/// `convert` never writes into a pipeline output: not over a published variant, not beside
/// one, not into its root. Its `check` still passes afterwards.
#[test]
fn convert_into_a_pipeline_output_is_refused() {
    let t = TempDir::new("convert-into-published");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let pubd = tiny_pipeline(&t, "gguf-q8_0,safetensors-bf16");
    let other = s(&fixture("small-gpt-oss"));
    for (to, out) in [
        ("gguf-q8_0", pubd.join("gguf-q8_0")),
        ("gguf-q8_0", pubd.join("gguf-q8_0/x.gguf")),
        ("safetensors-bf16", pubd.join("safetensors-bf16")),
        ("safetensors-bf16", pubd.clone()),
    ] {
        oss_forge(&[
            "convert",
            &other,
            "--to",
            to,
            "-o",
            &s(&out),
            "--force",
            "-q",
        ])
        .fails_with(&["the pipeline output", "choose an output outside it"]);
    }
    oss_forge(&["check", &s(&pubd)]).ok();
}

/// `logits --out` and `verify --json` naming an existing directory are refused before the
/// forward pass, not after it.
#[test]
fn a_file_output_naming_a_directory_is_refused_first() {
    let t = TempDir::new("file-output-dir");
    let m = fixture("tiny-gpt-oss");
    let (m, d) = (m.to_str().unwrap(), t.join("d"));
    std::fs::create_dir_all(&d).unwrap();
    let d = d.to_str().unwrap();
    let run = oss_forge(&["logits", m, "--tokens", "1,2", "--out", d]);
    run.fails_with(&["is a directory; --out names the file to write"]);
    assert!(
        !run.stdout.contains("pos "),
        "ran before refusing: {}",
        run.stdout
    );
    oss_forge(&["verify", "-q", "--original", m, m, "--json", d])
        .fails_with(&["is a directory; --json names the file to write"]);
}

/// `check` on something that is not a pipeline output says what it is instead of an OS error
/// about SHA256SUMS: a missing path, a model directory, a variant inside a pipeline output,
/// an output whose SHA256SUMS is gone.
#[test]
fn check_names_what_it_was_given() {
    let t = TempDir::new("check-what");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let pubd = tiny_pipeline(&t, "gguf-q8_0");
    oss_forge(&["check", &s(&t.join("nope"))]).fails_with(&["nope: no such directory"]);
    oss_forge(&["check", &s(&fixture("tiny-gpt-oss"))])
        .fails_with(&["not a pipeline output (no SHA256SUMS)"]);
    oss_forge(&["check", &s(&pubd.join("gguf-q8_0"))])
        .fails_with(&["it is inside the pipeline output", "run `oss-forge check"]);
    std::fs::remove_file(pubd.join("SHA256SUMS")).unwrap();
    oss_forge(&["check", &s(&pubd)])
        .fails_with(&["SHA256SUMS is missing beside its manifest.json"]);
}

/// A pipeline output given to `verify` as a model, and a `merge` part that does not exist, are
/// named for what they are.
#[test]
fn a_pipeline_output_as_a_model_and_a_missing_merge_part_are_named() {
    let t = TempDir::new("pub-as-model");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let m = s(&fixture("tiny-gpt-oss"));
    let pubd = tiny_pipeline(&t, "gguf-q8_0");
    oss_forge(&["verify", "-q", "--original", &m, &s(&pubd)])
        .fails_with(&["it is a pipeline output, not a model: pass its variants"]);
    let missing = t.join("nonexist");
    oss_forge(&[
        "merge",
        "-q",
        "-o",
        &s(&t.join("m")),
        &s(&pubd),
        &s(&missing),
    ])
    .fails_with(&["nonexist: no such directory"]);
    assert!(!t.join("m").exists());
}

/// A pipeline output of the tiny fixture with `variants`, in `t/pub`.
fn tiny_pipeline(t: &TempDir, variants: &str) -> PathBuf {
    let pubd = t.join("pub");
    oss_forge(&[
        "pipeline",
        "-q",
        fixture("tiny-gpt-oss").to_str().unwrap(),
        "-o",
        pubd.to_str().unwrap(),
        "--variants",
        variants,
    ])
    .ok();
    pubd
}
