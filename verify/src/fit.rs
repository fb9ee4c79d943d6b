//! Will it fit? Weight bytes of each variant, KV cache at a context length, runtime overhead.
//!
//! Everything is computed from the config (the variants' storage rules are fixed), so a fit
//! table needs no files:
//!
//! | part | bytes |
//! |---|---|
//! | weights | every tensor the variant's writer plans, in the codec its row of the storage table gives (`convert::variant::Storage`: MXFP4 17 B / 32 values, Q8_0 34 B / 32, int8 1 B + a BF16 scale / 32, F16/BF16 2 B, F32 4 B; GGUF keeps 1-D tensors and the router in F32) |
//! | KV cache | 2 (K and V) × kv_heads × head_dim × 2 B (F16, llama.cpp's and vLLM's default) × positions, per layer: `min(context, sliding_window)` positions on sliding layers, `context` on full ones |
//! | overhead | 512 MiB (runtime, CUDA context, scratch) + one 512-token micro-batch of F32 logits (512 × vocab × 4 B) |
//!
//! The overhead is an estimate for llama.cpp / vLLM at default batch sizes; a serving stack
//! with large batches needs more. The table says "fits" when the total is at most the memory.

use convert::Variant;
use reference::{Config, LayerType};

/// GPUs the model cards list (name, memory in bytes).
pub const COMMON_GPUS: [(&str, u64); 7] = [
    ("8 GiB (RTX 4060, 3070)", 8 << 30),
    ("12 GiB (RTX 3060, 4070)", 12 << 30),
    ("16 GiB (RTX 4080, 5060 Ti, T4)", 16 << 30),
    ("24 GiB (RTX 3090, 4090, L4)", 24 << 30),
    ("32 GiB (RTX 5090)", 32 << 30),
    ("48 GiB (L40S, RTX 6000 Ada)", 48 << 30),
    ("80 GiB (H100, A100 80GB)", 80 << 30),
];

/// Micro-batch whose logits the overhead counts.
pub const UBATCH: u64 = 512;
/// Fixed runtime overhead.
pub const RUNTIME_OVERHEAD: u64 = 512 << 20;

/// Weight bytes of `variant` (or of the release itself with `None`): the tensor data its
/// writer plans for `cfg` (`convert::variant::tensor_bytes`), from the variant's row of the
/// storage table.
pub fn weight_bytes(cfg: &Config, variant: Option<Variant>) -> u64 {
    weight_bytes_from(cfg, variant, true).unwrap_or_default()
}

/// [`weight_bytes`] from a source whose experts are MXFP4 (the release) or dense (a fine-tune,
/// whose MXFP4 and preset variants requantize them); `None` for a variant the writer refuses
/// for this model.
pub fn weight_bytes_from(
    cfg: &Config,
    variant: Option<Variant>,
    mxfp4_experts: bool,
) -> Option<u64> {
    match variant {
        None => Some(convert::variant::release_tensor_bytes(cfg)),
        Some(v) => convert::variant::tensor_bytes(&v.storage(), cfg, mxfp4_experts),
    }
}

/// KV cache bytes at `context` positions (F16 K and V).
pub fn kv_cache_bytes(cfg: &Config, context: usize) -> u64 {
    let per_pos = 2 * cfg.kv_dim() as u64 * 2;
    cfg.layer_types
        .iter()
        .map(|t| {
            let positions = match t {
                LayerType::Sliding => context.min(cfg.sliding_window),
                LayerType::Full => context,
            };
            per_pos * positions as u64
        })
        .sum()
}

/// Runtime overhead estimate.
pub fn overhead_bytes(cfg: &Config) -> u64 {
    RUNTIME_OVERHEAD + UBATCH * cfg.vocab_size as u64 * 4
}

/// One line of a fit table.
#[derive(Clone, Debug, PartialEq)]
pub struct FitRow {
    /// Variant name (`release` for the checkpoint as released).
    pub variant: String,
    /// Weights.
    pub weights: u64,
    /// KV cache.
    pub kv_cache: u64,
    /// Overhead.
    pub overhead: u64,
    /// Sum.
    pub total: u64,
}

impl FitRow {
    /// Fits in `memory` bytes.
    pub fn fits(&self, memory: u64) -> bool {
        self.total <= memory
    }
}

/// The release and every variant at `context`.
pub fn fit_rows(cfg: &Config, context: usize) -> Vec<FitRow> {
    fit_rows_from(cfg, context, true)
}

