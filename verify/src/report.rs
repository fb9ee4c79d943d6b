//! Rendering a [`Report`]: a fixed-width table for people, JSON for CI. Every JSON field is
//! documented in `docs/tolerances.md`.
//!
//! JSON numbers that are not finite (a variant producing NaN logits) are written as `null`.
//! The JSON holds no timestamps or timings, so the same inputs give the same bytes.

use crate::metadata::MetadataCheck;
use crate::metrics::Metrics;
use crate::weights::TensorCheck;
use crate::{Gate, Report, Rules, VariantResult};
use serde::{Deserialize, Serialize};

/// A finite number, or `None` (written as `null`).
pub fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Pretty JSON of a report, manifest or record, with a final newline. Object keys come out
/// sorted (serde_json's map order), as these files have always been written, whatever the
/// order of the struct fields.
pub fn to_pretty_json<T: Serialize>(x: &T) -> String {
    let text = serde_json::to_value(x)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .expect("structs of strings, numbers and lists always serialize");
    text + "\n"
}

/// Logit metrics in the JSON report (non-finite values are `null`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsJson {
    /// Positions compared.
    pub positions: u64,
    /// Largest |Δlogit|.
    pub max_abs: Option<f64>,
    /// Normalized mean squared error of the logits.
    pub nmse: Option<f64>,
    /// Mean KL divergence (nats).
    pub kld_mean: Option<f64>,
    /// 99th percentile KL divergence.
    pub kld_p99: Option<f64>,
    /// Largest KL divergence.
    pub kld_max: Option<f64>,
    /// Top-1 agreement (fraction of positions).
    pub top1: Option<f64>,
    /// Mean top-5 overlap (fraction).
    pub top5_overlap: Option<f64>,
    /// Positions whose argmax changed.
    pub argmax_changed: u64,
    /// Non-finite logits of the variant.
    pub nonfinite: u64,
}

impl From<&Metrics> for MetricsJson {
    fn from(m: &Metrics) -> MetricsJson {
        MetricsJson {
            positions: m.positions,
            max_abs: finite(m.max_abs),
            nmse: finite(m.nmse),
            kld_mean: finite(m.kld_mean),
            kld_p99: finite(m.kld_p99),
            kld_max: finite(m.kld_max),
            top1: finite(m.top1),
            top5_overlap: finite(m.top5_overlap),
            argmax_changed: m.argmax_changed,
            nonfinite: m.nonfinite,
        }
    }
}

/// One prompt's metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptMetricsJson {
    /// The prompt's name.
    pub prompt: String,
    /// Its metrics.
    pub metrics: MetricsJson,
}

/// One tensor of the weight check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorJson {
    /// The tensor (a weight, or a layer's group of experts).
    pub name: String,
    /// Its storage in the original.
    pub original: String,
    /// Its storage in the variant.
    pub variant: String,
    /// Values compared.
    pub elements: u64,
    /// Values that differ.
    pub differing: u64,
    /// Largest |difference| (`null` when not finite).
    pub max_abs_error: Option<f64>,
    /// The error bound applied.
    pub bound: String,
    /// Values outside the bound (the non-finite ones included).
    pub violations: u64,
    /// Values NaN or Inf in the variant where the original's are finite.
    #[serde(default)]
    pub nonfinite: u64,
    /// The first of them: weight, row, column, both values (`null` when none).
    #[serde(default)]
    pub first_nonfinite: Option<String>,
    /// For requantized storage, how its blocks relate to the reference rounding (absent
    /// otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<BlocksJson>,
}

/// How a requantized tensor's blocks relate to the reference rounding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlocksJson {
    /// Blocks examined.
    pub total: u64,
    /// MXFP4 from dense values: blocks whose values equal the original's.
    pub unchanged: u64,
    /// MXFP4 from dense values: changed blocks each rounding rule reproduces (`ggml`, `ocp`,
    /// `triton`, `mlx`, `mse`).
    pub by_rule: std::collections::BTreeMap<String, u64>,
    /// MXFP4 from dense values: changed blocks no rule reproduces (violations).
    pub unexplained: u64,
    /// Other ggml block types: blocks byte-identical to ggml's reference quantizer.
    pub reference: u64,
}

impl From<&crate::weights::BlockMatch> for BlocksJson {
    fn from(b: &crate::weights::BlockMatch) -> BlocksJson {
        BlocksJson {
            total: b.total,
            unchanged: b.unchanged,
            by_rule: quant::mxfp4::Rounding::ALL
                .into_iter()
                .zip(b.by_rule)
                .map(|(r, n)| (r.name().to_string(), n))
                .collect(),
            unexplained: b.unexplained,
            reference: b.reference,
        }
    }
}

