//! The variants oss-forge writes, and the one entry point that writes any of them.
//!
//! | variant | file | experts | other 2-D weights | 1-D, biases, router |
//! |---|---|---|---|---|
//! | `gguf-mxfp4` | GGUF | MXFP4 (bytes repacked, values bit-exact) | BF16 | F32 |
//! | `gguf-mxfp4-f16` | GGUF | MXFP4 | F16 | F32 |
//! | `gguf-mxfp4-q8_0` | GGUF | MXFP4 | Q8_0 | F32 |
//! | `gguf-q8_0` | GGUF | Q8_0 (exact where the scale allows) | Q8_0 | F32 |
//! | `gguf-f16` / `gguf-bf16` | GGUF | F16 / BF16 | F16 / BF16 | F32 |
//! | `safetensors-bf16` / `-fp16` | directory | BF16 / F16, transformers' fused layout | BF16 / F16 | BF16 / F16 |
//! | `safetensors-int8` | directory | compressed-tensors int8, group 32 (exact) | BF16 | BF16 |

use crate::error::Result;
use rayon::prelude::*;
use reference::WeightSource;
use std::path::{Path, PathBuf};

pub mod preset;
pub mod st;

/// An output variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// GGUF, MXFP4 experts, BF16 dense (llama.cpp `--outtype auto`).
    GgufMxfp4,
    /// GGUF, MXFP4 experts, F16 dense (llama.cpp `--outtype f16`).
    GgufMxfp4F16,
    /// GGUF, MXFP4 experts, Q8_0 dense (llama.cpp `--outtype q8_0`).
    GgufMxfp4Q8_0,
    /// GGUF, everything Q8_0 (experts exact where the MXFP4 scale fits an f16 `d`).
    GgufQ8_0,
    /// GGUF, everything F16.
    GgufF16,
    /// GGUF, everything BF16.
    GgufBf16,
    /// transformers' dequantized layout in BF16.
    SafetensorsBf16,
    /// transformers' dequantized layout in F16.
    SafetensorsFp16,
    /// compressed-tensors pack-quantized int8 experts (group 32), BF16 elsewhere.
    SafetensorsInt8,
}

impl Variant {
    /// Every variant, in the order `pipeline` writes them.
    pub const ALL: [Variant; 9] = [
        Variant::GgufMxfp4,
        Variant::GgufMxfp4F16,
        Variant::GgufMxfp4Q8_0,
        Variant::GgufQ8_0,
        Variant::GgufF16,
        Variant::GgufBf16,
        Variant::SafetensorsBf16,
        Variant::SafetensorsFp16,
        Variant::SafetensorsInt8,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Variant::GgufMxfp4 => "gguf-mxfp4",
            Variant::GgufMxfp4F16 => "gguf-mxfp4-f16",
            Variant::GgufMxfp4Q8_0 => "gguf-mxfp4-q8_0",
            Variant::GgufQ8_0 => "gguf-q8_0",
            Variant::GgufF16 => "gguf-f16",
            Variant::GgufBf16 => "gguf-bf16",
            Variant::SafetensorsBf16 => "safetensors-bf16",
            Variant::SafetensorsFp16 => "safetensors-fp16",
            Variant::SafetensorsInt8 => "safetensors-int8",
        }
    }

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.name() == s)
    }

    /// True for the single-file GGUF variants.
    pub fn is_gguf(self) -> bool {
        matches!(
            self,
            Variant::GgufMxfp4
                | Variant::GgufMxfp4F16
                | Variant::GgufMxfp4Q8_0
                | Variant::GgufQ8_0
                | Variant::GgufF16
                | Variant::GgufBf16
        )
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Settings of one conversion.
#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    /// Replace an existing output.
    pub force: bool,
    /// GGUF: split into llama.cpp-style shards of at most this many bytes of tensor data.
    pub split_max_bytes: Option<u64>,
    /// safetensors: largest shard (default 5 GB, transformers v4's `max_shard_size`).
    pub max_shard_bytes: Option<u64>,
    /// safetensors-int8: also quantize attention projections and lm_head per output channel.
    pub int8_dense: bool,
    /// Convert even when the source holds NaN/Inf values or NaN scale bytes.
    pub allow_nonfinite: bool,
    /// Skip the free-space check before writing (for file systems whose `statvfs` is wrong).
    pub skip_space_check: bool,
}

/// Values a variant could not store exactly.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inexact {
    /// What was inexact (e.g. "Q8_0 expert blocks with scale outside 104..=143").
    pub what: String,
    /// How many values (or blocks, as `what` says).
    pub count: u64,
    /// The largest absolute error introduced.
    pub max_abs_error: f32,
}

/// What a conversion wrote.
#[derive(Clone, Debug, Default)]
pub struct ConvertReport {
    /// The files written (one GGUF, several splits, or a directory's files).
    pub outputs: Vec<PathBuf>,
    /// Bytes written.
    pub bytes: u64,
    /// Values stored inexactly, by kind. Empty for a lossless conversion.
    pub inexact: Vec<Inexact>,
    /// Warnings to show the user (and put in the model card).
    pub warnings: Vec<String>,
}

