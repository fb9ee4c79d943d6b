//! The GGUF variants: which tensors, in which order, of which type, and how each is encoded.
//!
//! The types come from the variant's [`Storage`] row: `*_exps.weight` from `experts`,
//! `token_embd` from `embedding`, `output` and `attn_{q,k,v,output}.weight` from `dense`,
//! `ffn_gate_inp.weight` from `router`, everything else (norms, biases, sinks) from `vectors`.
//!
//! Order, as llama.cpp's `convert_hf_to_gguf.py` writes it (llama.cpp as vendored in
//! llama-cpp-python 0.3.36, `GptOssModel`; `docs/formats.md`): walk the source's tensors
//! shard by shard (shards in file-name order, names sorted within a shard) twice; the first
//! walk emits the expert weights (`down` at `down_proj_scales`, `gate` then `up` at
//! `gate_up_proj_scales`), the second everything else (gate_up bias → gate bias, up bias). A
//! source without release shards (OpenAI's `original/`, a dense fine-tune, a GGUF) is walked as
//! one shard of release names.
//!
//! Encoding, per tensor: bytes already in the target codec are copied; release MXFP4 becomes
//! ggml's `block_mxfp4` by moving nibbles; MXFP4 becomes Q8_0 exactly where the scale allows
//! (`q8_0::from_mxfp4_block`); anything else is decoded to f32 and encoded by the codec's
//! reference quantizer ([`Codec::quantize_row`]), counting the values that change.
//!
//! Everything streams: one tensor (one expert of it, or a chunk of rows of a dense matrix) is
//! encoded at a time and its source pages are released afterwards.

use crate::atomic::Staged;
use crate::error::{ConvertError, Result};
use crate::gguf::names::{self, Class, Content};
use crate::gguf::writer::{self, PlannedTensor};
use crate::gguf::{Codec, Value, meta, split_path};
use crate::model::AnyModel;
use crate::variant::Job;
use crate::variant::preset::{
    ModelInfo, Preset, PresetError, TensorInfo, TypeOverride, plan_types,
};
use crate::variant::{
    ConvertReport, Guard, Overflow, Progress, Storage, Store, Tally, Variant, copy_bf16,
    encode_chunked, encode_rows, first_half_overflow, first_overflow, inexact_kind, mxfp4_scale_at,
};
use quant::{float, mxfp4, q8_0};
use reference::{Config, DenseType, Encoding, MatRef, WeightId, WeightSource};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One tensor of the plan.
#[derive(Clone, Debug)]
pub struct Item {
    /// Name, shape and type.
    pub tensor: PlannedTensor,
    /// Its contents.
    pub content: Content,
}

/// The tensors of a GGUF variant stored as `storage` for `cfg`, in llama.cpp's order for a
/// source walked in `order` (names and shapes from [`crate::gguf::names`]).
pub fn plan(storage: &Storage, cfg: &Config, order: &[String]) -> Vec<Item> {
    let codec = |s: Store| match s {
        Store::Codec(c) => c,
        other => unreachable!("a GGUF row stores {other:?}: the storage table test forbids it"),
    };
    names::llamacpp_order(order)
        .into_iter()
        .map(|content| {
            let ty = match content {
                Content::ExpertWeights(..) => codec(storage.experts),
                Content::Single(WeightId::Embedding) => codec(storage.embedding),
                Content::Single(WeightId::Router(_)) => codec(storage.router),
                c if c.class() == Class::Matrix => codec(storage.dense),
                _ => storage.vectors,
            };
            let tensor = PlannedTensor {
                name: content.name(),
                ne: content.shape(cfg),
                ty,
            };
            Item { tensor, content }
        })
        .collect()
}

