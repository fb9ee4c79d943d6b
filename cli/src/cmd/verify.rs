//! `oss-forge verify --original MODEL VARIANT... [--prompts FILE] [--json REPORT] [--tolerance ...]`.

use crate::progress::Reporter;
use anyhow::Context;
use convert::AnyModel;
use convert::runtime::RuntimeMeta;
use std::path::Path;
use std::process::ExitCode;
use verify::prompts::{self, Prompt};
use verify::{Rules, Subject};

/// Opens a model for verification, with context naming it.
pub fn open(path: &Path) -> anyhow::Result<AnyModel> {
    if path.join(verify::pipeline::MANIFEST).is_file() && !path.join("config.json").exists() {
        anyhow::bail!(
            "cannot open {}: it is a pipeline output, not a model: pass its variants ({}/gguf-q8_0, ...), or run `oss-forge check {}` on it",
            path.display(),
            path.display(),
            path.display()
        );
    }
    AnyModel::open(path).with_context(|| format!("cannot open {}", path.display()))
}

/// The subject view of an opened model and what a runtime reads from it.
pub fn subject<'a>(m: &'a AnyModel, meta: &'a RuntimeMeta) -> Subject<'a> {
    Subject {
        name: m.path().display().to_string(),
        format: m.format_name(),
        source: m.source(),
        meta: Some(meta),
    }
}

/// The prompts: `--prompts FILE`, or the built-in set encoded with the original's tokenizer.
pub fn load_prompts(original: &AnyModel, file: Option<&Path>) -> anyhow::Result<Vec<Prompt>> {
    let cfg = original.source().config();
    let tok = match convert::companion::find(&original.path(), "tokenizer.json") {
        Some(p) => Some(prompts::load_tokenizer(
            &convert::publish::read_small(&p)?,
            &p.display().to_string(),
        )?),
        None => None,
    };
    Ok(match file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read prompts {}", f.display()))?;
            prompts::parse_file(&text, cfg, tok.as_ref(), &f.display().to_string())?
        }
        None => {
            let set = prompts::builtin(cfg, tok.as_ref())?;
            if tok.is_none() {
                eprintln!(
                    "note: no tokenizer.json beside {}: the {} built-in chat prompts are left out and only the {} token-id prompts run (a release or safetensors directory as the original gives the full set; --prompts FILE takes token ids)",
                    original.path().display(),
                    prompts::CHATS.len(),
                    set.len()
                );
            }
            set
        }
    })
}

pub fn run(
    original: &Path,
    variants: &[std::path::PathBuf],
    prompts_file: Option<&Path>,
    json: Option<&Path>,
    rules: Rules,
    logits_cache: Option<&Path>,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let orig = open(original)?;
    let models = variants
        .iter()
        .map(|v| open(v))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // The report never goes onto or into a model being read.
    if let Some(path) = json.filter(|p| *p != Path::new("-")) {
        for m in std::iter::once(&orig).chain(&models) {
            convert::output::refuse_overlap(&convert::output::inputs(m), path)?;
        }
        super::file_output(path, "--json")?;
    }
    let prompts = load_prompts(&orig, prompts_file)?;
    let orig_meta = RuntimeMeta::read(&orig);
    let metas: Vec<RuntimeMeta> = models.iter().map(RuntimeMeta::read).collect();
    let subjects: Vec<Subject<'_>> = models
        .iter()
        .zip(&metas)
        .map(|(m, meta)| subject(m, meta))
        .collect();
    let progress = Reporter::counting(quiet, "steps");
    let original = subject(&orig, &orig_meta);
    verify::check_same_model(&original, &subjects)?;
    let cache = match logits_cache {
        Some(dir) => {
            let files = verify::logits_cache::hash_model_files(&orig, &Reporter::new(quiet))?;
            Some((
                verify::logits_cache::LogitsCache::new(dir),
                verify::logits_cache::CacheKey::new(&files, orig.source().config(), &prompts),
            ))
        }
        None => None,
    };
    let (reference, used) = verify::original_logits_cached(
        orig.source(),
        &prompts,
        cache.as_ref().map(|(c, k)| (c, k)),
        &progress,
        &|w| eprintln!("{w}"),
    )?;
    if let (Some((c, k)), Some(what)) = (&cache, used.verb())
        && !quiet
    {
        eprintln!("original's logits {what} {}", c.path(k).display());
    }
    let report =
        verify::verify_with_logits(&original, &reference, &subjects, &prompts, rules, &progress)?;
    let text = verify::report::render(&report);
    let json_text = || verify::report::to_pretty_json(&verify::report::to_json(&report));
    match json {
        // `--json -`: the JSON alone on standard output, the table on standard error.
        Some(p) if p == Path::new("-") => {
            eprint!("{text}");
            out!("{}", json_text());
        }
        Some(path) => {
            out!("{text}");
            convert::publish::write_atomic(path, json_text().as_bytes())?;
            outln!("report: {}", path.display());
        }
        None => out!("{text}"),
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
