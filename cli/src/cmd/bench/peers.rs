//! The peer tools `bench` runs beside ours when they are found, and what it measures with them:
//! llama.cpp's `llama-perplexity`, `llama-quantize` and `convert_hf_to_gguf.py` (mlx-lm's
//! `mlx_lm.convert` is run from the conversion loop in `bench.rs`). None of them is a
//! dependency: a comparison whose tool is absent is skipped with a note saying why.
//!
//! - **KL divergence** (`kld`): our `verify` of a GGUF variant, per position of the prompts it
//!   runs, against llama.cpp's own workflow, per token: `llama-perplexity -m BASE.gguf
//!   --kl-divergence-base BASE.dat` on the lossless `gguf-mxfp4` of the input, then `-m
//!   VARIANT.gguf --kl-divergence-base BASE.dat --kl-divergence` on the same variant file verify
//!   checked, both over one chunk of 512 tokens of a deterministic text.
//! - **Dense source** (`dense`): our `safetensors-bf16` of the input (transformers' dense
//!   layout, made untimed) converted to `gguf-mxfp4-q8_0`, against `convert_hf_to_gguf.py
//!   --outtype bf16` followed by `llama-quantize BF16.gguf OUT MXFP4_MOE N`, the two summed.
//! - **Presets** (`presets`): every GGUF preset from that dense source, against `llama-quantize
//!   BF16.gguf OUT PRESET N` with the converter's BF16 GGUF as its input (our `gguf-bf16` of the
//!   dense source when the converter is absent or fails).

use super::{Args, Run, me, measure, median, remove, settle, tree_bytes};
use anyhow::{Context, bail};
use convert::Variant;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The peer comparisons a run may make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// verify against llama-perplexity's KL-divergence workflow.
    Kld,
    /// dense BF16 -> gguf-mxfp4-q8_0 against convert_hf_to_gguf.py + llama-quantize MXFP4_MOE.
    Dense,
    /// every GGUF preset from the dense source against llama-quantize.
    Presets,
    /// every GGUF preset variant of the input against llama-quantize with MXFP4 experts kept.
    ReleasePresets,
    /// MLX variants against mlx_lm.convert.
    Mlx,
}

impl Peer {
    const ALL: [Peer; 5] = [
        Peer::Kld,
        Peer::Dense,
        Peer::Presets,
        Peer::ReleasePresets,
        Peer::Mlx,
    ];

    fn name(self) -> &'static str {
        match self {
            Peer::Kld => "kld",
            Peer::Dense => "dense",
            Peer::Presets => "presets",
            Peer::ReleasePresets => "release-presets",
            Peer::Mlx => "mlx",
        }
    }
}

/// Parses `--peers`: names from [`Peer::name`], `all` or `none`.
pub fn parse_peers(names: &[String]) -> anyhow::Result<Vec<Peer>> {
    let mut out = Vec::new();
    for n in names.iter().map(|n| n.trim()) {
        match n {
            "all" => out.extend(Peer::ALL),
            "none" => {}
            _ => match Peer::ALL.into_iter().find(|p| p.name() == n) {
                Some(p) => out.push(p),
                None => bail!(
                    "unknown peer comparison `{n}` for --peers (known: {}, all, none)",
                    Peer::ALL.map(Peer::name).join(", ")
                ),
            },
        }
    }
    let mut unique = Vec::new();
    for p in out {
        if !unique.contains(&p) {
            unique.push(p);
        }
    }
    Ok(unique)
}

/// llama.cpp's tools, as found.
pub struct Tools {
    /// `llama-quantize`.
    pub quantize: Option<PathBuf>,
    /// `llama-perplexity`.
    pub perplexity: Option<PathBuf>,
    /// `convert_hf_to_gguf.py`.
    pub convert: Option<PathBuf>,
    /// The interpreter that runs the converter.
    pub python: PathBuf,
    /// Why a tool is missing, for the report.
    pub notes: Vec<String>,
}