/// The llama-quantize run a GGUF row stands for, from a source whose experts are (or are not)
/// MXFP4: `None` where llama.cpp's converter alone makes the file.
///
/// - A preset row: the preset; MXFP4 experts kept with llama-quantize's
///   `--tensor-type ffn_{gate,up,down}_exps=mxfp4` unless `requantize_experts`.
/// - An MXFP4 row from dense experts: `MXFP4_MOE` (experts MXFP4, the rest Q8_0), with
///   `--tensor-type` overrides giving the row's own type to the other weights when it is not
///   Q8_0 (so `gguf-mxfp4` from a fine-tune is MXFP4 experts beside BF16 weights).
fn quantize_run(
    storage: &Storage,
    mxfp4_experts: bool,
    requantize_experts: bool,
) -> Option<(Preset, Vec<TypeOverride<'static>>)> {
    if let Some(p) = storage.preset {
        let keep = mxfp4_experts && !requantize_experts;
        return Some((
            p,
            if keep {
                TypeOverride::MXFP4_EXPERTS.to_vec()
            } else {
                Vec::new()
            },
        ));
    }
    match (storage.experts, storage.dense) {
        (Store::Codec(Codec::MXFP4), Store::Codec(dense)) if !mxfp4_experts => {
            let overrides = if dense == Codec::Q8_0 {
                Vec::new()
            } else {
                ["token_embd", "output", "attn_"]
                    .map(|pattern| TypeOverride {
                        pattern,
                        codec: dense,
                    })
                    .to_vec()
            };
            Some((Preset::MXFP4_MOE, overrides))
        }
        _ => None,
    }
}

/// What a GGUF row holds for a source, before any byte is read: the tensors in file order with
/// their types, and the llama-quantize run they follow (its preset and fallback count), if any.
pub struct TensorPlan {
    /// The tensors, in the order they are written.
    pub items: Vec<Item>,
    /// The llama-quantize preset the types follow, and how many tensors fell back to another
    /// type because their rows are not a multiple of the chosen block.
    pub quantize: Option<(Preset, usize)>,
}

/// The tensors of a GGUF stored as `storage` for `cfg`, from a source walked in `order` whose
/// experts are MXFP4 or not. llama.cpp's converter's tensors and order, or, where the row stands
/// for a llama-quantize run (`quantize_run`), that tool's types and order applied to the
/// converter's output it would run on (`--outtype auto` for MXFP4 experts, `bf16` otherwise).
///
/// # Errors
/// What llama-quantize refuses for this model ([`crate::variant::preset::PresetError`]).
pub fn plan_tensors(
    storage: &Storage,
    cfg: &Config,
    order: &[String],
    mxfp4_experts: bool,
    requantize_experts: bool,
) -> std::result::Result<TensorPlan, PresetError> {
    let Some((preset, overrides)) = quantize_run(storage, mxfp4_experts, requantize_experts) else {
        return Ok(TensorPlan {
            items: plan(storage, cfg, order),
            quantize: None,
        });
    };
    let input = if mxfp4_experts && !requantize_experts {
        Variant::GgufMxfp4
    } else {
        Variant::GgufBf16
    };
    let items = plan(&input.storage(), cfg, order);
    let infos: Vec<TensorInfo<'_>> = items
        .iter()
        .map(|i| TensorInfo {
            name: &i.tensor.name,
            ne: &i.tensor.ne,
            codec: i.tensor.ty,
        })
        .collect();
    let model = ModelInfo {
        n_layer: cfg.num_hidden_layers as u32,
        n_expert: cfg.num_local_experts as u32,
        n_head: cfg.num_attention_heads as u32,
        n_head_kv: cfg.num_key_value_heads as u32,
    };
    let p = plan_types(preset, &model, &infos, &overrides)?;
    let items = p
        .order
        .iter()
        .map(|&i| {
            let mut item = items[i].clone();
            item.tensor.ty = p.types[i];
            item
        })
        .collect();
    Ok(TensorPlan {
        items,
        quantize: Some((preset, p.fallbacks)),
    })
}

/// True when the experts of `src` are stored as MXFP4 (either nibble order).
pub fn experts_are_mxfp4(src: &dyn WeightSource) -> bool {
    src.weight(WeightId::Gate(0, 0))
        .is_ok_and(|m| m.encoding().is_mxfp4())
}

const Q8_EXPERT_BLOCKS: &str =
    "Q8_0 expert blocks with an MXFP4 scale byte outside 104..=143, quantized with d = amax/127";

