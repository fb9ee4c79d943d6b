//! Verification: the reference forward pass on the original and on each variant over the same
//! prompts, logit metrics at every position, and a weight-by-weight check of the dequantized
//! values, judged against tolerances.
//!
//! The verdict of one variant, in order:
//! 1. its config must describe the same model (else an error, not a failure);
//! 2. everything else a runtime reads from it (tokenizer, chat template, special token ids,
//!    hyperparameter keys, the files beside a safetensors model) must be what the original
//!    implies ([`metadata`]): a difference is a failure naming the key and both values;
//! 3. every weight must lie within the error its storage allows ([`weights`]), and no weight may
//!    be NaN or Inf where the original's is finite: such a value is a failure whatever the
//!    logits say;
//! 4. a variant whose weights are all identical to the original's gives the original's logits
//!    by construction: every output of the reference forward pass is a function of the weights'
//!    values alone, bit for bit (`reference::linear`), whatever their storage. Its forward pass
//!    is skipped and it passes as [`PassedBy::IdenticalByWeights`]; with
//!    [`Rules::force_forward`] it is run, and must give max |Δ| = 0 ([`PassedBy::Identical`]);
//! 5. a lossy variant passes when every logit is finite, mean KLD ≤ `tolerance.kld_mean` and
//!    top-1 agreement ≥ `tolerance.top1` ([`PassedBy::Gates`]), or, with the default gates and
//!    without `--strict` ([`Rules::floor_allowed`]), when it stays within [`FLOOR_KLD_FACTOR`] ×
//!    the mean KLD and [`FLOOR_TOP1_SLACK`] of the top-1 agreement that the format's own
//!    reference rounding gives ([`floor`], [`PassedBy::FormatFloor`]). Gates given with
//!    `--tolerance` are applied as given. The floor is computed only for a variant outside the
//!    plain gates; when every weight of the variant equals the floor's rounding of the
//!    original's, the floor's logits are the variant's by the same construction as in 4, and its
//!    forward pass is skipped too ([`VariantResult::floor_by_weights`]).
//!
//! Defaults, how they were measured, and the verdict table: `docs/tolerances.md`.

pub mod card;
pub mod fit;
pub mod floor;
pub mod logits_cache;
pub mod metadata;
pub mod metrics;
pub mod pipeline;
pub mod prompts;
pub mod report;
pub mod weights;

use convert::Progress;
use convert::runtime::RuntimeMeta;
use metadata::MetadataCheck;
use metrics::{Accumulator, Metrics};
use prompts::Prompt;
use reference::{Model, WeightSource};
use weights::TensorCheck;

/// Why a verification could not run (as opposed to a variant failing it). Each keeps the
/// error it comes from as its [`source`](std::error::Error::source): `anyhow`'s `{:#}` prints
/// `model: weight: file: tensor: what`.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A model could not be read.
    #[error("{model}")]
    Read {
        /// Which model.
        model: String,
        /// The source's error (it names the file and tensor).
        #[source]
        source: reference::SourceError,
    },
    /// The forward pass failed on a prompt.
    #[error("{model}: prompt {prompt}")]
    Run {
        /// Which model.
        model: String,
        /// The prompt's name.
        prompt: String,
        /// The forward pass's error.
        #[source]
        source: reference::ReferenceError,
    },
    /// The variant is not the same model (config or shapes differ).
    #[error("not the same model: {0}")]
    Mismatch(String),
    /// A prompt is unusable.
    #[error("{0}")]
    Prompt(String),
    /// Reading or writing a file failed.
    #[error(transparent)]
    File(#[from] convert::ConvertError),
}

impl VerifyError {
    /// The same error about `model` (a read or a run) under another name.
    fn naming(self, model: &str) -> VerifyError {
        match self {
            VerifyError::Read { source, .. } => VerifyError::Read {
                model: model.to_string(),
                source,
            },
            VerifyError::Run { prompt, source, .. } => VerifyError::Run {
                model: model.to_string(),
                prompt,
                source,
            },
            other => other,
        }
    }
}

/// Gates for lossy variants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Largest mean KL divergence (nats).
    pub kld_mean: f64,
    /// Smallest top-1 agreement (fraction of positions).
    pub top1: f64,
}

