//! `pipeline`: convert a checkpoint into every requested variant, verify each one, and publish
//! them with checksums, a manifest and model cards. `check`: re-hash a published directory.
//!
//! Output directory:
//!
//! | path | what |
//! |---|---|
//! | `<variant>/` | one directory per variant: the GGUF file(s) or the safetensors files, and `README.md` (model card) |
//! | `verify.json` | the verification report of every variant (as `oss-forge verify --json`) |
//! | `manifest.json` | tool version, input files with sha256, each variant's settings, files, sizes, sha256 and metrics |
//! | `SHA256SUMS` | every file above but the manifest, `sha256sum -c` format |
//!
//! Paths inside the reports are relative to the output directory and no timestamps are
//! written, so the same inputs give byte-identical outputs. The manifest is rewritten after
//! each variant: a run that is interrupted resumes where it stopped, skipping variants whose
//! files still match the checksums the manifest recorded for the same inputs and settings.

use crate::card::{CardInput, model_card};
use crate::prompts::Prompt;
use crate::report::{
    ModelJson, PromptLenJson, ReportJson, ToleranceJson, VariantJson, to_pretty_json, variant_json,
};
use crate::{Rules, Subject, VerifyError};
use convert::publish::{sha256_file_with, write_atomic};
use convert::runtime::RuntimeMeta;
use convert::{AnyModel, ConvertOptions, ConvertReport, Progress, Variant};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Manifest file name.
pub const MANIFEST: &str = "manifest.json";
/// Checksum file name.
pub const SUMS: &str = "SHA256SUMS";
/// Report file name.
pub const REPORT: &str = "verify.json";
/// The repository's model card (the Hub shows it on the repository's page).
pub const README: &str = "README.md";

/// What to do.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    /// Variants, in order.
    pub variants: Vec<Variant>,
    /// How lossy variants are judged.
    pub rules: Rules,
    /// Conversion settings. `force` (`pipeline --force`) lets the run replace the variants an
    /// earlier run made from other inputs, and write into a directory holding other files;
    /// without it both are refused and nothing is removed.
    pub convert: ConvertOptions,
    /// The name on the outputs (GGUF file names, card titles); default
    /// [`convert::naming::model_name`].
    pub name: Option<String>,
    /// The Hub `base_model` of the cards; default [`convert::naming::base_model`].
    pub base_model: Option<String>,
    /// Where to keep the original's logits between runs ([`crate::logits_cache`]); `None`: they
    /// are computed once per run (shared by every variant of the run).
    pub logits_cache: Option<PathBuf>,
}

/// A file as the manifest lists it: path relative to the output directory (`/`-separated),
/// size and sha256 (lowercase hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative path.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// sha256, lowercase hex.
    pub sha256: String,
}

/// The conversion settings of a variant in the manifest: a resumed run redoes a variant whose
/// settings changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Settings {
    /// A safetensors variant.
    Safetensors(SafetensorsSettings),
    /// A GGUF variant.
    Gguf(GgufSettings),
}

/// Settings of a safetensors variant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetensorsSettings {
    /// Largest shard in bytes.
    pub max_shard_size: u64,
    /// `--int8-dense` (int8 variant only; false for the others).
    pub int8_dense: bool,
}

/// Settings of a GGUF variant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GgufSettings {
    /// Largest split in bytes (`null`: one file).
    pub split_max_size: Option<u64>,
    /// `--truncate-vocab` (written only when set, so manifests without it read as `false`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncate_vocab: bool,
}

impl Settings {
    /// The settings `o` gives variant `v`.
    pub fn of(v: Variant, o: &ConvertOptions) -> Settings {
        if v.is_gguf() {
            Settings::Gguf(GgufSettings {
                split_max_size: o.split_max_bytes,
                truncate_vocab: o.truncate_vocab,
            })
        } else {
            Settings::Safetensors(SafetensorsSettings {
                max_shard_size: o.max_shard_bytes.unwrap_or(5_000_000_000),
                int8_dense: v == Variant::SafetensorsInt8 && o.int8_dense,
            })
        }
    }
}

/// A prompt with its token ids, as the manifest records the inputs of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokens {
    /// The prompt's name.
    pub name: String,
    /// Its token ids.
    pub tokens: Vec<u32>,
}

/// The tool that wrote a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolJson {
    /// `oss-forge`.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// The source checkpoint of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceJson {
    /// The model's name ([`model_name`]).
    pub name: String,
    /// Its format.
    pub format: String,
    /// Parameter count.
    pub parameters: u64,
    /// Decoder layers.
    pub layers: usize,
    /// Experts per layer.
    pub experts: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// The checkpoint's files with their hashes.
    pub files: Vec<FileEntry>,
}

/// One variant in the manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The variant's name.
    pub variant: String,
    /// Its conversion settings.
    pub settings: Settings,
    /// Its files, model card included.
    pub files: Vec<FileEntry>,
    /// Their total size.
    pub bytes: u64,
    /// Values the conversion stored inexactly (`count what (max abs error)`).
    pub inexact: Vec<String>,
    /// Warnings of the conversion.
    pub warnings: Vec<String>,
    /// Its verification, as in `verify.json`.
    pub verification: VariantJson,
}

/// `manifest.json`: what was made from what, rewritten after each variant so that an
/// interrupted run resumes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The tool.
    pub tool: ToolJson,
    /// The source checkpoint.
    pub source: SourceJson,
    /// The prompts verified with.
    pub prompts: Vec<PromptTokens>,
    /// The gates for lossy variants and whether the format floor may relax them.
    pub tolerance: ToleranceJson,
    /// The variants done so far, in order.
    pub variants: Vec<ManifestEntry>,
    /// Every variant so far passed.
    pub pass: bool,
    /// The repository's `README.md` as this tool last wrote it (absent in manifests written
    /// before it existed): a README whose hash differs was edited, and is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readme: Option<FileEntry>,
    /// The Hub `base_model` the cards name (absent in manifests written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model: Option<String>,
}