/// Encodes f32 rows into `ty` (`out` holds exactly their bytes), counting what is stored
/// inexactly. Returns the index of the first finite value stored as NaN or ±Inf (float16
/// overflow, or a block whose float16 scale overflows), if any.
fn encode_f32(
    ty: Codec,
    xs: &[f32],
    out: &mut [u8],
    tally: &mut Tally,
    rules: &Rules<'_>,
) -> Option<usize> {
    match ty {
        Codec::F32 => {
            float::f32_row_to_le(xs, out);
            None
        }
        Codec::BF16 | Codec::F16 => {
            let (n, err) = float::f32_row_to_half_counting(xs, ty == Codec::F16, out);
            tally.add(&inexact_kind(ty), n, err);
            (err == f32::INFINITY)
                .then(|| first_half_overflow(xs, ty == Codec::F16))
                .flatten()
        }
        codec => {
            if codec == Codec::MXFP4 {
                mxfp4::quantize_ggml_row(rules.rounding, xs, out);
            } else {
                codec.quantize_row(xs, out);
            }
            with_scratch(1, xs.len(), |back| {
                codec.dequantize_row(out, back);
                let kind = if codec == Codec::MXFP4 {
                    format!(
                        "values requantized to MXFP4 ({} rule, lossy by design)",
                        rules.rounding
                    )
                } else {
                    inexact_kind(codec)
                };
                let (n, err) = float::rounding_errors(xs, back);
                tally.add(&kind, n, err);
                // A finite value stored as NaN or ±Inf is a change of infinite size, so the
                // scan for it is needed only when the largest change is infinite.
                (err == f32::INFINITY)
                    .then(|| first_overflow(xs, back, codec.block()))
                    .flatten()
            })
        }
    }
}

thread_local! {
    /// Per-thread f32 buffers of the encoders (decoded rows, values decoded back), kept
    /// between pieces instead of allocated and zeroed for each.
    static SCRATCH: [std::cell::RefCell<Vec<f32>>; 2] = Default::default();
}

/// Runs `f` on this thread's scratch buffer `k` resized to `len` values (contents unspecified:
/// `f` overwrites what it reads).
fn with_scratch<T>(k: usize, len: usize, f: impl FnOnce(&mut [f32]) -> T) -> T {
    SCRATCH.with(|s| {
        let mut v = s[k].borrow_mut();
        if v.len() < len {
            v.resize(len, 0.0);
        }
        f(&mut v[..len])
    })
}

/// [`MatRef::dequant_rows`], with a faster path for BF16 stored input-major (transformers'
/// dense expert layout, `gate_up_proj [E, in, 2·out]` and `down_proj [E, in, out]`, where the
/// GGUF rows are columns of the storage): column by column, each column's run of the piece's
/// rows read as one slice and widened to f32 (bf16 is the top half of an f32) without the
/// per-element type dispatch and index arithmetic of the general path. Same values.
fn dequant_rows(m: &MatRef<'_>, r0: usize, out: &mut [f32]) {
    let cols = m.cols();
    let n = out.len().checked_div(cols).unwrap_or(0);
    match *m.encoding() {
        Encoding::Dense {
            dtype: DenseType::BF16,
            data,
            row_stride,
            col_stride,
        } if std::env::var_os("NOFAST").is_none()
            && n > 0
            && row_stride >= 1
            && row_stride < col_stride
            && r0 + n <= m.rows() =>
        {
            let step = 2 * row_stride;
            let run = |c: usize| {
                let start = 2 * (c * col_stride + r0 * row_stride);
                &data[start..start + step * (n - 1) + 2]
            };
            let bf16 = |b: &[u8], r: usize| {
                float::bf16_bits_to_f32(u16::from_le_bytes([b[r * step], b[r * step + 1]]))
            };
            // Eight columns at a time: their runs lie on eight different pages, and reading
            // them side by side keeps eight cache misses in flight instead of one.
            const TILE: usize = 8;
            let mut c0 = 0;
            while c0 + TILE <= cols {
                let runs: [&[u8]; TILE] = std::array::from_fn(|j| run(c0 + j));
                for (r, o) in out.chunks_exact_mut(cols).enumerate() {
                    let o = &mut o[c0..c0 + TILE];
                    for j in 0..TILE {
                        o[j] = bf16(runs[j], r);
                    }
                }
                c0 += TILE;
            }
            for c in c0..cols {
                let b = run(c);
                for (r, o) in out.chunks_exact_mut(cols).enumerate() {
                    o[c] = bf16(b, r);
                }
            }
        }
        _ => m.dequant_rows(r0, out),
    }
}

