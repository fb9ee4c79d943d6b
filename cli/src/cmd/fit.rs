//! `oss-forge fit [MODEL | --preset 20b|120b] --gpu-mem SIZE [--context N] [--json]`.

use crate::args::GpuMem;
use anyhow::Context;
use convert::Variant;
use reference::Config;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use verify::fit::{self, Quality};
use verify::pipeline::Manifest;

/// What `fit` was given: the config, a label, the given model's own tensor bytes (a variant
/// file or directory), and the verification of each variant where a pipeline's manifest is
/// found (the directory given, or one or two levels above the file given).
struct Subject {
    cfg: Config,
    label: String,
    given_bytes: Option<u64>,
    /// The variant the model given is, when its tensor bytes and storage say so.
    given_variant: Option<Variant>,
    /// The model given is a release-layout checkpoint.
    release: bool,
    /// The experts are MXFP4 (the release, a preset, no model): the GGUF presets keep them.
    mxfp4_experts: bool,
    manifest: Option<(PathBuf, Manifest)>,
}

fn find_manifest(path: &Path) -> Option<(PathBuf, Manifest)> {
    path.ancestors()
        .take(3)
        .filter(|d| d.is_dir())
        .find_map(|d| Manifest::read(d).map(|m| (d.to_path_buf(), m)))
}

fn subject(model: Option<&Path>, preset: Option<&str>) -> anyhow::Result<Subject> {
    match (model, preset) {
        (Some(m), None) => {
            // A pipeline output directory: read the config from one of its variants.
            if let Some(man) = Manifest::read(m) {
                let first = man
                    .variants
                    .iter()
                    .find_map(|e| {
                        let f = e.files.iter().find(|f| {
                            f.path.ends_with(".gguf") || f.path.ends_with("config.json")
                        })?;
                        let p = m.join(&f.path);
                        Some(if f.path.ends_with(".gguf") {
                            p
                        } else {
                            p.parent()?.to_path_buf()
                        })
                    })
                    .with_context(|| format!("{}: the manifest lists no variant", m.display()))?;
                let opened = convert::AnyModel::open(&first)?;
                return Ok(Subject {
                    cfg: opened.source().config().clone(),
                    label: format!("{} ({})", m.display(), man.source.name),
                    given_bytes: None,
                    given_variant: None,
                    release: false,
                    mxfp4_experts: true,
                    manifest: Some((m.to_path_buf(), man)),
                });
            }
            let opened = convert::AnyModel::open(m)?;
            let cfg = opened.source().config().clone();
            let bytes = opened.tensor_bytes();
            let release = matches!(&opened, convert::AnyModel::Safetensors(c) if c.layout() == convert::Layout::Release);
            Ok(Subject {
                given_variant: identify(&opened, &cfg, bytes),
                release,
                mxfp4_experts: convert::variant::gguf::experts_are_mxfp4(opened.source()),
                cfg,
                label: m.display().to_string(),
                given_bytes: Some(bytes),
                manifest: find_manifest(m),
            })
        }
        (None, Some(p)) => {
            let preset = convert::synth::Preset::parse(p).context("unknown preset")?;
            Ok(Subject {
                cfg: Config::from_hf_json(&convert::synth::preset_config(preset, None))?,
                label: format!("gpt-oss-{p}"),
                given_bytes: None,
                given_variant: None,
                release: false,
                mxfp4_experts: true,
                manifest: None,
            })
        }
        _ => anyhow::bail!("give a MODEL or --preset, not both"),
    }
}