/// [`fit_rows`] for a source whose experts are MXFP4 (the release) or dense (a fine-tune:
/// the GGUF presets then quantize the experts too, so their sizes differ).
pub fn fit_rows_from(cfg: &Config, context: usize, mxfp4_experts: bool) -> Vec<FitRow> {
    let kv = kv_cache_bytes(cfg, context);
    let overhead = overhead_bytes(cfg);
    std::iter::once(None)
        .chain(Variant::ALL.into_iter().map(Some))
        .map(|v| {
            let weights = weight_bytes_from(cfg, v, mxfp4_experts).unwrap_or_default();
            FitRow {
                variant: v.map_or("release (hf-mxfp4)".into(), |v| v.name().into()),
                weights,
                kv_cache: kv,
                overhead,
                total: weights + kv + overhead,
            }
        })
        .collect()
}

/// `11.96 GiB`: sizes in `fit` tables and cards (binary units, as GPU memory is counted).
pub fn gib(bytes: u64) -> String {
    convert::units::gib(bytes)
}

/// A fit table for one memory size, as text rows (header first).
pub fn table(cfg: &Config, memory: u64, context: usize) -> Vec<[String; 6]> {
    table_from(cfg, memory, context, true)
}

/// [`table`] for a source whose experts are MXFP4 or dense ([`fit_rows_from`]).
pub fn table_from(
    cfg: &Config,
    memory: u64,
    context: usize,
    mxfp4_experts: bool,
) -> Vec<[String; 6]> {
    let mut rows = vec![
        [
            "variant", "weights", "KV cache", "overhead", "total", "fits",
        ]
        .map(String::from),
    ];
    for r in fit_rows_from(cfg, context, mxfp4_experts) {
        let fits = if r.fits(memory) {
            "yes".to_string()
        } else {
            format!("no (+{})", gib(r.total - memory))
        };
        rows.push([
            r.variant.clone(),
            gib(r.weights),
            gib(r.kv_cache),
            gib(r.overhead),
            gib(r.total),
            fits,
        ]);
    }
    rows
}