/// Decodes the rows of `m` from `r0` that `out` (rows of `ty`) holds and encodes them as `ty`,
/// refusing a value the output cannot hold ([`Guard::overflow`]).
fn dequant_encode(
    m: &MatRef<'_>,
    id: WeightId,
    ty: Codec,
    rules: &Rules<'_>,
    r0: usize,
    out: &mut [u8],
    tally: &mut Tally,
) -> Result<()> {
    let cols = m.cols();
    let rb = ty.row_bytes(cols);
    with_scratch(0, out.len() / rb * cols, |xs| {
        dequant_rows(m, r0, xs);
        rules.guard.rows(id, r0, cols, xs)?;
        check_encoded(m, id, ty, rules, r0, xs, out, tally)
    })
}

/// Encodes the decoded rows `xs` (from row `r0` of `m`) into `out`, refusing a value the output
/// cannot hold ([`Guard::overflow`]).
#[allow(clippy::too_many_arguments)]
fn check_encoded(
    m: &MatRef<'_>,
    id: WeightId,
    ty: Codec,
    rules: &Rules<'_>,
    r0: usize,
    xs: &[f32],
    out: &mut [u8],
    tally: &mut Tally,
) -> Result<()> {
    let cols = m.cols();
    if let Some(i) = encode_f32(ty, xs, out, tally, rules) {
        let (row, col) = (r0 + i / cols, i % cols);
        rules.guard.overflow(
            id,
            &Overflow {
                row,
                col,
                value: xs[i],
                codec: ty,
                mxfp4_scale: mxfp4_scale_at(m, row, col),
            },
        )?;
    }
    Ok(())
}

/// How a GGUF's tensors are encoded.
#[derive(Clone, Copy)]
struct Rules<'a> {
    /// The source's integrity rule.
    guard: Guard<'a>,
    /// How dense values become MXFP4.
    rounding: quant::mxfp4::Rounding,
    /// llama-quantize's semantics: every tensor whose type changes goes through f32 and ggml's
    /// reference quantizer (no exact MXFP4 → Q8_0 shortcut), as `ggml_quantize_chunk` does.
    reference: bool,
}

/// The release-layout block `b` of storage row `s` of an MXFP4 view: (16 nibble bytes, scale).
fn mxfp4_block<'a>(
    blocks: &'a [u8],
    scales: &'a [u8],
    nb: usize,
    s: usize,
    b: usize,
) -> (&'a [u8], u8) {
    let k = s * nb + b;
    (
        &blocks[k * mxfp4::BLOCK_BYTES..(k + 1) * mxfp4::BLOCK_BYTES],
        scales[k],
    )
}

/// Encodes a piece of rows: (first row, the piece's bytes, tally).
type Piece<'a> = dyn Fn(usize, &mut [u8], &mut Tally) -> Result<()> + Sync + 'a;

/// Rows of an expert encoded per parallel piece.
const EXPERT_PIECE_ROWS: usize = 64;