/// Which variant `model` is. A GGUF file: the variant whose writer plans exactly its tensors
/// and types (`convert::variant::gguf::plan_tensors`, the GGUF presets' llama-quantize rules
/// included), for a source with MXFP4 experts or dense ones (a fine-tune's presets quantize the
/// experts too). A safetensors or MLX directory: the same tensor bytes as the variant's plan,
/// and the token embedding stored as the variant stores it (F16 and BF16 rows have equal
/// sizes; MLX affine by its bits and group).
fn identify(model: &convert::AnyModel, cfg: &Config, bytes: u64) -> Option<Variant> {
    use convert::variant::Store;
    use reference::{Encoding, WeightId};
    let mxfp4 = convert::variant::gguf::experts_are_mxfp4(model.source());
    if let Some(g) = model.gguf() {
        let mut types: Vec<(&str, quant::Codec)> = g
            .files()
            .iter()
            .flat_map(|f| f.tensors())
            .map(|t| (t.name.as_str(), t.ty))
            .collect();
        types.sort_unstable();
        let order = convert::names::sorted_release_names(cfg);
        return Variant::ALL.into_iter().filter(|v| v.is_gguf()).find(|v| {
            [mxfp4, !mxfp4].into_iter().any(|experts| {
                let Ok(plan) =
                    convert::variant::gguf::plan_tensors(&v.storage(), cfg, &order, experts, false)
                else {
                    return false;
                };
                let mut planned: Vec<(&str, quant::Codec)> = plan
                    .items
                    .iter()
                    .map(|i| (i.tensor.name.as_str(), i.tensor.ty))
                    .collect();
                planned.sort_unstable();
                planned == types
            })
        });
    }
    let embedding = model.source().weight(WeightId::Embedding).ok()?;
    let store = match *embedding.encoding() {
        Encoding::Dense { dtype, .. } => Store::Codec(dtype.codec()),
        Encoding::Ggml { codec, .. } => Store::Codec(codec),
        Encoding::Affine { bits, group, .. } => Store::Affine { bits, group },
        _ => return None,
    };
    // mlx-bf16 and safetensors-bf16 hold the same bytes: the layout tells them apart.
    let mlx = matches!(model, convert::AnyModel::Safetensors(c) if matches!(c.layout(), convert::Layout::Mlx(_)));
    Variant::ALL.into_iter().find(|v| {
        !v.is_gguf()
            && matches!(v.storage().container, convert::variant::Container::Mlx(_)) == mlx
            && fit::weight_bytes_from(cfg, Some(*v), mxfp4) == Some(bytes)
            && v.storage().embedding == store
    })
}