/// What a variant's requantized blocks say about how it was made, as report lines
/// ([`crate::weights::requantization_notes`]).
pub fn requantization(weights: &[TensorCheck]) -> Vec<String> {
    crate::weights::requantization_notes(weights)
}

impl From<&TensorCheck> for TensorJson {
    fn from(t: &TensorCheck) -> TensorJson {
        TensorJson {
            name: t.name.clone(),
            original: t.original.to_string(),
            variant: t.variant.to_string(),
            elements: t.elements,
            differing: t.differing,
            max_abs_error: finite(t.max_abs_error),
            bound: t.bound.name().to_string(),
            violations: t.violations,
            nonfinite: t.nonfinite,
            first_nonfinite: t.first_nonfinite.as_ref().map(ToString::to_string),
            blocks: (t.blocks.total > 0).then(|| BlocksJson::from(&t.blocks)),
        }
    }
}

/// The weight check of one variant: summary and per tensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightsJson {
    /// Tensors checked.
    pub tensors: usize,
    /// Tensors identical to the original.
    pub identical: usize,
    /// Largest |difference| of any tensor.
    pub max_abs_error: Option<f64>,
    /// Values outside their bound, all tensors.
    pub violations: u64,
    /// Values NaN or Inf where the original's are finite, all tensors.
    #[serde(default)]
    pub nonfinite: u64,
    /// Each tensor.
    pub per_tensor: Vec<TensorJson>,
}

/// One variant's verification, as `verify --json`, `verify.json` and the manifest hold it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantJson {
    /// The variant's path (relative to the output directory in a pipeline).
    pub path: String,
    /// Its format.
    pub format: String,
    /// Within tolerance.
    pub pass: bool,
    /// How it passed: `identical`, `identical (by weights)`, `gates` or `format floor`; `null`
    /// when it failed.
    #[serde(default)]
    pub passed_by: Option<String>,
    /// Its forward pass was skipped: every weight is identical to the original's, so its logits
    /// are the original's by construction (`metrics` compares the original's with themselves).
    /// Written only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub logits_by_weights: bool,
    /// The gate a lossy variant was judged by (`null` for a lossless one).
    #[serde(default)]
    pub gate: Option<GateJson>,
    /// Every weight identical to the original's.
    pub lossless: bool,
    /// Why it failed.
    pub failures: Vec<String>,
    /// The metadata check (`null` when it was not run: a report of an older version).
    #[serde(default)]
    pub metadata: Option<MetadataJson>,
    /// Logit metrics over every position.
    pub metrics: MetricsJson,
    /// The format's own noise floor (lossy variants outside the plain gates when the floor may
    /// relax them; else `null`).
    pub format_floor: Option<MetricsJson>,
    /// The floor's forward pass was skipped: every weight of the variant equals the floor's
    /// rounding of the original's, so the floor's logits are the variant's. Written only when
    /// true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub format_floor_by_weights: bool,
    /// Positions run through the reference forward pass for this variant (its own pass and its
    /// format floor's; 0 when its weights determined both). Absent from reports of versions
    /// that did not count them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_positions: Option<u64>,
    /// Per prompt.
    pub per_prompt: Vec<PromptMetricsJson>,
    /// The weight check.
    pub weights: WeightsJson,
    /// How the requantized blocks were made ([`requantization`]); empty when nothing was
    /// requantized.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requantization: Vec<String>,
}

/// The gate a lossy variant was judged by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateJson {
    /// Largest mean KLD allowed.
    pub kld_mean: Option<f64>,
    /// Smallest top-1 agreement allowed.
    pub top1: Option<f64>,
    /// `tolerance` (the gates as given or by default) or `format floor` (the default gates
    /// relaxed to 1.5 × the floor's mean KLD and its top-1 − 0.02).
    pub source: String,
}

impl From<Gate> for GateJson {
    fn from(g: Gate) -> GateJson {
        GateJson {
            kld_mean: finite(g.kld_mean),
            top1: finite(g.top1),
            source: if g.from_floor {
                "format floor"
            } else {
                "tolerance"
            }
            .into(),
        }
    }
}

/// One metadata difference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DifferenceJson {
    /// The key.
    pub key: String,
    /// What the original implies.
    pub original: String,
    /// What the variant holds.
    pub variant: String,
}

/// The metadata check of one variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetadataJson {
    /// Keys compared.
    pub compared: usize,
    /// Every difference (each fails the variant).
    pub differences: Vec<DifferenceJson>,
    /// Keys present and ignored by rule (producer names, the variant's own storage).
    pub ignored: Vec<String>,
    /// What was not compared and why.
    pub notes: Vec<String>,
}