/// Writes one expert matrix (`[rows, cols]`) as `ty`, encoding its rows in parallel into `buf`.
#[allow(clippy::too_many_arguments)]
fn write_expert(
    m: &MatRef<'_>,
    id: WeightId,
    ty: Codec,
    out_path: &Path,
    w: &mut dyn Write,
    tally: &mut Tally,
    rules: &Rules<'_>,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let guard = &rules.guard;
    let (rows, cols) = (m.rows(), m.cols());
    let nb = cols / mxfp4::BLOCK;
    let rb = ty.row_bytes(cols);
    let io = |e| ConvertError::io(out_path, e);
    let pieces = |piece: &Piece<'_>, buf: &mut Vec<u8>| {
        encode_rows(0..rows, rb, EXPERT_PIECE_ROWS, buf, piece)
    };
    let t = match (ty, *m.encoding()) {
        // Release MXFP4 to ggml's: the scale byte first, the nibbles repacked.
        (
            Codec::MXFP4,
            Encoding::Mxfp4 {
                blocks,
                scales,
                row_step,
            },
        ) => pieces(
            &|r0, out, _| {
                for (j, row) in out.chunks_exact_mut(rb).enumerate() {
                    for (b, o) in row.chunks_exact_mut(mxfp4::GGML_BLOCK_BYTES).enumerate() {
                        let (blk, s) = mxfp4_block(blocks, scales, nb, (r0 + j) * row_step, b);
                        guard.scale(id, s)?;
                        o[0] = s;
                        o[1..].copy_from_slice(&mxfp4::repack_to_ggml(blk));
                    }
                }
                Ok(())
            },
            buf,
        )?,
        // Already in the output's block format: the rows as they are.
        (
            ty,
            Encoding::Ggml {
                codec,
                data,
                row_step,
            },
        ) if codec == ty => pieces(
            &|r0, out, _| {
                for (j, row) in out.chunks_exact_mut(rb).enumerate() {
                    let s = (r0 + j) * row_step;
                    let src = &data[s * rb..(s + 1) * rb];
                    guard.ggml_blocks(id, ty, src)?;
                    row.copy_from_slice(src);
                }
                Ok(())
            },
            buf,
        )?,
        // MXFP4 to Q8_0: exact where the scale byte allows (`q8_0::from_mxfp4_block`).
        (Codec::Q8_0, enc) if enc.is_mxfp4() && !rules.reference => pieces(
            &|r0, out, t| {
                let (mut vals, mut back) = ([0f32; 32], [0f32; 32]);
                let (mut inexact, mut err) = (0u64, 0f32);
                for (j, row) in out.chunks_exact_mut(rb).enumerate() {
                    let r = r0 + j;
                    for (b, block) in row.chunks_exact_mut(q8_0::BLOCK_BYTES).enumerate() {
                        let (nibbles, scale) = match *m.encoding() {
                            Encoding::Mxfp4 {
                                blocks,
                                scales,
                                row_step,
                            } => {
                                let (blk, s) = mxfp4_block(blocks, scales, nb, r * row_step, b);
                                let mut a = [0u8; 16];
                                a.copy_from_slice(blk);
                                (a, s)
                            }
                            Encoding::Ggml { data, row_step, .. } => {
                                let k = (r * row_step) * nb + b;
                                let g = &data[k * mxfp4::GGML_BLOCK_BYTES
                                    ..(k + 1) * mxfp4::GGML_BLOCK_BYTES];
                                (mxfp4::repack_from_ggml(&g[1..]), g[0])
                            }
                            _ => unreachable!("matched above"),
                        };
                        guard.scale(id, scale)?;
                        if !q8_0::from_mxfp4_block(&nibbles, scale, block) {
                            inexact += 1;
                            mxfp4::decode_block(&nibbles, scale, &mut vals);
                            q8_0::decode_block(block, &mut back);
                            err = err.max(float::rounding_errors(&vals, &back).1);
                            if let Some(k) = first_overflow(&vals, &back, q8_0::BLOCK) {
                                guard.overflow(
                                    id,
                                    &Overflow {
                                        row: r,
                                        col: b * q8_0::BLOCK + k,
                                        value: vals[k],
                                        codec: Codec::Q8_0,
                                        mxfp4_scale: Some(scale),
                                    },
                                )?;
                            }
                        }
                    }
                }
                t.add(Q8_EXPERT_BLOCKS, inexact, err);
                Ok(())
            },
            buf,
        )?,
        // Everything else through f32 (dense experts to MXFP4 by `rules.rounding`).
        _ => pieces(
            &|r0, out, t| dequant_encode(m, id, ty, rules, r0, out, t),
            buf,
        )?,
    };
    w.write_all(buf).map_err(io)?;
    tally.merge(t);
    Ok(())
}

