//! `oss-forge convert MODEL --to VARIANT -o OUT` (or llama.cpp's `--outtype T --outfile OUT`).

use crate::progress::Reporter;
use anyhow::Context;
use convert::{AnyModel, ConvertOptions, Variant};
use std::path::Path;
use std::process::ExitCode;

/// The report's inexact values, one line per kind (`what` up to ` of `tensor``), whatever
/// the number of tensors.
fn inexact_summary(report: &convert::ConvertReport) -> Vec<String> {
    let mut kinds: Vec<(String, u64, usize, f32)> = Vec::new();
    for i in &report.inexact {
        let kind = i.what.split(" of `").next().unwrap_or(&i.what).to_string();
        match kinds.iter_mut().find(|k| k.0 == kind) {
            Some(k) => {
                k.1 += i.count;
                k.2 += 1;
                k.3 = k.3.max(i.max_abs_error);
            }
            None => kinds.push((kind, i.count, 1, i.max_abs_error)),
        }
    }
    kinds
        .into_iter()
        .map(|(kind, count, tensors, err)| {
            let where_ = if tensors > 1 {
                format!(" in {tensors} tensors")
            } else {
                String::new()
            };
            format!("inexact: {count} {kind}{where_} (max abs error {err:e})")
        })
        .collect()
}

pub fn run(
    model: &Path,
    variant: Option<Variant>,
    outtype: Option<&str>,
    out: &Path,
    opts: &ConvertOptions,
    rounding_given: bool,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let src = AnyModel::open(model)?;
    if rounding_given && convert::variant::gguf::experts_are_mxfp4(src.source()) {
        eprintln!(
            "note: --mxfp4-rounding {} has nothing to round: this source's experts are MXFP4 already and are kept as they are (the rule applies to dense experts)",
            opts.mxfp4_rounding
        );
    }
    let variant = match (variant, outtype) {
        (Some(v), _) => v,
        (None, Some(t)) => {
            let (v, note) = Variant::from_llamacpp_outtype(
                t,
                convert::variant::gguf::experts_are_mxfp4(src.source()),
                convert::variant::llamacpp_auto_outtype(&src),
            )
            .map_err(anyhow::Error::msg)?;
            eprintln!("note: {note}");
            v
        }
        (None, None) => anyhow::bail!("pass --to VARIANT (or llama.cpp's --outtype)"),
    };
    if variant.is_gguf() && out.as_os_str().to_string_lossy().ends_with('/') && !out.is_dir() {
        anyhow::bail!(
            "{}: no such directory (a path ending in `/` names a directory: create it, or drop the `/` to write a file)",
            out.display()
        );
    }
    // The lock is the output's as it will be named (a GGUF into a directory goes inside it).
    let target = if variant.is_gguf() {
        convert::output::gguf_target(&src, variant.storage().file_suffix, out)
    } else {
        out.to_path_buf()
    };
    verify::pipeline::refuse_in_published(&target, true)?;
    let _lock = convert::lock::OutputLock::acquire(&target)?;
    crate::signals::stops_cleanly(format!(
        "the partial output was removed; nothing was written to {}",
        target.display()
    ));
    let progress = Reporter::new(quiet);
    let report = convert::variant::convert(&src, variant, out, opts, &progress)
        .with_context(|| format!("converting to {variant}"))?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    // Values stored inexactly are said even with -q (one line per kind); -q drops the rest.
    let lines = inexact_summary(&report);
    for l in &lines {
        outln!("{l}");
    }
    if quiet {
        return Ok(ExitCode::SUCCESS);
    }
    if lines.is_empty() {
        outln!("every value stored exactly");
    }
    for o in &report.outputs {
        outln!("wrote {}", o.display());
    }
    outln!("{variant}: {}", convert::units::bytes(report.bytes));
    Ok(ExitCode::SUCCESS)
}