impl Manifest {
    /// Reads `dir`'s manifest; `None` when it is absent or not one this tool writes.
    pub fn read(dir: &Path) -> Option<Manifest> {
        let text = std::fs::read_to_string(dir.join(MANIFEST)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Adds a variant's entry, replacing an entry of the same variant; entries stay in
    /// [`Variant::ALL`] order, so the bytes do not depend on which run added which.
    pub fn push(&mut self, entry: ManifestEntry) {
        self.variants.retain(|e| e.variant != entry.variant);
        self.variants.push(entry);
        let rank = |e: &ManifestEntry| {
            Variant::ALL
                .iter()
                .position(|v| v.name() == e.variant)
                .unwrap_or(usize::MAX)
        };
        self.variants.sort_by_key(rank);
        self.pass = self.variants.iter().all(|e| e.verification.pass);
    }

    /// Writes it to `dir` (atomically).
    pub fn write(&self, dir: &Path) -> Result<(), VerifyError> {
        write_atomic(&dir.join(MANIFEST), to_pretty_json(self).as_bytes())?;
        Ok(())
    }
}

/// One variant's outcome.
#[derive(Clone, Debug)]
pub struct VariantOutcome {
    /// The variant.
    pub variant: Variant,
    /// Files, model card included.
    pub files: Vec<FileEntry>,
    /// Verification, as in the JSON report.
    pub verification: VariantJson,
    /// Taken from a previous run whose files still matched.
    pub reused: bool,
    /// Not named in this run: listed as an earlier run (or a merged directory) left it.
    pub kept: bool,
}

impl VariantOutcome {
    /// Passed verification.
    pub fn passed(&self) -> bool {
        self.verification.pass
    }
}

/// The outcome of a pipeline run.
#[derive(Clone, Debug)]
pub struct PipelineOutcome {
    /// Output directory.
    pub out: PathBuf,
    /// Per variant.
    pub variants: Vec<VariantOutcome>,
}

impl PipelineOutcome {
    /// Every variant passed.
    pub fn passed(&self) -> bool {
        self.variants.iter().all(VariantOutcome::passed)
    }
}

/// A small file (a card, a report) with its size and hash, as the manifest lists it. Read
/// whole and hashed without a cancellation point: publishing finishes even after Ctrl-C, so
/// that what is done stays listed.
fn file_entry(root: &Path, rel: &str) -> Result<FileEntry, VerifyError> {
    let bytes = convert::publish::read_small(&root.join(rel))?;
    Ok(FileEntry {
        path: rel.to_string(),
        bytes: bytes.len() as u64,
        sha256: convert::publish::sha256_bytes(&bytes),
    })
}

fn file_entry_with(
    root: &Path,
    rel: &str,
    progress: &dyn Progress,
) -> Result<FileEntry, VerifyError> {
    let p = root.join(rel);
    let bytes = std::fs::metadata(&p)
        .map_err(|e| convert::ConvertError::io(&p, e))?
        .len();
    Ok(FileEntry {
        path: rel.to_string(),
        bytes,
        sha256: sha256_file_with(&p, progress)?,
    })
}

/// Regular, non-hidden files of `dir` (recursively), as sorted paths relative to `root`.
fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), VerifyError> {
    walk_files(root, dir, false, out)
}

/// Files under `dir` as paths relative to `root` with `/` separators, sorted; hidden entries
/// only when `hidden`, and then a temporary (`.x.partial-<pid>`, a file or a directory, empty
/// or not) as one entry.
fn walk_files(
    root: &Path,
    dir: &Path,
    hidden: bool,
    out: &mut Vec<String>,
) -> Result<(), VerifyError> {
    let entries = std::fs::read_dir(dir).map_err(|e| convert::ConvertError::io(dir, e))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if !hidden
            && p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        let temporary = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains(".partial-"));
        if p.is_dir() && !(hidden && temporary) {
            walk_files(root, &p, hidden, out)?;
        } else if p.is_file() || (hidden && temporary) {
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .replace('\\', "/");
            out.push(rel);
        }
    }
    Ok(())
}

/// Hashes files (in parallel: the inputs of a 120b run are 65 GB), as one progress phase.
fn hash_files(
    root: &Path,
    rels: &[String],
    label: &str,
    progress: &dyn Progress,
) -> Result<Vec<FileEntry>, VerifyError> {
    let total = rels
        .iter()
        .map(|r| std::fs::metadata(root.join(r)).map_or(0, |m| m.len()))
        .sum();
    progress.begin(label, total);
    let r = rels
        .par_iter()
        .map(|r| file_entry_with(root, r, progress))
        .collect();
    progress.end();
    r
}

/// The model's name: [`convert::naming::model_name`] (the directory's name, the release
/// directory of an `original/` folder, the repository of a Hugging Face cache snapshot).
pub fn model_name(path: &Path) -> String {
    convert::naming::model_name(path)
}

/// The file name of a GGUF variant: `NAME-MXFP4.gguf`, `NAME-Q8_0.gguf`, ...
pub fn gguf_file_name(model: &str, v: Variant) -> String {
    convert::naming::gguf_file_name(model, v.storage().file_suffix)
}

fn inexact_notes(r: &ConvertReport) -> Vec<String> {
    r.inexact
        .iter()
        .map(|i| {
            format!(
                "{} {} (max abs error {:.3e})",
                i.count, i.what, i.max_abs_error
            )
        })
        .collect()
}

/// True when a previous run's entry was verified by this version's rules (its report has the
/// metadata check; entries of older versions are redone) and its files (the card aside: an
/// output, edited freely) are all still there with the same hashes. Under `--force-forward`
/// ([`Rules::force_forward`]), an entry whose verification skipped a forward pass (known from
/// the weights) is redone too, so every pass is run.
#[cfg(test)]
fn reusable(out: &Path, entry: &ManifestEntry, rules: Rules) -> bool {
    reusable_with(out, entry, rules, "", &convert::variant::NoProgress)
}

/// [`reusable`], the bytes hashed reported to `progress` as the phase `label`.
fn reusable_with(
    out: &Path,
    entry: &ManifestEntry,
    rules: Rules,
    label: &str,
    progress: &dyn Progress,
) -> bool {
    let skipped =
        entry.verification.logits_by_weights || entry.verification.format_floor_by_weights;
    entry.verification.metadata.is_some()
        && !(rules.force_forward && skipped)
        && still_valid(
            out,
            &without_card(&entry.files, &entry.variant),
            label,
            progress,
        )
}

