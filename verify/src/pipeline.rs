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
use crate::report::{num, variant_json};
use crate::{Subject, Tolerance, VerifyError};
use convert::publish::{sha256_file, write_atomic};
use convert::{AnyModel, ConvertOptions, ConvertReport, Progress, Variant};
use rayon::prelude::*;
use serde_json::{Value, json};
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
    /// Gates for lossy variants.
    pub tolerance: Tolerance,
    /// Conversion settings (`force` is ignored: the pipeline owns its output directory).
    pub convert: ConvertOptions,
}

/// One variant's outcome.
#[derive(Clone, Debug)]
pub struct VariantOutcome {
    /// The variant.
    pub variant: Variant,
    /// Files (relative path, bytes, sha256), model card included.
    pub files: Vec<(String, u64, String)>,
    /// Verification, as in the JSON report.
    pub verification: Value,
    /// Taken from a previous run whose files still matched.
    pub reused: bool,
}

impl VariantOutcome {
    /// Passed verification.
    pub fn passed(&self) -> bool {
        self.verification["pass"].as_bool() == Some(true)
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
fn file_entry(root: &Path, rel: &str) -> Result<(String, u64, String), VerifyError> {
    let p = root.join(rel);
    let bytes = std::fs::metadata(&p)
        .map_err(|e| convert::ConvertError::io(&p, e))?
        .len();
    Ok((rel.to_string(), bytes, sha256_file(&p)?))
}

fn files_json(files: &[(String, u64, String)]) -> Value {
    Value::Array(
        files
            .iter()
            .map(|(p, b, h)| json!({"path": p, "bytes": b, "sha256": h}))
            .collect(),
    )
}

fn files_from_json(v: &Value) -> Option<Vec<(String, u64, String)>> {
    v.as_array()?
        .iter()
        .map(|f| {
            Some((
                f["path"].as_str()?.to_string(),
                f["bytes"].as_u64()?,
                f["sha256"].as_str()?.to_string(),
            ))
        })
        .collect()
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
fn hash_files(root: &Path, rels: &[String]) -> Result<Vec<(String, u64, String)>, VerifyError> {
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
    let suffix = match v {
        Variant::GgufMxfp4 => "MXFP4",
        Variant::GgufMxfp4F16 => "MXFP4-F16",
        Variant::GgufMxfp4Q8_0 => "MXFP4-Q8_0",
        Variant::GgufQ8_0 => "Q8_0",
        Variant::GgufF16 => "F16",
        Variant::GgufBf16 => "BF16",
        _ => "",
    };
    format!("{model}-{suffix}.gguf")
}

fn settings_json(v: Variant, o: &ConvertOptions) -> Value {
    if v.is_gguf() {
        json!({"split_max_size": o.split_max_bytes})
    } else {
        json!({"max_shard_size": o.max_shard_bytes.unwrap_or(5_000_000_000), "int8_dense": v == Variant::SafetensorsInt8 && o.int8_dense})
    }
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
    inputs: &Value,
    prompts: &Value,
    tolerance: &Value,
) -> Option<Value> {
    let text = std::fs::read_to_string(out.join(MANIFEST)).ok()?;
    let m: Value = serde_json::from_str(&text).ok()?;
    (m["source"]["files"] == *inputs && m["prompts"] == *prompts && m["tolerance"] == *tolerance)
        .then_some(m)
}

/// Files of a previous run's entry, if they are all still there with the same hashes.
fn still_valid(out: &Path, entry: &Value) -> Option<Vec<(String, u64, String)>> {
    let files = files_from_json(&entry["files"])?;
    let ok = !files.is_empty()
        && files.par_iter().all(|(p, b, h)| {
            let path = out.join(p);
            std::fs::metadata(&path).is_ok_and(|m| m.len() == *b)
                && sha256_file(&path).is_ok_and(|x| x == *h)
        });
    ok.then_some(files)
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
    let inputs = files_json(&hash_files(&src_dir, &input_rels)?);
    let prompts_json = Value::Array(
        prompts
            .iter()
            .map(|p| json!({"name": p.name, "tokens": p.tokens}))
            .collect(),
    );
    let tolerance_json =
        json!({"kld_mean": num(opts.tolerance.kld_mean), "top1": num(opts.tolerance.top1)});
    let previous = previous_manifest(out, &inputs, &prompts_json, &tolerance_json);

    let original = Subject {
        name: name.clone(),
        format: src.format_name(),
        source: src.source(),
    };
    let mut reference_logits: Option<Vec<Vec<f32>>> = None;
    let mut outcomes: Vec<VariantOutcome> = Vec::new();
    let mut entries: Vec<Value> = Vec::new();
    let cfg = src.source().config().clone();

    for &v in &opts.variants {
        let settings = settings_json(v, &opts.convert);
        let prior = previous.as_ref().and_then(|m| {
            m["variants"]
                .as_array()?
                .iter()
                .find(|e| e["variant"] == v.name() && e["settings"] == settings)
                .cloned()
        });
        if let Some(entry) = prior
            && let Some(files) = still_valid(out, &entry)
        {
            log(&format!(
                "{v}: up to date (files match the manifest), not redone"
            ));
            outcomes.push(VariantOutcome {
                variant: v,
                files,
                verification: entry["verification"].clone(),
                reused: true,
            });
            entries.push(entry);
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
        let report =
            convert::variant::convert(src.source(), &src_dir, v, &target, &copts, convert_progress)
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
        let subject = Subject {
            name: rel_target,
            format: opened.format_name(),
            source: opened.source(),
        };
        log(&format!("{v}: verifying"));
        let result = crate::verify_variant(
            &original,
            reference_logits.as_deref().unwrap_or_default(),
            &subject,
            prompts,
            opts.tolerance,
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
            inexact: &inexact,
            warnings: &report.warnings,
        });
        let card_rel = format!("{}/README.md", v.name());
        write_atomic(&out.join(&card_rel), card.as_bytes())?;
        files.push(file_entry(out, &card_rel)?);

        let entry = json!({
            "variant": v.name(),
            "settings": settings,
            "files": files_json(&files),
            "bytes": files.iter().map(|f| f.1).sum::<u64>(),
            "inexact": inexact,
            "warnings": report.warnings,
            "verification": verification,
        });
        outcomes.push(VariantOutcome {
            variant: v,
            files,
            verification,
            reused: false,
        });
        entries.push(entry);
        write_manifest(
            out,
            &name,
            &src,
            &inputs,
            &prompts_json,
            &tolerance_json,
            &entries,
        )?;
    }

    write_manifest(
        out,
        &name,
        &src,
        &inputs,
        &prompts_json,
        &tolerance_json,
        &entries,
    )?;
    let report = json!({
        "tool": "oss-forge",
        "version": env!("CARGO_PKG_VERSION"),
        "pass": outcomes.iter().all(VariantOutcome::passed),
        "original": {"path": name, "format": src.format_name()},
        "prompts": prompts.iter().map(|p| json!({"name": p.name, "tokens": p.tokens.len()})).collect::<Vec<_>>(),
        "tolerance": tolerance_json,
        "variants": outcomes.iter().map(|o| o.verification.clone()).collect::<Vec<_>>(),
    });
    write_atomic(
        &out.join(REPORT),
        (serde_json::to_string_pretty(&report).unwrap_or_default() + "\n").as_bytes(),
    )?;
    let mut sums = String::new();
    let mut listed: Vec<(String, String)> = outcomes
        .iter()
        .flat_map(|o| o.files.iter().map(|(p, _, h)| (p.clone(), h.clone())))
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

#[allow(clippy::too_many_arguments)]
fn write_manifest(
    out: &Path,
    name: &str,
    src: &AnyModel,
    inputs: &Value,
    prompts: &Value,
    tolerance: &Value,
    entries: &[Value],
) -> Result<(), VerifyError> {
    let cfg = src.source().config();
    let manifest = json!({
        "tool": {"name": "oss-forge", "version": env!("CARGO_PKG_VERSION")},
        "source": {
            "name": name,
            "format": src.format_name(),
            "parameters": cfg.parameter_count(),
            "layers": cfg.num_hidden_layers,
            "experts": cfg.num_local_experts,
            "vocab_size": cfg.vocab_size,
            "files": inputs,
        },
        "prompts": prompts,
        "tolerance": tolerance,
        "variants": entries,
        "pass": entries.iter().all(|e| e["verification"]["pass"] == true),
    });
    write_atomic(
        &out.join(MANIFEST),
        (serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n").as_bytes(),
    )?;
    Ok(())
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
        let m: Value = std::fs::read_to_string(&mpath)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .ok_or_else(|| {
                convert::ConvertError::format(
                    &mpath,
                    "not a manifest this tool wrote (invalid JSON)",
                )
            })?;
        for e in m["variants"].as_array().into_iter().flatten() {
            for (p, _, h) in files_from_json(&e["files"]).unwrap_or_default() {
                manifest_hashes.push((p, h));
            }
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
