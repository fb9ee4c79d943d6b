//! `oss-forge bench [--layers N | --input DIR] [--repeat K] [--json FILE]`: the performance
//! benchmark of `docs/performance.md`.
//!
//! One run measures, on the same input and the same warm page cache:
//! - `cp -r` of the input followed by `sync` of the copy (the floor: the same bytes read and
//!   written to disk, as a conversion's `fsync`ed outputs are) and each conversion, as ratios to
//!   it (and to `cp` alone), with bytes/s and each conversion's peak RSS;
//! - the reference forward pass: a prompt (64 tokens) and single-token decoding with a KV cache,
//!   as seconds, tokens/s, GFLOP/s of the active parameters and the weight bandwidth they imply;
//! - a full `verify` of one variant;
//! - when mlx-lm is installed (`mlx_lm.convert` on `PATH`), `mlx_lm.convert` on the same input
//!   right after each MLX variant (`-q --q-bits 8`, `-q --q-bits 4`, `-d`), with the time ratio
//!   ours / theirs;
//! - when llama.cpp's tools are found ([`peers`]): `llama-quantize` with the MXFP4 experts kept
//!   right after each GGUF preset variant of the input; verify per position against
//!   llama-perplexity's KL-divergence workflow per token; a dense BF16 source to
//!   gguf-mxfp4-q8_0 against `convert_hf_to_gguf.py` + `llama-quantize MXFP4_MOE`; every GGUF
//!   preset from that source against `llama-quantize`. Each as the ratio ours / theirs, with
//!   the load average when it ran.
//!
//! Every measured step runs as a child process (`cp`, or this binary), so each one's peak RSS is
//! its own: the kernel's high-water mark `VmHWM` from `/proc/<pid>/status`, read every few
//! milliseconds until the child exits (it only grows, so the last reading is the peak up to the
//! last few milliseconds; the forward pass also reads its own at the end).

use anyhow::{Context, bail};
use convert::Variant;
use reference::{Config, Model};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

mod peers;
use peers::{Peer, Side, Tools};

/// Settings of a benchmark run.
pub struct Args {
    pub input: Option<PathBuf>,
    pub layers: usize,
    pub work: PathBuf,
    pub variants: Option<Vec<String>>,
    pub repeat: usize,
    pub prompt: usize,
    pub decode: usize,
    pub verify: String,
    pub keep: bool,
    pub json: Option<PathBuf>,
    pub threads: Option<usize>,
    pub llama_cpp: Option<PathBuf>,
    pub llama_convert: Option<PathBuf>,
    pub python: PathBuf,
    pub peers: Vec<String>,
    pub peer_presets: Option<Vec<String>>,
}

/// One child process's measurement.
#[derive(Clone, Copy, Debug)]
struct Run {
    secs: f64,
    peak_rss: u64,
}

/// Runs `cmd` to completion, timing it and polling its peak RSS; stdout and stderr go to
/// `log` (`.out` / `.err`). A non-zero exit is an error quoting the end of stderr.
fn measure(mut cmd: Command, log: &Path) -> anyhow::Result<(Run, String)> {
    let out_path = log.with_extension("out");
    let err_path = log.with_extension("err");
    let stdout = std::fs::File::create(&out_path)
        .with_context(|| format!("cannot create {}", out_path.display()))?;
    let stderr = std::fs::File::create(&err_path)
        .with_context(|| format!("cannot create {}", err_path.display()))?;
    let desc = format!("{cmd:?}");
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("cannot run {desc}"))?;
    let status_file = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut peak = 0u64;
    let status = loop {
        if let Some(hwm) = std::fs::read_to_string(&status_file)
            .ok()
            .as_deref()
            .and_then(vm_hwm)
        {
            peak = peak.max(hwm);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let secs = start.elapsed().as_secs_f64();
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    if !status.success() {
        let err = std::fs::read_to_string(&err_path).unwrap_or_default();
        let tail: Vec<&str> = err
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        bail!("{desc} failed ({status}):\n{}", tail.join("\n"));
    }
    Ok((
        Run {
            secs,
            peak_rss: peak,
        },
        out,
    ))
}

/// `VmHWM` of a `/proc/<pid>/status` text, in bytes.
fn vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// This process's own peak RSS.
fn own_peak_rss() -> Option<u64> {
    vm_hwm(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// mlx-lm's converter, if it is on `PATH`.
fn mlx_lm_convert() -> Option<PathBuf> {
    peers::on_path("mlx_lm.convert")
}

/// Writes back what earlier steps left dirty (untimed, before every timed step): otherwise a
/// step pays for its predecessor's writeback once the kernel's dirty limit is reached, and the
/// ratios measure the order of the steps rather than the steps.
fn settle() -> anyhow::Result<()> {
    let status = Command::new("sync").status().context("running sync")?;
    anyhow::ensure!(status.success(), "sync failed");
    Ok(())
}

/// The `mlx_lm.convert` arguments that write what an MLX variant is (`None` for the others).
fn mlx_lm_args(v: Variant) -> Option<&'static [&'static str]> {
    match v {
        Variant::MlxMxfp4Q8 => Some(&["-q", "--q-bits", "8"]),
        Variant::MlxMxfp4Q4 => Some(&["-q", "--q-bits", "4"]),
        Variant::MlxBf16 => Some(&["-d"]),
        _ => None,
    }
}

/// Total bytes of the files under `path`.
fn tree_bytes(path: &Path) -> anyhow::Result<u64> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot stat {}", path.display()))?;
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for entry in
        std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
    {
        total += tree_bytes(&entry?.path())?;
    }
    Ok(total)
}

fn remove(path: &Path) -> anyhow::Result<()> {
    if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else if path.exists() {
        std::fs::remove_file(path)
    } else {
        Ok(())
    }
    .with_context(|| format!("cannot remove {}", path.display()))
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    }
}

