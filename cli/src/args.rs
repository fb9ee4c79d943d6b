//! Command-line definitions. Only parsing and light validation live here.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Convert, quantize and verify gpt-oss checkpoints against a CPU reference forward pass.
#[derive(Parser, Debug)]
#[command(name = "oss-forge", version, about, long_about = None)]
pub struct Cli {
    /// Worker threads (default: one per core).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// No progress output.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show a model's layout, config, tensor bytes by dtype, MXFP4 scale range and anything suspicious.
    Inspect {
        /// A release directory, its `original/` folder, or a variant.
        model: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the reference forward pass over a prompt and print the top tokens of every position.
    Logits {
        /// A release directory, its `original/` folder, or a variant.
        #[arg(required_unless_present = "model_flag")]
        model: Option<PathBuf>,
        /// The model, as earlier versions took it (same as the positional MODEL).
        #[arg(long = "model", hide = true, conflicts_with = "model")]
        model_flag: Option<PathBuf>,
        /// Comma-separated token ids, e.g. `1,2,3`.
        #[arg(long, value_parser = parse_tokens, required_unless_present = "text", conflicts_with = "text")]
        tokens: Option<TokenList>,
        /// Text, encoded with the checkpoint's `tokenizer.json` (harmony special tokens such as
        /// `<|start|>` spelled out).
        #[arg(long)]
        text: Option<String>,
        /// Write every position's logits as a float32 `.npy` of shape [tokens, vocab_size].
        #[arg(long)]
        out: Option<PathBuf>,
        /// How many top tokens to print per position.
        #[arg(long, default_value_t = 5)]
        top: usize,
    },
    /// Convert a model into one variant.
    ///
    /// `-o`: a GGUF variant is written to the file named, or into an existing directory as
    /// `MODEL-SUFFIX.gguf`; a safetensors variant is the directory named (an existing one with
    /// files needs `--force`, which replaces only the files oss-forge writes). The output may
    /// not be, contain, or lie inside the model being read.
    Convert {
        /// A release directory, its `original/` folder, a dense fine-tune, or any variant this
        /// tool reads (a GGUF, a safetensors or MLX directory).
        model: PathBuf,
        /// The variant to write.
        #[arg(long = "to", value_parser = parse_variant, required_unless_present = "outtype", conflicts_with = "outtype")]
        variant: Option<convert::Variant>,
        /// llama.cpp's name for the output type (`auto`, `bf16`, `f16`, `q8_0`), mapped to the
        /// variant llama.cpp's converter writes (the mapping is printed).
        #[arg(long)]
        outtype: Option<String>,
        /// Output file (GGUF) or directory (safetensors). `--outfile` as in llama.cpp.
        #[arg(short, long, visible_alias = "outfile")]
        out: PathBuf,
        #[command(flatten)]
        settings: ConvertFlags,
        /// Replace an existing output (only the files oss-forge writes).
        #[arg(long)]
        force: bool,
    },
    /// Run the reference forward pass on the original and on each variant and compare them.
    /// Exit code 0: every variant within tolerance; 1: a variant out of tolerance; 2: an error.
    Verify {
        /// The original checkpoint (release directory or `original/`).
        #[arg(long)]
        original: PathBuf,
        /// Variants: GGUF files, safetensors directories, other release-layout directories.
        #[arg(required = true)]
        variants: Vec<PathBuf>,
        /// Prompts, one per line: token ids (`1,2,3`) or text (harmony special tokens spelled
        /// out, `\n` for a newline). Default: built-in chats and window-crossing sequences.
        #[arg(long)]
        prompts: Option<PathBuf>,
        /// Write the report as JSON to this file (`-`: to standard output, the table then goes
        /// to standard error).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Gates for lossy variants, e.g. `kld=0.005,top1=0.9` (lossless ones must be exact).
        /// Applied as given: the format floor never relaxes gates given here.
        #[arg(long, value_parser = verify::Tolerance::parse)]
        tolerance: Option<verify::Tolerance>,
        /// Never let the format floor relax the default gates.
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        passes: PassFlags,
    },
    /// Convert into every variant (or --variants), verify each, and publish them with model cards,
    /// manifest.json and SHA256SUMS. Re-running resumes: variants whose files still match are kept.
    Pipeline {
        /// A release directory, its `original/` folder or a dense fine-tune (a safetensors
        /// directory).
        model: PathBuf,
        /// Output directory (one subdirectory per variant).
        #[arg(short, long)]
        out: PathBuf,
        /// Comma-separated variants, or `all` (default: every variant but safetensors-int8, which
        /// stock transformers and vLLM load with random experts; see docs/formats.md), the GGUF
        /// presets, mlx-mxfp4-q4 and mlx-bf16. Only these are (re)done; variants an earlier run
        /// left in OUT stay listed.
        #[arg(long, value_delimiter = ',')]
        variants: Option<Vec<String>>,
        /// Prompts file for verification (see `verify --help`).
        #[arg(long)]
        prompts: Option<PathBuf>,
        /// Gates for lossy variants, e.g. `kld=0.005,top1=0.9`, applied as given (no format
        /// floor).
        #[arg(long, value_parser = verify::Tolerance::parse)]
        tolerance: Option<verify::Tolerance>,
        /// Never let the format floor relax the default gates.
        #[arg(long)]
        strict: bool,
        /// The name on the outputs: GGUF file names, card titles (default: the model
        /// directory's name; a Hugging Face cache snapshot's repository, never its hash).
        #[arg(long)]
        name: Option<String>,
        /// The cards' Hub `base_model` (default: config.json's `_name_or_path` when it is a Hub
        /// id, the cache snapshot's repository, `openai/NAME` for gpt-oss-*).
        #[arg(long)]
        base_model: Option<String>,
        /// Replace the variants an earlier run left in OUT from other inputs (another
        /// checkpoint, name, prompts or tolerance), and write into a directory holding other
        /// files; without it both are refused and nothing is removed.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        passes: PassFlags,
        #[command(flatten)]
        settings: ConvertFlags,
    },
    /// Merge pipeline outputs of the same checkpoint (e.g. one per CI job, each with some of
    /// the variants) into one publishable directory: each part is checked against its
    /// checksums, its variants linked or copied into OUT, and one manifest.json, verify.json,
    /// README.md and SHA256SUMS written and checked. See docs/scale.md.
    Merge {
        /// The merged directory (may be one of the parts, or already hold merged variants).
        #[arg(short, long)]
        out: PathBuf,
        /// Pipeline output directories.
        #[arg(required = true)]
        parts: Vec<PathBuf>,
    },
    /// Re-hash a pipeline output directory against SHA256SUMS and manifest.json.
    /// Exit code 1 if any file changed, went missing, or is there without being listed.
    /// With `-q`, only the problems are printed.
    Check {
        /// The pipeline's output directory.
        out: PathBuf,
        /// Print the states as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The main job on a built-in default: synthesize a tiny checkpoint, convert it to every
    /// variant, verify each one. No downloads.
    Demo {
        /// Where to put the checkpoint and the variants.
        #[arg(short, long, default_value = "oss-forge-demo")]
        out: PathBuf,
    },
    /// Which variant fits in a GPU's memory: weights, KV cache at a context length, overhead.
    Fit {
        /// A model (its config is read); or use --preset.
        #[arg(conflicts_with = "preset", required_unless_present = "preset")]
        model: Option<PathBuf>,
        /// The real model sizes.
        #[arg(long, value_parser = ["20b", "120b"])]
        preset: Option<String>,
        /// GPU memory, e.g. `24GiB`, `16GB`; a number alone is GiB (`24`).
        #[arg(long, value_parser = parse_gpu_mem)]
        gpu_mem: GpuMem,
        /// Context length to hold in the KV cache.
        #[arg(long, default_value_t = 8192, value_parser = parse_context)]
        context: usize,
        /// Print the table, the recommendation and the offload figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Benchmark: `cp` of a 20b-shaped checkpoint vs each conversion (time ratio, bytes/s, peak
    /// RSS), the reference forward pass (prompt and decode tokens/s, GFLOP/s), and one verify,
    /// each beside its peer tool when one is found.
    ///
    /// Peers (never required; each comparison is skipped, with a note, when its tool is absent):
    /// llama.cpp's `llama-perplexity` and `llama-quantize` (on `PATH`, or `--llama-cpp DIR`),
    /// its `convert_hf_to_gguf.py` (`--llama-convert FILE`, run with `--python`, or found on
    /// `PATH` or two levels above the tools), and mlx-lm's `mlx_lm.convert` (on `PATH`). With
    /// them, one run prints: verify per position against llama.cpp's KL-divergence workflow per
    /// token; dense BF16 -> gguf-mxfp4-q8_0 against `convert_hf_to_gguf.py --outtype bf16` +
    /// `llama-quantize MXFP4_MOE`; every GGUF preset from the dense source against
    /// `llama-quantize`; each preset of the release against `llama-quantize` with its MXFP4
    /// experts kept; the MLX variants against `mlx_lm.convert`. Example:
    /// `oss-forge bench --layers 2 --llama-cpp ~/llama.cpp/build/bin --llama-convert
    /// ~/llama.cpp/convert_hf_to_gguf.py --python ~/venv/bin/python`.
    Bench {
        /// Reuse this checkpoint instead of synthesizing one.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Layers of the synthesized `--preset 20b` checkpoint (24 is the whole model, 13 GB).
        #[arg(long, default_value_t = 2)]
        layers: usize,
        /// Working directory: the synthesized checkpoint, outputs (removed after each step
        /// unless --keep) and the children's logs.
        #[arg(long, default_value = "oss-forge-bench")]
        work: PathBuf,
        /// Comma-separated variants to convert (default: all).
        #[arg(long, value_delimiter = ',')]
        variants: Option<Vec<String>>,
        /// Rounds of every measurement; medians are reported.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// Prompt length for the forward pass.
        #[arg(long, default_value_t = 64)]
        prompt: usize,
        /// Single-token decode steps after the prompt.
        #[arg(long, default_value_t = 8)]
        decode: usize,
        /// The variant to run a full `verify` on (`none` to skip); with llama-perplexity found
        /// and a GGUF variant, llama.cpp's KL-divergence workflow runs on it beside.
        #[arg(long, default_value = "gguf-mxfp4-q8_0")]
        verify: String,
        /// Keep the converted outputs.
        #[arg(long)]
        keep: bool,
        /// Write the figures as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// A directory holding llama.cpp's `llama-quantize` and `llama-perplexity` (default:
        /// found on `PATH`).
        #[arg(long, value_name = "DIR")]
        llama_cpp: Option<PathBuf>,
        /// llama.cpp's `convert_hf_to_gguf.py` (default: on `PATH`, or two levels above the
        /// llama.cpp tools, as in a source tree's `build/bin`).
        #[arg(long, value_name = "FILE")]
        llama_convert: Option<PathBuf>,
        /// The Python that runs `convert_hf_to_gguf.py` (it needs torch, numpy and
        /// transformers).
        #[arg(long, default_value = "python3")]
        python: PathBuf,
        /// Comma-separated peer comparisons to run when their tools are found: `kld`,
        /// `dense`, `presets`, `release-presets`, `mlx`, `all` or `none`.
        #[arg(long, value_delimiter = ',', default_value = "all")]
        peers: Vec<String>,
        /// Comma-separated GGUF preset variants for the `presets` comparison (default: every
        /// one, `gguf-q6_k` ... `gguf-q2_k`).
        #[arg(long, value_delimiter = ',')]
        peer_presets: Option<Vec<String>>,
    },
    /// (Run by `bench`.) Time the forward pass over a prompt and decode steps; print JSON.
    #[command(hide = true)]
    BenchForward {
        /// The model.
        model: PathBuf,
        /// Prompt length.
        #[arg(long, default_value_t = 64)]
        prompt: usize,
        /// Decode steps.
        #[arg(long, default_value_t = 8)]
        decode: usize,
    },
    /// Write a deterministic random-weight checkpoint in the exact release layout.
    Synth {
        /// `tiny` (fixture-sized), `20b` or `120b` (real tensor shapes).
        #[arg(long, value_parser = ["tiny", "20b", "120b"])]
        preset: String,
        /// Number of layers (default: the preset's).
        #[arg(long)]
        layers: Option<usize>,
        /// Seed of every weight.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Also write `original/` in OpenAI's layout.
        #[arg(long)]
        original: bool,
        /// Largest shard, e.g. `4.8GB` (default: 4.8 GB, 1 MB for tiny).
        #[arg(long, value_parser = parse_size)]
        max_shard_size: Option<u64>,
        /// Replace an existing output directory.
        #[arg(long)]
        force: bool,
        /// Output directory.
        #[arg(short, long)]
        out: PathBuf,
    },
}

/// Which forward passes `verify` and `pipeline` run.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PassFlags {
    /// Run every forward pass, even those whose logits the weights already determine (a variant
    /// whose weights are all identical to the original's, a format floor identical to the
    /// variant): by default they are skipped and reported as such.
    #[arg(long)]
    pub force_forward: bool,
    /// Keep the original's logits in this directory, keyed by the SHA-256 of its files and the
    /// prompts: a later run against the same original reads them instead of running its forward
    /// pass again.
    #[arg(long, value_name = "DIR")]
    pub logits_cache: Option<PathBuf>,
}

/// Conversion settings shared by `convert` and `pipeline`.
#[derive(clap::Args, Debug, Clone)]
pub struct ConvertFlags {
    /// GGUF: split into llama.cpp-style shards of at most this many bytes of tensor data each
    /// (e.g. `4GB`; as llama.cpp's `gguf-split` counts, so a shard's header adds to it).
    #[arg(long, value_parser = parse_size)]
    split_max_size: Option<u64>,
    /// safetensors: largest shard (default `5GB`).
    #[arg(long, value_parser = parse_size)]
    max_shard_size: Option<u64>,
    /// safetensors-int8: also quantize attention and lm_head per output channel (lossy).
    #[arg(long)]
    int8_dense: bool,
    /// Convert even if the source holds NaN/Inf weights or NaN scale bytes, or values the
    /// output would store as Inf (past float16's 65504).
    #[arg(long)]
    allow_nonfinite: bool,
    /// Leave out of GGUF variants the tokens whose ids are past vocab_size (added to the
    /// tokenizer without resizing the embedding) instead of refusing the source; the report
    /// lists them.
    #[arg(long)]
    truncate_vocab: bool,
    /// Do not check for free disk space before writing (for file systems that misreport it).
    #[arg(long)]
    no_space_check: bool,
    /// How dense expert weights are rounded to MXFP4: `ggml` (llama-quantize's bytes), `ocp`,
    /// `triton`, `mlx` (`mx.quantize`'s: ceil(log2(amax/6)), ties to the smaller magnitude) or
    /// `mse` (the better of the floor and ceil scales per block); see docs/tolerances.md.
    /// [default: ggml]
    #[arg(long, value_parser = parse_rounding)]
    mxfp4_rounding: Option<quant::mxfp4::Rounding>,
    /// GGUF presets from an MXFP4 source: quantize the experts to the preset's types too
    /// (lossy) instead of keeping them MXFP4 (llama-quantize's `--allow-requantize`; without it,
    /// llama-quantize refuses MXFP4 source tensors).
    #[arg(long)]
    requantize_experts: bool,
}

fn parse_rounding(s: &str) -> Result<quant::mxfp4::Rounding, String> {
    s.parse().map_err(|e| format!("{e}"))
}

impl ConvertFlags {
    /// True when `--mxfp4-rounding` was given (it only matters for dense experts).
    pub fn rounding_given(&self) -> bool {
        self.mxfp4_rounding.is_some()
    }

    /// The library's options (`force` is the command's own flag).
    pub fn options(&self, force: bool) -> convert::ConvertOptions {
        convert::ConvertOptions {
            force,
            split_max_bytes: self.split_max_size,
            max_shard_bytes: self.max_shard_size,
            int8_dense: self.int8_dense,
            allow_nonfinite: self.allow_nonfinite,
            truncate_vocab: self.truncate_vocab,
            skip_space_check: self.no_space_check,
            mxfp4_rounding: self.mxfp4_rounding.unwrap_or_default(),
            requantize_experts: self.requantize_experts,
        }
    }
}

/// A variant name, with a "did you mean" for a misspelt one.
fn parse_variant(s: &str) -> Result<convert::Variant, String> {
    convert::Variant::parse_or_suggest(s)
}

/// Parsed `--gpu-mem`: bytes, and whether the number came without a unit (read as GiB).
#[derive(Clone, Copy, Debug)]
pub struct GpuMem {
    /// Bytes.
    pub bytes: u64,
    /// Given as a plain number.
    pub unitless: bool,
    /// Given in decimal units (`24GB`: 10^9 bytes), which GPU makers' "24 GB" does not mean.
    pub decimal: bool,
}

/// `--gpu-mem`: a size with a unit ([`parse_size`]), or a plain number of GiB (`24`): GPU
/// memory is never a byte count.
pub fn parse_gpu_mem(s: &str) -> Result<GpuMem, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<f64>() {
        if !(n > 0.0 && n < 1e6) {
            return Err(format!("`{s}` is not a GPU memory size (try 24 or 24GiB)"));
        }
        return Ok(GpuMem {
            bytes: (n * (1u64 << 30) as f64) as u64,
            unitless: true,
            decimal: false,
        });
    }
    let bytes = parse_size(t)?;
    if bytes < 1 << 20 {
        return Err(format!(
            "`{s}` is less than 1 MiB: not a GPU memory size (try 24GiB)"
        ));
    }
    let unit = t.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == 'e');
    Ok(GpuMem {
        bytes,
        unitless: false,
        decimal: !unit.to_ascii_lowercase().contains("ib"),
    })
}

