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
    let kv = kv_cache_bytes(cfg, context);
    let overhead = overhead_bytes(cfg);
    std::iter::once(None)
        .chain(Variant::ALL.into_iter().map(Some))
        .map(|v| {
            let weights = weight_bytes(cfg, v);
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

/// `12.84 GB`-style decimal gigabytes.
pub fn gb(bytes: u64) -> String {
    format!("{:.2} GB", bytes as f64 / 1e9)
}

/// A fit table for one memory size, as text rows (header first).
pub fn table(cfg: &Config, memory: u64, context: usize) -> Vec<[String; 6]> {
    let mut rows = vec![
        [
            "variant", "weights", "KV cache", "overhead", "total", "fits",
        ]
        .map(String::from),
    ];
    for r in fit_rows(cfg, context) {
        let fits = if r.fits(memory) {
            "yes".to_string()
        } else {
            format!("no (+{})", gb(r.total - memory))
        };
        rows.push([
            r.variant.clone(),
            gb(r.weights),
            gb(r.kv_cache),
            gb(r.overhead),
            gb(r.total),
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
            .map(|r| format!("`{}` ({})", r.variant, gb(r.total)))
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