/// Encodes one planned tensor from `src` into `w`.
#[allow(clippy::too_many_arguments)]
fn produce(
    src: &dyn WeightSource,
    item: &Item,
    out_path: &Path,
    w: &mut dyn Write,
    tally: &mut Tally,
    progress: &dyn Progress,
    rules: &Rules<'_>,
) -> Result<()> {
    let guard = &rules.guard;
    let cfg = src.config();
    let name = &item.tensor.name;
    let io = |e| ConvertError::io(out_path, e);
    let get = |id: WeightId| {
        src.weight(id).map_err(|e| {
            ConvertError::tensor(out_path, name.as_str(), format!("reading {id}: {e}"))
        })
    };
    let mut buf = Vec::new();
    match item.content {
        Content::ExpertWeights(p, l) => {
            for e in 0..cfg.num_local_experts {
                let id = p.weight(l, e);
                let m = get(id)?;
                write_expert(&m, id, item.tensor.ty, out_path, w, tally, rules, &mut buf)?;
                src.release(id);
                progress.advance(item.tensor.nbytes() / cfg.num_local_experts as u64);
            }
            return Ok(());
        }
        Content::ExpertBiases(p, l) => {
            for e in 0..cfg.num_local_experts {
                let id = p.bias(l, e);
                let xs = get(id)?.to_f32();
                guard.floats(id, &xs)?;
                buf.resize(4 * xs.len(), 0);
                // F32 holds every finite value.
                let _ = encode_f32(Codec::F32, &xs, &mut buf, tally, rules);
                w.write_all(&buf).map_err(io)?;
                src.release(id);
            }
        }
        Content::Single(id) => {
            let m = get(id)?;
            let (rows, cols) = (m.rows(), m.cols());
            match (item.tensor.ty, *m.encoding()) {
                // BF16 to BF16 (the dense weights of gguf-mxfp4 and gguf-bf16): the bytes as they
                // are, checked for NaN/Inf on the bits.
                (
                    Codec::BF16,
                    Encoding::Dense {
                        dtype: DenseType::BF16,
                        data,
                        row_stride,
                        col_stride: 1,
                    },
                ) if row_stride == cols => {
                    copy_bf16(src, id, &data[..rows * cols * 2], *guard, |piece| {
                        w.write_all(piece).map_err(io)
                    })?;
                }
                // Everything else is decoded and encoded, a chunk at a time
                // (`variant::encode_chunked`), written in order.
                (ty, _) => {
                    let rb = ty.row_bytes(cols);
                    let t = encode_chunked(
                        rows,
                        cols,
                        rb,
                        &mut buf,
                        |r0, out, t| dequant_encode(&m, id, ty, rules, r0, out, t),
                        |bytes| {
                            w.write_all(bytes).map_err(io)?;
                            src.release(id);
                            Ok(())
                        },
                    )?;
                    tally.merge(t);
                }
            }
        }
    }
    progress.advance(item.tensor.nbytes());
    Ok(())
}

/// The metadata of a GGUF stored as `storage` from the model `src`: for a GGUF source, its
/// own names and tokenizer; otherwise llama.cpp's metadata from the config and the tokenizer
/// files beside the model ([`crate::companion`]). Tokens past `vocab_size` are refused unless
/// `truncate_vocab`; the second value lists those left out.
pub fn metadata(src: &AnyModel, storage: &Storage, truncate_vocab: bool) -> Result<meta::Metadata> {
    let cfg = src.source().config();
    let ft = storage.file_type.expect("GGUF rows have a file type");
    // llama.cpp's gpt-oss has no key for these and hard-codes YaRN without truncation and the
    // default attention factor: a GGUF of another rope would run a different model.
    let yarn = &cfg.rope_scaling;
    if yarn.truncate || yarn.attention_factor.is_some() {
        let what = if yarn.truncate {
            "`rope_scaling.truncate` is true (or absent, which transformers reads as true)"
                .to_string()
        } else {
            format!(
                "`rope_scaling.attention_factor` is {}",
                yarn.attention_factor.unwrap_or_default()
            )
        };
        return Err(ConvertError::format(
            src.path(),
            format!(
                "{what}: llama.cpp's gpt-oss implements YaRN with truncate false and the default attention factor only, \
                 so a GGUF would run a different model; convert to a safetensors variant instead"
            ),
        ));
    }
    if let Some(g) = src.gguf() {
        let mut kv = meta::model_kv(cfg, &src.path(), ft);
        for (k, v) in kv.iter_mut() {
            if matches!(k.as_str(), "general.name" | "general.size_label")
                && let Some(from) = g.get(k)
            {
                *v = from.clone();
            }
        }
        kv.retain(|(k, _)| {
            !matches!(
                k.as_str(),
                "general.basename" | "general.finetune" | "general.version"
            ) || g.get(k).is_some()
        });
        kv.extend(
            g.files()[0]
                .kv()
                .iter()
                .filter(|(k, _)| k.starts_with("tokenizer."))
                .cloned(),
        );
        return Ok((kv, Vec::new()));
    }
    let mut kv = meta::model_kv(cfg, &src.name_dir(), ft);
    let (tokenizer, dropped) = tokenizer_kv_of(src, truncate_vocab)?;
    kv.extend(tokenizer);
    Ok((kv, dropped))
}