/// This binary, with `--threads` passed on and `--quiet`.
fn me(threads: Option<usize>) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("cannot find the oss-forge executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--quiet");
    if let Some(n) = threads {
        cmd.arg("--threads").arg(n.to_string());
    }
    Ok(cmd)
}

/// Bytes of weights the forward pass reads when `experts` experts per layer are active, for
/// the release's storage (MXFP4 experts at 17 bytes per 32 values, BF16 everything else).
fn weight_bytes(cfg: &Config, experts: usize) -> f64 {
    let (h, i, v) = (
        cfg.hidden_size as f64,
        cfg.intermediate_size as f64,
        cfg.vocab_size as f64,
    );
    let (q, kv, e) = (
        cfg.q_dim() as f64,
        cfg.kv_dim() as f64,
        cfg.num_local_experts as f64,
    );
    let dense = 2.0 * (q * h + 2.0 * kv * h + h * q + e * h);
    let expert = 3.0 * i * h * 17.0 / 32.0;
    cfg.num_hidden_layers as f64 * (dense + experts as f64 * expert) + 2.0 * v * h
}

/// Machine description for the report.
fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown");
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| {
            l.trim_start_matches("MemTotal:")
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0);
    json!({
        "cpu": cpu,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "memory_bytes": mem_kb * 1024,
        "kernel_path": reference::kernel::path(),
    })
}

fn gb(b: f64) -> String {
    format!("{:.2} GB", b / 1e9)
}

fn mb(b: u64) -> String {
    format!("{:.0} MB", b as f64 / 1e6)
}

/// What a run measures, checked before anything is measured.
struct Plan {
    /// Variants converted, in order.
    variants: Vec<Variant>,
    /// The variant `verify` runs on, if any.
    verify: Option<Variant>,
    /// Where each child's stdout/stderr go.
    logs: PathBuf,
    /// The peer comparisons asked for (each runs only when its tool is found).
    peers: Vec<Peer>,
    /// The preset variants of the dense comparison.
    peer_presets: Vec<Variant>,
    /// Worker threads, as passed to the peers.
    threads: usize,
}

/// The input checkpoint.
struct Input {
    path: PathBuf,
    cfg: Config,
    bytes: u64,
    /// Seconds synthesizing it, when this run did.
    synth_secs: Option<f64>,
}

/// The copy floor and the conversions, every round.
struct Conversions {
    /// `cp -r` alone.
    cp: Vec<Run>,
    /// `cp -r` + `sync`, seconds.
    cp_sync: Vec<f64>,
    /// Per variant, per round.
    runs: Vec<Vec<Run>>,
    /// Per variant, the output's bytes.
    out_bytes: Vec<u64>,
    /// `mlx_lm.convert`, when on `PATH`.
    mlx_lm: Option<PathBuf>,
    /// llama-quantize's input for the presets of the input, and what it is.
    release_gguf: Option<(PathBuf, String)>,
    /// Per variant, the peer run right after it (`mlx_lm.convert` for the MLX variants,
    /// `llama-quantize` for the GGUF presets): its command line's label and its runs.
    theirs: Vec<Option<(String, Side)>>,
}

/// One `bench-forward` child: its JSON line and its peak RSS.
type ForwardRun = (Value, u64);

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let plan = plan(a)?;
    let tools = peers::find(a)?;
    for note in &tools.notes {
        eprintln!("peers: {note}");
    }
    let load_start = load_average();
    let input = input(a, &plan)?;
    let conversions = conversions(a, &plan, &input, &tools)?;
    let dense = peers::dense(
        a,
        &plan.peers,
        &plan.peer_presets,
        &input.path,
        &tools,
        &plan.logs,
        plan.threads,
    )?;
    let forward = forward_runs(a, &plan, &input)?;
    let verify = verify_run(a, &plan, &input, &tools)?;
    let load = (load_start, load_average());
    report(
        a,
        &plan,
        &input,
        &conversions,
        &forward,
        verify,
        &Peers {
            tools: &tools,
            dense,
            load,
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `/proc/loadavg`'s 1, 5 and 15-minute load averages.
fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(f64::NAN));
    [(); 3].map(|_| it.next().unwrap_or(f64::NAN))
}

/// What the peers measured outside the conversion loop.
struct Peers<'a> {
    tools: &'a Tools,
    dense: Option<peers::Dense>,
    /// Load averages at the start and the end of the run.
    load: ([f64; 3], [f64; 3]),
}