/// `--context`: a positive number of positions.
fn parse_context(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("a context of 0 positions holds no prompt (try 8192)".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a number of positions")),
    }
}

/// Parsed `--tokens`.
#[derive(Clone, Debug)]
pub struct TokenList(pub Vec<u32>);

fn parse_tokens(s: &str) -> Result<TokenList, String> {
    let ids = s
        .split(',')
        .map(str::trim)
        .map(|t| match t {
            "" => Err(format!("`{s}`: an empty token id between commas")),
            t => t
                .parse::<u32>()
                .map_err(|_| format!("`{t}` is not a token id")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err("no token ids".into());
    }
    Ok(TokenList(ids))
}

/// Parses sizes like `5GB`, `4.8e9`, `500MB`, `1GiB`, `64KiB` (decimal units are powers of 1000,
/// `i` units powers of 1024, as in transformers' `max_shard_size`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a size (try 5GB, 500MB, 4.8e9)"))?;
    let mult = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1u64,
        "K" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "T" | "TB" => 1_000_000_000_000,
        "KIB" => 1 << 10,
        "MIB" => 1 << 20,
        "GIB" => 1 << 30,
        "TIB" => 1 << 40,
        other => return Err(format!("unknown size unit `{other}` in `{s}`")),
    };
    let v = n * mult as f64;
    if v.is_nan() || v < 1.0 || v > u64::MAX as f64 {
        return Err(format!("`{s}` is not a positive size"));
    }
    Ok(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("5GB"), Ok(5_000_000_000));
        assert_eq!(parse_size("4.8e9"), Ok(4_800_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("500 MB"), Ok(500_000_000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("5XB").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn gpu_memory_without_a_unit_is_gib() {
        let g = parse_gpu_mem("24").unwrap();
        assert_eq!((g.bytes, g.unitless), (24 << 30, true));
        let g = parse_gpu_mem("16GB").unwrap();
        assert_eq!(
            (g.bytes, g.unitless, g.decimal),
            (16_000_000_000, false, true)
        );
        assert!(!parse_gpu_mem("16GiB").unwrap().decimal);
        assert_eq!(parse_gpu_mem("0.5").unwrap().bytes, 1 << 29);
        assert!(parse_gpu_mem("24B").is_err() && parse_gpu_mem("0").is_err());
    }

    #[test]
    fn tokens() {
        assert_eq!(parse_tokens("1, 2,3").unwrap().0, vec![1, 2, 3]);
        assert!(parse_tokens("1,x").is_err());
        assert!(parse_tokens("").is_err());
        assert!(parse_tokens("1,,2").is_err() && parse_tokens("1,2,").is_err());
        assert!(parse_context("0").is_err() && parse_context("4096").is_ok());
        assert!(parse_tokens("-1").is_err());
    }
}