pub fn run(
    model: Option<&Path>,
    preset: Option<&str>,
    gpu_mem: GpuMem,
    context: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let s = subject(model, preset)?;
    let cfg = &s.cfg;
    let memory = gpu_mem.bytes;
    let quality = |v: Variant| -> Option<Quality> {
        let (_, m) = s.manifest.as_ref()?;
        let e = m.variants.iter().find(|e| e.variant == v.name())?;
        Some(Quality::from(&e.verification))
    };
    let rows = fit::fit_rows_from(cfg, context, s.mxfp4_experts);
    // The row of the file given: the variant whose planned tensor bytes are the file's.
    // (The release checkpoint itself is the first row.)
    let given_row = match (s.given_variant, s.given_bytes) {
        (Some(v), _) => rows.iter().position(|r| r.variant == v.name()),
        (None, Some(b)) if s.release && b == rows[0].weights => Some(0),
        _ => None,
    };
    let mut warnings = Vec::new();
    if gpu_mem.unitless {
        warnings.push(format!(
            "--gpu-mem {}: a number without a unit is read as GiB",
            memory as f64 / (1u64 << 30) as f64
        ));
    }
    if gpu_mem.decimal {
        warnings.push(format!(
            "--gpu-mem is {:.2} GiB: GB are 10^9 bytes, while a GPU sold as \"24 GB\" holds 24 GiB (pass 24 or 24GiB for that)",
            memory as f64 / (1u64 << 30) as f64
        ));
    }
    if context > cfg.max_position_embeddings {
        warnings.push(format!(
            "--context {context} exceeds the model's maximum of {} positions (max_position_embeddings); the KV cache below is for {context} anyway",
            cfg.max_position_embeddings
        ));
    }
    if let (Some(b), None) = (s.given_bytes, given_row) {
        warnings.push(format!(
            "{} holds {} of tensors, which matches no variant oss-forge writes (a quantization of another tool?): its own row is added",
            s.label,
            fit::gib(b)
        ));
    }
    let runtimes = ["llama.cpp", "transformers / vLLM"];
    let best: Vec<(&str, Option<(Variant, fit::FitRow)>)> = runtimes
        .iter()
        .map(|r| (*r, fit::recommend(cfg, memory, context, r, &quality)))
        .collect();
    // Nothing in GGUF fits whole: what fits with experts of some layers kept on the CPU.
    let offloads: Vec<fit::Offload> = if best[0].1.is_none() {
        Variant::ALL
            .into_iter()
            .filter(|v| v.is_gguf())
            .filter_map(|v| fit::offload(cfg, v, memory, context))
            .collect()
    } else {
        Vec::new()
    };

    if json {
        let row_json = |i: usize, r: &fit::FitRow| {
            let q = Variant::parse(&r.variant).and_then(quality);
            serde_json::json!({
                "variant": r.variant, "weights": r.weights, "kv_cache": r.kv_cache,
                "overhead": r.overhead, "total": r.total, "fits": r.fits(memory),
                "given": given_row == Some(i),
                "quality": q.map(|q| serde_json::json!({"pass": q.pass, "lossless": q.lossless, "kld_mean": q.kld_mean, "top1": q.top1})),
            })
        };
        let mut table: Vec<serde_json::Value> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| row_json(i, r))
            .collect();
        if let (Some(b), None) = (s.given_bytes, given_row) {
            let kv = fit::kv_cache_bytes(cfg, context);
            let ov = fit::overhead_bytes(cfg);
            table.push(serde_json::json!({
                "variant": s.label, "weights": b, "kv_cache": kv, "overhead": ov,
                "total": b + kv + ov, "fits": b + kv + ov <= memory, "given": true, "quality": null,
            }));
        }
        let doc = serde_json::json!({
            "model": s.label,
            "parameters": cfg.parameter_count(),
            "context": context,
            "max_context": cfg.max_position_embeddings,
            "gpu_memory": memory,
            "warnings": warnings,
            "rows": table,
            "recommended": best.iter().map(|(rt, b)| serde_json::json!({
                "runtime": rt,
                "variant": b.as_ref().map(|(v, _)| v.name()),
                "total": b.as_ref().map(|(_, r)| r.total),
            })).collect::<Vec<_>>(),
            "offload": offloads.iter().map(|o| serde_json::json!({
                "variant": o.variant.name(), "n_cpu_moe": o.n_cpu_moe, "gpu": o.gpu, "cpu": o.cpu,
            })).collect::<Vec<_>>(),
        });
        outln!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }

    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let params = cfg.parameter_count() as f64;
    let params = if params >= 1e9 {
        format!("{:.2}B", params / 1e9)
    } else {
        format!("{:.2}M", params / 1e6)
    };
    outln!(
        "{}: {params} parameters, context {context}, GPU memory {} (sizes in GiB, 2^30 bytes)",
        s.label,
        fit::gib(memory)
    );
    let mut table = fit::table_from(cfg, memory, context, s.mxfp4_experts);
    if let Some(i) = given_row {
        table[i + 1][0] = format!("{}  <- {}", table[i + 1][0], s.label);
    } else if let Some(b) = s.given_bytes {
        let kv = fit::kv_cache_bytes(cfg, context);
        let ov = fit::overhead_bytes(cfg);
        let total = b + kv + ov;
        table.push([
            format!("{} (given)", s.label),
            fit::gib(b),
            fit::gib(kv),
            fit::gib(ov),
            fit::gib(total),
            if total <= memory {
                "yes".into()
            } else {
                format!("no (+{})", fit::gib(total - memory))
            },
        ]);
    }
    out!("{}", verify::report::format_table(&table));
    outln!(
        "KV cache: F16 K and V, {} of {} layers sliding (window {}); overhead: {} runtime + one {}-token batch of logits.",
        cfg.layer_types
            .iter()
            .filter(|t| **t == reference::LayerType::Sliding)
            .count(),
        cfg.num_hidden_layers,
        cfg.sliding_window,
        fit::gib(fit::RUNTIME_OVERHEAD),
        fit::UBATCH
    );
    for (rt, b) in &best {
        match b {
            Some((v, r)) => {
                let q = quality(*v).map_or_else(
                    || {
                        if fit::exact_by_design(*v) {
                            "exact by design from an MXFP4 release; not verified here".to_string()
                        } else {
                            "lossy by design; not verified here (`oss-forge pipeline` measures it)"
                                .to_string()
                        }
                    },
                    |q| q.describe(),
                );
                outln!(
                    "best fit for {rt}: {v} ({} of {}; {q})",
                    fit::gib(r.total),
                    fit::gib(memory)
                );
            }
            None => outln!("best fit for {rt}: none fits {}", fit::gib(memory)),
        }
    }
    if let Some(o) = offloads
        .iter()
        .min_by_key(|o| (!fit::exact_by_design(o.variant), o.n_cpu_moe))
    {
        outln!(
            "with experts on the CPU (llama.cpp `--n-cpu-moe N`): {} with --n-cpu-moe {} puts {} on the GPU and {} of experts in CPU memory",
            o.variant,
            o.n_cpu_moe,
            fit::gib(o.gpu),
            fit::gib(o.cpu)
        );
        for o in &offloads {
            outln!(
                "  {:<16} --n-cpu-moe {:>2}: GPU {}, CPU {}",
                o.variant.name(),
                o.n_cpu_moe,
                fit::gib(o.gpu),
                fit::gib(o.cpu)
            );
        }
    } else if best[0].1.is_none() {
        outln!(
            "even with every layer's experts on the CPU (--n-cpu-moe {}), no GGUF variant fits {}",
            cfg.num_hidden_layers,
            fit::gib(memory)
        );
    }
    Ok(ExitCode::SUCCESS)
}
