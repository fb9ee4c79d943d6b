//! `oss-forge pipeline MODEL -o OUTDIR [--variants LIST]`, `oss-forge check OUTDIR` and
//! `oss-forge demo`.

use crate::progress::Reporter;
use anyhow::Context;
use convert::{ConvertOptions, Variant};
use std::path::Path;
use std::process::ExitCode;
use verify::pipeline::{self, FileState, PipelineOptions, PipelineOutcome};
use verify::report::{format_table, sci};

/// The table `pipeline` and `demo` print.
pub fn render(outcome: &PipelineOutcome) -> String {
    let mut rows = vec![
        [
            "variant", "size", "weights", "max|Δ|", "KLD mean", "top-1", "result", "",
        ]
        .map(String::from),
    ];
    for o in &outcome.variants {
        let v = &o.verification;
        let m = &v.metrics;
        let f = |x: Option<f64>| x.map_or("inf".into(), sci);
        let w = &v.weights;
        let weights = if v.lossless {
            "identical".to_string()
        } else if w.nonfinite > 0 {
            format!("{} NaN/Inf", w.nonfinite)
        } else if w.violations > 0 {
            format!("{} out of bound", w.violations)
        } else {
            format!("{}/{} same", w.identical, w.tensors)
        };
        rows.push([
            o.variant.name().to_string(),
            convert::units::bytes(o.files.iter().map(|f| f.bytes).sum::<u64>()),
            weights,
            f(m.max_abs),
            f(m.kld_mean),
            m.top1
                .map_or("n/a".into(), |x| format!("{:.2}%", x * 100.0)),
            verify::report::verdict(v.pass, v.passed_by.as_deref()),
            if o.kept {
                "(kept from an earlier run: not named this time)"
            } else if o.reused {
                "(up to date, not redone)"
            } else {
                ""
            }
            .to_string(),
        ]);
    }
    format_table(&rows)
}

pub struct Args<'a> {
    pub model: &'a Path,
    pub out: &'a Path,
    pub variants: Option<Vec<String>>,
    pub prompts: Option<&'a Path>,
    pub rules: verify::Rules,
    pub logits_cache: Option<std::path::PathBuf>,
    pub convert: ConvertOptions,
    pub name: Option<String>,
    pub base_model: Option<String>,
    pub quiet: bool,
}

