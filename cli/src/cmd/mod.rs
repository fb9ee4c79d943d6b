//! One module per command.

mod bench;
mod convert;
mod fit;
mod inspect;
mod logits;
mod pipeline;
mod synth;
mod verify;

use crate::args::Command;
use std::process::ExitCode;

/// Runs a parsed command.
pub fn run(command: Command, quiet: bool, threads: Option<usize>) -> anyhow::Result<ExitCode> {
    match command {
        Command::Inspect { model, json } => inspect::run(&model, json),
        Command::Logits {
            model,
            model_flag,
            tokens,
            text,
            out,
            top,
        } => {
            let model = model.or(model_flag).expect("clap requires one");
            let prompt = match (tokens, text) {
                (Some(t), _) => logits::Prompt::Tokens(t.0),
                (None, Some(t)) => logits::Prompt::Text(t),
                (None, None) => unreachable!("clap requires one"),
            };
            logits::run(&model, &prompt, out.as_deref(), top)
        }
        Command::Convert {
            model,
            variant,
            outtype,
            out,
            settings,
            force,
        } => {
            let opts = settings.options(force);
            let rounding_given = settings.rounding_given();
            convert::run(
                &model,
                variant,
                outtype.as_deref(),
                &out,
                &opts,
                rounding_given,
                quiet,
            )
        }
        Command::Merge { out, parts } => pipeline::merge(&out, &parts, quiet),
        Command::Synth {
            preset,
            layers,
            seed,
            original,
            max_shard_size,
            force,
            out,
        } => synth::run(&preset, layers, seed, original, max_shard_size, force, &out),
        Command::Verify {
            original,
            variants,
            prompts,
            json,
            tolerance,
            strict,
            passes,
        } => verify::run(
            &original,
            &variants,
            prompts.as_deref(),
            json.as_deref(),
            ::verify::Rules::new(tolerance, strict).forcing_forward(passes.force_forward),
            passes.logits_cache.as_deref(),
            quiet,
        ),
        Command::Pipeline {
            model,
            out,
            variants,
            prompts,
            tolerance,
            strict,
            passes,
            name,
            base_model,
            force,
            settings,
        } => {
            let convert = settings.options(force);
            let args = pipeline::Args {
                model: &model,
                out: &out,
                variants,
                prompts: prompts.as_deref(),
                rules: ::verify::Rules::new(tolerance, strict)
                    .forcing_forward(passes.force_forward),
                logits_cache: passes.logits_cache,
                convert,
                name,
                base_model,
                quiet,
            };
            pipeline::run(&args)
        }
        Command::Bench {
            input,
            layers,
            work,
            variants,
            repeat,
            prompt,
            decode,
            verify,
            keep,
            json,
            llama_cpp,
            llama_convert,
            python,
            peers,
            peer_presets,
        } => bench::run(&bench::Args {
            input,
            layers,
            work,
            variants,
            repeat,
            prompt,
            decode,
            verify,
            keep,
            json,
            threads,
            llama_cpp,
            llama_convert,
            python,
            peers,
            peer_presets,
        }),
        Command::BenchForward {
            model,
            prompt,
            decode,
        } => bench::forward(&model, prompt, decode),
        Command::Check { out, json } => pipeline::check(&out, json, quiet),
        Command::Demo { out } => pipeline::demo(&out, quiet),
        Command::Fit {
            model,
            preset,
            gpu_mem,
            context,
            json,
        } => fit::run(model.as_deref(), preset.as_deref(), gpu_mem, context, json),
    }
}

/// Refuses a file output (`--out`, `--json`) that names an existing directory, before any work
/// is done for it (it would fail only at the end, when the file is written).
fn file_output(path: &std::path::Path, what: &str) -> anyhow::Result<()> {
    if path.is_dir() {
        anyhow::bail!(
            "{}: is a directory; {what} names the file to write (e.g. {})",
            path.display(),
            path.join(match what {
                "--json" => "report.json",
                _ => "logits.npy",
            })
            .display()
        );
    }
    Ok(())
}