impl From<&MetadataCheck> for MetadataJson {
    fn from(m: &MetadataCheck) -> MetadataJson {
        MetadataJson {
            compared: m.compared,
            differences: m
                .differences
                .iter()
                .map(|d| DifferenceJson {
                    key: d.key.clone(),
                    original: d.original.clone(),
                    variant: d.variant.clone(),
                })
                .collect(),
            ignored: m.ignored.clone(),
            notes: m.notes.clone(),
        }
    }
}

/// The gates for lossy variants and how they are applied (`null` for a non-finite one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToleranceJson {
    /// Largest mean KLD.
    pub kld_mean: Option<f64>,
    /// Smallest top-1 agreement.
    pub top1: Option<f64>,
    /// Given with `--tolerance` (applied as given) rather than the defaults.
    #[serde(default)]
    pub explicit: bool,
    /// The format floor may relax the gates per variant (the default gates without `--strict`).
    #[serde(default)]
    pub format_floor: bool,
}

impl From<Rules> for ToleranceJson {
    fn from(r: Rules) -> ToleranceJson {
        ToleranceJson {
            kld_mean: finite(r.tolerance.kld_mean),
            top1: finite(r.tolerance.top1),
            explicit: r.explicit,
            format_floor: r.floor_allowed(),
        }
    }
}

/// A model named in a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelJson {
    /// Its path (or name).
    pub path: String,
    /// Its format.
    pub format: String,
}

/// A prompt and its length.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptLenJson {
    /// The prompt's name.
    pub name: String,
    /// Its tokens.
    pub tokens: usize,
}

/// The whole verification report (`verify --json`, the pipeline's `verify.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportJson {
    /// `oss-forge`.
    pub tool: String,
    /// The tool's version.
    pub version: String,
    /// Every variant passed.
    pub pass: bool,
    /// The original.
    pub original: ModelJson,
    /// The prompts run.
    pub prompts: Vec<PromptLenJson>,
    /// The gates for lossy variants and whether the format floor may relax them.
    pub tolerance: ToleranceJson,
    /// One entry per variant, in order.
    pub variants: Vec<VariantJson>,
}

impl ReportJson {
    /// A report of this tool's version; `pass` is every variant's.
    pub fn new(
        original: ModelJson,
        prompts: Vec<PromptLenJson>,
        tolerance: ToleranceJson,
        variants: Vec<VariantJson>,
    ) -> ReportJson {
        ReportJson {
            tool: "oss-forge".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            pass: variants.iter().all(|v| v.pass),
            original,
            prompts,
            tolerance,
            variants,
        }
    }
}

/// Summary of the weight check: (tensors, identical tensors, max error, violations,
/// non-finite values).
pub fn weight_summary(v: &VariantResult) -> (usize, usize, f64, u64, u64) {
    let identical = v.weights.iter().filter(|t| t.identical()).count();
    let max = v.weights.iter().fold(0f64, |m, t| m.max(t.max_abs_error));
    let violations = v.weights.iter().map(|t| t.violations).sum();
    let nonfinite = v.weights.iter().map(|t| t.nonfinite).sum();
    (v.weights.len(), identical, max, violations, nonfinite)
}

/// One variant as JSON.
pub fn variant_json(v: &VariantResult) -> VariantJson {
    let (tensors, identical, max, violations, nonfinite) = weight_summary(v);
    VariantJson {
        path: v.name.clone(),
        format: v.format.clone(),
        pass: v.passed(),
        passed_by: v.passed_by.map(|p| p.name().to_string()),
        logits_by_weights: v.logits_by_weights,
        gate: v.gate.map(GateJson::from),
        lossless: v.lossless,
        failures: v.failures.clone(),
        metadata: v.metadata.as_ref().map(MetadataJson::from),
        metrics: (&v.metrics).into(),
        format_floor: v.floor.as_ref().map(MetricsJson::from),
        format_floor_by_weights: v.floor_by_weights,
        forward_positions: Some(v.forward_positions),
        per_prompt: v
            .per_prompt
            .iter()
            .map(|(p, m)| PromptMetricsJson {
                prompt: p.clone(),
                metrics: m.into(),
            })
            .collect(),
        weights: WeightsJson {
            tensors,
            identical,
            max_abs_error: finite(max),
            violations,
            nonfinite,
            per_tensor: v.weights.iter().map(TensorJson::from).collect(),
        },
        requantization: requantization(&v.weights),
    }
}