/// Checks the arguments and creates the work and log directories.
fn plan(a: &Args) -> anyhow::Result<Plan> {
    if a.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    if a.layers == 0 {
        bail!("--layers must be at least 1");
    }
    let variants: Vec<Variant> = match &a.variants {
        None => Variant::ALL.to_vec(),
        Some(names) => names
            .iter()
            .map(|n| Variant::parse_or_suggest(n).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?,
    };
    let verify = match a.verify.as_str() {
        "none" => None,
        n => {
            Some(Variant::parse(n).with_context(|| format!("unknown variant `{n}` for --verify"))?)
        }
    };
    std::fs::create_dir_all(&a.work)
        .with_context(|| format!("cannot create {}", a.work.display()))?;
    let logs = a.work.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let peers = peers::parse_peers(&a.peers)?;
    let peer_presets = peers::peer_presets(a)?;
    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    Ok(Plan {
        variants,
        verify,
        logs,
        peers,
        peer_presets,
        threads,
    })
}

/// The input: given, or a synthesized 20b-shaped checkpoint (kept for the next run; synth is
/// deterministic and writes atomically, so an existing one is complete).
fn input(a: &Args, plan: &Plan) -> anyhow::Result<Input> {
    let mut synth_secs = None;
    let path = match &a.input {
        Some(p) => p.clone(),
        None => {
            let dir = a.work.join(format!("synth-20b-{}l", a.layers));
            if !dir.join("config.json").exists() {
                eprintln!("synthesizing {} ...", dir.display());
                let mut cmd = me(a.threads)?;
                cmd.args([
                    "synth",
                    "--preset",
                    "20b",
                    "--layers",
                    &a.layers.to_string(),
                    "--force",
                    "-o",
                ])
                .arg(&dir);
                synth_secs = Some(measure(cmd, &plan.logs.join("synth"))?.0.secs);
            }
            dir
        }
    };
    let opened = convert::AnyModel::open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let cfg = opened.source().config().clone();
    drop(opened);
    let bytes = tree_bytes(&path)?;
    eprintln!(
        "input {} ({}, {} layers)",
        path.display(),
        gb(bytes as f64),
        cfg.num_hidden_layers
    );
    Ok(Input {
        path,
        cfg,
        bytes,
        synth_secs,
    })
}

/// The `convert` command of this binary for `v` of the input into `out`.
fn convert_cmd(a: &Args, input: &Input, v: Variant, out: &Path) -> anyhow::Result<Command> {
    let mut cmd = me(a.threads)?;
    cmd.arg("convert")
        .arg(&input.path)
        .args(["--to", v.name(), "--force", "-o"])
        .arg(out);
    Ok(cmd)
}

/// llama-quantize's input for the GGUF presets of the input (made once, untimed): llama.cpp's
/// `convert_hf_to_gguf.py --outtype auto` of it, or our `gguf-mxfp4` when the converter is absent
/// or fails. `None` when no preset variant is converted or llama-quantize is absent.
fn release_gguf(
    a: &Args,
    plan: &Plan,
    input: &Input,
    tools: &Tools,
) -> anyhow::Result<Option<(PathBuf, String)>> {
    if !plan.peers.contains(&Peer::ReleasePresets)
        || tools.quantize.is_none()
        || !plan
            .variants
            .iter()
            .any(|v| matches!(v, Variant::GgufPreset(_)))
    {
        return Ok(None);
    }
    let path = a.work.join("release-auto.gguf");
    if let Some(script) = &tools.convert {
        eprintln!("peers: convert_hf_to_gguf.py --outtype auto of the input (untimed) ...");
        let cmd = peers::convert_cmd(tools, script, &input.path, "auto", &path);
        match measure(cmd, &plan.logs.join("release-convert_hf_to_gguf-auto")) {
            Ok(_) => {
                return Ok(Some((
                    path,
                    "convert_hf_to_gguf.py --outtype auto of the input".into(),
                )));
            }
            Err(e) => eprintln!(
                "peers: convert_hf_to_gguf.py failed, using our gguf-mxfp4 instead: {}",
                format!("{e:#}").lines().last().unwrap_or("")
            ),
        }
    }
    eprintln!("peers: our gguf-mxfp4 of the input for llama-quantize (untimed) ...");
    let cmd = convert_cmd(a, input, Variant::GgufMxfp4, &path)?;
    measure(cmd, &plan.logs.join("release-gguf-mxfp4"))?;
    Ok(Some((path, "oss-forge's gguf-mxfp4 of the input".into())))
}

/// The peer run right after variant `v` on the same input, if any: its label and command.
fn beside(
    plan: &Plan,
    input: &Input,
    tools: &Tools,
    c: &Conversions,
    v: Variant,
    out: &Path,
) -> Option<(String, Command)> {
    if let (Some(exe), Some(args), true) =
        (&c.mlx_lm, mlx_lm_args(v), plan.peers.contains(&Peer::Mlx))
    {
        let mut cmd = Command::new(exe);
        cmd.arg("--hf-path")
            .arg(&input.path)
            .arg("--mlx-path")
            .arg(out)
            .args(args);
        return Some((format!("mlx_lm {}", args.join(" ")), cmd));
    }
    if let (Some(exe), Some((gguf, _)), Variant::GgufPreset(p)) =
        (&tools.quantize, &c.release_gguf, v)
    {
        let cmd = peers::quantize_cmd(exe, gguf, out, p.name(), plan.threads, true);
        return Some((format!("llama-quantize {}", p.name()), cmd));
    }
    None
}

/// `cp -r` + `sync` and every conversion, `--repeat` rounds, on a warm page cache.
fn conversions(a: &Args, plan: &Plan, input: &Input, tools: &Tools) -> anyhow::Result<Conversions> {
    let logs = &plan.logs;
    // Warm the page cache with one untimed copy, so every timed step reads cached input.
    // Each `cp` is followed by a timed `sync` of the copied files: `cp` returns with up to the
    // kernel's dirty limit (gigabytes) still unwritten, while a conversion returns only after
    // `fsync` of its outputs (they are renamed into place complete and durable), so
    // `cp` + `sync` is the same work as a conversion's and the ratios use it.
    let copy = a.work.join("cp-copy");
    let cp = |log: &str| -> anyhow::Result<(Run, Run)> {
        remove(&copy)?;
        let mut cmd = Command::new("cp");
        cmd.arg("-r").arg(&input.path).arg(&copy);
        let r = measure(cmd, &logs.join(log))?.0;
        let mut sync = Command::new("find");
        sync.arg(&copy)
            .args(["-type", "f", "-exec", "sync", "--", "{}", "+"]);
        let s = measure(sync, &logs.join(format!("{log}-sync")))?.0;
        remove(&copy)?;
        Ok((r, s))
    };
    eprintln!("warming the page cache (cp, untimed) ...");
    cp("cp-warm")?;

    let n = plan.variants.len();
    let mut c = Conversions {
        cp: Vec::new(),
        cp_sync: Vec::new(),
        runs: vec![Vec::new(); n],
        out_bytes: vec![0u64; n],
        mlx_lm: mlx_lm_convert(),
        release_gguf: release_gguf(a, plan, input, tools)?,
        theirs: vec![None; n],
    };
    for round in 0..a.repeat {
        eprintln!("round {}/{}: cp ...", round + 1, a.repeat);
        settle()?;
        let (r, s) = cp("cp")?;
        c.cp.push(r);
        c.cp_sync.push(r.secs + s.secs);
        for (k, &v) in plan.variants.iter().enumerate() {
            eprintln!("round {}/{}: convert --to {v} ...", round + 1, a.repeat);
            let out = a.work.join(format!("out-{v}"));
            remove(&out)?;
            let cmd = convert_cmd(a, input, v, &out)?;
            settle()?;
            c.runs[k].push(measure(cmd, &logs.join(format!("convert-{v}")))?.0);
            c.out_bytes[k] = tree_bytes(&out)?;
            // Not kept for the verify below either: at whole-model sizes one kept output
            // (14 GB) can leave too little room for the next (42 GB); verify converts again.
            if !a.keep {
                remove(&out)?;
            }
            let out = a.work.join(format!("out-{v}-peer"));
            if let Some((label, cmd)) = beside(plan, input, tools, &c, v, &out) {
                eprintln!("round {}/{}: {label} ...", round + 1, a.repeat);
                let side = &mut c.theirs[k]
                    .get_or_insert_with(|| (label, Side::default()))
                    .1;
                // A source the peer refuses (a dense fine-tune) is a finding, not a failure.
                side.run(cmd, &logs.join(format!("peer-{v}")), &out, a.keep)?;
            }
        }
    }
    if let Some((gguf, _)) = &c.release_gguf
        && !a.keep
    {
        remove(gguf)?;
    }
    Ok(c)
}

/// The forward pass, `--repeat` times, each in a child so its peak RSS is its own.
fn forward_runs(a: &Args, plan: &Plan, input: &Input) -> anyhow::Result<Vec<ForwardRun>> {
    eprintln!(
        "forward: {}-token prompt, {} decode steps ...",
        a.prompt, a.decode
    );
    let mut fwd = Vec::new();
    for round in 0..a.repeat {
        let mut cmd = me(a.threads)?;
        cmd.arg("bench-forward").arg(&input.path).args([
            "--prompt",
            &a.prompt.to_string(),
            "--decode",
            &a.decode.to_string(),
        ]);
        let (run, out) = measure(cmd, &plan.logs.join(format!("forward-{round}")))?;
        let v: Value = serde_json::from_str(out.trim()).context("bench-forward printed no JSON")?;
        let rss = v["peak_rss_bytes"].as_u64().unwrap_or(0).max(run.peak_rss);
        fwd.push((v, rss));
    }
    Ok(fwd)
}

/// A full verify of one variant against the input (converted again unless kept), then
/// llama.cpp's KL-divergence workflow on the same file when asked for.
fn verify_run(
    a: &Args,
    plan: &Plan,
    input: &Input,
    tools: &Tools,
) -> anyhow::Result<Option<Verified>> {
    let Some(v) = plan.verify else {
        return Ok(None);
    };
    let out = a.work.join(format!("out-{v}"));
    if !out.exists() {
        eprintln!("converting {v} for verify ...");
        let cmd = convert_cmd(a, input, v, &out)?;
        measure(cmd, &plan.logs.join(format!("convert-{v}-for-verify")))?;
    }
    eprintln!("verify {v} ...");
    let report = a.work.join("verify.json");
    let mut cmd = me(a.threads)?;
    cmd.arg("verify")
        .arg("--original")
        .arg(&input.path)
        .arg(&out)
        .arg("--json")
        .arg(&report);
    settle()?;
    let load1 = peers::load1();
    let (run, _) = measure(cmd, &plan.logs.join("verify"))?;
    let text = std::fs::read_to_string(&report)
        .with_context(|| format!("verify wrote no report at {}", report.display()))?;
    let positions = verify_positions(&serde_json::from_str(&text).context("verify's report")?)
        .context("verify's report lists no prompts")?;
    let kld = plan
        .peers
        .contains(&Peer::Kld)
        .then(|| peers::kld(a, &input.path, tools, v, &out, &plan.logs, plan.threads))
        .transpose()?;
    if !a.keep {
        remove(&out)?;
    }
    Ok(Some(Verified {
        ours: peers::OursVerify {
            variant: v,
            secs: run.secs,
            positions,
            load1,
        },
        peak_rss: run.peak_rss,
        kld,
    }))
}

/// The positions `verify` ran: the tokens of every prompt in its JSON report.
fn verify_positions(report: &Value) -> Option<u64> {
    report["prompts"]
        .as_array()?
        .iter()
        .map(|p| p["tokens"].as_u64())
        .sum()
}

/// The verify run and llama.cpp's KL-divergence workflow beside it (`None`: not asked for).
struct Verified {
    ours: peers::OursVerify,
    peak_rss: u64,
    kld: Option<Result<peers::Kld, String>>,
}

/// Prints the rows of the peer runs beside the variants whose label starts with `tool`
/// (`mlx_lm.convert`, `llama-quantize`) and returns them as JSON.
fn beside_rows(
    plan: &Plan,
    c: &Conversions,
    tool: &str,
    (cp_secs, cp_only_secs, in_bytes): (f64, f64, u64),
) -> Vec<Value> {
    let mut rows = Vec::new();
    for (k, v) in plan.variants.iter().enumerate() {
        let Some((name, side)) = c.theirs[k].as_ref().filter(|(l, _)| l.starts_with(tool)) else {
            continue;
        };
        let ours = median(&c.runs[k].iter().map(|r| r.secs).collect::<Vec<_>>());
        let ours_rss = c.runs[k].iter().map(|r| r.peak_rss).max().unwrap_or(0);
        if let Some(e) = &side.err {
            println!("{name:<18} failed: {}", e.lines().last().unwrap_or(""));
            rows.push(json!({"variant": v.name(), "command": name, "error": e}));
            continue;
        }
        let secs = side.secs().unwrap_or(f64::NAN);
        let rss = side.runs.iter().map(|(r, _)| r.peak_rss).max().unwrap_or(0);
        let load = median(&side.runs.iter().map(|(_, l)| *l).collect::<Vec<_>>());
        println!(
            "{:<18} {:>9.2} {:>7.2} {:>7.2} {:>10.0} {:>10.2} {:>10}   {}: {:.2}x its time, {:.2}x its peak RSS (load {:.1})",
            name,
            secs,
            secs / cp_secs,
            secs / cp_only_secs,
            in_bytes as f64 / secs / 1e6,
            side.bytes as f64 / 1e9,
            mb(rss),
            v.name(),
            ours / secs,
            ours_rss as f64 / rss.max(1) as f64,
            load
        );
        let mut row = side.json();
        row["variant"] = json!(v.name());
        row["command"] = json!(name);
        row["ours_secs"] = json!(ours);
        row["ours_over_theirs_secs"] = json!(ours / secs);
        row["ours_peak_rss_bytes"] = json!(ours_rss);
        rows.push(row);
    }
    rows
}

/// Prints the peer comparisons of targets 1 and 3 and returns their JSON.
fn peers_report(p: &Peers, verify: Option<&Verified>) -> Value {
    let t = p.tools;
    let path = |x: &Option<PathBuf>| x.as_ref().map(|p| p.display().to_string());
    println!(
        "peers (llama.cpp): llama-quantize {}, llama-perplexity {}, convert_hf_to_gguf.py {} (python {})",
        path(&t.quantize).as_deref().unwrap_or("absent"),
        path(&t.perplexity).as_deref().unwrap_or("absent"),
        path(&t.convert).as_deref().unwrap_or("absent"),
        t.python.display()
    );
    for note in &t.notes {
        println!("  note: {note}");
    }
    let mut j = json!({
        "llama_quantize": path(&t.quantize),
        "llama_perplexity": path(&t.perplexity),
        "convert_hf_to_gguf": path(&t.convert),
        "python": t.python.display().to_string(),
        "notes": t.notes,
        "load_average_start": p.load.0,
        "load_average_end": p.load.1,
    });
    if let Some(v) = verify
        && let Some(k) = &v.kld
    {
        j["kld"] = peers::kld_report(&v.ours, k);
    }
    if let Some(d) = &p.dense {
        j["dense"] = peers::dense_report(d);
    }
    let [a1, a5, a15] = p.load.0;
    let [b1, b5, b15] = p.load.1;
    println!(
        "load average: {a1:.2} {a5:.2} {a15:.2} at the start, {b1:.2} {b5:.2} {b15:.2} at the end"
    );
    j
}

/// Prints the figures and writes the JSON report (`--json`).
fn report(
    a: &Args,
    plan: &Plan,
    input: &Input,
    c: &Conversions,
    fwd: &[ForwardRun],
    verify: Option<Verified>,
    peers: &Peers,
) -> anyhow::Result<()> {
    let (cfg, in_bytes) = (&input.cfg, input.bytes);
    let cp_only_secs = median(&c.cp.iter().map(|r| r.secs).collect::<Vec<_>>());
    let cp_secs = median(&c.cp_sync);
    let cp_rss = c.cp.iter().map(|r| r.peak_rss).max().unwrap_or(0);
    let threads = plan.threads;
    let mut report = json!({
        "machine": machine(),
        "threads": threads,
        "page_cache": "warm (one untimed cp first; timings are medians of the rounds)",
        "repeat": a.repeat,
        "input": {"path": input.path.display().to_string(), "bytes": in_bytes, "layers": cfg.num_hidden_layers, "synth_secs": input.synth_secs},
        "cp": {"secs": cp_only_secs, "runs": c.cp.iter().map(|r| r.secs).collect::<Vec<_>>(), "bytes_per_sec": in_bytes as f64 / cp_only_secs, "peak_rss_bytes": cp_rss},
        "cp_sync": {"secs": cp_secs, "runs": c.cp_sync, "bytes_per_sec": in_bytes as f64 / cp_secs},
    });
    println!(
        "input {} ({}, {} layers, {} threads, warm page cache, median of {} round{})",
        input.path.display(),
        gb(in_bytes as f64),
        cfg.num_hidden_layers,
        threads,
        a.repeat,
        if a.repeat == 1 { "" } else { "s" }
    );
    println!(
        "{:<18} {:>9} {:>7} {:>7} {:>10} {:>10} {:>10}",
        "step", "seconds", "x cp+s", "x cp", "in MB/s", "out GB", "peak RSS"
    );
    for (name, secs) in [("cp -r", cp_only_secs), ("cp -r + sync", cp_secs)] {
        println!(
            "{:<18} {:>9.2} {:>7.2} {:>7.2} {:>10.0} {:>10.2} {:>10}",
            name,
            secs,
            secs / cp_secs,
            secs / cp_only_secs,
            in_bytes as f64 / secs / 1e6,
            in_bytes as f64 / 1e9,
            mb(cp_rss)
        );
    }
    let mut conv_json = Vec::new();
    for (k, v) in plan.variants.iter().enumerate() {
        let secs = median(&c.runs[k].iter().map(|r| r.secs).collect::<Vec<_>>());
        let rss = c.runs[k].iter().map(|r| r.peak_rss).max().unwrap_or(0);
        println!(
            "{:<18} {:>9.2} {:>7.2} {:>7.2} {:>10.0} {:>10.2} {:>10}",
            v.name(),
            secs,
            secs / cp_secs,
            secs / cp_only_secs,
            in_bytes as f64 / secs / 1e6,
            c.out_bytes[k] as f64 / 1e9,
            mb(rss)
        );
        conv_json.push(json!({
            "variant": v.name(), "secs": secs, "runs": c.runs[k].iter().map(|r| r.secs).collect::<Vec<_>>(),
            "ratio_to_cp_sync": secs / cp_secs, "ratio_to_cp": secs / cp_only_secs, "in_bytes_per_sec": in_bytes as f64 / secs,
            "out_bytes": c.out_bytes[k], "peak_rss_bytes": rss,
        }));
    }
    report["convert"] = Value::Array(conv_json);
    // Target 4 is defined on the whole 20b: at fewer layers the embedding and unembedding,
    // whose size does not shrink with the layers, weigh more in every ratio.
    if is_whole_20b(cfg)
        && let Some(t) = conversion_target(plan, c, cp_secs)
    {
        println!("{}", t.line);
        report["target_4"] = t.json;
    }
    let scale = (cp_secs, cp_only_secs, in_bytes);
    if c.mlx_lm.is_some() {
        report["mlx_lm_convert"] = Value::Array(beside_rows(plan, c, "mlx_lm", scale));
    }
    if let Some((_, what)) = &c.release_gguf {
        println!(
            "llama-quantize of the presets: on {what}, MXFP4 experts kept (--tensor-type ffn_*_exps=mxfp4)"
        );
        report["llama_quantize_release"] = json!({
            "input": what,
            "rows": beside_rows(plan, c, "llama-quantize", scale),
        });
    }

    let f = |key: &str| {
        median(
            &fwd.iter()
                .map(|(v, _)| v[key].as_f64().unwrap_or(f64::NAN))
                .collect::<Vec<_>>(),
        )
    };
    let (prompt_s, decode_s) = (f("prompt_secs"), f("decode_secs_per_token"));
    let (prompt_flops, decode_flops) = (f("prompt_flops"), f("decode_flops_per_token"));
    let fwd_rss = fwd.iter().map(|(_, r)| *r).max().unwrap_or(0);
    let prompt_bytes = weight_bytes(cfg, cfg.num_local_experts);
    let decode_bytes = weight_bytes(cfg, cfg.num_experts_per_tok);
    println!(
        "forward prompt     {:>9.2} s  {:>7.1} tok/s  {:>6.1} GFLOP/s  {:>5.1} GB/s of weights  (peak RSS {})",
        prompt_s,
        a.prompt as f64 / prompt_s,
        prompt_flops / prompt_s / 1e9,
        prompt_bytes / prompt_s / 1e9,
        mb(fwd_rss)
    );
    if a.decode > 0 {
        println!(
            "forward decode     {:>9.3} s  {:>7.2} tok/s  {:>6.1} GFLOP/s  {:>5.1} GB/s of weights  (per token, KV cache at {}+)",
            decode_s,
            1.0 / decode_s,
            decode_flops / decode_s / 1e9,
            decode_bytes / decode_s / 1e9,
            a.prompt
        );
    }
    report["forward"] = json!({
        "prompt_tokens": a.prompt,
        "prompt_secs": prompt_s,
        "prompt_tokens_per_sec": a.prompt as f64 / prompt_s,
        "prompt_gflops_per_sec": prompt_flops / prompt_s / 1e9,
        "prompt_weight_bytes": prompt_bytes,
        "prompt_weight_gb_per_sec": prompt_bytes / prompt_s / 1e9,
        "decode_tokens": a.decode,
        "decode_secs_per_token": decode_s,
        "decode_tokens_per_sec": 1.0 / decode_s,
        "decode_gflops_per_sec": decode_flops / decode_s / 1e9,
        "decode_weight_bytes_per_token": decode_bytes,
        "decode_weight_gb_per_sec": decode_bytes / decode_s / 1e9,
        "peak_rss_bytes": fwd_rss,
        "runs": fwd.iter().map(|(v, _)| v.clone()).collect::<Vec<_>>(),
    });
    if let Some(vr) = &verify {
        let o = &vr.ours;
        println!(
            "verify {:<11} {:>9.2} s  {:>7.1} ms per position ({} positions)  (peak RSS {})",
            o.variant.name(),
            o.secs,
            o.secs * 1e3 / o.positions.max(1) as f64,
            o.positions,
            mb(vr.peak_rss)
        );
        report["verify"] = json!({"variant": o.variant.name(), "secs": o.secs, "positions": o.positions,
            "ms_per_position": o.secs * 1e3 / o.positions.max(1) as f64, "peak_rss_bytes": vr.peak_rss});
        if is_whole_20b(cfg) {
            let t = whole_verify_target(o.variant.name(), o.secs, vr.peak_rss, o.load1);
            println!("{}", t.line);
            report["target_2"] = t.json;
        }
    }
    report["peers"] = peers_report(peers, verify.as_ref());
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&report)? + "\n";
        convert::publish::write_atomic(path, text.as_bytes())?;
        println!("report: {}", path.display());
    }
    Ok(())
}

