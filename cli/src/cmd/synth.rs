//! `oss-forge synth --preset tiny|20b|120b [--layers N] [--seed S] [--original] -o DIR`.

use convert::synth::{Preset, SynthOptions};
use std::path::Path;
use std::process::ExitCode;

pub fn run(
    preset: &str,
    layers: Option<usize>,
    seed: u64,
    original: bool,
    max_shard: Option<u64>,
    force: bool,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let preset = Preset::parse(preset).expect("clap restricts the values");
    if layers == Some(0) {
        anyhow::bail!("--layers must be at least 1");
    }
    let opts = SynthOptions {
        preset,
        layers,
        seed,
        original,
        max_shard_bytes: max_shard,
    };
    let _lock = convert::lock::OutputLock::acquire(out)?;
    crate::signals::stops_cleanly(format!(
        "the partial checkpoint was removed; nothing was written to {}",
        out.display()
    ));
    let s = convert::synth::synth(out, &opts, force, &mut |_| {})?;
    outln!(
        "wrote {} ({} preset, {} tensors, {} in {} shard{}{})",
        s.dir.display(),
        preset.name(),
        s.tensors,
        convert::units::bytes(s.tensor_bytes),
        s.shards,
        if s.shards == 1 { "" } else { "s" },
        if original { ", plus original/" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}