impl Default for Tolerance {
    /// Measured on the fixtures and synthetic 20b layers: see `docs/tolerances.md`.
    fn default() -> Self {
        Tolerance {
            kld_mean: 5e-3,
            top1: 0.90,
        }
    }
}

impl Tolerance {
    /// Parses `kld=0.01,top1=0.95` (either key may be omitted; `kld_mean` is accepted for `kld`).
    pub fn parse(s: &str) -> Result<Tolerance, String> {
        let mut t = Tolerance::default();
        if s.trim().is_empty() {
            return Err("empty: give kld=…, top1=… or both (kld=0.01,top1=0.95)".into());
        }
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected key=value (kld=0.01,top1=0.95)"))?;
            let v: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("`{part}`: `{v}` is not a number"))?;
            match k.trim() {
                "kld" | "kld_mean" if v >= 0.0 => t.kld_mean = v,
                "top1" if (0.0..=1.0).contains(&v) => t.top1 = v,
                "kld" | "kld_mean" | "top1" => return Err(format!("`{part}`: out of range")),
                other => return Err(format!("unknown tolerance `{other}` (known: kld, top1)")),
            }
        }
        Ok(t)
    }
}

/// How lossy variants are judged: the gates, and whether the format floor may relax them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rules {
    /// The gates.
    pub tolerance: Tolerance,
    /// The gates were given (`--tolerance`): they are applied as given.
    pub explicit: bool,
    /// `--strict`: the default gates, never relaxed by the format floor.
    pub strict: bool,
    /// `--force-forward`: run every forward pass, even those whose logits are known from the
    /// weights (a variant identical to the original, a floor identical to the variant).
    pub force_forward: bool,
}

impl Default for Rules {
    /// The default gates, which the format floor may relax.
    fn default() -> Self {
        Rules::new(None, false)
    }
}

impl Rules {
    /// The rules for `--tolerance` (`None`: the defaults) and `--strict`.
    pub fn new(tolerance: Option<Tolerance>, strict: bool) -> Rules {
        Rules {
            tolerance: tolerance.unwrap_or_default(),
            explicit: tolerance.is_some(),
            strict,
            force_forward: false,
        }
    }

    /// The same rules with `--force-forward` set to `force`.
    pub fn forcing_forward(self, force: bool) -> Rules {
        Rules {
            force_forward: force,
            ..self
        }
    }

    /// The format floor may relax the gates: only the default gates, and not `--strict`.
    pub fn floor_allowed(&self) -> bool {
        !self.explicit && !self.strict
    }
}

/// How a variant passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassedBy {
    /// Every weight identical to the original's and max |Δlogit| = 0 (its forward pass run).
    Identical,
    /// Every weight identical to the original's, so its logits are the original's by
    /// construction: its forward pass was skipped.
    IdenticalByWeights,
    /// Within the gates (`--tolerance` or the defaults).
    Gates,
    /// Outside the default gates but within the format floor's relaxation of them.
    FormatFloor,
}

impl PassedBy {
    /// `identical`, `identical (by weights)`, `gates` or `format floor`.
    pub fn name(self) -> &'static str {
        match self {
            PassedBy::Identical => "identical",
            PassedBy::IdenticalByWeights => "identical (by weights)",
            PassedBy::Gates => "gates",
            PassedBy::FormatFloor => "format floor",
        }
    }
}

/// The gate a lossy variant was judged by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gate {
    /// Largest mean KLD allowed.
    pub kld_mean: f64,
    /// Smallest top-1 agreement allowed.
    pub top1: f64,
    /// The format floor relaxed the tolerance to these limits.
    pub from_floor: bool,
}

/// A lossy variant may reach this multiple of its format's noise-floor mean KLD.
pub const FLOOR_KLD_FACTOR: f64 = 1.5;
/// ... and lose this much top-1 agreement below the floor's.
pub const FLOOR_TOP1_SLACK: f64 = 0.02;

/// One model taking part in a verification.
pub struct Subject<'a> {
    /// How reports name it (its path).
    pub name: String,
    /// Its format (`hf-mxfp4`, `gguf MXFP4_MOE`, ...).
    pub format: String,
    /// Its weights.
    pub source: &'a dyn WeightSource,
    /// What a runtime reads from it besides the weights; `None`: the metadata is not compared.
    pub meta: Option<&'a RuntimeMeta>,
}

