//! `oss-forge logits --model MODEL --tokens 1,2,3 [--out FILE.npy]`.

use anyhow::Context;
use reference::Model;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

pub fn run(
    model_path: &Path,
    tokens: &[u32],
    out: Option<&Path>,
    top: usize,
) -> anyhow::Result<ExitCode> {
    let src = convert::AnyModel::open(model_path)
        .with_context(|| format!("cannot open {}", model_path.display()))?;
    let vocab = src.source().config().vocab_size;
    let model = Model::new(src.source())
        .with_context(|| format!("cannot load {}", model_path.display()))?;
    let logits = model.logits(tokens)?;
    let mut stdout = std::io::stdout().lock();
    for (t, row) in logits.chunks_exact(vocab).enumerate() {
        let mut idx: Vec<usize> = (0..vocab).collect();
        let k = top.min(vocab);
        idx.select_nth_unstable_by(k.saturating_sub(1).min(vocab - 1), |&a, &b| {
            row[b].total_cmp(&row[a]).then(a.cmp(&b))
        });
        idx.truncate(k);
        idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        let items: Vec<String> = idx.iter().map(|&i| format!("{i}:{:.4}", row[i])).collect();
        writeln!(
            stdout,
            "pos {t:>4} token {:>6} -> {}",
            tokens[t],
            items.join("  ")
        )?;
    }
    if let Some(path) = out {
        convert::npy::write_f32(path, &[tokens.len(), vocab], &logits)?;
        writeln!(
            stdout,
            "wrote {} ([{}, {vocab}] float32)",
            path.display(),
            tokens.len()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