/// `name` in a directory of `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Finds llama.cpp's tools: in `--llama-cpp DIR` (which must hold at least one of them) or on
/// `PATH`; the converter at `--llama-convert`, on `PATH`, or up to two levels above the tools
/// (a source tree's `build/bin`).
pub fn find(a: &Args) -> anyhow::Result<Tools> {
    let (quantize, perplexity) = match &a.llama_cpp {
        Some(dir) => {
            if !dir.is_dir() {
                bail!("--llama-cpp {}: not a directory", dir.display());
            }
            let at = |n: &str| Some(dir.join(n)).filter(|p| p.is_file());
            let (q, p) = (at("llama-quantize"), at("llama-perplexity"));
            if q.is_none() && p.is_none() {
                bail!(
                    "--llama-cpp {}: holds neither llama-quantize nor llama-perplexity",
                    dir.display()
                );
            }
            (q, p)
        }
        None => (on_path("llama-quantize"), on_path("llama-perplexity")),
    };
    let convert = match &a.llama_convert {
        Some(f) if f.is_file() => Some(f.clone()),
        Some(f) => bail!("--llama-convert {}: no such file", f.display()),
        None => on_path("convert_hf_to_gguf.py").or_else(|| {
            [&quantize, &perplexity]
                .into_iter()
                .flatten()
                .filter_map(|t| t.parent())
                .flat_map(|d| d.ancestors().take(3))
                .map(|d| d.join("convert_hf_to_gguf.py"))
                .find(|p| p.is_file())
        }),
    };
    let mut notes = Vec::new();
    let where_ = if a.llama_cpp.is_some() {
        "in --llama-cpp DIR"
    } else {
        "on PATH (or give --llama-cpp DIR)"
    };
    if quantize.is_none() {
        notes.push(format!(
            "llama-quantize not found {where_}: the preset comparisons and llama.cpp's side of the dense one are skipped"
        ));
    }
    if perplexity.is_none() {
        notes.push(format!(
            "llama-perplexity not found {where_}: the KL-divergence comparison is skipped"
        ));
    }
    if convert.is_none() {
        notes.push(
            "convert_hf_to_gguf.py not found (give --llama-convert FILE and --python): the dense comparison has no llama.cpp side; llama-quantize's BF16 input is our gguf-bf16"
                .to_string(),
        );
    }
    Ok(Tools {
        quantize,
        perplexity,
        convert,
        python: a.python.clone(),
        notes,
    })
}

/// Runs `convert_hf_to_gguf.py` through this wrapper (`python -c WRAPPER SCRIPT ARGS...`): the
/// script unchanged, except that a tokenizer missing from llama.cpp's table of pre-tokenizer
/// hashes (the synthesized checkpoints' small tokenizer) is declared `gpt-4o`, the pre-tokenizer
/// llama.cpp gives gpt-oss, where the script would stop with "BPE pre-tokenizer was not
/// recognized". A known tokenizer (the release's) takes the script's own path.
const CONVERT_WRAPPER: &str = r#"
import os, runpy, sys
script = sys.argv[1]
sys.argv = sys.argv[1:]
here = os.path.dirname(os.path.abspath(script))
sys.path.insert(0, here)
if 'NO_LOCAL_GGUF' not in os.environ:
    sys.path.insert(1, os.path.join(here, 'gguf-py'))
import conversion.base as base
known = base.TextModel.get_vocab_base_pre
def pre(self, tokenizer):
    try:
        return known(self, tokenizer)
    except NotImplementedError:
        return 'gpt-4o'
base.TextModel.get_vocab_base_pre = pre
runpy.run_path(script, run_name='__main__')
"#;

/// The converter's command: `MODEL --outtype OUTTYPE --outfile OUT`.
pub fn convert_cmd(t: &Tools, script: &Path, model: &Path, outtype: &str, out: &Path) -> Command {
    let mut cmd = Command::new(&t.python);
    cmd.arg("-c")
        .arg(CONVERT_WRAPPER)
        .arg(script)
        .arg(model)
        .args(["--outtype", outtype, "--outfile"])
        .arg(out);
    cmd
}

/// `llama-quantize [overrides] IN OUT PRESET THREADS`.
pub fn quantize_cmd(
    exe: &Path,
    input: &Path,
    out: &Path,
    preset: &str,
    threads: usize,
    keep_mxfp4_experts: bool,
) -> Command {
    let mut cmd = Command::new(exe);
    if keep_mxfp4_experts {
        for t in ["ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"] {
            cmd.arg("--tensor-type").arg(format!("{t}=mxfp4"));
        }
    }
    cmd.arg(input).arg(out).arg(preset).arg(threads.to_string());
    cmd
}