/// Progress of a long operation, in bytes. Implementations must be cheap to call often.
pub trait Progress: Sync {
    /// A new phase with `total` bytes of work.
    fn begin(&self, label: &str, total: u64);
    /// `bytes` more done.
    fn advance(&self, bytes: u64);
    /// The phase is over.
    fn end(&self);
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn end(&self) {}
}

/// Writes `variant` of the model `src` (found at `src_path`, whose tokenizer files and config are
/// copied or embedded) to `out`.
pub fn convert(
    src: &dyn WeightSource,
    src_path: &Path,
    variant: Variant,
    out: &Path,
    opts: &ConvertOptions,
    progress: &dyn Progress,
) -> Result<ConvertReport> {
    if variant.is_gguf() {
        crate::gguf::write::convert(src, src_path, variant, out, opts, progress)
    } else {
        st::convert(src, src_path, variant, out, opts, progress)
    }
}

/// Counts of inexact values that merge by sums and maxima, so parts computed in parallel give
/// the same total in any order.
pub(crate) trait Merge: Default {
    /// Adds `other` to `self`.
    fn merge(&mut self, other: Self);
}

/// All of `parts` merged.
pub(crate) fn merged<T: Merge>(parts: impl IntoIterator<Item = T>) -> T {
    let mut all = T::default();
    for p in parts {
        all.merge(p);
    }
    all
}

/// Values of a dense tensor encoded per chunk (about 8 MB of f32): each chunk is encoded in
/// parallel pieces, written, and its source pages released, so a 1.2 GB embedding never becomes
/// resident whole.
pub(crate) const CHUNK_VALUES: usize = 2 << 20;

/// The BF16 bytes of a dense weight `id` of `src` passed on unchanged, a chunk of
/// [`CHUNK_VALUES`] at a time: its pages mapped in one call, checked for NaN/Inf on the bits
/// (refused, naming the weight, unless `allow_nonfinite`), handed to `write`, released.
pub(crate) fn copy_bf16(
    src: &dyn WeightSource,
    id: reference::WeightId,
    bytes: &[u8],
    allow_nonfinite: bool,
    src_path: &Path,
    mut write: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    for piece in bytes.chunks(2 * CHUNK_VALUES) {
        src.prefetch(piece);
        if !allow_nonfinite && !quant::float::bf16_bytes_all_finite(piece) {
            return Err(crate::ConvertError::nonfinite(src_path, id));
        }
        write(piece)?;
        src.release(id);
    }
    Ok(())
}

/// Encodes rows `range` of a tensor whose rows take `rb` output bytes into `buf` (resized to
/// fit), pieces of `piece_rows` rows in parallel: `piece(first row, its bytes, tally)`. Each
/// piece's bytes depend on its rows alone and tallies merge by sums and maxima, so neither the
/// bytes nor the report depend on the thread count.
pub(crate) fn encode_rows<T: Merge + Send>(
    range: std::ops::Range<usize>,
    rb: usize,
    piece_rows: usize,
    buf: &mut Vec<u8>,
    piece: impl Fn(usize, &mut [u8], &mut T) -> Result<()> + Sync,
) -> Result<T> {
    // Every byte is overwritten by the pieces: only a change of size needs the zero fill.
    if buf.len() != range.len() * rb {
        buf.clear();
        buf.resize(range.len() * rb, 0);
    }
    let step = piece_rows.max(1);
    let parts: Vec<T> = buf
        .par_chunks_mut((step * rb).max(1))
        .enumerate()
        .map(|(k, out)| {
            let mut t = T::default();
            piece(range.start + k * step, out, &mut t)?;
            Ok(t)
        })
        .collect::<Result<_>>()?;
    Ok(merged(parts))
}

/// Encodes all `rows` rows (of `cols` values, `rb` output bytes) of a dense tensor a chunk of
/// [`CHUNK_VALUES`] at a time with [`encode_rows`], the chunk's rows shared among the threads;
/// `chunk_done` receives each chunk's bytes in order (to write them and release the source
/// pages read so far).
pub(crate) fn encode_chunked<T: Merge + Send>(
    rows: usize,
    cols: usize,
    rb: usize,
    buf: &mut Vec<u8>,
    piece: impl Fn(usize, &mut [u8], &mut T) -> Result<()> + Sync,
    mut chunk_done: impl FnMut(&[u8]) -> Result<()>,
) -> Result<T> {
    let chunk = (CHUNK_VALUES / cols.max(1)).clamp(1, rows.max(1));
    let sub = chunk.div_ceil(2 * rayon::current_num_threads()).max(1);
    let mut tally = T::default();
    for r in (0..rows).step_by(chunk) {
        tally.merge(encode_rows(r..(r + chunk).min(rows), rb, sub, buf, &piece)?);
        chunk_done(buf)?;
    }
    Ok(tally)
}
