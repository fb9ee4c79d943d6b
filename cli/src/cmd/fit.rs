//! `oss-forge fit [MODEL | --preset 20b|120b] --gpu-mem SIZE [--context N]`.

use anyhow::Context;
use reference::Config;
use std::path::Path;
use std::process::ExitCode;
use verify::fit;

pub fn run(
    model: Option<&Path>,
    preset: Option<&str>,
    gpu_mem: u64,
    context: usize,
) -> anyhow::Result<ExitCode> {
    let (cfg, what): (Config, String) = match (model, preset) {
        (Some(m), None) => {
            let opened = convert::AnyModel::open(m)
                .with_context(|| format!("cannot open {}", m.display()))?;
            (opened.source().config().clone(), m.display().to_string())
        }
        (None, Some(p)) => {
            let preset = convert::synth::Preset::parse(p).context("unknown preset")?;
            (
                Config::from_hf_json(&convert::synth::preset_config(preset, None))?,
                format!("gpt-oss-{p}"),
            )
        }
        _ => anyhow::bail!("give a MODEL or --preset, not both"),
    };
    let params = cfg.parameter_count() as f64;
    let params = if params >= 1e9 {
        format!("{:.2}B", params / 1e9)
    } else {
        format!("{:.2}M", params / 1e6)
    };
    outln!(
        "{what}: {params} parameters, context {context}, GPU memory {}",
        fit::gb(gpu_mem)
    );
    out!(
        "{}",
        verify::report::format_table(&fit::table(&cfg, gpu_mem, context))
    );
    outln!(
        "KV cache: F16 K and V, {} of {} layers sliding (window {}); overhead: {} runtime + one {}-token batch of logits.",
        cfg.layer_types
            .iter()
            .filter(|t| **t == reference::LayerType::Sliding)
            .count(),
        cfg.num_hidden_layers,
        cfg.sliding_window,
        fit::gb(fit::RUNTIME_OVERHEAD),
        fit::UBATCH
    );
    Ok(ExitCode::SUCCESS)
}
