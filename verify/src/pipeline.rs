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
use convert::publish::{sha256_file, write_atomic};
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

/// What to do.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    /// Variants, in order.
    pub variants: Vec<Variant>,
    /// How lossy variants are judged.
    pub rules: Rules,
    /// Conversion settings (`force` is ignored: the pipeline owns its output directory).
    pub convert: ConvertOptions,
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
}

impl Manifest {
    /// Reads `dir`'s manifest; `None` when it is absent or not one this tool writes.
    pub fn read(dir: &Path) -> Option<Manifest> {
        let text = std::fs::read_to_string(dir.join(MANIFEST)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Adds a variant's entry.
    pub fn push(&mut self, entry: ManifestEntry) {
        self.pass &= entry.verification.pass;
        self.variants.push(entry);
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

/// A file with its size and hash, as the manifest lists it.
fn file_entry(root: &Path, rel: &str) -> Result<FileEntry, VerifyError> {
    let p = root.join(rel);
    let bytes = std::fs::metadata(&p)
        .map_err(|e| convert::ConvertError::io(&p, e))?
        .len();
    Ok(FileEntry {
        path: rel.to_string(),
        bytes,
        sha256: sha256_file(&p)?,
    })
}

/// Regular, non-hidden files of `dir` (recursively), as sorted paths relative to `root`.
fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), VerifyError> {
    walk_files(root, dir, false, out)
}

/// Files under `dir` as paths relative to `root` with `/` separators, sorted; hidden entries
/// (temporaries such as `.x.partial-<pid>`) only when `hidden`.
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
        if p.is_dir() {
            walk_files(root, &p, hidden, out)?;
        } else if p.is_file() {
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

/// Hashes files (in parallel: the inputs of a 120b run are 65 GB).
fn hash_files(root: &Path, rels: &[String]) -> Result<Vec<FileEntry>, VerifyError> {
    rels.par_iter().map(|r| file_entry(root, r)).collect()
}

/// The model's name: its directory, or the release directory of an `original/` folder.
pub fn model_name(path: &Path) -> String {
    let dir = if path.is_dir() {
        path
    } else {
        path.parent().unwrap_or(path)
    };
    let dir = if dir.file_name().is_some_and(|n| n == "original") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    std::fs::canonicalize(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into())
}

/// The file name of a GGUF variant: `NAME-MXFP4.gguf`, `NAME-Q8_0.gguf`, ...
pub fn gguf_file_name(model: &str, v: Variant) -> String {
    format!("{model}-{}.gguf", v.storage().file_suffix)
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

/// Reads a previous manifest if it was made from the same inputs, prompts and tolerance.
fn previous_manifest(
    out: &Path,
    inputs: &[FileEntry],
    prompts: &[PromptTokens],
    tolerance: &ToleranceJson,
) -> Option<Manifest> {
    Manifest::read(out)
        .filter(|m| m.source.files == inputs && m.prompts == prompts && m.tolerance == *tolerance)
}

/// True when a previous run's entry was verified by this version's rules (its report has the
/// metadata check; entries of older versions are redone) and its files are all still there with
/// the same hashes.
fn reusable(out: &Path, entry: &ManifestEntry) -> bool {
    entry.verification.metadata.is_some() && still_valid(out, &entry.files)
}

/// True when the files of a previous run's entry are all still there with the same hashes.
fn still_valid(out: &Path, files: &[FileEntry]) -> bool {
    !files.is_empty()
        && files.par_iter().all(|f| {
            let path = out.join(&f.path);
            std::fs::metadata(&path).is_ok_and(|m| m.len() == f.bytes)
                && sha256_file(&path).is_ok_and(|x| x == f.sha256)
        })
}

/// Runs the pipeline. `log` receives one line per step; conversion progress is in bytes,
/// verification progress in tokens and weights.
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
    let AnyModel::Safetensors(ckpt) = &src else {
        return Err(convert::ConvertError::format(
            model_path,
            "pipeline converts a release checkpoint (a safetensors directory)",
        )
        .into());
    };
    let name = model_name(model_path);
    let base_model = if name.starts_with("gpt-oss-") {
        format!("openai/{name}")
    } else {
        name.clone()
    };
    let src_dir = ckpt.dir().to_path_buf();
    std::fs::create_dir_all(out).map_err(|e| convert::ConvertError::io(out, e))?;

    log(&format!("hashing the inputs in {}", src_dir.display()));
    let entries =
        std::fs::read_dir(&src_dir).map_err(|e| convert::ConvertError::io(&src_dir, e))?;
    let mut input_rels: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    input_rels.sort();
    let inputs = hash_files(&src_dir, &input_rels)?;
    let prompt_tokens: Vec<PromptTokens> = prompts
        .iter()
        .map(|p| PromptTokens {
            name: p.name.clone(),
            tokens: p.tokens.clone(),
        })
        .collect();
    let tolerance = ToleranceJson::from(opts.rules);
    let previous = previous_manifest(out, &inputs, &prompt_tokens, &tolerance);

    let original_meta = RuntimeMeta::read(&src);
    let original = Subject {
        name: name.clone(),
        format: src.format_name(),
        source: src.source(),
        meta: Some(&original_meta),
    };
    let mut reference_logits: Option<Vec<Vec<f32>>> = None;
    let mut outcomes: Vec<VariantOutcome> = Vec::new();
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
    };

    for &v in &opts.variants {
        let settings = Settings::of(v, &opts.convert);
        let prior = previous.as_ref().and_then(|m| {
            m.variants
                .iter()
                .find(|e| e.variant == v.name() && e.settings == settings)
        });
        if let Some(entry) = prior
            && reusable(out, entry)
        {
            log(&format!(
                "{v}: up to date (files match the manifest), not redone"
            ));
            outcomes.push(VariantOutcome {
                variant: v,
                files: entry.files.clone(),
                verification: entry.verification.clone(),
                reused: true,
            });
            manifest.push(entry.clone());
            continue;
        }
        let dir = out.join(v.name());
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
            log("running the original over the prompts");
            reference_logits = Some(crate::original_logits(
                src.source(),
                prompts,
                verify_progress,
            )?);
        }
        let opened = AnyModel::open(&target)?;
        let rel_target = target
            .strip_prefix(out)
            .unwrap_or(&target)
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
        rels.retain(|r| !r.ends_with("/README.md"));
        let mut files = hash_files(out, &rels)?;
        let inexact = inexact_notes(&report);
        let card = model_card(&CardInput {
            model_name: &name,
            base_model: &base_model,
            variant: v,
            config: &cfg,
            files: &files,
            verification: &verification,
            tolerance: &manifest.tolerance,
            inexact: &inexact,
            warnings: &report.warnings,
        });
        let card_rel = format!("{}/README.md", v.name());
        write_atomic(&out.join(&card_rel), card.as_bytes())?;
        files.push(file_entry(out, &card_rel)?);

        manifest.push(ManifestEntry {
            variant: v.name().to_string(),
            settings,
            files: files.clone(),
            bytes: files.iter().map(|f| f.bytes).sum(),
            inexact,
            warnings: report.warnings.clone(),
            verification: verification.clone(),
        });
        outcomes.push(VariantOutcome {
            variant: v,
            files,
            verification,
            reused: false,
        });
        manifest.write(out)?;
    }

    manifest.write(out)?;
    let report = ReportJson::new(
        ModelJson {
            path: name,
            format: src.format_name(),
        },
        prompts
            .iter()
            .map(|p| PromptLenJson {
                name: p.name.clone(),
                tokens: p.tokens.len(),
            })
            .collect(),
        manifest.tolerance.clone(),
        outcomes.iter().map(|o| o.verification.clone()).collect(),
    );
    write_atomic(&out.join(REPORT), to_pretty_json(&report).as_bytes())?;
    let mut sums = String::new();
    let mut listed: Vec<(String, String)> = outcomes
        .iter()
        .flat_map(|o| o.files.iter().map(|f| (f.path.clone(), f.sha256.clone())))
        .collect();
    listed.push((REPORT.to_string(), sha256_file(&out.join(REPORT))?));
    listed.sort();
    for (p, h) in listed {
        sums.push_str(&format!("{h}  {p}\n"));
    }
    write_atomic(&out.join(SUMS), sums.as_bytes())?;
    Ok(PipelineOutcome {
        out: out.to_path_buf(),
        variants: outcomes,
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
    let mpath = out.join(MANIFEST);
    if mpath.exists() {
        let m = Manifest::read(out).ok_or_else(|| {
            convert::ConvertError::format(&mpath, "not a manifest this tool wrote (invalid JSON)")
        })?;
        for f in m.variants.into_iter().flat_map(|e| e.files) {
            manifest_hashes.push((f.path, f.sha256));
        }
        for (p, _) in &manifest_hashes {
            if !listed.iter().any(|(q, _)| q == p) {
                listed.push((p.clone(), String::new()));
            }
        }
    }
    let mut states: Vec<(String, FileState)> = listed
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
            } else if sha256_file(&path).is_ok_and(|x| x == *h) {
                FileState::Ok
            } else {
                FileState::Changed
            };
            (p.clone(), state)
        })
        .collect();
    let mut present = Vec::new();
    walk_files(out, out, true, &mut present)?;
    for p in present {
        if p != SUMS && p != MANIFEST && !listed.iter().any(|(q, _)| *q == p) {
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
        assert!(!reusable(&t, &m.variants[0]));
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