/// The whole report as JSON.
pub fn to_json(r: &Report) -> ReportJson {
    ReportJson::new(
        ModelJson {
            path: r.original.clone(),
            format: r.original_format.clone(),
        },
        r.prompts
            .iter()
            .map(|(n, t)| PromptLenJson {
                name: n.clone(),
                tokens: *t,
            })
            .collect(),
        r.rules.into(),
        r.variants.iter().map(variant_json).collect(),
    )
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
        let (tensors, identical, max, violations, nonfinite) = weight_summary(v);
        let weights = if identical == tensors {
            "identical".to_string()
        } else if nonfinite > 0 {
            format!("{nonfinite} NaN/Inf")
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
            verdict(v.passed(), v.passed_by.map(|p| p.name())),
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

/// `PASS (identical)`, `PASS (gates)`, `PASS (format floor)` or `FAIL`.
pub fn verdict(pass: bool, passed_by: Option<&str>) -> String {
    match (pass, passed_by) {
        (true, Some(p)) => format!("PASS ({p})"),
        (true, None) => "PASS".into(),
        (false, _) => "FAIL".into(),
    }
}

/// The gates as a summary line words them (`mean KLD ≤ 5e-3 and top-1 ≥ 0.9`).
pub fn gate_words(kld: Option<f64>, top1: Option<f64>) -> String {
    format!(
        "mean KLD ≤ {} and top-1 ≥ {}",
        kld.map_or("n/a".to_string(), |x| format!("{x:.3e}")),
        top1.map_or("n/a".to_string(), |x| format!("{x:.4}"))
    )
}

/// How the gates were applied, in words: the summary line's and the model cards' rule.
pub fn rules_words(t: &ToleranceJson) -> String {
    let gates = gate_words(t.kld_mean, t.top1);
    if t.explicit {
        format!("lossy: {gates} (--tolerance, applied as given; no format floor)")
    } else if t.format_floor {
        format!(
            "lossy: {gates} (defaults), or within the format floor: mean KLD ≤ 1.5 × the floor's and top-1 ≥ the floor's − 0.02 (--strict turns the floor off)"
        )
    } else {
        format!("lossy: {gates} (defaults, --strict: no format floor)")
    }
}

/// The report as text: the table, then each failure, the metadata notes, and the summary
/// line with the gates applied.
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
    for v in &r.variants {
        for line in requantization(&v.weights) {
            out.push_str(&format!("\nnote {}: {line}\n", v.name));
        }
        match &v.metadata {
            Some(m) => {
                for n in &m.notes {
                    out.push_str(&format!("\nnote {}: {n}\n", v.name));
                }
            }
            None => out.push_str(&format!(
                "\nnote {}: metadata not compared (not read)\n",
                v.name
            )),
        }
    }
    let count = |p: crate::PassedBy| r.variants.iter().filter(|v| v.passed_by == Some(p)).count();
    let ways: Vec<String> = [
        crate::PassedBy::Identical,
        crate::PassedBy::IdenticalByWeights,
        crate::PassedBy::Gates,
        crate::PassedBy::FormatFloor,
    ]
    .into_iter()
    .filter(|&p| count(p) > 0)
    .map(|p| match p {
        crate::PassedBy::Identical => format!("{} identical", count(p)),
        crate::PassedBy::IdenticalByWeights => format!("{} identical (by weights)", count(p)),
        _ => format!("{} by the {}", count(p), p.name()),
    })
    .collect();
    out.push_str(&format!(
        "\n{}: {} of {} variants within tolerance{}\ngates: lossless: every weight identical and max |Δ| = 0; {}\n",
        if r.passed() { "PASS" } else { "FAIL" },
        r.variants.iter().filter(|v| v.passed()).count(),
        r.variants.len(),
        if ways.is_empty() {
            String::new()
        } else {
            format!(" ({})", ways.join(", "))
        },
        rules_words(&r.rules.into())
    ));
    for v in r.variants.iter().filter(|v| v.logits_by_weights) {
        out.push_str(&format!(
            "  {}: forward pass skipped: every weight identical to the original's, so are the logits (--force-forward runs it)\n",
            v.name
        ));
    }
    for v in r.variants.iter().filter(|v| v.floor_by_weights) {
        out.push_str(&format!(
            "  {}: format floor's forward pass skipped: every weight equals the floor's rounding, so the floor's logits are the variant's\n",
            v.name
        ));
    }
    for v in &r.variants {
        if let Some(g) = v.gate.filter(|g| g.from_floor) {
            out.push_str(&format!(
                "  {}: format floor gate: {}\n",
                v.name,
                gate_words(finite(g.kld_mean), finite(g.top1))
            ));
        }
    }
    out
}