/// A target of issue 17 as `bench` prints it: one line and its JSON.
struct Target {
    line: String,
    json: Value,
}

/// Conversion time within this many times `cp -r` + `sync` (issue 17, target 4).
const CONVERT_TIMES_CP: f64 = 1.7;
/// Conversion peak RSS below this many bytes (1 GiB; issue 17, target 4).
const CONVERT_RSS: u64 = 1 << 30;
/// Whole-20b `verify` within this many seconds (issue 17, target 2).
const WHOLE_VERIFY_SECS: f64 = 120.0;
/// Whole-20b `verify` peak RSS at most this many bytes (4 GB; issue 17, target 2).
const WHOLE_VERIFY_RSS: u64 = 4_000_000_000;

/// Target 4: every conversion of this run within [`CONVERT_TIMES_CP`] of `cp -r` + `sync` and
/// under [`CONVERT_RSS`]; the slowest and the largest named. `None` when nothing was converted.
fn conversion_target(plan: &Plan, c: &Conversions, cp_secs: f64) -> Option<Target> {
    let rows: Vec<(&str, f64, u64)> = plan
        .variants
        .iter()
        .enumerate()
        .map(|(k, v)| {
            let secs = median(&c.runs[k].iter().map(|r| r.secs).collect::<Vec<_>>());
            let rss = c.runs[k].iter().map(|r| r.peak_rss).max().unwrap_or(0);
            (v.name(), secs / cp_secs, rss)
        })
        .collect();
    conversions_judged(&rows)
}