/// True when the files of a previous run's entry are all still there with the same hashes.
fn still_valid(out: &Path, files: &[FileEntry], label: &str, progress: &dyn Progress) -> bool {
    let total = files.iter().map(|f| f.bytes).sum();
    progress.begin(label, total);
    let ok = !files.is_empty()
        && files.par_iter().all(|f| {
            let path = out.join(&f.path);
            std::fs::metadata(&path).is_ok_and(|m| m.len() == f.bytes)
                && sha256_file_with(&path, progress).is_ok_and(|x| x == f.sha256)
        });
    progress.end();
    ok
}

/// A variant's model card path, relative to the output directory.
fn card_rel(v: &str) -> String {
    format!("{v}/README.md")
}

/// An entry's files without its model card: what the resume check compares (a card is an
/// output, edited freely).
fn without_card(files: &[FileEntry], v: &str) -> Vec<FileEntry> {
    let card = card_rel(v);
    files.iter().filter(|f| f.path != card).cloned().collect()
}

/// What a model card is written from.
struct CardFacts<'a> {
    name: &'a str,
    base_model: &'a str,
    cfg: &'a reference::Config,
    tolerance: &'a ToleranceJson,
}

/// Writes (or keeps) the card of `v` and returns its entry. For a variant kept from an
/// earlier run (`recorded`: the card's entry then), an existing card whose hash is not the
/// recorded one was edited by someone: it is kept as it is. Otherwise (and always for a
/// variant just converted, `recorded` `None`, whose writer may have left a card of its own)
/// it is written from the facts, so a new `--name` or `--base-model` reaches it.
#[allow(clippy::too_many_arguments)]
fn write_card(
    out: &Path,
    facts: &CardFacts<'_>,
    v: Variant,
    files: &[FileEntry],
    verification: &VariantJson,
    inexact: &[String],
    warnings: &[String],
    recorded: Option<&FileEntry>,
    log: &dyn Fn(&str),
) -> Result<FileEntry, VerifyError> {
    let rel = card_rel(v.name());
    let path = out.join(&rel);
    if let Some(recorded) = recorded
        && path.is_file()
    {
        let now = file_entry(out, &rel)?;
        if recorded.sha256 != now.sha256 {
            log(&format!("{v}: keeping the edited model card {rel}"));
            return Ok(now);
        }
    }
    let card = model_card(&CardInput {
        model_name: facts.name,
        base_model: facts.base_model,
        variant: v,
        config: facts.cfg,
        files,
        verification,
        tolerance: facts.tolerance,
        inexact,
        warnings,
    });
    write_atomic(&path, card.as_bytes())?;
    file_entry(out, &rel)
}

/// Writes what a published directory holds besides the variants, from `manifest`:
/// `manifest.json`, `verify.json`, the repository's `README.md` (unless it was edited since
/// this tool wrote it) and `SHA256SUMS` listing every file but the manifest.
pub fn publish(out: &Path, manifest: &mut Manifest) -> Result<(), VerifyError> {
    let readme = out.join(README);
    let edited = match (&manifest.readme, readme.is_file()) {
        (_, false) => false,
        (None, true) => true,
        (Some(r), true) => file_entry(out, README)?.sha256 != r.sha256,
    };
    if !edited {
        write_atomic(&readme, crate::card::repo_card(manifest).as_bytes())?;
    }
    manifest.readme = Some(file_entry(out, README)?);
    manifest.write(out)?;
    let report = ReportJson::new(
        ModelJson {
            path: manifest.source.name.clone(),
            format: manifest.source.format.clone(),
        },
        manifest
            .prompts
            .iter()
            .map(|p| PromptLenJson {
                name: p.name.clone(),
                tokens: p.tokens.len(),
            })
            .collect(),
        manifest.tolerance.clone(),
        manifest
            .variants
            .iter()
            .map(|e| e.verification.clone())
            .collect(),
    );
    let report = to_pretty_json(&report);
    write_atomic(&out.join(REPORT), report.as_bytes())?;
    let mut listed: Vec<(String, String)> = manifest
        .variants
        .iter()
        .flat_map(|e| e.files.iter().map(|f| (f.path.clone(), f.sha256.clone())))
        .collect();
    listed.push((
        REPORT.to_string(),
        convert::publish::sha256_bytes(report.as_bytes()),
    ));
    listed.extend(
        manifest
            .readme
            .iter()
            .map(|r| (r.path.clone(), r.sha256.clone())),
    );
    listed.sort();
    listed.dedup();
    let mut sums = String::new();
    for (p, h) in listed {
        sums.push_str(&format!("{h}  {p}\n"));
    }
    write_atomic(&out.join(SUMS), sums.as_bytes())?;
    Ok(())
}

/// What differs between an earlier run's manifest and this run's: the name, the checkpoint's
/// files (those added, removed or changed, by name), its hyperparameters, the prompts, the
/// tolerance.
fn differences(old: &Manifest, new: &Manifest) -> Vec<String> {
    let (a, b) = (&old.source, &new.source);
    let mut out = Vec::new();
    if a.name != b.name {
        out.push(format!("name `{}`, now `{}`", a.name, b.name));
    }
    let mut files: Vec<&str> = a
        .files
        .iter()
        .filter(|f| !b.files.contains(f))
        .chain(b.files.iter().filter(|f| !a.files.contains(f)))
        .map(|f| f.path.as_str())
        .collect();
    files.sort();
    files.dedup();
    if !files.is_empty() {
        let shown: Vec<&str> = files.iter().take(4).copied().collect();
        out.push(format!(
            "checkpoint files added, removed or changed: {}{}",
            shown.join(", "),
            if files.len() > shown.len() {
                ", …"
            } else {
                ""
            }
        ));
    }
    if (&a.format, a.parameters, a.layers, a.experts, a.vocab_size)
        != (&b.format, b.parameters, b.layers, b.experts, b.vocab_size)
    {
        out.push("another model (format or hyperparameters)".into());
    }
    if old.prompts != new.prompts {
        out.push("other prompts".into());
    }
    if old.tolerance != new.tolerance {
        out.push("another tolerance".into());
    }
    if out.is_empty() {
        out.push("an earlier version's manifest".into());
    }
    out
}

/// Refuses an output directory inside another pipeline output (one with a `manifest.json`
/// this tool wrote): that one's `check` would find these files unlisted.
fn refuse_nested(out: &Path) -> Result<(), VerifyError> {
    refuse_in_published(out, false)
}

