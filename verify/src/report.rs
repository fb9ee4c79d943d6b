//! Rendering a [`Report`]: a fixed-width table for people, JSON for CI.
//!
//! JSON numbers that are not finite (a variant producing NaN logits) are written as `null`.
//! The JSON holds no timestamps or timings, so the same inputs give the same bytes.

use crate::metrics::Metrics;
use crate::weights::TensorCheck;
use crate::{Report, VariantResult};
use serde_json::{Value, json};

/// A finite number, or null.
pub fn num(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}

/// Metrics as a JSON object.
pub fn metrics_json(m: &Metrics) -> Value {
    json!({
        "positions": m.positions,
        "max_abs": num(m.max_abs),
        "nmse": num(m.nmse),
        "kld_mean": num(m.kld_mean),
        "kld_p99": num(m.kld_p99),
        "kld_max": num(m.kld_max),
        "top1": num(m.top1),
        "top5_overlap": num(m.top5_overlap),
        "argmax_changed": m.argmax_changed,
        "nonfinite": m.nonfinite,
    })
}

fn tensor_json(t: &TensorCheck) -> Value {
    json!({
        "name": t.name,
        "original": t.original,
        "variant": t.variant,
        "elements": t.elements,
        "differing": t.differing,
        "max_abs_error": num(t.max_abs_error),
        "bound": t.bound.name(),
        "violations": t.violations,
    })
}

/// Summary of the weight check: (tensors, identical tensors, max error, violations).
pub fn weight_summary(v: &VariantResult) -> (usize, usize, f64, u64) {
    let identical = v.weights.iter().filter(|t| t.identical()).count();
    let max = v.weights.iter().fold(0f64, |m, t| m.max(t.max_abs_error));
    let violations = v.weights.iter().map(|t| t.violations).sum();
    (v.weights.len(), identical, max, violations)
}

/// One variant as JSON.
pub fn variant_json(v: &VariantResult) -> Value {
    let (tensors, identical, max, violations) = weight_summary(v);
    json!({
        "path": v.name,
        "format": v.format,
        "pass": v.passed(),
        "lossless": v.lossless,
        "failures": v.failures,
        "metrics": metrics_json(&v.metrics),
        "format_floor": v.floor.as_ref().map_or(Value::Null, metrics_json),
        "per_prompt": v.per_prompt.iter().map(|(p, m)| json!({"prompt": p, "metrics": metrics_json(m)})).collect::<Vec<_>>(),
        "weights": {
            "tensors": tensors,
            "identical": identical,
            "max_abs_error": num(max),
            "violations": violations,
            "per_tensor": v.weights.iter().map(tensor_json).collect::<Vec<_>>(),
        },
    })
}

/// The whole report as JSON.
pub fn to_json(r: &Report) -> Value {
    json!({
        "tool": "oss-forge",
        "version": env!("CARGO_PKG_VERSION"),
        "pass": r.passed(),
        "original": {"path": r.original, "format": r.original_format},
        "prompts": r.prompts.iter().map(|(n, t)| json!({"name": n, "tokens": t})).collect::<Vec<_>>(),
        "tolerance": {"kld_mean": r.tolerance.kld_mean, "top1": r.tolerance.top1},
        "variants": r.variants.iter().map(variant_json).collect::<Vec<_>>(),
    })
}

/// `0` for zero, else 3 significant digits in scientific notation.
pub fn sci(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.is_finite() {
        format!("{x:.2e}")
    } else {
        "inf".into()
    }
}

/// The rows of the verification table: header then one row per variant.
pub fn table_rows(
    variants: &[VariantResult],
    name: &dyn Fn(&VariantResult) -> String,
) -> Vec<[String; 10]> {
    let mut rows = vec![
        [
            "variant", "weights", "max|Δ|", "NMSE", "KLD mean", "KLD p99", "KLD max", "top-1",
            "top-5", "result",
        ]
        .map(String::from),
    ];
    for v in variants {
        let (tensors, identical, max, violations) = weight_summary(v);
        let weights = if identical == tensors {
            "identical".to_string()
        } else if violations > 0 {
            format!("{violations} out of bound")
        } else {
            format!("{identical}/{tensors} same, ≤{}", sci(max))
        };
        let m = &v.metrics;
        rows.push([
            name(v),
            weights,
            sci(m.max_abs),
            sci(m.nmse),
            sci(m.kld_mean),
            sci(m.kld_p99),
            sci(m.kld_max),
            format!("{:.2}%", m.top1 * 100.0),
            format!("{:.2}%", m.top5_overlap * 100.0),
            if v.passed() { "PASS" } else { "FAIL" }.into(),
        ]);
    }
    rows
}

/// Formats rows as a left-aligned, space-padded table.
pub fn format_table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The report as text: the table, then each failure.
pub fn render(r: &Report) -> String {
    let mut out = format!(
        "original: {} ({})\nprompts: {} ({} positions)\n\n",
        r.original,
        r.original_format,
        r.prompts.len(),
        r.prompts.iter().map(|p| p.1).sum::<usize>()
    );
    out.push_str(&format_table(&table_rows(&r.variants, &|v| v.name.clone())));
    for v in r.variants.iter().filter(|v| !v.passed()) {
        out.push_str(&format!("\nFAIL {}:\n", v.name));
        for f in &v.failures {
            out.push_str(&format!("  - {f}\n"));
        }
    }
    out.push_str(&format!(
        "\n{}: {} of {} variants within tolerance (lossless: max |Δ| = 0; lossy: mean KLD ≤ {:e}, top-1 ≥ {})\n",
        if r.passed() { "PASS" } else { "FAIL" },
        r.variants.iter().filter(|v| v.passed()).count(),
        r.variants.len(),
        r.tolerance.kld_mean,
        r.tolerance.top1
    ));
    out
}