/// [`conversion_target`] of (variant, time over `cp -r` + `sync`, peak RSS bytes) rows.
fn conversions_judged(rows: &[(&str, f64, u64)]) -> Option<Target> {
    let slowest = rows.iter().max_by(|a, b| a.1.total_cmp(&b.1))?;
    let largest = rows.iter().max_by_key(|r| r.2)?;
    let met = slowest.1 <= CONVERT_TIMES_CP && largest.2 < CONVERT_RSS;
    Some(Target {
        line: format!(
            "target 4: {} conversion{} within {CONVERT_TIMES_CP}x of cp -r + sync and under 1 GiB: slowest {} at {:.2}x, largest peak RSS {} ({}) ({})",
            rows.len(),
            if rows.len() == 1 { "" } else { "s" },
            slowest.0,
            slowest.1,
            mb(largest.2),
            largest.0,
            if met { "met" } else { "not met" }
        ),
        json: json!({
            "variants": rows.len(), "slowest": slowest.0, "slowest_ratio_to_cp_sync": slowest.1,
            "largest_rss": largest.0, "largest_peak_rss_bytes": largest.2,
            "target_ratio": CONVERT_TIMES_CP, "target_peak_rss_bytes": CONVERT_RSS, "met": met,
        }),
    })
}

/// True for gpt-oss-20b's whole shape (24 layers of 32 experts), the input of target 2.
fn is_whole_20b(cfg: &Config) -> bool {
    cfg.num_hidden_layers == 24 && cfg.num_local_experts == 32 && cfg.hidden_size == 2880
}