/// Runs the pipeline and prints its table; returns the outcome.
pub fn run_pipeline(a: &Args<'_>) -> anyhow::Result<PipelineOutcome> {
    let mut variants = match &a.variants {
        None => Variant::defaults(),
        Some(list) if list.iter().any(|n| n == "all") => Variant::ALL.to_vec(),
        Some(list) => list
            .iter()
            .map(|n| Variant::parse_or_suggest(n).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()?,
    };
    variants.dedup();
    not_a_directory(a.out, "pipeline -o")?;
    let out = a.out.to_path_buf();
    crate::signals::stops_cleanly_saying(move || {
        if out.join(verify::pipeline::MANIFEST).is_file() {
            format!(
                "the variant in progress was removed; finished ones are kept and listed in {}/manifest.json and SHA256SUMS (run the same command again to finish)",
                out.display()
            )
        } else {
            format!(
                "the variant in progress was removed; none had finished, so {} lists nothing yet (run the same command again)",
                out.display()
            )
        }
    });
    let original = super::verify::open(a.model)?;
    verify::pipeline::pipeline_source(&original, a.model)?;
    let prompts = super::verify::load_prompts(&original, a.prompts)?;
    drop(original);
    let opts = PipelineOptions {
        variants,
        rules: a.rules,
        convert: a.convert.clone(),
        logits_cache: a.logits_cache.clone(),
        name: a.name.clone(),
        base_model: a.base_model.clone(),
    };
    let bytes = Reporter::new(a.quiet);
    let steps = Reporter::counting(a.quiet, "steps");
    let quiet = a.quiet;
    let log = move |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    let outcome = pipeline::run(a.model, a.out, &prompts, &opts, &bytes, &steps, &log)
        .with_context(|| format!("pipeline {} -> {}", a.model.display(), a.out.display()))?;
    out!("{}", render(&outcome));
    Ok(outcome)
}

pub fn run(a: &Args<'_>) -> anyhow::Result<ExitCode> {
    let outcome = run_pipeline(a)?;
    outln!(
        "\n{}: {} of {} variants verified; files, model cards, manifest.json and SHA256SUMS in {}",
        if outcome.passed() { "PASS" } else { "FAIL" },
        outcome.variants.iter().filter(|v| v.passed()).count(),
        outcome.variants.len(),
        a.out.display()
    );
    Ok(if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A directory argument that is a file: the error, with a hint.
fn not_a_directory(path: &Path, what: &str) -> anyhow::Result<()> {
    if path.is_file() {
        anyhow::bail!(
            "{}: is a file; {what} takes a directory (the pipeline's output directory{})",
            path.display(),
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| format!(", perhaps {}", p.display()))
                .unwrap_or_default()
        );
    }
    Ok(())
}

pub fn check(out: &Path, json: bool, quiet: bool) -> anyhow::Result<ExitCode> {
    not_a_directory(out, "check")?;
    if !out.exists() {
        anyhow::bail!("{}: no such directory", out.display());
    }
    if !out.join(pipeline::SUMS).is_file() && out.join(pipeline::MANIFEST).is_file() {
        anyhow::bail!(
            "{}: {} is missing beside its {}: the checksums to check against are gone (run the pipeline into it again to rewrite them)",
            out.display(),
            pipeline::SUMS,
            pipeline::MANIFEST
        );
    }
    if !out.join(pipeline::SUMS).is_file() {
        // A variant's directory inside a pipeline output, or not a pipeline output at all.
        let abs = convert::output::absolute(out);
        let published = abs
            .ancestors()
            .skip(1)
            .find(|a| a.join(pipeline::SUMS).is_file() && a.join(pipeline::MANIFEST).is_file());
        match published {
            Some(p) => anyhow::bail!(
                "{}: no {} here: it is inside the pipeline output {}; run `oss-forge check {}`",
                out.display(),
                pipeline::SUMS,
                p.display(),
                p.display()
            ),
            None => anyhow::bail!(
                "{}: not a pipeline output (no {}): check takes a directory `oss-forge pipeline` or `merge` wrote",
                out.display(),
                pipeline::SUMS
            ),
        }
    }
    crate::signals::stops_cleanly("nothing was changed");
    let progress = Reporter::new(quiet || json);
    let states = pipeline::check_with(out, &progress)
        .with_context(|| format!("cannot check {}", out.display()))?;
    let bad = states.iter().filter(|(_, s)| *s != FileState::Ok).count();
    let word = |s: &FileState| match s {
        FileState::Ok => ("OK", ""),
        FileState::Changed => ("CHANGED", ""),
        FileState::Missing => ("MISSING", ""),
        FileState::Inconsistent => ("INCONSISTENT", " (SHA256SUMS and manifest.json disagree)"),
        FileState::Unlisted => (
            "UNLISTED",
            " (not in SHA256SUMS: added later, or left by an interrupted run)",
        ),
    };
    if json {
        let files: Vec<serde_json::Value> = states
            .iter()
            .map(|(p, s)| serde_json::json!({"path": p, "state": word(s).0}))
            .collect();
        let doc = serde_json::json!({
            "directory": out.display().to_string(),
            "pass": bad == 0,
            "files": files,
            "intact": states.len() - bad,
            "total": states.len(),
        });
        outln!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for (p, s) in &states {
            if quiet && *s == FileState::Ok {
                continue;
            }
            let (w, note) = word(s);
            outln!("{w:<8} {p}{note}");
        }
        if !quiet || bad > 0 {
            outln!("{} of {} files intact", states.len() - bad, states.len());
        }
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn merge(out: &Path, parts: &[std::path::PathBuf], quiet: bool) -> anyhow::Result<ExitCode> {
    for p in parts {
        not_a_directory(p, "merge")?;
    }
    crate::signals::stops_cleanly(format!(
        "the variant being copied into {} was removed; run the same command again to finish",
        out.display()
    ));
    let progress = Reporter::new(quiet);
    let log = move |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    let outcome = pipeline::merge(out, parts, &progress, &log)
        .with_context(|| format!("merging into {}", out.display()))?;
    out!("{}", render(&outcome));
    outln!(
        "\n{}: {} of {} variants verified; merged files, model cards, manifest.json and SHA256SUMS in {} (checked)",
        if outcome.passed() { "PASS" } else { "FAIL" },
        outcome.variants.iter().filter(|v| v.passed()).count(),
        outcome.variants.len(),
        out.display()
    );
    Ok(if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// How to run this binary again from the current directory: `oss-forge` when that is what
/// the shell finds on PATH, else the path it was run from (`target/release/oss-forge` after
/// `cargo run --release`).
pub fn this_binary() -> String {
    let me = std::env::current_exe().ok();
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            let c = d.join("oss-forge");
            c.is_file()
                && me.as_ref().is_some_and(|m| {
                    std::fs::canonicalize(&c).ok() == std::fs::canonicalize(m).ok()
                })
        })
    });
    if on_path {
        return "oss-forge".into();
    }
    let Some(me) = me else {
        return "oss-forge".into();
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    me.strip_prefix(&cwd)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| me.display().to_string())
}

pub fn demo(out: &Path, quiet: bool) -> anyhow::Result<ExitCode> {
    let src = out.join("tiny-gpt-oss");
    outln!(
        "1. synthesizing a tiny gpt-oss checkpoint (release layout, MXFP4 experts) in {}",
        src.display()
    );
    let opts = convert::synth::SynthOptions {
        preset: convert::synth::Preset::Tiny,
        layers: None,
        seed: 0,
        original: false,
        max_shard_bytes: None,
    };
    convert::synth::synth(&src, &opts, true, &mut |_| {})
        .with_context(|| format!("cannot write {}", src.display()))?;
    let variants_dir = out.join("variants");
    outln!(
        "2. converting it to the default set of variants and verifying each against the original's logits\n"
    );
    let args = Args {
        model: &src,
        out: &variants_dir,
        variants: None,
        prompts: None,
        rules: verify::Rules::default(),
        logits_cache: None,
        convert: ConvertOptions::default(),
        name: None,
        base_model: None,
        quiet,
    };
    let outcome = run_pipeline(&args)?;
    let me = this_binary();
    let install = if me == "oss-forge" {
        String::new()
    } else {
        " (or `cargo install --path .` to put `oss-forge` on PATH)".to_string()
    };
    outln!(
        "\n3. {}: {} of {} variants verified. Files, model cards (README.md), manifest.json and SHA256SUMS: {}\n   Next: `{me} check {}`, `{me} fit --preset 20b --gpu-mem 16GiB`{install}.",
        if outcome.passed() { "PASS" } else { "FAIL" },
        outcome.variants.iter().filter(|v| v.passed()).count(),
        outcome.variants.len(),
        variants_dir.display(),
        variants_dir.display()
    );
    Ok(if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