/// The `tokenizer.*` keys llama.cpp's converter writes for the safetensors model `src`, from
/// the tokenizer files beside it ([`meta::tokenizer_kv`]), and the tokens past `vocab_size`
/// left out (an error unless `truncate_vocab`).
pub fn tokenizer_kv_of(src: &AnyModel, truncate_vocab: bool) -> Result<meta::Metadata> {
    let cfg = src.source().config();
    let tokenizer = src.companion("tokenizer.json").ok_or_else(|| {
        ConvertError::format(
            src.path(),
            "no tokenizer.json beside the model (or beside `original/`): a GGUF needs the tokenizer",
        )
    })?;
    let dir = tokenizer.parent().unwrap_or(Path::new("."));
    meta::tokenizer_kv(dir, cfg, truncate_vocab)
}

/// The files a GGUF output named `out` may consist of: `out` itself and any split set
/// `STEM-0000K-of-0000N.gguf` beside it, as they exist now.
fn same_name_files(out: &Path) -> Vec<PathBuf> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".gguf").unwrap_or(&name);
    let is_split = |n: &str| crate::output::is_split_of(stem, n);
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n == name || is_split(&n)
        })
        // Spelled as `out` is (`a.gguf`, not `./a.gguf`), so that the caller recognizes its own
        // outputs among them.
        .map(|e| out.with_file_name(e.file_name()))
        .collect();
    found.sort();
    found
}

