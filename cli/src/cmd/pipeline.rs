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
            format!(
                "{:.1} MB",
                o.files.iter().map(|f| f.bytes).sum::<u64>() as f64 / 1e6
            ),
            weights,
            f(m.max_abs),
            f(m.kld_mean),
            m.top1
                .map_or("n/a".into(), |x| format!("{:.2}%", x * 100.0)),
            verify::report::verdict(v.pass, v.passed_by.as_deref()),
            if o.reused {
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
    pub convert: ConvertOptions,
    pub quiet: bool,
}

/// Runs the pipeline and prints its table; returns the outcome.
pub fn run_pipeline(a: &Args<'_>) -> anyhow::Result<PipelineOutcome> {
    let variants = match &a.variants {
        None => Variant::defaults(),
        Some(list) if list.iter().any(|n| n == "all") => Variant::ALL.to_vec(),
        Some(list) => list
            .iter()
            .map(|n| {
                Variant::parse(n).with_context(|| {
                    format!(
                        "unknown variant `{n}` (known: {})",
                        Variant::ALL.map(|v| v.name()).join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
    };
    let original = super::verify::open(a.model)?;
    let prompts = super::verify::load_prompts(&original, a.prompts)?;
    drop(original);
    let opts = PipelineOptions {
        variants,
        rules: a.rules,
        convert: a.convert.clone(),
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

pub fn check(out: &Path) -> anyhow::Result<ExitCode> {
    let states = pipeline::check(out).with_context(|| format!("cannot check {}", out.display()))?;
    let mut bad = 0;
    for (p, s) in &states {
        let (word, note) = match s {
            FileState::Ok => ("OK", ""),
            FileState::Changed => ("CHANGED", ""),
            FileState::Missing => ("MISSING", ""),
            FileState::Inconsistent => ("INCONSISTENT", " (SHA256SUMS and manifest.json disagree)"),
            FileState::Unlisted => (
                "UNLISTED",
                " (not in SHA256SUMS: added later, or left by an interrupted run)",
            ),
        };
        bad += usize::from(*s != FileState::Ok);
        outln!("{word:<8} {p}{note}");
    }
    outln!("{} of {} files intact", states.len() - bad, states.len());
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
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
    outln!("2. converting it to every variant and verifying each against the original's logits\n");
    let args = Args {
        model: &src,
        out: &variants_dir,
        variants: None,
        prompts: None,
        rules: verify::Rules::default(),
        convert: ConvertOptions::default(),
        quiet,
    };
    let outcome = run_pipeline(&args)?;
    outln!(
        "\n3. {}: {} of {} variants verified. Files, model cards (README.md), manifest.json and SHA256SUMS: {}\n   Next: `oss-forge check {}`, `oss-forge fit --preset 20b --gpu-mem 16GiB`.",
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