/// Refuses a path that is inside a pipeline output (a directory with this tool's
/// `manifest.json`) or, with `itself`, is one: a file written there would replace a published,
/// checksummed one or sit unlisted beside them, and that output's `check` would fail. For
/// `convert`, whose output never belongs in a published directory (`pipeline` writes those).
pub fn refuse_in_published(out: &Path, itself: bool) -> Result<(), VerifyError> {
    let abs = convert::output::absolute(out);
    for a in abs.ancestors().skip(usize::from(!itself)) {
        if Manifest::read(a).is_some() {
            return Err(convert::ConvertError::format(
                out,
                format!(
                    "{} the pipeline output {}, whose `check` would then fail (files it does not list or that changed); choose an output outside it",
                    if a == abs { "is" } else { "is inside" },
                    a.display()
                ),
            )
            .into());
        }
    }
    Ok(())
}

/// Refuses an existing directory holding files that no pipeline run made (no `manifest.json`):
/// they would sit unlisted beside the published ones.
fn refuse_foreign(out: &Path) -> Result<(), VerifyError> {
    if !out.is_dir() || out.join(MANIFEST).is_file() {
        return Ok(());
    }
    let mut others: Vec<String> = std::fs::read_dir(out)
        .map_err(|e| convert::ConvertError::io(out, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    others.sort();
    Err(convert::ConvertError::format(
        out,
        format!(
            "holds files no pipeline run made ({}{}), which `check` would report as unlisted: choose an empty or new directory, or pass --force to write beside them",
            others.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
            if others.len() > 3 { ", …" } else { "" }
        ),
    )
    .into())
}

/// The outcome of an entry listed without being redone.
fn outcome_of(entry: &ManifestEntry, reused: bool) -> Option<VariantOutcome> {
    Some(VariantOutcome {
        variant: Variant::parse(&entry.variant)?,
        files: entry.files.clone(),
        verification: entry.verification.clone(),
        reused,
        kept: !reused,
    })
}

/// The checkpoint `pipeline` publishes from `src`: a release checkpoint, an `original/` folder
/// or a dense fine-tune (a safetensors directory); a GGUF is refused. Callers check this
/// first, before anything else is said about the source.
pub fn pipeline_source<'a>(
    src: &'a AnyModel,
    model_path: &Path,
) -> Result<&'a convert::Checkpoint, VerifyError> {
    match src {
        AnyModel::Safetensors(c) => Ok(c),
        AnyModel::Gguf(_) => Err(convert::ConvertError::format(
            model_path,
            "pipeline converts a release checkpoint (a safetensors directory)",
        )
        .into()),
    }
}
/// Runs the pipeline. `log` receives one line per step; conversion and hashing progress is
/// in bytes, verification progress in tokens and weights.
///
/// The output directory is locked for the run ([`convert::lock`]). Variants of an earlier run
/// into the same directory (same inputs, name, prompts and tolerance) that are not named now
/// stay listed; named ones whose files still match are kept, the others (re)done. What the
/// directory lists is published after every variant, so a run that stops (an error, Ctrl-C)
/// leaves a checkable directory of the variants it finished.
pub fn run(
    model_path: &Path,
    out: &Path,
    prompts: &[Prompt],
    opts: &PipelineOptions,
    convert_progress: &dyn Progress,
    verify_progress: &dyn Progress,
    log: &dyn Fn(&str),
) -> Result<PipelineOutcome, VerifyError> {
    let src = AnyModel::open(model_path)?;
    let ckpt = pipeline_source(&src, model_path)?;
    convert::output::refuse_overlap(&convert::output::inputs(&src), out)?;
    let _lock = convert::lock::OutputLock::acquire(out)?;
    let name = opts
        .name
        .clone()
        .unwrap_or_else(|| convert::naming::model_name(model_path));
    let base_model = opts
        .base_model
        .clone()
        .unwrap_or_else(|| convert::naming::base_model(model_path));
    let src_dir = ckpt.dir().to_path_buf();
    refuse_nested(out)?;
    if !opts.convert.force {
        refuse_foreign(out)?;
    }
    std::fs::create_dir_all(out).map_err(|e| convert::ConvertError::io(out, e))?;

    // What the outputs are made from: the weights, their index and the files runtimes read
    // (config, tokenizer, chat template); a README or LICENSE beside them is not an input.
    let entries =
        std::fs::read_dir(&src_dir).map_err(|e| convert::ConvertError::io(&src_dir, e))?;
    let mut input_rels: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .filter(|n| {
            n.ends_with(".safetensors")
                || n.ends_with(".safetensors.index.json")
                || convert::runtime::FILES.contains(&n.as_str())
        })
        .collect();
    input_rels.sort();
    log(&format!("hashing the inputs in {}", src_dir.display()));
    let inputs = hash_files(
        &src_dir,
        &input_rels,
        "hashing the inputs",
        convert_progress,
    )?;
    let prompt_tokens: Vec<PromptTokens> = prompts
        .iter()
        .map(|p| PromptTokens {
            name: p.name.clone(),
            tokens: p.tokens.clone(),
        })
        .collect();
    let tolerance = ToleranceJson::from(opts.rules);
    let cfg = src.source().config().clone();
    let mut manifest = Manifest {
        tool: ToolJson {
            name: "oss-forge".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        source: SourceJson {
            name: name.clone(),
            format: src.format_name(),
            parameters: cfg.parameter_count(),
            layers: cfg.num_hidden_layers,
            experts: cfg.num_local_experts,
            vocab_size: cfg.vocab_size,
            files: inputs,
        },
        prompts: prompt_tokens,
        tolerance,
        variants: Vec::new(),
        pass: true,
        readme: None,
        base_model: Some(base_model.clone()),
    };
    let mut outcomes: Vec<VariantOutcome> = Vec::new();
    match Manifest::read(out) {
        Some(m)
            if m.source == manifest.source
                && m.prompts == manifest.prompts
                && m.tolerance == manifest.tolerance =>
        {
            manifest.readme = m.readme;
            for e in m.variants {
                let named = opts.variants.iter().any(|v| v.name() == e.variant);
                if !named && let Some(o) = outcome_of(&e, false) {
                    log(&format!(
                        "{}: kept from an earlier run (not named in --variants)",
                        e.variant
                    ));
                    outcomes.push(o);
                }
                manifest.push(e);
            }
        }
        Some(m) => {
            // Made from other inputs (checkpoint, name, prompts or tolerance): stale, replaced
            // only when asked.
            let what = differences(&m, &manifest).join("; ");
            if !opts.convert.force {
                return Err(convert::ConvertError::format(
                    out,
                    format!(
                        "holds variants an earlier run made from other inputs ({what}); nothing was removed: pass --force to replace them, or choose another output directory"
                    ),
                )
                .into());
            }
            log(&format!(
                "--force: replacing what an earlier run made from other inputs ({what})"
            ));
            for e in &m.variants {
                let dir = out.join(&e.variant);
                if Variant::parse(&e.variant).is_some() && dir.is_dir() {
                    log(&format!(
                        "{}: removed, made by an earlier run from other inputs (checkpoint, name, prompts or tolerance)",
                        e.variant
                    ));
                    std::fs::remove_dir_all(&dir)
                        .map_err(|err| convert::ConvertError::io(&dir, err))?;
                }
            }
            manifest.readme = m.readme;
        }
        None => {}
    }
    let previous = manifest.variants.clone();

    let tolerance_json = manifest.tolerance.clone();
    let facts = CardFacts {
        name: &name,
        base_model: &base_model,
        cfg: &cfg,
        tolerance: &tolerance_json,
    };
    let original_meta = RuntimeMeta::read(&src);
    let original = Subject {
        name: name.clone(),
        format: src.format_name(),
        source: src.source(),
        meta: Some(&original_meta),
    };
    let mut reference_logits: Option<Vec<Vec<f32>>> = None;
    // Set once a variant's directory is being (re)made: an error from then on removes it.
    let started = std::cell::Cell::new(false);
    let mut step = |v: Variant,
                    manifest: &mut Manifest,
                    outcomes: &mut Vec<VariantOutcome>|
     -> Result<(), VerifyError> {
        convert::cancel::check(out)?;
        let settings = Settings::of(v, &opts.convert);
        let prior = previous
            .iter()
            .find(|e| e.variant == v.name() && e.settings == settings);
        if let Some(entry) = prior {
            let weights = without_card(&entry.files, v.name());
            let label = format!("checking {v} against the manifest");
            if reusable_with(out, entry, opts.rules, &label, convert_progress) {
                log(&format!(
                    "{v}: up to date (files match the manifest), not redone"
                ));
                let recorded = entry.files.iter().find(|f| f.path == card_rel(v.name()));
                let card = write_card(
                    out,
                    &facts,
                    v,
                    &weights,
                    &entry.verification,
                    &entry.inexact,
                    &entry.warnings,
                    recorded,
                    log,
                )?;
                let mut entry = entry.clone();
                entry.files = weights;
                entry.files.push(card);
                entry.bytes = entry.files.iter().map(|f| f.bytes).sum();
                outcomes.extend(outcome_of(&entry, true));
                manifest.push(entry);
                return publish(out, manifest);
            }
        }
        let dir = out.join(v.name());
        started.set(true);
        manifest.variants.retain(|e| e.variant != v.name());
        manifest.pass = manifest.variants.iter().all(|e| e.verification.pass);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| convert::ConvertError::io(&dir, e))?;
        }
        let target = if v.is_gguf() {
            dir.join(gguf_file_name(&name, v))
        } else {
            dir.clone()
        };
        log(&format!("{v}: converting to {}", target.display()));
        let copts = ConvertOptions {
            force: true,
            ..opts.convert.clone()
        };
        let report = convert::variant::convert(&src, v, &target, &copts, convert_progress)
            .inspect_err(|_| {
                // The converter removed its temporaries; the variant's directory goes too.
                let _ = std::fs::remove_dir_all(&dir);
            })?;
        for w in &report.warnings {
            log(&format!("{v}: warning: {w}"));
        }

        if reference_logits.is_none() {
            // Once per run; with a cache, once per original and prompts across runs.
            let cache = opts.logits_cache.as_ref().map(|dir| {
                let files: Vec<(String, String)> = manifest
                    .source
                    .files
                    .iter()
                    .map(|f| (f.path.clone(), f.sha256.clone()))
                    .collect();
                (
                    crate::logits_cache::LogitsCache::new(dir),
                    crate::logits_cache::CacheKey::new(&files, &cfg, prompts),
                )
            });
            log("running the original over the prompts");
            let (logits, used) = crate::original_logits_cached(
                src.source(),
                prompts,
                cache.as_ref().map(|(c, k)| (c, k)),
                verify_progress,
                log,
            )?;
            if let (Some((c, k)), Some(what)) = (&cache, used.verb()) {
                log(&format!("original's logits {what} {}", c.path(k).display()));
            }
            reference_logits = Some(logits);
        }
        // A split GGUF is opened at its first split (the outputs are in split order).
        let opened_path = if v.is_gguf() {
            report.outputs.first().cloned().unwrap_or(target.clone())
        } else {
            target.clone()
        };
        let opened = AnyModel::open(&opened_path)?;
        let rel_target = opened_path
            .strip_prefix(out)
            .unwrap_or(&opened_path)
            .to_string_lossy()
            .into_owned();
        let variant_meta = RuntimeMeta::read(&opened);
        let subject = Subject {
            name: rel_target,
            format: opened.format_name(),
            source: opened.source(),
            meta: Some(&variant_meta),
        };
        log(&format!("{v}: verifying"));
        let result = crate::verify_variant(
            &original,
            reference_logits.as_deref().unwrap_or_default(),
            &subject,
            prompts,
            opts.rules,
            verify_progress,
        )?;
        drop(opened);
        let verification = variant_json(&result);
        log(&format!(
            "{v}: {}",
            if result.passed() { "PASS" } else { "FAIL" }
        ));

        // Files of the variant before its card, then the card listing them.
        let mut rels = Vec::new();
        list_files(out, &dir, &mut rels)?;
        rels.retain(|r| *r != card_rel(v.name()));
        let mut files = hash_files(out, &rels, &format!("hashing {v}"), convert_progress)?;
        let inexact = inexact_notes(&report);
        let card = write_card(
            out,
            &facts,
            v,
            &files,
            &verification,
            &inexact,
            &report.warnings,
            None,
            log,
        )?;
        files.push(card);
        let entry = ManifestEntry {
            variant: v.name().to_string(),
            settings,
            bytes: files.iter().map(|f| f.bytes).sum(),
            files,
            inexact,
            warnings: report.warnings.clone(),
            verification,
        };
        outcomes.extend(outcome_of(&entry, false).map(|o| VariantOutcome { kept: false, ..o }));
        manifest.push(entry);
        publish(out, manifest)
    };
    for &v in &opts.variants {
        started.set(false);
        if let Err(e) = step(v, &mut manifest, &mut outcomes) {
            // The variant in progress (converted, perhaps, but not verified or listed) goes.
            if started.get() && !manifest.variants.iter().any(|x| x.variant == v.name()) {
                let dir = out.join(v.name());
                if dir.is_dir() {
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
            // Publish what is finished, so the directory checks clean and a re-run resumes.
            if !manifest.variants.is_empty() {
                let _ = publish(out, &mut manifest);
            }
            return Err(e);
        }
    }
    publish(out, &mut manifest)?;
    let rank = |o: &VariantOutcome| Variant::ALL.iter().position(|v| *v == o.variant);
    outcomes.sort_by_key(rank);
    Ok(PipelineOutcome {
        out: out.to_path_buf(),
        variants: outcomes,
    })
}

/// Merges published directories (`parts`, each a `pipeline` output of some of the variants
/// of one checkpoint, e.g. one per CI job) into `out`: each part is checked against its own
/// `SHA256SUMS` and manifest first, its variant directories are linked (or copied, across
/// file systems) into `out`, and one manifest, `verify.json`, `README.md` and `SHA256SUMS` are
/// written for the whole. `out` may be one of the parts (an existing directory being added
/// to). Every part must come from the same inputs (checkpoint files, name, prompts,
/// tolerance); a variant present in two parts must have the same files.
pub fn merge(
    out: &Path,
    parts: &[PathBuf],
    progress: &dyn Progress,
    log: &dyn Fn(&str),
) -> Result<PipelineOutcome, VerifyError> {
    let fail = |p: &Path, m: String| -> VerifyError { convert::ConvertError::format(p, m).into() };
    // Never inside another pipeline output (a part's own check would then fail).
    refuse_nested(out)?;
    let _lock = convert::lock::OutputLock::acquire(out)?;
    let out_abs = convert::output::absolute(out);
    // The same part twice (two spellings of one directory) would be checked and linked twice.
    for (k, p) in parts.iter().enumerate() {
        let a = convert::output::absolute(p);
        if let Some(q) = parts[..k]
            .iter()
            .find(|q| convert::output::absolute(q) == a)
        {
            return Err(fail(
                p,
                format!("given twice (also as {}): pass each part once", q.display()),
            ));
        }
    }
    if let Some(p) = parts.iter().find(|p| !p.is_dir()) {
        return Err(fail(
            p,
            "no such directory (a part is a pipeline output directory)".into(),
        ));
    }
    let mut merged: Option<Manifest> = None;
    let mut sources: Vec<(String, PathBuf)> = Vec::new();
    let mut all: Vec<PathBuf> = parts.to_vec();
    if out.join(MANIFEST).is_file()
        && !parts
            .iter()
            .any(|p| convert::output::absolute(p) == out_abs)
    {
        all.insert(0, out.to_path_buf());
    }
    for part in &all {
        let m = Manifest::read(part).ok_or_else(|| {
            fail(
                &part.join(MANIFEST),
                "missing or not a manifest this tool wrote: pass directories written by `oss-forge pipeline`".into(),
            )
        })?;
        log(&format!("checking {}", part.display()));
        let bad: Vec<String> = check_with(part, progress)?
            .into_iter()
            .filter(|(_, s)| *s != FileState::Ok)
            .map(|(p, s)| format!("{p} ({})", format!("{s:?}").to_lowercase()))
            .collect();
        if !bad.is_empty() {
            return Err(fail(
                part,
                format!(
                    "does not match its SHA256SUMS and manifest: {}; run `oss-forge check {}`",
                    bad.join(", "),
                    part.display()
                ),
            ));
        }
        let into = merged.get_or_insert_with(|| Manifest {
            variants: Vec::new(),
            readme: None,
            pass: true,
            ..m.clone()
        });
        if into.source != m.source || into.prompts != m.prompts || into.tolerance != m.tolerance {
            return Err(fail(
                &part.join(MANIFEST),
                format!(
                    "made from other inputs than {} (checkpoint files, name, prompts or tolerance differ): not merged",
                    all[0].display()
                ),
            ));
        }
        if convert::output::absolute(part) == out_abs {
            into.readme = m.readme.clone();
        }
        for e in m.variants {
            if let Some(have) = into.variants.iter().find(|x| x.variant == e.variant) {
                if without_card(&have.files, &e.variant) != without_card(&e.files, &e.variant) {
                    return Err(fail(
                        part,
                        format!(
                            "{} differs from the one in {}: not merged",
                            e.variant,
                            sources
                                .iter()
                                .find(|(v, _)| *v == e.variant)
                                .map_or(String::new(), |(_, p)| p.display().to_string())
                        ),
                    ));
                }
                continue;
            }
            sources.push((e.variant.clone(), part.clone()));
            into.push(e);
        }
    }
    let Some(mut manifest) = merged else {
        return Err(fail(
            out,
            "nothing to merge: name the directories to merge".into(),
        ));
    };
    std::fs::create_dir_all(out).map_err(|e| convert::ConvertError::io(out, e))?;
    // Files known to match their hash: those of the parts just checked, as they land in OUT.
    let mut known: std::collections::HashSet<String> = Default::default();
    for (variant, part) in &sources {
        if convert::output::absolute(part) == out_abs {
            let entry = manifest.variants.iter().find(|e| e.variant == *variant);
            known.extend(
                entry
                    .into_iter()
                    .flat_map(|e| e.files.iter().map(|f| f.path.clone())),
            );
        }
    }
    for (variant, part) in &sources {
        if convert::output::absolute(part) == out_abs {
            continue;
        }
        log(&format!("{variant}: from {}", part.display()));
        let entry = manifest
            .variants
            .iter()
            .find(|e| e.variant == *variant)
            .expect("every source is an entry");
        let staged = convert::atomic::Staged::create(&out.join(variant), true, true)?;
        for f in &entry.files {
            let rel = f.path.strip_prefix(&format!("{variant}/")).ok_or_else(|| {
                fail(
                    &part.join(MANIFEST),
                    format!("{} is not under {variant}/", f.path),
                )
            })?;
            let (from, to) = (part.join(&f.path), staged.path().join(rel));
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| convert::ConvertError::io(parent, e))?;
            }
            // A hard link is the file just checked; a copy is hashed as it lands.
            if std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to).map_err(|e| convert::ConvertError::io(&to, e))?;
                if sha256_file_with(&to, progress)? != f.sha256 {
                    return Err(fail(
                        &to,
                        format!("the copy of {} differs from it", from.display()),
                    ));
                }
            }
            known.insert(f.path.clone());
            convert::cancel::check(out)?;
        }
        staged.commit()?;
    }
    publish(out, &mut manifest)?;
    let bad: Vec<String> = check_trusting(out, progress, &known)?
        .into_iter()
        .filter(|(_, s)| *s != FileState::Ok)
        .map(|(p, s)| format!("{p} ({})", format!("{s:?}").to_lowercase()))
        .collect();
    if !bad.is_empty() {
        return Err(fail(
            out,
            format!("merged, but does not check clean: {}", bad.join(", ")),
        ));
    }
    let variants = manifest
        .variants
        .iter()
        .filter_map(|e| outcome_of(e, true))
        .map(|o| VariantOutcome {
            kept: false,
            reused: false,
            ..o
        })
        .collect();
    Ok(PipelineOutcome {
        out: out.to_path_buf(),
        variants,
    })
}