/// The 1-minute load average.
pub fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// One side of a comparison: its runs (each with the 1-minute load average when it started),
/// its output's bytes, or why it failed.
#[derive(Clone, Debug, Default)]
pub struct Side {
    pub runs: Vec<(Run, f64)>,
    pub bytes: u64,
    pub err: Option<String>,
}

impl Side {
    /// Median seconds, `None` without a successful run.
    pub fn secs(&self) -> Option<f64> {
        (self.err.is_none() && !self.runs.is_empty())
            .then(|| median(&self.runs.iter().map(|(r, _)| r.secs).collect::<Vec<_>>()))
    }

    fn peak_rss(&self) -> u64 {
        self.runs.iter().map(|(r, _)| r.peak_rss).max().unwrap_or(0)
    }

    pub fn json(&self) -> Value {
        json!({
            "secs": self.secs(),
            "runs": self.runs.iter().map(|(r, _)| r.secs).collect::<Vec<_>>(),
            "load1": self.runs.iter().map(|(_, l)| *l).collect::<Vec<_>>(),
            "out_bytes": self.bytes,
            "peak_rss_bytes": self.peak_rss(),
            "error": self.err,
        })
    }

    /// Runs `cmd` after a `sync` (untimed), recording the run and `out`'s bytes (`out` is
    /// removed before, and after unless `keep`). A failure is recorded, not returned: a peer
    /// refusing an input is a finding. Only I/O errors of the bench itself are returned.
    pub fn run(&mut self, cmd: Command, log: &Path, out: &Path, keep: bool) -> anyhow::Result<()> {
        remove(out)?;
        self.run_in_place(cmd, log, Some(out))?;
        if !keep {
            remove(out)?;
        }
        Ok(())
    }

    /// [`Side::run`] without removing anything; `out`, if given, is measured after.
    pub fn run_in_place(
        &mut self,
        cmd: Command,
        log: &Path,
        out: Option<&Path>,
    ) -> anyhow::Result<()> {
        if self.err.is_some() {
            return Ok(());
        }
        settle()?;
        let load = load1();
        match measure(cmd, log) {
            Ok((run, _)) => {
                self.runs.push((run, load));
                if let Some(out) = out {
                    self.bytes = tree_bytes(out)?;
                }
            }
            Err(e) => self.err = Some(format!("{e:#}")),
        }
        Ok(())
    }
}

/// `ours / theirs`, when both ran.
pub fn ratio(ours: Option<f64>, theirs: Option<f64>) -> Option<f64> {
    Some(ours? / theirs?)
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"))
}

fn fmt_secs(s: &Side) -> String {
    match (&s.err, s.secs()) {
        (Some(_), _) => "failed".to_string(),
        (None, Some(x)) => format!("{x:.2}"),
        (None, None) => "-".to_string(),
    }
}

/// Target 3: the dense comparisons.
pub struct Dense {
    /// Bytes of the dense source (our `safetensors-bf16` of the input).
    pub source_bytes: u64,
    /// Ours: dense -> gguf-mxfp4-q8_0.
    pub ours_moe: Side,
    /// `convert_hf_to_gguf.py --outtype bf16` of the dense source (`None` when absent).
    pub convert: Option<Side>,
    /// `llama-quantize BF16.gguf OUT MXFP4_MOE` (`None` when absent).
    pub quant_moe: Option<Side>,
    /// What llama-quantize's BF16 input was.
    pub bf16_input: String,
    /// Per preset variant: ours from the dense source, llama-quantize from the BF16 GGUF.
    pub presets: Vec<(Variant, Side, Side)>,
}

/// The preset variants `--peer-presets` names (default: every one).
pub fn peer_presets(a: &Args) -> anyhow::Result<Vec<Variant>> {
    let all: Vec<Variant> = Variant::ALL
        .into_iter()
        .filter(|v| matches!(v, Variant::GgufPreset(_)))
        .collect();
    match &a.peer_presets {
        None => Ok(all),
        Some(names) => names
            .iter()
            .map(|n| {
                let v = Variant::parse_or_suggest(n).map_err(anyhow::Error::msg)?;
                anyhow::ensure!(
                    all.contains(&v),
                    "--peer-presets: `{n}` is not a GGUF preset variant"
                );
                Ok(v)
            })
            .collect(),
    }
}