/// Writes the GGUF `variant` (stored as `storage`) of the model `model`, its weights read
/// through `src`, to `out` (or its splits).
pub fn convert(job: &Job<'_>) -> Result<ConvertReport> {
    let Job {
        model,
        src,
        variant,
        storage,
        out,
        opts,
        progress,
    } = *job;
    let src_path = &model.path();
    let cfg = src.config();
    let mxfp4_experts = experts_are_mxfp4(src);
    let planned = plan_tensors(
        storage,
        cfg,
        &model.release_order(),
        mxfp4_experts,
        opts.requantize_experts,
    )
    .map_err(|e| ConvertError::format(src_path, format!("{variant}: {e}")))?;
    let items = planned.items;
    let (kv, dropped) = match planned.quantize {
        None => metadata(model, storage, opts.truncate_vocab)?,
        Some((preset, _)) => {
            // llama-quantize keeps its input's metadata in order and moves these two keys to
            // the end (`variant::preset` module docs).
            let input = if mxfp4_experts && !opts.requantize_experts {
                Variant::GgufMxfp4
            } else {
                Variant::GgufBf16
            };
            let (mut kv, dropped) = metadata(model, &input.storage(), opts.truncate_vocab)?;
            kv.retain(|(k, _)| k != "general.quantization_version" && k != "general.file_type");
            kv.push((
                "general.quantization_version".into(),
                Value::U32(crate::variant::preset::QUANTIZATION_VERSION),
            ));
            kv.push(("general.file_type".into(), Value::U32(preset.file_type())));
            (kv, dropped)
        }
    };
    let tensors: Vec<PlannedTensor> = items.iter().map(|i| i.tensor.clone()).collect();
    let splits = writer::plan_splits(&tensors, opts.split_max_bytes);
    let n = splits.len();
    let paths: Vec<PathBuf> = if n == 1 {
        vec![out.to_path_buf()]
    } else {
        (0..n).map(|i| split_path(out, i, n)).collect()
    };
    if n > u16::MAX as usize {
        return Err(ConvertError::format(
            out,
            format!("{n} splits: more than GGUF's u16 split count allows"),
        ));
    }
    // Refuse before writing anything: the output, or another split set of the same name
    // (which `--force` replaces whole, so that no stale split outlives it).
    let others: Vec<PathBuf> = same_name_files(out)
        .into_iter()
        .filter(|p| !paths.contains(p))
        .collect();
    if let Some(first) = others.first()
        && !opts.force
    {
        return Err(ConvertError::format(
            out,
            format!(
                "{} of this name already exists (pass --force to replace it)",
                first.display()
            ),
        ));
    }
    let staged = paths
        .iter()
        .map(|p| Staged::create(p, false, opts.force))
        .collect::<Result<Vec<_>>>()?;
    let total: u64 = tensors.iter().map(PlannedTensor::nbytes).sum();
    let file_sizes: Vec<u64> = splits
        .iter()
        .enumerate()
        .map(|(si, r)| {
            writer::file_size(
                &writer::split_kv(&kv, si, n, tensors.len()),
                &tensors[r.clone()],
            )
        })
        .collect();
    if !opts.skip_space_check {
        crate::space::ensure(out, file_sizes.iter().sum())?;
    }
    progress.begin(&format!("writing {variant}"), total);
    let mut tally = Tally::default();
    let rules = Rules {
        guard: Guard {
            allow: opts.allow_nonfinite,
            src_path,
        },
        rounding: opts.mxfp4_rounding,
        reference: planned.quantize.is_some(),
    };
    let mut bytes = 0;
    for (si, range) in splits.iter().enumerate() {
        let skv = writer::split_kv(&kv, si, n, tensors.len());
        let path = staged[si].path().to_path_buf();
        let final_path = staged[si].final_path().to_path_buf();
        bytes += writer::write_file(&path, &skv, &tensors[range.clone()], &mut |k, w| {
            crate::cancel::check(&final_path)?;
            produce(
                src,
                &items[range.start + k],
                &final_path,
                w,
                &mut tally,
                progress,
                &rules,
            )?;
            // Each view checked its file before it was read; this catches a change during.
            model.check_unchanged()
        })
        .map_err(|e| crate::space::name_full_disk(e, &final_path, &path, file_sizes[si]))?;
    }
    progress.end();
    // A stop asked for during the last tensor: the output is not published.
    crate::cancel::check(out)?;
    let mut outputs = Vec::new();
    for s in staged {
        outputs.push(s.commit()?);
    }
    for p in others {
        std::fs::remove_file(&p).map_err(|e| ConvertError::io(&p, e))?;
    }
    let mut warnings = Vec::new();
    if !dropped.is_empty() {
        warnings.push(format!(
            "--truncate-vocab: left out {} token(s) whose ids are at or past vocab_size {} (no embedding row): {}",
            dropped.len(),
            cfg.vocab_size,
            meta::list_tokens(&dropped, 100)
        ));
    }
    if let Some((preset, fallbacks)) = planned.quantize
        && fallbacks > 0
    {
        warnings.push(format!(
            "{fallbacks} of {} tensors fell back to another type (llama-quantize's {preset} rules: their rows are not a multiple of the type's block)",
            tensors.len()
        ));
    }
    Ok(ConvertReport {
        outputs,
        bytes,
        inexact: tally.into_report(),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The input-major BF16 path gives the general path's values, for `down_proj`-like
    /// (row stride 1) and interleaved `gate_up_proj`-like (row stride 2) storage, pieces at
    /// every offset.
    #[test]
    fn input_major_bf16_rows_equal_the_general_path() {
        let (rows, cols) = (37, 19);
        let bits: Vec<u8> = (0..(2 * rows + 1) * cols)
            .flat_map(|i| (((i as u32).wrapping_mul(2_654_435_761) >> 16) as u16).to_le_bytes())
            .collect();
        for (row_stride, col_stride) in [(1, rows), (2, 2 * rows), (2, 2 * rows + 1)] {
            for offset in [0, 1] {
                let enc = Encoding::Dense {
                    dtype: DenseType::BF16,
                    data: &bits[2 * offset..],
                    row_stride,
                    col_stride,
                };
                let m = MatRef::new(rows, cols, enc).unwrap();
                for (r0, n) in [(0, rows), (0, 1), (5, 7), (rows - 1, 1), (30, 7)] {
                    let (mut a, mut b) = (vec![0f32; n * cols], vec![0f32; n * cols]);
                    dequant_rows(&m, r0, &mut a);
                    m.dequant_rows(r0, &mut b);
                    let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "strides {row_stride}/{col_stride}, rows {r0}+{n}");
                }
            }
        }
    }
}
