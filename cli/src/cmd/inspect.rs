//! `oss-forge inspect MODEL [--json]`.

use anyhow::Context;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

pub fn run(model: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let src = convert::AnyModel::open(model)
        .with_context(|| format!("cannot open {}", model.display()))?;
    let report = convert::inspect::inspect_any(&src);
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report.to_json())?)?;
    } else {
        write!(out, "{}", report.render())?;
    }
    Ok(ExitCode::SUCCESS)
}