/// Reads every file under `path` once (into the page cache), discarding the bytes.
fn warm(path: &Path) -> anyhow::Result<()> {
    use std::io::Read;
    if path.is_dir() {
        for entry in
            std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
        {
            warm(&entry?.path())?;
        }
        return Ok(());
    }
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut buf = vec![0u8; 8 << 20];
    while f
        .read(&mut buf)
        .with_context(|| format!("cannot read {}", path.display()))?
        > 0
    {}
    Ok(())
}

/// Target 3a and 3b, `--repeat` rounds. `None` when not asked for.
pub fn dense(
    a: &Args,
    peers: &[Peer],
    presets: &[Variant],
    input: &Path,
    tools: &Tools,
    logs: &Path,
    threads: usize,
) -> anyhow::Result<Option<Dense>> {
    let want_moe = peers.contains(&Peer::Dense);
    let want_presets = peers.contains(&Peer::Presets) && !presets.is_empty();
    if !want_moe && !want_presets {
        return Ok(None);
    }
    let dense = a.work.join("dense-bf16");
    eprintln!("peers: writing the dense source (safetensors-bf16, untimed) ...");
    let mut cmd = me(a.threads)?;
    cmd.arg("convert")
        .arg(input)
        .args(["--to", "safetensors-bf16", "--force", "-o"])
        .arg(&dense);
    measure(cmd, &logs.join("dense-source"))?;
    // Our writers write with direct I/O, so the source would be read cold by the first timed
    // step (ours) and warm by the next (the converter): read it once, untimed, as the input is.
    warm(&dense)?;
    let source_bytes = tree_bytes(&dense)?;
    let bf16 = a.work.join("peer-bf16.gguf");
    let out = a.work.join("peer-out.gguf");
    let mut d = Dense {
        source_bytes,
        ours_moe: Side::default(),
        convert: tools.convert.as_ref().map(|_| Side::default()),
        quant_moe: tools
            .quantize
            .as_ref()
            .filter(|_| want_moe)
            .map(|_| Side::default()),
        bf16_input: String::new(),
        presets: presets
            .iter()
            .map(|&v| (v, Side::default(), Side::default()))
            .collect(),
    };
    let ours_to = |v: Variant, to: &Path| -> anyhow::Result<Command> {
        let mut cmd = me(a.threads)?;
        cmd.arg("convert")
            .arg(&dense)
            .args(["--to", v.name(), "--force", "-o"])
            .arg(to);
        Ok(cmd)
    };
    let ours = |v: Variant| ours_to(v, &out);
    for round in 0..a.repeat {
        let tag = format!("round {}/{}", round + 1, a.repeat);
        if want_moe {
            eprintln!("{tag}: dense -> gguf-mxfp4-q8_0 ...");
            d.ours_moe.run(
                ours(Variant::GgufMxfp4Q8_0)?,
                &logs.join("dense-ours-gguf-mxfp4-q8_0"),
                &out,
                false,
            )?;
            if let Some(e) = &d.ours_moe.err {
                bail!("oss-forge failed on the dense source: {e}");
            }
        }
        // The converter's BF16 GGUF: timed (target 3a), and llama-quantize's input after it.
        if let (Some(script), Some(side)) = (&tools.convert, &mut d.convert) {
            eprintln!("{tag}: convert_hf_to_gguf.py --outtype bf16 ...");
            side.run(
                convert_cmd(tools, script, &dense, "bf16", &bf16),
                &logs.join("dense-convert_hf_to_gguf-bf16"),
                &bf16,
                true,
            )?;
            if side.err.is_some() {
                // A partial file is no input for llama-quantize: ours replaces it below.
                remove(&bf16)?;
            }
        }
        if !bf16.exists() {
            eprintln!("peers: writing llama-quantize's BF16 input (our gguf-bf16, untimed) ...");
            measure(
                ours_to(Variant::GgufBf16, &bf16)?,
                &logs.join("dense-ours-gguf-bf16"),
            )?;
            warm(&bf16)?;
            d.bf16_input = "oss-forge's gguf-bf16 of the dense source".into();
        } else if d.bf16_input.is_empty() {
            d.bf16_input = "convert_hf_to_gguf.py --outtype bf16 of the dense source".into();
        }
        let quantize = tools.quantize.as_ref();
        if let (Some(q), Some(side)) = (quantize, &mut d.quant_moe) {
            eprintln!("{tag}: llama-quantize MXFP4_MOE ...");
            side.run(
                quantize_cmd(q, &bf16, &out, "MXFP4_MOE", threads, false),
                &logs.join("dense-llama-quantize-MXFP4_MOE"),
                &out,
                false,
            )?;
        }
        if want_presets {
            for (v, o, t) in &mut d.presets {
                // Without llama-quantize, ours alone, for the record.
                let theirs = match (quantize, *v) {
                    (Some(q), Variant::GgufPreset(p)) => Some((q, p)),
                    (Some(_), _) => continue,
                    (None, _) => None,
                };
                match theirs {
                    Some((_, p)) => {
                        eprintln!("{tag}: dense -> {v}, then llama-quantize {} ...", p.name())
                    }
                    None => eprintln!("{tag}: dense -> {v} ..."),
                }
                o.run(
                    ours(*v)?,
                    &logs.join(format!("dense-ours-{v}")),
                    &out,
                    false,
                )?;
                let Some((q, p)) = theirs else {
                    continue;
                };
                if let Some(e) = &o.err {
                    bail!("oss-forge failed on the dense source: {e}");
                }
                t.run(
                    quantize_cmd(q, &bf16, &out, p.name(), threads, false),
                    &logs.join(format!("dense-llama-quantize-{}", p.name())),
                    &out,
                    false,
                )?;
            }
        }
    }
    if !want_presets {
        d.presets.clear();
    }
    if !a.keep {
        remove(&bf16)?;
        remove(&dense)?;
    }
    Ok(Some(d))
}

