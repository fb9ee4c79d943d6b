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
            tokens,
            out,
            top,
        } => logits::run(&model, &tokens.0, out.as_deref(), top),
        Command::Convert {
            model,
            variant,
            out,
            settings,
            force,
        } => {
            let opts = settings.options(force);
            convert::run(&model, &variant, &out, &opts, quiet)
        }
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
        } => verify::run(
            &original,
            &variants,
            prompts.as_deref(),
            json.as_deref(),
            ::verify::Rules::new(tolerance, strict),
            quiet,
        ),
        Command::Pipeline {
            model,
            out,
            variants,
            prompts,
            tolerance,
            strict,
            settings,
        } => {
            let convert = settings.options(true);
            let args = pipeline::Args {
                model: &model,
                out: &out,
                variants,
                prompts: prompts.as_deref(),
                rules: ::verify::Rules::new(tolerance, strict),
                convert,
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
        }),
        Command::BenchForward {
            model,
            prompt,
            decode,
        } => bench::forward(&model, prompt, decode),
        Command::Check { out } => pipeline::check(&out),
        Command::Demo { out } => pipeline::demo(&out, quiet),
        Command::Fit {
            model,
            preset,
            gpu_mem,
            context,
        } => fit::run(model.as_deref(), preset.as_deref(), gpu_mem, context),
    }
}
