//! `oss-forge inspect MODEL [--json]`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// A later split of a split GGUF, inspected on its own: which split it is, and its tensors.
/// `None` when `model` is not one.
fn later_split(model: &Path, json: bool) -> anyhow::Result<Option<ExitCode>> {
    let Ok(f) = convert::gguf::GgufFile::open(model) else {
        return Ok(None);
    };
    let get = |k: &str| f.get(k).and_then(convert::gguf::Value::as_u64);
    let (Some(no), Some(count)) = (get("split.no"), get("split.count")) else {
        return Ok(None);
    };
    if no == 0 || count <= 1 {
        return Ok(None);
    }
    let first = convert::gguf::split_path(
        &model.with_file_name(
            model
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .and_then(|n| {
                    n.get(..n.len().checked_sub(20)?)
                        .map(|s| format!("{s}.gguf"))
                })
                .unwrap_or_default(),
        ),
        0,
        count as usize,
    );
    let mut by_type: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for t in f.tensors() {
        let e = by_type.entry(t.ty.name().to_string()).or_default();
        e.0 += 1;
        e.1 += t.range.len() as u64;
    }
    let mut out = std::io::stdout().lock();
    if json {
        let doc = serde_json::json!({
            "file": model.display().to_string(),
            "split": no + 1,
            "splits": count,
            "first_split": first.display().to_string(),
            "bytes": f.len(),
            "tensors": f.tensors().len(),
            "by_type": by_type.iter().map(|(k, (n, b))| (k.clone(), serde_json::json!({"tensors": n, "bytes": b}))).collect::<serde_json::Map<_, _>>(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        writeln!(out, "file      {}", model.display())?;
        writeln!(
            out,
            "split     {} of {count} (the model opens at its first split: inspect {} for its config and checks)",
            no + 1,
            first.display()
        )?;
        writeln!(
            out,
            "tensors   {} ({})",
            f.tensors().len(),
            convert::units::bytes(f.len())
        )?;
        for (k, (n, b)) in &by_type {
            writeln!(
                out,
                "  {k:<6} {n:>6} tensors {:>12}",
                convert::units::bytes(*b)
            )?;
        }
    }
    Ok(Some(ExitCode::SUCCESS))
}

pub fn run(model: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let src = match convert::AnyModel::open(model) {
        Ok(s) => s,
        Err(e) => {
            if model.is_file()
                && let Some(code) = later_split(model, json)?
            {
                return Ok(code);
            }
            return Err(e.into());
        }
    };
    let report = convert::inspect::inspect_any(&src);
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report.to_json())?)?;
    } else {
        write!(out, "{}", report.render())?;
    }
    Ok(ExitCode::SUCCESS)
}