/// Prints the dense comparisons and returns their JSON.
pub fn dense_report(d: &Dense) -> Value {
    let ours = d.ours_moe.secs();
    let conv = d.convert.as_ref().and_then(Side::secs);
    let quant = d.quant_moe.as_ref().and_then(Side::secs);
    let theirs = conv.zip(quant).map(|(c, q)| c + q);
    let mut j = json!({"source_bytes": d.source_bytes, "bf16_input": d.bf16_input});
    if ours.is_some() {
        let r = ratio(ours, theirs);
        print!(
            "target 3a: dense BF16 ({:.2} GB) -> gguf-mxfp4-q8_0: ours {} s",
            d.source_bytes as f64 / 1e9,
            fmt_secs(&d.ours_moe)
        );
        match (&d.convert, &d.quant_moe) {
            (Some(c), Some(q)) => println!(
                "; convert_hf_to_gguf.py --outtype bf16 {} s + llama-quantize MXFP4_MOE {} s; ratio {} (target <= 0.25x{})",
                fmt_secs(c),
                fmt_secs(q),
                fmt_ratio(r),
                r.map_or("", |r| if r <= 0.25 { ", met" } else { ", not met" })
            ),
            _ => println!("; llama.cpp's side not run (converter or llama-quantize absent)"),
        }
        for (side, name) in [(&d.convert, "convert"), (&d.quant_moe, "quantize")] {
            if let Some(e) = side.as_ref().and_then(|s| s.err.as_ref()) {
                println!("  {name} failed: {}", e.lines().last().unwrap_or(""));
            }
        }
        j["mxfp4_moe"] = json!({
            "ours": d.ours_moe.json(),
            "convert_hf_to_gguf_bf16": d.convert.as_ref().map(Side::json),
            "llama_quantize_mxfp4_moe": d.quant_moe.as_ref().map(Side::json),
            "theirs_secs": theirs,
            "ours_over_theirs_secs": r,
            "target": 0.25,
        });
    }
    if !d.presets.is_empty() {
        println!(
            "target 3b: GGUF presets from the dense source, ours vs llama-quantize on {} (target <= 1.0x)",
            d.bf16_input
        );
        println!(
            "  {:<16} {:>9} {:>9} {:>16} {:>9} {:>7}",
            "preset", "ours s", "out GB", "llama-quantize s", "out GB", "ratio"
        );
        let mut rows = Vec::new();
        for (v, o, t) in &d.presets {
            let r = ratio(o.secs(), t.secs());
            println!(
                "  {:<16} {:>9} {:>9.2} {:>16} {:>9.2} {:>7}{}",
                v.name(),
                fmt_secs(o),
                o.bytes as f64 / 1e9,
                fmt_secs(t),
                t.bytes as f64 / 1e9,
                fmt_ratio(r),
                r.map_or("", |r| if r <= 1.0 { "" } else { "  not met" })
            );
            if let Some(e) = &t.err {
                println!(
                    "    llama-quantize failed: {}",
                    e.lines().last().unwrap_or("")
                );
            }
            rows.push(json!({
                "variant": v.name(), "ours": o.json(), "llama_quantize": t.json(),
                "ours_over_theirs_secs": r, "target": 1.0,
            }));
        }
        j["presets"] = Value::Array(rows);
    }
    j
}