/// The outcome for one variant.
#[derive(Clone, Debug)]
pub struct VariantResult {
    /// Path of the variant.
    pub name: String,
    /// Its format.
    pub format: String,
    /// Logit metrics over every position of every prompt.
    pub metrics: Metrics,
    /// The same, per prompt.
    pub per_prompt: Vec<(String, Metrics)>,
    /// Weight check, per tensor.
    pub weights: Vec<TensorCheck>,
    /// Every weight identical to the original's.
    pub lossless: bool,
    /// The variant's forward pass was skipped: its weights are the original's, so its logits are
    /// too, and the metrics are those of the original's logits against themselves.
    pub logits_by_weights: bool,
    /// Lossy variants outside the plain gates: the metrics of the original with the same
    /// weights rounded by the reference quantizers ([`floor`]).
    pub floor: Option<Metrics>,
    /// The floor's forward pass was skipped: every weight of the variant equals the floor's, so
    /// the floor's logits are the variant's and its metrics are the variant's.
    pub floor_by_weights: bool,
    /// Positions run through the reference forward pass for this variant: its own pass and its
    /// format floor's (0 when the weights determined both; the original's pass is not counted).
    pub forward_positions: u64,
    /// The metadata check (`None` when either side's metadata was not read).
    pub metadata: Option<MetadataCheck>,
    /// The gate a lossy variant was judged by (`None` for a lossless one).
    pub gate: Option<Gate>,
    /// How it passed (`None` when it failed).
    pub passed_by: Option<PassedBy>,
    /// Why it failed (empty when it passed).
    pub failures: Vec<String>,
}

impl VariantResult {
    /// True when the variant is within tolerance.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The whole verification.
#[derive(Clone, Debug)]
pub struct Report {
    /// The original model.
    pub original: String,
    /// Its format.
    pub original_format: String,
    /// Prompts run (name, token count).
    pub prompts: Vec<(String, usize)>,
    /// How lossy variants were judged.
    pub rules: Rules,
    /// One result per variant, in the order given.
    pub variants: Vec<VariantResult>,
}

impl Report {
    /// True when every variant passed.
    pub fn passed(&self) -> bool {
        self.variants.iter().all(VariantResult::passed)
    }
}

/// The config differences between `original` and `variant`: (shape fields, in which it is
/// another model; the other hyperparameters, which a runtime reads from the variant: experts
/// per token, RoPE, sliding window, norm epsilon, context length, ...).
fn config_differences(original: &Subject<'_>, variant: &Subject<'_>) -> (Vec<String>, Vec<String>) {
    original
        .source
        .config()
        .differences(variant.source.config())
        .into_iter()
        .partition(|d| {
            let field = d.split([':', '[', '.']).next().unwrap_or("");
            reference::SHAPE_FIELDS.contains(&field)
        })
}

/// An error naming every shape field in which `variant` is another model than `original`
/// (its weights cannot be compared); else the other hyperparameters that differ, which fail
/// the variant instead ([`verify_variant`]).
fn ensure_same_model(
    original: &Subject<'_>,
    variant: &Subject<'_>,
) -> Result<Vec<String>, VerifyError> {
    let (shape, hyperparameters) = config_differences(original, variant);
    if shape.is_empty() {
        Ok(hyperparameters)
    } else {
        Err(VerifyError::Mismatch(format!(
            "{} vs {}: {}",
            original.name,
            variant.name,
            shape.join("; ")
        )))
    }
}

/// The original's logits for every prompt, `[tokens × vocab]` each.
pub fn original_logits(
    original: &dyn WeightSource,
    prompts: &[Prompt],
    progress: &dyn Progress,
) -> Result<Vec<Vec<f32>>, VerifyError> {
    let mut out = Vec::with_capacity(prompts.len());
    run_prompts(original, "original", prompts, progress, &mut |_, logits| {
        out.push(std::mem::take(logits))
    })?;
    Ok(out)
}

/// Runs every prompt through `src`, handing each prompt's logits (`[tokens × vocab]`) to `each`
/// as they come, so a caller that only compares them never holds more than one prompt's (the
/// buffer is reused unless `each` takes it). The
/// prompts go through the layers together ([`Model::logits_each`]): each weight is read and
/// decoded once per pass, not once per prompt. Progress counts a prompt's tokens once per layer
/// and once for the unembedding. Returns the positions run.
fn run_prompts(
    src: &dyn WeightSource,
    who: &str,
    prompts: &[Prompt],
    progress: &dyn Progress,
    each: &mut dyn FnMut(usize, &mut Vec<f32>),
) -> Result<u64, VerifyError> {
    let model = Model::new(src).map_err(|e| VerifyError::Read {
        model: who.into(),
        source: Box::new(e),
    })?;
    let run_error = |prompt: String| {
        let who = who.to_string();
        move |source| VerifyError::Run {
            model: who,
            prompt,
            source,
        }
    };
    // Each prompt's own errors first, naming it; after that only reading can fail.
    for p in prompts {
        model
            .check(&p.tokens, 0)
            .map_err(run_error(p.name.clone()))?;
    }
    let total: usize = prompts.iter().map(|p| p.tokens.len()).sum();
    let layers = src.config().num_hidden_layers as u64;
    progress.begin(&format!("forward {who}"), total as u64 * (layers + 1));
    let seqs: Vec<&[u32]> = prompts.iter().map(|p| p.tokens.as_slice()).collect();
    model
        .logits_each(
            &seqs,
            &mut |_| progress.advance(total as u64),
            &mut |k, logits| {
                progress.advance(prompts[k].tokens.len() as u64);
                each(k, logits);
            },
        )
        .map_err(run_error(
            prompts
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ))?;
    progress.end();
    Ok(total as u64)
}

/// Metrics of logits against the original's, per prompt and over all of them.
struct Comparison<'r> {
    reference: &'r [Vec<f32>],
    vocab: usize,
    all: Accumulator,
    per_prompt: Vec<(String, Metrics)>,
}

