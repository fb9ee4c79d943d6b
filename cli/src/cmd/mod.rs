//! One module per command.

mod inspect;
mod logits;
mod synth;

use crate::args::Command;
use std::process::ExitCode;

/// Runs a parsed command.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Inspect { model, json } => inspect::run(&model, json),
        Command::Logits { model, tokens, out, top } => logits::run(&model, &tokens.0, out.as_deref(), top),
        Command::Synth { preset, layers, seed, original, max_shard_size, force, out } => {
            synth::run(&preset, layers, seed, original, max_shard_size, force, &out)
        }
    }
}
