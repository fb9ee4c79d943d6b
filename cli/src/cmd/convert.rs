//! `oss-forge convert MODEL --to VARIANT -o OUT`.

use crate::progress::Reporter;
use anyhow::Context;
use convert::{AnyModel, ConvertOptions, Variant};
use std::path::Path;
use std::process::ExitCode;

pub fn run(
    model: &Path,
    variant: &str,
    out: &Path,
    opts: &ConvertOptions,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let variant = Variant::parse(variant).expect("clap restricts the values");
    let src = AnyModel::open(model).with_context(|| format!("cannot open {}", model.display()))?;
    let progress = Reporter::new(quiet);
    let report = convert::variant::convert(&src, variant, out, opts, &progress)
        .with_context(|| format!("converting {} to {variant}", model.display()))?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    for i in &report.inexact {
        outln!(
            "inexact: {} {} (max abs error {:e})",
            i.count,
            i.what,
            i.max_abs_error
        );
    }
    if report.inexact.is_empty() {
        outln!("every value stored exactly");
    }
    for o in &report.outputs {
        outln!("wrote {}", o.display());
    }
    outln!("{variant}: {:.3} GB", report.bytes as f64 / 1e9);
    Ok(ExitCode::SUCCESS)
}