impl<'r> Comparison<'r> {
    fn new(reference: &'r [Vec<f32>], vocab: usize) -> Comparison<'r> {
        Comparison {
            reference,
            vocab,
            all: Accumulator::default(),
            per_prompt: Vec::new(),
        }
    }

    /// Adds prompt `k`'s logits (prompts must come in order).
    fn add(&mut self, prompts: &[Prompt], k: usize, logits: &[f32]) {
        let mut acc = Accumulator::default();
        acc.add_rows(&self.reference[k], logits, self.vocab);
        self.per_prompt
            .push((prompts[k].name.clone(), acc.finish()));
        self.all.merge(acc);
    }

    /// The metrics, `run` positions having been run through the forward pass for them.
    fn finish(self, run: u64) -> Compared {
        Compared {
            all: self.all.finish(),
            per_prompt: self.per_prompt,
            run,
        }
    }
}

/// Logits compared with the original's.
struct Compared {
    /// Over every position.
    all: Metrics,
    /// Per prompt.
    per_prompt: Vec<(String, Metrics)>,
    /// Positions run through the forward pass to get the logits (0: known from the weights).
    run: u64,
}

/// Runs `src` over the prompts and compares its logits with `reference_logits`, each prompt's
/// as it comes.
fn forward_metrics(
    src: &dyn WeightSource,
    who: &str,
    reference_logits: &[Vec<f32>],
    prompts: &[Prompt],
    progress: &dyn Progress,
) -> Result<Compared, VerifyError> {
    let mut cmp = Comparison::new(reference_logits, src.config().vocab_size);
    let run = run_prompts(src, who, prompts, progress, &mut |k, logits| {
        cmp.add(prompts, k, logits)
    })?;
    Ok(cmp.finish(run))
}

/// True when every weight the format floor would give equals the variant's, value for value:
/// the planned weights re-rounded one at a time (and dropped), the others the original's, which
/// the weight check found identical. Then the floor's logits are the variant's by construction.
fn floor_matches_variant(
    original: &dyn WeightSource,
    variant: &dyn WeightSource,
    plan: &[(reference::WeightId, floor::Rounding)],
    checks: &[TensorCheck],
) -> Result<bool, VerifyError> {
    let planned: std::collections::HashSet<_> = plan.iter().map(|p| p.0).collect();
    let unplanned_identical = reference::WeightId::all(original.config())
        .into_iter()
        .filter(|id| !planned.contains(id))
        .all(|id| {
            let name = weights::group_name(id);
            checks
                .iter()
                .find(|c| c.name == name)
                .is_some_and(TensorCheck::identical)
        });
    if !unplanned_identical {
        return Ok(false);
    }
    let read = |model: &str| {
        let model = model.to_string();
        move |source| VerifyError::Read { model, source }
    };
    for &(id, rounding) in plan {
        let rounded = floor::Rounded::new(original, &[(id, rounding)]);
        let a = rounded.weight(id).map_err(read("format floor"))?;
        let b = variant.weight(id).map_err(read("variant"))?;
        let same = weights::check_weight(id, &a, &b)?.identical();
        variant.release(id);
        if !same {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The MXFP4 rounding rule that reproduces the most requantized expert blocks of a variant
/// (ggml's on a tie), if any block was requantized.
pub fn mxfp4_rule(weights: &[TensorCheck]) -> Option<quant::mxfp4::Rounding> {
    let mut all = weights::BlockMatch::default();
    for w in weights {
        all.merge(&w.blocks);
    }
    all.best_rule().map(|(r, _)| r)
}

/// Verifies one variant against the original, given the original's logits for `prompts`.
pub fn verify_variant(
    original: &Subject<'_>,
    reference_logits: &[Vec<f32>],
    variant: &Subject<'_>,
    prompts: &[Prompt],
    rules: Rules,
    progress: &dyn Progress,
) -> Result<VariantResult, VerifyError> {
    let oc = original.source.config();
    // Hyperparameters the forward pass reads from the variant (experts per token, RoPE, ...).
    let hyperparameters = ensure_same_model(original, variant)?;
    let metadata = match (original.meta, variant.meta) {
        (Some(a), Some(b)) => Some(metadata::compare(a, b)),
        _ => None,
    };
    let n_ids = reference::WeightId::all(oc).len() as u64;
    progress.begin(&format!("weights {}", short(&variant.name)), n_ids);
    let weights = weights::check_all(original.source, variant.source, &|_, _| progress.advance(1))
        .map_err(|e| match e {
            VerifyError::Read { ref model, .. } if model == "variant" => e.naming(&variant.name),
            e => e.naming(&original.name),
        })?;
    progress.end();
    let lossless = weights.iter().all(TensorCheck::identical);
    // Identical weights and hyperparameters, identical logits: the original's, compared with
    // themselves, are what the variant's forward pass would give.
    let logits_by_weights = lossless && hyperparameters.is_empty() && !rules.force_forward;
    let compared = if logits_by_weights {
        let mut cmp = Comparison::new(reference_logits, oc.vocab_size);
        for (k, logits) in reference_logits.iter().enumerate() {
            cmp.add(prompts, k, logits);
        }
        cmp.finish(0)
    } else {
        forward_metrics(
            variant.source,
            &short(&variant.name),
            reference_logits,
            prompts,
            progress,
        )
        .map_err(|e| e.naming(&variant.name))?
    };
    let Compared {
        all: metrics,
        per_prompt,
        run: mut forward_positions,
    } = compared;
    // The floor's forward pass runs only when it may relax the gates and the plain gates fail.
    let plain_pass = judge_logits(&metrics, lossless, None, rules).1.is_some();
    let mut floor_by_weights = false;
    let floor = if lossless || plain_pass || !rules.floor_allowed() {
        None
    } else {
        // Requantized MXFP4 experts are rounded the way the weight check found them made.
        let rule = mxfp4_rule(&weights).unwrap_or_default();
        let plan = floor::plan(original.source, variant.source, rule).map_err(|source| {
            VerifyError::Read {
                model: variant.name.clone(),
                source,
            }
        })?;
        if plan.is_empty() {
            None
        } else if !rules.force_forward
            && hyperparameters.is_empty()
            && floor_matches_variant(original.source, variant.source, &plan, &weights)
                .map_err(|e| e.naming(&variant.name))?
        {
            floor_by_weights = true;
            Some(metrics.clone())
        } else {
            let rounded = floor::Rounded::new(original.source, &plan);
            let c = forward_metrics(
                &rounded,
                "format floor",
                reference_logits,
                prompts,
                progress,
            )?;
            forward_positions += c.run;
            Some(c.all)
        }
    };
    let mut failures = Vec::new();
    for d in &hyperparameters {
        failures.push(format!(
            "hyperparameter {d} (original vs variant; a runtime reads the variant's)"
        ));
    }
    if let Some(m) = &metadata {
        for d in &m.differences {
            failures.push(format!("metadata {d}"));
        }
    }
    for w in &weights {
        failures.extend(w.failures());
    }
    let (gate, logits_pass, logit_failures) =
        judge_logits(&metrics, lossless, floor.as_ref(), rules);
    failures.extend(logit_failures);
    let passed_by = match logits_pass {
        _ if !failures.is_empty() => None,
        Some(PassedBy::Identical) if logits_by_weights => Some(PassedBy::IdenticalByWeights),
        by => by,
    };
    Ok(VariantResult {
        name: variant.name.clone(),
        format: variant.format.clone(),
        metrics,
        per_prompt,
        weights,
        lossless,
        logits_by_weights,
        floor,
        floor_by_weights,
        forward_positions,
        metadata,
        gate,
        passed_by,
        failures,
    })
}

/// The logits' verdict (steps 4 and 5 of the module docs): the gate applied to a lossy variant,
/// how the logits pass, and why they fail. `floor` is the format floor's metrics, when it was run
/// (only when [`Rules::floor_allowed`]). Non-finite logits fail whatever the gates.
pub fn judge_logits(
    metrics: &Metrics,
    lossless: bool,
    floor: Option<&Metrics>,
    rules: Rules,
) -> (Option<Gate>, Option<PassedBy>, Vec<String>) {
    let mut failures = Vec::new();
    if metrics.nonfinite > 0 {
        failures.push(format!("{} non-finite logits", metrics.nonfinite));
    }
    if lossless {
        if metrics.max_abs != 0.0 {
            failures.push(format!(
                "weights identical to the original but logits differ (max |Δ| = {:.3e})",
                metrics.max_abs
            ));
        }
        let pass = failures.is_empty().then_some(PassedBy::Identical);
        return (None, pass, failures);
    }
    let floor = floor.filter(|_| rules.floor_allowed());
    let tolerance = rules.tolerance;
    let within = |g: &Gate| metrics.kld_mean <= g.kld_mean && metrics.top1 >= g.top1;
    let plain = Gate {
        kld_mean: tolerance.kld_mean,
        top1: tolerance.top1,
        from_floor: false,
    };
    let relaxed = floor.map(|f| Gate {
        kld_mean: tolerance.kld_mean.max(FLOOR_KLD_FACTOR * f.kld_mean),
        top1: tolerance.top1.min(f.top1 - FLOOR_TOP1_SLACK),
        from_floor: true,
    });
    let (applied, pass) = if within(&plain) {
        (plain, Some(PassedBy::Gates))
    } else if let Some(r) = relaxed.filter(within) {
        (r, Some(PassedBy::FormatFloor))
    } else {
        (relaxed.unwrap_or(plain), None)
    };
    let why = |what: String, floor_value: Option<f64>| match floor_value {
        Some(v) => format!("{what} (gate: the tolerance or the format floor's {v:.3e})"),
        None => what,
    };
    if metrics.kld_mean.is_nan() || metrics.kld_mean > applied.kld_mean {
        failures.push(why(
            format!(
                "mean KLD {:.3e} > {:.3e}",
                metrics.kld_mean, applied.kld_mean
            ),
            floor.map(|f| f.kld_mean),
        ));
    }
    if metrics.top1.is_nan() || metrics.top1 < applied.top1 {
        failures.push(why(
            format!("top-1 agreement {:.4} < {:.4}", metrics.top1, applied.top1),
            floor.map(|f| f.top1),
        ));
    }
    let pass = pass.filter(|_| failures.is_empty());
    (Some(applied), pass, failures)
}

/// Errors naming every variant that is another model than the original (checked before any
/// forward pass, so a wrong one fails at once).
pub fn check_same_model(
    original: &Subject<'_>,
    variants: &[Subject<'_>],
) -> Result<(), VerifyError> {
    for v in variants {
        ensure_same_model(original, v)?;
    }
    Ok(())
}

/// What the logits cache did for the original's logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheUse {
    /// No cache given: computed.
    None,
    /// Read from the cache: no forward pass.
    Hit,
    /// Computed and stored.
    Stored,
    /// Computed; storing them failed (warned).
    NotStored,
}

impl CacheUse {
    /// `read from` or `stored in` (the cache file), `None` when the cache was not used.
    pub fn verb(self) -> Option<&'static str> {
        match self {
            CacheUse::Hit => Some("read from"),
            CacheUse::Stored => Some("stored in"),
            CacheUse::None | CacheUse::NotStored => None,
        }
    }
}

/// The original's logits ([`original_logits`]), read from `cache` under `key` when it holds
/// them, else computed and stored there. A cache file that is not a whole entry for this key
/// and these prompts is never trusted: `warn` is told why and the logits are computed (and the
/// file replaced). Failing to store them is a warning too: the verification does not need the
/// cache.
pub fn original_logits_cached(
    original: &dyn WeightSource,
    prompts: &[Prompt],
    cache: Option<(&logits_cache::LogitsCache, &logits_cache::CacheKey)>,
    progress: &dyn Progress,
    warn: &dyn Fn(&str),
) -> Result<(Vec<Vec<f32>>, CacheUse), VerifyError> {
    let vocab = original.config().vocab_size;
    let Some((cache, key)) = cache else {
        return Ok((
            original_logits(original, prompts, progress)?,
            CacheUse::None,
        ));
    };
    match cache.load(key, prompts, vocab) {
        logits_cache::Lookup::Hit(logits) => return Ok((logits, CacheUse::Hit)),
        logits_cache::Lookup::Miss => {}
        logits_cache::Lookup::Ignored(why) => warn(&format!(
            "warning: logits cache {} ignored: {why}; the original's logits are computed again",
            cache.path(key).display()
        )),
    }
    let logits = original_logits(original, prompts, progress)?;
    Ok(match cache.store(key, prompts, vocab, &logits) {
        Ok(()) => (logits, CacheUse::Stored),
        Err(e) => {
            warn(&format!(
                "warning: the original's logits could not be stored in {}: {}",
                cache.dir().display(),
                convert::error::chain(&e)
            ));
            (logits, CacheUse::NotStored)
        }
    })
}

/// Verifies every variant against the original.
pub fn verify(
    original: &Subject<'_>,
    variants: &[Subject<'_>],
    prompts: &[Prompt],
    rules: Rules,
    progress: &dyn Progress,
) -> Result<Report, VerifyError> {
    check_same_model(original, variants)?;
    let reference_logits = original_logits(original.source, prompts, progress)?;
    verify_with_logits(
        original,
        &reference_logits,
        variants,
        prompts,
        rules,
        progress,
    )
}

/// [`verify`] given the original's logits for `prompts` (computed once, or read from a cache).
pub fn verify_with_logits(
    original: &Subject<'_>,
    reference_logits: &[Vec<f32>],
    variants: &[Subject<'_>],
    prompts: &[Prompt],
    rules: Rules,
    progress: &dyn Progress,
) -> Result<Report, VerifyError> {
    check_same_model(original, variants)?;
    let mut results = Vec::with_capacity(variants.len());
    for v in variants {
        results.push(verify_variant(
            original,
            reference_logits,
            v,
            prompts,
            rules,
            progress,
        )?);
    }
    Ok(Report {
        original: original.name.clone(),
        original_format: original.format.clone(),
        prompts: prompts
            .iter()
            .map(|p| (p.name.clone(), p.tokens.len()))
            .collect(),
        rules,
        variants: results,
    })
}

/// The last path component, for progress labels.
fn short(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map_or_else(|| path.to_string(), |f| f.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_parsing() {
        assert_eq!(
            Tolerance::parse("kld=0.01,top1=0.95").unwrap(),
            Tolerance {
                kld_mean: 0.01,
                top1: 0.95
            }
        );
        assert_eq!(
            Tolerance::parse("top1=0.5").unwrap().kld_mean,
            Tolerance::default().kld_mean
        );
        assert!(Tolerance::parse("top1=1.5").is_err());
        assert!(Tolerance::parse("foo=1").is_err());
        assert!(Tolerance::parse("kld").is_err());
    }

    fn metrics(kld_mean: f64, top1: f64) -> Metrics {
        Metrics {
            positions: 100,
            max_abs: 1.0,
            nmse: 1e-3,
            kld_mean,
            kld_p99: kld_mean,
            kld_max: kld_mean,
            top1,
            top5_overlap: top1,
            argmax_changed: 0,
            nonfinite: 0,
        }
    }

    #[test]
    fn verdicts_say_how_they_were_reached() {
        let floor = metrics(7.16e-2, 0.796);
        let q8 = metrics(7.2e-2, 0.80);
        // Default gates: outside them, within the floor's relaxation.
        let (gate, by, f) = judge_logits(&q8, false, Some(&floor), Rules::default());
        assert_eq!(by, Some(PassedBy::FormatFloor), "{f:?}");
        let g = gate.unwrap();
        assert!(g.from_floor && (g.kld_mean - 1.5 * 7.16e-2).abs() < 1e-12);
        assert!((g.top1 - 0.776).abs() < 1e-12);
        // Within the default gates: `gates`, and the gate is the tolerance.
        let good = metrics(1e-3, 0.95);
        let (gate, by, _) = judge_logits(&good, false, Some(&floor), Rules::default());
        assert_eq!(
            (by, gate.unwrap().from_floor),
            (Some(PassedBy::Gates), false)
        );
        // --tolerance kld=0.001,top1=0.99: applied as given, the floor never relaxes it.
        let tight = Rules::new(Tolerance::parse("kld=0.001,top1=0.99").ok(), false);
        let (gate, by, f) = judge_logits(&q8, false, Some(&floor), tight);
        assert_eq!(by, None);
        assert_eq!(gate.unwrap().kld_mean, 0.001);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].starts_with("mean KLD 7.200e-2 > 1.000e-3") && !f[0].contains("floor"));
        // --strict: the default gates, not relaxed.
        let (gate, by, _) = judge_logits(&q8, false, Some(&floor), Rules::new(None, true));
        assert_eq!((by, gate.unwrap().kld_mean), (None, 5e-3));
        // Lossless: identical logits or nothing.
        let mut same = metrics(0.0, 1.0);
        same.max_abs = 0.0;
        let (gate, by, _) = judge_logits(&same, true, None, Rules::default());
        assert_eq!((gate, by), (None, Some(PassedBy::Identical)));
        // Non-finite logits fail whatever the gates.
        let mut nan = good;
        nan.nonfinite = 3;
        assert_eq!(judge_logits(&nan, false, None, Rules::default()).1, None);
    }

    #[test]
    fn the_floor_applies_only_to_the_default_gates_without_strict() {
        assert!(Rules::default().floor_allowed());
        assert!(!Rules::new(None, true).floor_allowed());
        // Gates given explicitly are applied as given, even when they equal the defaults.
        let r = Rules::new(Some(Tolerance::default()), false);
        assert!(r.explicit && !r.floor_allowed());
        assert_eq!(r.tolerance, Tolerance::default());
    }

    /// A source whose every weight fails to read.
    struct Unreadable(reference::Config);

    impl WeightSource for Unreadable {
        fn config(&self) -> &reference::Config {
            &self.0
        }
        fn weight(
            &self,
            _: reference::WeightId,
        ) -> Result<reference::MatRef<'_>, reference::SourceError> {
            Err(Box::new(convert::ConvertError::tensor(
                "/m/model.safetensors",
                "model.embed_tokens.weight",
                "simulated",
            )))
        }
    }

    #[test]
    fn read_errors_keep_their_source_and_name_the_model() {
        use std::error::Error as _;
        let cfg = reference::Config::from_hf_json(&convert::synth::preset_config(
            convert::synth::Preset::Tiny,
            Some(1),
        ))
        .unwrap();
        let e = original_logits(&Unreadable(cfg), &[], &convert::variant::NoProgress)
            .unwrap_err()
            .naming("gpt-oss-x");
        assert_eq!(e.to_string(), "gpt-oss-x");
        // model: weight (whichever the forward pass asked for first): the source's error.
        let chain = convert::error::chain(&e);
        let (model, rest) = chain.split_once(": ").unwrap();
        assert_eq!(model, "gpt-oss-x");
        assert!(
            rest.ends_with(": /m/model.safetensors: tensor `model.embed_tokens.weight`: simulated")
                && rest.matches("simulated").count() == 1,
            "{chain}"
        );
        let source = e
            .source()
            .and_then(|s| s.downcast_ref::<reference::ReferenceError>());
        assert!(matches!(
            source,
            Some(reference::ReferenceError::Source { .. })
        ));
    }
}