/// The state of one published file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileState {
    /// Hash matches.
    Ok,
    /// Present with another hash (or size).
    Changed,
    /// Listed but absent.
    Missing,
    /// Listed in `SHA256SUMS` and the manifest with different hashes.
    Inconsistent,
    /// Present in the directory but listed nowhere (a file added after publishing, or the
    /// temporary of an interrupted run).
    Unlisted,
}

/// `check`: each listed file and its state, sorted by path.
pub fn check(out: &Path) -> Result<Vec<(String, FileState)>, VerifyError> {
    check_with(out, &convert::variant::NoProgress)
}

/// [`check`], the bytes hashed reported to `progress` as one phase.
pub fn check_with(
    out: &Path,
    progress: &dyn Progress,
) -> Result<Vec<(String, FileState)>, VerifyError> {
    check_trusting(out, progress, &std::collections::HashSet::new())
}

/// [`check_with`], taking the files of `known` (paths relative to `out`) as matching their
/// hash when they exist with the listed size: files `merge` has just verified (hard links to
/// checked files, copies hashed as they were made), so a merge does not read every byte twice.
fn check_trusting(
    out: &Path,
    progress: &dyn Progress,
    known: &std::collections::HashSet<String>,
) -> Result<Vec<(String, FileState)>, VerifyError> {
    let sums_path = out.join(SUMS);
    let text = std::fs::read_to_string(&sums_path)
        .map_err(|e| convert::ConvertError::io(&sums_path, e))?;
    let mut listed: Vec<(String, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (h, p) = line
            .split_once("  ")
            .or_else(|| line.split_once(" *"))
            .ok_or_else(|| {
                convert::ConvertError::format(
                    &sums_path,
                    format!("line {}: not `<sha256>  <path>`", i + 1),
                )
            })?;
        if h.len() != 64
            || !h.bytes().all(|b| b.is_ascii_hexdigit())
            || p.contains("..")
            || p.starts_with('/')
        {
            return Err(convert::ConvertError::format(
                &sums_path,
                format!("line {}: not `<sha256>  <relative path>`", i + 1),
            )
            .into());
        }
        listed.push((p.to_string(), h.to_ascii_lowercase()));
    }
    // The manifest's own record of each variant file, when present.
    let mut manifest_hashes: Vec<(String, String)> = Vec::new();
    let mut sizes: std::collections::HashMap<String, u64> = Default::default();
    let mpath = out.join(MANIFEST);
    if mpath.exists() {
        let m = Manifest::read(out).ok_or_else(|| {
            convert::ConvertError::format(&mpath, "not a manifest this tool wrote (invalid JSON)")
        })?;
        for f in m.variants.into_iter().flat_map(|e| e.files).chain(m.readme) {
            sizes.insert(f.path.clone(), f.bytes);
            manifest_hashes.push((f.path, f.sha256));
        }
        for (p, _) in &manifest_hashes {
            if !listed.iter().any(|(q, _)| q == p) {
                listed.push((p.clone(), String::new()));
            }
        }
    }
    let total = listed
        .iter()
        .map(|(p, _)| std::fs::metadata(out.join(p)).map_or(0, |m| m.len()))
        .sum();
    progress.begin(&format!("checking {}", out.display()), total);
    let states: Result<Vec<(String, FileState)>, VerifyError> = listed
        .par_iter()
        .map(|(p, h)| {
            let in_manifest = manifest_hashes
                .iter()
                .find(|(q, _)| q == p)
                .map(|(_, x)| x.as_str());
            let path = out.join(p);
            let state = if !path.is_file() {
                FileState::Missing
            } else if h.is_empty() || in_manifest.is_some_and(|m| m != h) {
                FileState::Inconsistent
            } else if known.contains(p) {
                let size = std::fs::metadata(&path).map_or(0, |m| m.len());
                if sizes.get(p).is_some_and(|&b| b == size) {
                    FileState::Ok
                } else {
                    FileState::Changed
                }
            } else {
                match sha256_file_with(&path, progress) {
                    Ok(x) if x == *h => FileState::Ok,
                    Err(e @ convert::ConvertError::Interrupted { .. }) => return Err(e.into()),
                    _ => FileState::Changed,
                }
            };
            Ok((p.clone(), state))
        })
        .collect();
    progress.end();
    let mut states = states?;
    let mut present = Vec::new();
    walk_files(out, out, true, &mut present)?;
    // A run's lock (`.NAME.lock`, `convert::lock`) is not content.
    let is_lock = |p: &str| {
        let name = p.rsplit('/').next().unwrap_or(p);
        name.starts_with('.') && name.ends_with(".lock")
    };
    for p in present {
        if p != SUMS && p != MANIFEST && !is_lock(&p) && !listed.iter().any(|(q, _)| *q == p) {
            states.push((p, FileState::Unlisted));
        }
    }
    states.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Metrics as the JSON has always held them (`null` for a non-finite value).
    fn metrics(kld: serde_json::Value) -> serde_json::Value {
        json!({"positions": 12, "max_abs": 0.5, "nmse": 1.25e-7, "kld_mean": kld,
               "kld_p99": 0.001, "kld_max": 0.002, "top1": 1.0, "top5_overlap": 0.95,
               "argmax_changed": 0, "nonfinite": 0})
    }

    /// A manifest as the pipeline writes it (built as a JSON value); `old`: as versions before
    /// the metadata check and `passed_by` wrote it.
    fn manifest_text_of(old: bool) -> String {
        let verification = |path: &str, floor: serde_json::Value| {
            let mut v = json!({"path": path, "format": "gguf MXFP4_MOE", "pass": true, "lossless": false,
                   "failures": [], "metrics": metrics(json!(3.5e-6)), "format_floor": floor,
                   "per_prompt": [{"prompt": "chat", "metrics": metrics(serde_json::Value::Null)}],
                   "weights": {"tensors": 3, "identical": 2, "max_abs_error": 0.0625, "violations": 0,
                     "nonfinite": 0,
                     "per_tensor": [{"name": "layers.0.q_proj", "original": "BF16", "variant": "Q8_0",
                       "elements": 4096, "differing": 17, "max_abs_error": 0.0625,
                       "bound": "half a Q8_0 step", "violations": 0, "nonfinite": 0,
                       "first_nonfinite": null}]},
                   "passed_by": "gates",
                   "gate": {"kld_mean": 0.005, "top1": 0.9, "source": "tolerance"},
                   "metadata": {"compared": 40, "differences": [], "ignored": ["general.name"],
                                "notes": []}});
            if old {
                let o = v.as_object_mut().unwrap();
                for k in ["passed_by", "gate", "metadata"] {
                    o.remove(k);
                }
                o["weights"].as_object_mut().unwrap().remove("nonfinite");
                for t in o["weights"]["per_tensor"].as_array_mut().unwrap() {
                    t.as_object_mut().unwrap().remove("nonfinite");
                    t.as_object_mut().unwrap().remove("first_nonfinite");
                }
            }
            v
        };
        let file =
            json!({"path": "gguf-mxfp4/m-MXFP4.gguf", "bytes": 123, "sha256": "ab".repeat(32)});
        let m = json!({
            "tool": {"name": "oss-forge", "version": "0.1.0"},
            "source": {"name": "tiny", "format": "hf-mxfp4", "parameters": 1326768, "layers": 4,
                       "experts": 8, "vocab_size": 512, "files": [file]},
            "prompts": [{"name": "chat", "tokens": [1, 2, 3]}],
            "tolerance": if old {
                json!({"kld_mean": 0.005, "top1": 0.9})
            } else {
                json!({"kld_mean": 0.005, "top1": 0.9, "explicit": false, "format_floor": true})
            },
            "variants": [
                {"variant": "gguf-mxfp4", "settings": {"split_max_size": null}, "files": [file],
                 "bytes": 123, "inexact": [], "warnings": [],
                 "verification": verification("gguf-mxfp4/m-MXFP4.gguf", serde_json::Value::Null)},
                {"variant": "safetensors-int8", "settings": {"max_shard_size": 5000000000u64, "int8_dense": false},
                 "files": [file], "bytes": 123, "inexact": ["3 values (max abs error 1.000e-2)"],
                 "warnings": ["w"], "verification": verification("safetensors-int8", metrics(json!(0.001)))},
            ],
            "pass": true,
        });
        serde_json::to_string_pretty(&m).unwrap() + "\n"
    }

    fn manifest_text() -> String {
        manifest_text_of(false)
    }

    #[test]
    fn an_older_manifest_still_reads_but_its_entries_are_verified_again() {
        let m: Manifest = serde_json::from_str(&manifest_text_of(true)).unwrap();
        assert!(m.variants[0].verification.metadata.is_none());
        assert!(!m.tolerance.format_floor);
        // Never reused, whatever its files: it was not judged by this version's rules.
        let t = std::env::temp_dir().join(format!("oss-forge-old-manifest-{}", std::process::id()));
        assert!(!reusable(&t, &m.variants[0], Rules::default()));
        assert_eq!(
            ToleranceJson::from(Rules::default()),
            serde_json::from_str::<Manifest>(&manifest_text())
                .unwrap()
                .tolerance
        );
    }

    #[test]
    fn a_manifest_reads_back_and_writes_the_same_bytes() {
        let text = manifest_text();
        let m: Manifest = serde_json::from_str(&text).unwrap();
        assert_eq!(to_pretty_json(&m), text);
        assert_eq!(
            m.variants[0].settings,
            Settings::Gguf(GgufSettings {
                split_max_size: None,
                truncate_vocab: false
            })
        );
        assert!(matches!(m.variants[1].settings, Settings::Safetensors(_)));
        assert_eq!(
            m.variants[0].verification.per_prompt[0].metrics.kld_mean,
            None
        );
        assert!(m.variants[0].verification.format_floor.is_none());
    }

    #[test]
    fn settings_are_told_apart_and_compared_by_value() {
        let o = ConvertOptions::default();
        let gguf = Settings::of(Variant::GgufQ8_0, &o);
        let st = Settings::of(Variant::SafetensorsInt8, &o);
        for s in [&gguf, &st] {
            let back: Settings = serde_json::from_str(&serde_json::to_string(s).unwrap()).unwrap();
            assert_eq!(&back, s);
        }
        assert_ne!(gguf, st);
        // An entry with unknown settings is no match for either kind (it is redone).
        assert!(serde_json::from_str::<Settings>(r#"{"max_shard_size": 1}"#).is_err());
        assert!(serde_json::from_str::<Settings>(r#"{"split_max_size": 1, "x": 2}"#).is_err());
    }

    #[test]
    fn manifest_pass_is_every_entry_s() {
        let mut m: Manifest = serde_json::from_str(&manifest_text()).unwrap();
        let mut e = m.variants[0].clone();
        m.variants.clear();
        m.pass = true;
        m.push(e.clone());
        assert!(m.pass);
        e.verification.pass = false;
        m.push(e);
        assert!(!m.pass);
    }
}