/// Target 1: llama.cpp's KL-divergence workflow.
pub struct Kld {
    /// The lossless GGUF of the input the base pass read.
    pub base_variant: Variant,
    /// `--kl-divergence-base` on the base.
    pub base: Side,
    /// `--kl-divergence` on the variant.
    pub kld: Side,
    /// Chunks and context of each pass, as llama-perplexity printed them.
    pub chunks: u64,
    pub n_ctx: u64,
    /// Mean KLD llama-perplexity printed.
    pub mean_kld: Option<f64>,
}

/// The context (and batch) of the KLD passes: one chunk of 512 tokens.
pub const KLD_CTX: usize = 512;

/// A deterministic English text of about `words` words: sentences assembled from fixed word
/// lists by a fixed linear congruential sequence. Enough of it gives llama-perplexity the
/// `2 × n_ctx` tokens it asks for before it evaluates one chunk.
pub fn prose(words: usize) -> String {
    const SUBJECTS: [&str; 12] = [
        "The river",
        "A small committee",
        "Every engineer",
        "The old library",
        "Our neighbour",
        "The northern wind",
        "A quiet student",
        "The city council",
        "That bright morning",
        "The last train",
        "A careful reader",
        "The harbour master",
    ];
    const VERBS: [&str; 12] = [
        "remembered",
        "carried",
        "described",
        "measured",
        "questioned",
        "followed",
        "repaired",
        "counted",
        "painted",
        "announced",
        "compared",
        "opened",
    ];
    const OBJECTS: [&str; 12] = [
        "the long report",
        "seven wooden boxes",
        "a map of the valley",
        "the price of bread",
        "an unfinished letter",
        "the evening news",
        "two hundred lanterns",
        "the stone bridge",
        "a question about time",
        "the winter garden",
        "every page of the book",
        "the sound of the bells",
    ];
    const TAILS: [&str; 12] = [
        "before the rain began.",
        "while the others slept.",
        "because nobody else would.",
        "and then walked home slowly.",
        "with surprising patience.",
        "although it was late.",
        "as the clock struck nine.",
        "for the third time that week.",
        "without saying a word.",
        "near the edge of the forest.",
        "and wrote it all down.",
        "until the lights went out.",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) % n as u64) as usize
    };
    let mut text = String::new();
    let mut count = 0;
    let mut sentence = 0;
    while count < words {
        let s = SUBJECTS[next(12)];
        let v = VERBS[next(12)];
        let o = OBJECTS[next(12)];
        let t = TAILS[next(12)];
        let line = format!("{s} {v} {o} {t}");
        count += line.split_whitespace().count();
        text.push_str(&line);
        sentence += 1;
        text.push(if sentence % 6 == 0 { '\n' } else { ' ' });
    }
    text
}