/// Target 2: the whole 20b's `verify` within [`WHOLE_VERIFY_SECS`] and [`WHOLE_VERIFY_RSS`].
fn whole_verify_target(variant: &str, secs: f64, rss: u64, load1: f64) -> Target {
    let met = secs <= WHOLE_VERIFY_SECS && rss <= WHOLE_VERIFY_RSS;
    Target {
        line: format!(
            "target 2: whole-20b verify {variant}: {secs:.1} s (<= {WHOLE_VERIFY_SECS} s), peak RSS {:.2} GB (<= 4 GB), load {load1:.1} ({})",
            rss as f64 / 1e9,
            if met { "met" } else { "not met" }
        ),
        json: json!({
            "variant": variant, "secs": secs, "peak_rss_bytes": rss, "load1": load1,
            "target_secs": WHOLE_VERIFY_SECS, "target_peak_rss_bytes": WHOLE_VERIFY_RSS, "met": met,
        }),
    }
}

/// `oss-forge bench-forward MODEL --prompt N --decode D` (hidden; run by `bench`): times the
/// reference forward pass over an N-token prompt, then D greedy single-token steps with the KV
/// cache, and prints one JSON line.
pub fn forward(model_path: &Path, prompt: usize, decode: usize) -> anyhow::Result<ExitCode> {
    if prompt == 0 {
        bail!("--prompt must be at least 1");
    }
    let src = convert::AnyModel::open(model_path)
        .with_context(|| format!("cannot open {}", model_path.display()))?;
    let cfg = src.source().config().clone();
    let model = Model::new(src.source())
        .with_context(|| format!("cannot load {}", model_path.display()))?;
    // A fixed, spread-out prompt (any ids exercise the same work).
    let tokens: Vec<u32> = (0..prompt)
        .map(|t| ((t as u64 * 7919 + 13) % cfg.vocab_size as u64) as u32)
        .collect();
    let mut cache = model.new_cache();
    let start = Instant::now();
    let logits = model.forward(&tokens, &mut cache)?;
    let prompt_secs = start.elapsed().as_secs_f64();
    let argmax = |row: &[f32]| {
        row.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
            .map_or(0, |(i, _)| i as u32)
    };
    let mut next = argmax(&logits[(prompt - 1) * cfg.vocab_size..]);
    let mut decode_secs = 0.0;
    let mut decode_flops = 0.0;
    for _ in 0..decode {
        decode_flops += cfg.forward_flops(cache.len(), 1);
        let start = Instant::now();
        let l = model.forward(&[next], &mut cache)?;
        decode_secs += start.elapsed().as_secs_f64();
        next = argmax(&l);
    }
    let per = |x: f64| {
        if decode == 0 {
            f64::NAN
        } else {
            x / decode as f64
        }
    };
    let v = json!({
        "prompt_tokens": prompt,
        "prompt_secs": prompt_secs,
        "prompt_flops": cfg.forward_flops(0, prompt),
        "decode_tokens": decode,
        "decode_secs_per_token": per(decode_secs),
        "decode_flops_per_token": per(decode_flops),
        "threads": rayon::current_num_threads(),
        "kernel_path": reference::kernel::path(),
        "peak_rss_bytes": own_peak_rss(),
    });
    println!("{v}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_two_and_four_name_what_misses_them() {
        let t = conversions_judged(&[
            ("gguf-mxfp4", 0.47, 150 << 20),
            ("mlx-mxfp4-q8", 1.2, 120 << 20),
        ])
        .unwrap();
        assert!(t.line.contains("slowest mlx-mxfp4-q8 at 1.20x") && t.line.ends_with("(met)"));
        let slow = conversions_judged(&[("gguf-q8_0", 1.71, 1 << 20)]).unwrap();
        assert!(slow.line.ends_with("(not met)"), "{}", slow.line);
        let big = conversions_judged(&[("gguf-q8_0", 1.0, 1 << 30)]).unwrap();
        assert!(big.line.ends_with("(not met)") && big.json["largest_rss"] == "gguf-q8_0");
        assert!(conversions_judged(&[]).is_none());
        let v = whole_verify_target("gguf-mxfp4-q8_0", 84.4, 3_135_868_000, 2.0);
        assert!(
            v.line.ends_with("(met)") && v.json["met"] == true,
            "{}",
            v.line
        );
        assert!(
            whole_verify_target("x", 120.1, 1, 1.0)
                .line
                .ends_with("(not met)")
        );
        assert!(
            whole_verify_target("x", 60.0, 4_000_000_001, 1.0)
                .line
                .ends_with("(not met)")
        );
    }

    #[test]
    fn reads_vm_hwm_in_bytes() {
        let s = "Name:\toss-forge\nVmPeak:\t  200 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(vm_hwm(s), Some(1234 * 1024));
        assert_eq!(vm_hwm("Name: x\n"), None);
        assert!(own_peak_rss().is_some_and(|b| b > 0));
    }

    #[test]
    fn mlx_lm_runs_beside_the_mlx_variants_only() {
        assert_eq!(
            mlx_lm_args(Variant::MlxMxfp4Q4),
            Some(&["-q", "--q-bits", "4"][..])
        );
        assert_eq!(mlx_lm_args(Variant::MlxBf16), Some(&["-d"][..]));
        assert_eq!(mlx_lm_args(Variant::GgufMxfp4), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0]), 2.5);
    }
}
