//! `oss-forge logits MODEL (--tokens 1,2,3 | --text "...") [--out FILE.npy]`.

use anyhow::Context;
use reference::Model;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// The prompt: token ids, or text for the checkpoint's tokenizer.
pub enum Prompt {
    /// Token ids as given.
    Tokens(Vec<u32>),
    /// Text, encoded with the model's `tokenizer.json`.
    Text(String),
}

pub fn run(
    model_path: &Path,
    prompt: &Prompt,
    out: Option<&Path>,
    top: usize,
) -> anyhow::Result<ExitCode> {
    let src = convert::AnyModel::open(model_path)?;
    // The logits never go onto or into the model being read.
    if let Some(path) = out {
        convert::output::refuse_overlap(&convert::output::inputs(&src), path)?;
        super::file_output(path, "--out")?;
    }
    let cfg = src.source().config().clone();
    let vocab = cfg.vocab_size;
    let tokens = match prompt {
        Prompt::Tokens(t) => t.clone(),
        Prompt::Text(text) => {
            let path = src.companion("tokenizer.json").with_context(|| {
                format!(
                    "--text needs the checkpoint's tokenizer.json, and there is none beside {} (pass --tokens instead)",
                    model_path.display()
                )
            })?;
            let tok = verify::prompts::load_tokenizer(
                &convert::publish::read_small(&path)?,
                &path.display().to_string(),
            )?;
            let ids = verify::prompts::encode(&tok, text)?;
            if ids.is_empty() {
                anyhow::bail!("--text {text:?} encodes to no tokens");
            }
            verify::prompts::check(
                &cfg,
                Some(&tok),
                &[verify::prompts::Prompt {
                    name: "--text".into(),
                    tokens: ids.clone(),
                }],
            )?;
            ids
        }
    };
    let model = Model::new(src.source())?;
    let logits = model.logits(&tokens)?;
    let mut stdout = std::io::stdout().lock();
    if let Prompt::Text(_) = prompt {
        let ids: Vec<String> = tokens.iter().map(u32::to_string).collect();
        writeln!(stdout, "tokens: {}", ids.join(","))?;
    }
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