/// `(chunks, n_ctx)` from llama-perplexity's "... over N chunks, n_ctx=M" line.
pub fn parse_chunks(log: &str) -> Option<(u64, u64)> {
    let i = log.find(" chunks, n_ctx=")?;
    let chunks = log[..i].rsplit(' ').next()?.trim().parse().ok()?;
    let rest = &log[i + " chunks, n_ctx=".len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    Some((chunks, rest[..end].parse().ok()?))
}

/// The mean KLD from llama-perplexity's "Mean    KLD:   0.123 ±   0.004" line.
pub fn parse_mean_kld(log: &str) -> Option<f64> {
    let line = log
        .lines()
        .find(|l| l.trim_start().starts_with("Mean    KLD:"))?;
    line.split(':')
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The log's text, stdout and stderr.
fn log_text(log: &Path) -> String {
    let read = |ext| std::fs::read_to_string(log.with_extension(ext)).unwrap_or_default();
    read("out") + &read("err")
}

/// Runs llama.cpp's KL-divergence workflow on `variant_path` (a GGUF of `variant`): the base
/// pass over the lossless `gguf-mxfp4` of `input` (converted untimed, or `variant_path` itself
/// when the variant is that), then the KLD pass. `None` when not asked for or the tool is
/// absent; `Err` text for a peer failure.
#[allow(clippy::too_many_arguments)]
pub fn kld(
    a: &Args,
    input: &Path,
    tools: &Tools,
    variant: Variant,
    variant_path: &Path,
    logs: &Path,
    threads: usize,
) -> anyhow::Result<Result<Kld, String>> {
    let Some(exe) = &tools.perplexity else {
        return Ok(Err("llama-perplexity not found".into()));
    };
    if !variant.is_gguf() {
        return Ok(Err(format!(
            "the verified variant {variant} is not a GGUF (llama-perplexity reads GGUF)"
        )));
    }
    let base_variant = Variant::GgufMxfp4;
    let base_path = if variant == base_variant {
        variant_path.to_path_buf()
    } else {
        let p = a.work.join("kld-base.gguf");
        eprintln!(
            "peers: converting {base_variant} for llama-perplexity's base pass (untimed) ..."
        );
        let mut cmd = me(a.threads)?;
        cmd.arg("convert")
            .arg(input)
            .args(["--to", base_variant.name(), "--force", "-o"])
            .arg(&p);
        measure(cmd, &logs.join("kld-base-convert"))?;
        p
    };
    let text = a.work.join("kld-text.txt");
    std::fs::write(&text, prose(20_000))
        .with_context(|| format!("cannot write {}", text.display()))?;
    let dat = a.work.join("kld-base.dat");
    let pass = |model: &Path, kld: bool| {
        let mut cmd = Command::new(exe);
        cmd.arg("-m")
            .arg(model)
            .arg("--kl-divergence-base")
            .arg(&dat);
        if kld {
            cmd.arg("--kl-divergence");
        }
        let ctx = KLD_CTX.to_string();
        cmd.arg("-f")
            .arg(&text)
            .args(["-c", &ctx, "-b", &ctx, "--chunks", "1", "-t"])
            .arg(threads.to_string());
        cmd
    };
    let mut k = Kld {
        base_variant,
        base: Side::default(),
        kld: Side::default(),
        chunks: 0,
        n_ctx: 0,
        mean_kld: None,
    };
    eprintln!("peers: llama-perplexity --kl-divergence-base on {base_variant} ...");
    let base_log = logs.join("llama-perplexity-base");
    k.base.run(pass(&base_path, false), &base_log, &dat, true)?;
    if let Some(e) = &k.base.err {
        return Ok(Err(format!("llama-perplexity (base pass) failed: {e}")));
    }
    eprintln!("peers: llama-perplexity --kl-divergence on {variant} ...");
    let kld_log = logs.join("llama-perplexity-kld");
    k.kld
        .run_in_place(pass(variant_path, true), &kld_log, None)?;
    if let Some(e) = &k.kld.err {
        return Ok(Err(format!("llama-perplexity (KLD pass) failed: {e}")));
    }
    let (c1, n1) = parse_chunks(&log_text(&base_log))
        .ok_or_else(|| anyhow::anyhow!("llama-perplexity printed no chunk count"))?;
    match parse_chunks(&log_text(&kld_log)) {
        Some(c) if c == (c1, n1) => {}
        other => {
            bail!("llama-perplexity's passes differ: base {c1} chunks of {n1}, KLD pass {other:?}")
        }
    }
    k.chunks = c1;
    k.n_ctx = n1;
    k.mean_kld = parse_mean_kld(&log_text(&kld_log));
    remove(&dat)?;
    if base_path != variant_path {
        remove(&base_path)?;
    }
    Ok(Ok(k))
}

/// Ours: `verify`'s seconds and the positions of its prompts.
pub struct OursVerify {
    pub variant: Variant,
    pub secs: f64,
    pub positions: u64,
    pub load1: f64,
}

/// Prints target 1 and returns its JSON.
pub fn kld_report(ours: &OursVerify, theirs: &Result<Kld, String>) -> Value {
    let ours_ms = ours.secs * 1e3 / ours.positions.max(1) as f64;
    print!(
        "target 1: verify {}: {:.1} ms per position ({} positions, {:.2} s, load {:.1})",
        ours.variant, ours_ms, ours.positions, ours.secs, ours.load1
    );
    let mut j = json!({
        "ours": {"variant": ours.variant.name(), "secs": ours.secs, "positions": ours.positions,
                 "ms_per_position": ours_ms, "load1": ours.load1},
        "target": 1.0,
    });
    match theirs {
        Err(why) => {
            println!("; llama.cpp's KLD workflow not run: {why}");
            j["llama_perplexity"] = json!({"error": why});
        }
        Ok(k) => {
            let tokens = k.chunks * k.n_ctx;
            let secs = k.base.secs().unwrap_or(f64::NAN) + k.kld.secs().unwrap_or(f64::NAN);
            let ms = secs * 1e3 / tokens.max(1) as f64;
            let r = ours_ms / ms;
            println!(
                "; llama-perplexity base ({}) {} s + KLD {} s over {} tokens: {:.1} ms per token; ratio {:.2}x (target <= 1.0x, {})",
                k.base_variant,
                fmt_secs(&k.base),
                fmt_secs(&k.kld),
                tokens,
                ms,
                r,
                if r <= 1.0 { "met" } else { "not met" }
            );
            j["llama_perplexity"] = json!({
                "base_variant": k.base_variant.name(), "base": k.base.json(), "kld": k.kld.json(),
                "chunks": k.chunks, "n_ctx": k.n_ctx, "tokens": tokens, "secs": secs,
                "ms_per_token": ms, "mean_kld": k.mean_kld,
            });
            j["ours_over_theirs"] = json!(r);
        }
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_llama_perplexity_lines() {
        let base = "perplexity: tokenizing the input ..\nperplexity: calculating perplexity over 1 chunks, n_ctx=512, batch_size=512, n_seq=1\n";
        assert_eq!(parse_chunks(base), Some((1, 512)));
        let kld = "kl_divergence: computing over 3 chunks, n_ctx=256, batch_size=512, n_seq=2\n";
        assert_eq!(parse_chunks(kld), Some((3, 256)));
        assert_eq!(parse_chunks("no such line"), None);
        let out = "Mean PPL(Q)                   :  12.000 ±   0.1\nMean    KLD:   0.012345 ±   0.000678\n";
        assert_eq!(parse_mean_kld(out), Some(0.012345));
        assert_eq!(parse_mean_kld("Mean PPL(Q) : 1"), None);
    }

    #[test]
    fn peers_parse_and_refuse_unknown_names() {
        let s = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_peers(&s(&["all"])).unwrap(), Peer::ALL.to_vec());
        assert!(parse_peers(&s(&["none"])).unwrap().is_empty());
        assert_eq!(
            parse_peers(&s(&["kld", "presets"])).unwrap(),
            vec![Peer::Kld, Peer::Presets]
        );
        assert!(parse_peers(&s(&["kdl"])).is_err());
    }

    #[test]
    fn prose_is_deterministic_and_long_enough() {
        let t = prose(2000);
        assert_eq!(t, prose(2000));
        assert!(t.split_whitespace().count() >= 2000);
        assert!(t.is_ascii());
    }

    #[test]
    fn quantize_keeps_mxfp4_experts_by_overrides() {
        let c = quantize_cmd(
            Path::new("q"),
            Path::new("in.gguf"),
            Path::new("out.gguf"),
            "Q4_K_M",
            2,
            true,
        );
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "--tensor-type",
                "ffn_gate_exps=mxfp4",
                "--tensor-type",
                "ffn_up_exps=mxfp4",
                "--tensor-type",
                "ffn_down_exps=mxfp4",
                "in.gguf",
                "out.gguf",
                "Q4_K_M",
                "2"
            ]
        );
    }
}