/// Markdown: which variants fit which common GPUs at `context`.
pub fn gpu_markdown(cfg: &Config, context: usize, variants: &[Variant]) -> String {
    let rows: Vec<FitRow> = fit_rows(cfg, context)
        .into_iter()
        .filter(|r| variants.iter().any(|v| v.name() == r.variant))
        .collect();
    let mut out = format!(
        "| GPU memory | {} |\n|---|{}\n",
        rows.iter()
            .map(|r| format!("`{}` ({})", r.variant, gib(r.total)))
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(rows.len())
    );
    for (name, mem) in COMMON_GPUS {
        out.push_str(&format!(
            "| {name} | {} |\n",
            rows.iter()
                .map(|r| if r.fits(mem) { "yes" } else { "no" })
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    out
}

/// How well a variant keeps the original, from a verification (`verify.json` or a pipeline's
/// manifest).
#[derive(Clone, Debug, PartialEq)]
pub struct Quality {
    /// Passed its verification.
    pub pass: bool,
    /// Every weight identical to the original's.
    pub lossless: bool,
    /// Mean KLD of the logits.
    pub kld_mean: Option<f64>,
    /// Top-1 agreement.
    pub top1: Option<f64>,
}

impl From<&crate::report::VariantJson> for Quality {
    fn from(v: &crate::report::VariantJson) -> Quality {
        Quality {
            pass: v.pass,
            lossless: v.lossless,
            kld_mean: v.metrics.kld_mean,
            top1: v.metrics.top1,
        }
    }
}

impl Quality {
    /// `lossless (verified)`, `mean KLD 1.2e-4, top-1 99.10% (verified)`.
    pub fn describe(&self) -> String {
        if !self.pass {
            return "FAILED its verification".into();
        }
        if self.lossless {
            return "lossless (verified: every weight identical)".into();
        }
        format!(
            "mean KLD {}, top-1 {} (verified)",
            self.kld_mean.map_or("n/a".into(), crate::report::sci),
            self.top1
                .map_or("n/a".into(), |t| format!("{:.2}%", t * 100.0))
        )
    }
}

/// True when `v` stores every weight of a release checkpoint (MXFP4 experts, BF16 elsewhere)
/// exactly, by its row of the storage table: experts in MXFP4, BF16 or int8 groups of 32
/// (`q = 2·E2M1`), everything else in BF16 or F32.
pub fn exact_by_design(v: Variant) -> bool {
    use convert::variant::Store;
    use quant::Codec;
    let row = v.storage();
    let wide = |s: Store| matches!(s, Store::Codec(Codec::BF16 | Codec::F32));
    matches!(
        row.experts,
        Store::Codec(Codec::MXFP4 | Codec::BF16) | Store::Int8 { group: Some(32) }
    ) && wide(row.embedding)
        && wide(row.dense)
        && wide(row.router)
        && matches!(row.vectors, Codec::BF16 | Codec::F32)
}

/// The runtime a variant is for.
pub fn runtime(v: Variant) -> &'static str {
    if v.is_gguf() {
        "llama.cpp"
    } else {
        "transformers / vLLM"
    }
}

/// The best variant for `runtime` that fits `memory` at `context`: among those that fit,
/// passed before failed, lossless (verified, else exact by design) before lossy, lower mean
/// KLD first (then the smaller total); a lossy variant not measured ranks by its size, the
/// larger first (more bits). `quality` gives a verification when there is one.
pub fn recommend(
    cfg: &Config,
    memory: u64,
    context: usize,
    runtime_name: &str,
    quality: &dyn Fn(Variant) -> Option<Quality>,
) -> Option<(Variant, FitRow)> {
    let rows = fit_rows(cfg, context);
    let mut fitting: Vec<(Variant, FitRow)> = Variant::ALL
        .into_iter()
        .filter(|v| runtime(*v) == runtime_name)
        .filter_map(|v| {
            let r = rows.iter().find(|r| r.variant == v.name())?.clone();
            r.fits(memory).then_some((v, r))
        })
        .collect();
    let key = |(v, r): &(Variant, FitRow)| {
        let q = quality(*v);
        let failed = q.as_ref().is_some_and(|q| !q.pass);
        let lossless = q.as_ref().map_or(exact_by_design(*v), |q| q.lossless);
        let kld = q.as_ref().and_then(|q| q.kld_mean);
        // Lossy and not measured: the most bits that fit (the larger total) first.
        let size = if lossless || kld.is_some() {
            r.total
        } else {
            u64::MAX - r.total
        };
        let kld = kld.map_or(u64::MAX, |k| (k * 1e12) as u64);
        (failed, !lossless, if lossless { 0 } else { kld }, size)
    };
    fitting.sort_by_key(key);
    fitting.into_iter().next()
}

/// Bytes of one layer's experts in `v` (gate, up and down weights of every expert, and their
/// biases in F32): what llama.cpp's `--n-cpu-moe` keeps in CPU memory per layer.
pub fn expert_bytes_per_layer(cfg: &Config, v: Variant) -> u64 {
    let row = v.storage();
    let (e, h, i) = (
        cfg.num_local_experts as u64,
        cfg.hidden_size as u64,
        cfg.intermediate_size as u64,
    );
    let weights =
        row.experts.bytes(e * 2 * i, h).unwrap_or(0) + row.experts.bytes(e * h, i).unwrap_or(0);
    weights + e * (2 * i + h) * 4
}

/// Experts offloaded to the CPU (llama.cpp's `--n-cpu-moe N`: the experts of the first `N`
/// layers stay in CPU memory).
#[derive(Clone, Debug, PartialEq)]
pub struct Offload {
    /// The variant.
    pub variant: Variant,
    /// `--n-cpu-moe`.
    pub n_cpu_moe: usize,
    /// Bytes on the GPU (weights left there, KV cache, overhead).
    pub gpu: u64,
    /// Expert bytes in CPU memory.
    pub cpu: u64,
}

/// The fewest layers of experts of the GGUF variant `v` to keep on the CPU so that the rest
/// fits `memory` at `context`; `None` when even all of them do not make it fit (or `v` is not
/// a GGUF variant).
pub fn offload(cfg: &Config, v: Variant, memory: u64, context: usize) -> Option<Offload> {
    // A llama-quantize preset picks types per tensor: its experts' bytes are not one row's.
    if !v.is_gguf() || matches!(v, Variant::GgufPreset(_)) {
        return None;
    }
    let row = fit_rows(cfg, context)
        .into_iter()
        .find(|r| r.variant == v.name())?;
    let per = expert_bytes_per_layer(cfg, v);
    (0..=cfg.num_hidden_layers).find_map(|n| {
        let cpu = per * n as u64;
        let gpu = row.total.saturating_sub(cpu);
        (gpu <= memory).then_some(Offload {
            variant: v,
            n_cpu_moe: n,
            gpu,
            cpu,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use convert::synth::{Preset, preset_config};

    fn cfg(p: Preset) -> Config {
        Config::from_hf_json(&preset_config(p, None)).unwrap()
    }

    #[test]
    fn release_bytes_match_the_published_checkpoints() {
        // gpt-oss-20b's safetensors hold 13.76 GB of tensors, gpt-oss-120b's 65.25 GB
        // (model.safetensors.index.json total_size: 13761264768 and 65248815744).
        let b20 = weight_bytes(&cfg(Preset::Gpt20b), None);
        let b120 = weight_bytes(&cfg(Preset::Gpt120b), None);
        assert!((b20 as f64 / 13_761_264_768.0 - 1.0).abs() < 1e-3, "{b20}");
        assert!(
            (b120 as f64 / 65_248_815_744.0 - 1.0).abs() < 1e-3,
            "{b120}"
        );
    }

    #[test]
    fn kv_cache_counts_the_window_on_sliding_layers() {
        let c = cfg(Preset::Gpt20b);
        // 12 full layers × 8 kv heads × 64 × 2 (K, V) × 2 bytes = 24576 bytes per position;
        // 12 sliding layers hold 128 positions.
        assert_eq!(kv_cache_bytes(&c, 8192), 12 * 2048 * 8192 + 12 * 2048 * 128);
        assert_eq!(kv_cache_bytes(&c, 100), 24 * 2048 * 100);
    }

    #[test]
    fn the_best_fit_is_lossless_first_and_120b_on_24_gib_offloads_experts() {
        let c = cfg(Preset::Gpt20b);
        let none = |_| None;
        let (v, _) = recommend(&c, 16 << 30, 8192, "llama.cpp", &none).unwrap();
        assert_eq!(v, Variant::GgufMxfp4, "smallest exact GGUF");
        // safetensors-mxfp4 is the release's own layout: exact, and it fits 16 GiB.
        let (v, _) = recommend(&c, 16 << 30, 8192, "transformers / vLLM", &none).unwrap();
        assert_eq!(v, Variant::SafetensorsMxfp4);
        assert!(recommend(&c, 8 << 30, 8192, "transformers / vLLM", &none).is_none());
        let (v, _) = recommend(&c, 48 << 30, 8192, "transformers / vLLM", &none).unwrap();
        assert_eq!(
            v,
            Variant::SafetensorsMxfp4,
            "exact and the smallest safetensors"
        );
        // A verification that failed is never preferred.
        let failed = |v| {
            (v == Variant::GgufMxfp4).then_some(Quality {
                pass: false,
                lossless: true,
                kld_mean: Some(0.0),
                top1: Some(1.0),
            })
        };
        let (v, _) = recommend(&c, 80 << 30, 8192, "llama.cpp", &failed).unwrap();
        assert_ne!(v, Variant::GgufMxfp4);
        // 120b: nothing whole on 24 GiB; with experts of some layers on the CPU it fits.
        let big = cfg(Preset::Gpt120b);
        assert!(recommend(&big, 24 << 30, 8192, "llama.cpp", &none).is_none());
        let o = offload(&big, Variant::GgufMxfp4, 24 << 30, 8192).unwrap();
        assert!(
            o.n_cpu_moe > 0 && o.n_cpu_moe < big.num_hidden_layers,
            "{o:?}"
        );
        assert!(o.gpu <= 24 << 30);
        let one_less = offload(&big, Variant::GgufMxfp4, o.gpu - 1, 8192).unwrap();
        assert_eq!(one_less.n_cpu_moe, o.n_cpu_moe + 1, "the fewest layers");
        assert!(exact_by_design(Variant::SafetensorsInt8) && !exact_by_design(Variant::GgufF16));
    }

    #[test]
    fn the_20b_mxfp4_gguf_fits_16_gib_and_bf16_does_not() {
        let c = cfg(Preset::Gpt20b);
        let rows = fit_rows(&c, 8192);
        let get = |n: &str| rows.iter().find(|r| r.variant == n).unwrap().clone();
        assert!(get("gguf-mxfp4").fits(16 << 30));
        assert!(!get("safetensors-bf16").fits(24 << 30));
        assert!(get("gguf-q8_0").weights > get("gguf-mxfp4").weights);
        assert!(
            gpu_markdown(&c, 8192, &[Variant::GgufMxfp4])
                .contains("| 16 GiB (RTX 4080, 5060 Ti, T4) | yes |")
        );
    }
}
