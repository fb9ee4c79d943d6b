//! Producing the bytes of each output tensor from the source's weights, one tensor at a time.
//!
//! | output role | source weights read | bytes |
//! |---|---|---|
//! | `Plain(id)` | `id`, a few rows at a time | BF16 / F16 / F32 of each value |
//! | `GateUpT(l)` | `Gate(l, e)`, `Up(l, e)` per expert | row `c` of expert `e` = `[gate[0][c], up[0][c], gate[1][c], ...]` |
//! | `GateUpBias(l)` | `GateBias(l, e)`, `UpBias(l, e)` | interleaved the same way |
//! | `DownT(l)` / `DownBias(l)` | `Down(l, e)` / `DownBias(l, e)` | row `c` of expert `e` = column `c` of down |
//! | `Packed(id)` | `id` | `q + 128` per element (four per little-endian I32); the scales are kept for `Scale(id)` |
//! | `Scale(id)` / `Shape(id)` | none | BF16 scales / `[out, in]` as I64 |
//!
//! int8 from MXFP4 is exact (`q = 2·E2M1 value`, `scale = 2^(s-128)`, [`quant::int8`]); from
//! int8 with the same grouping the bytes are copied; from anything else it is absmax
//! quantization and every value that does not decode back unchanged is counted as inexact.

use crate::error::{ConvertError, Result};
use crate::names::{Expect, Layout, Role};
use crate::safetensors::{Dtype, PlannedTensor, SafetensorsWriter};
use crate::variant::{
    ConvertReport, Guard, Inexact, Overflow, Progress, Tally, copy_bf16, encode_chunked,
    first_half_overflow, mxfp4_scale_at,
};
use quant::{Codec, float, int8, mxfp4};
use rayon::prelude::*;
use reference::{DenseType, Encoding, MatRef, WeightId, WeightSource};
use std::path::{Path, PathBuf};

/// Output rows per parallel piece of a transposed expert (one MXFP4 block of each source row;
/// the piece's f32 rows, 32 × 5760 × 4 B at 20b shapes, stay in L2).
const TRANSPOSE_ROWS: usize = 32;

/// Writes output tensors from a weight source.
pub struct Encoder<'a> {
    src: &'a dyn WeightSource,
    src_path: PathBuf,
    layout: Layout,
    allow_nonfinite: bool,
    progress: &'a dyn Progress,
    /// Scales computed with the last `Packed` tensor, written by the following `Scale`.
    pending_scales: Option<(WeightId, Vec<u8>)>,
    /// E8M0 scales computed with the last `Blocks` tensor, written by the following `Scales`.
    pending_mx_scales: Option<((usize, bool), Vec<u8>)>,
    /// How dense expert weights are rounded to MXFP4.
    rounding: quant::mxfp4::Rounding,
    inexact: Vec<Inexact>,
}

impl<'a> Encoder<'a> {
    /// An encoder reading `src` (found at `src_path`, for messages) into `layout`.
    pub fn new(
        src: &'a dyn WeightSource,
        src_path: &Path,
        layout: Layout,
        allow_nonfinite: bool,
        rounding: quant::mxfp4::Rounding,
        progress: &'a dyn Progress,
    ) -> Self {
        Encoder {
            src,
            src_path: src_path.to_path_buf(),
            layout,
            allow_nonfinite,
            progress,
            pending_scales: None,
            pending_mx_scales: None,
            rounding,
            inexact: Vec::new(),
        }
    }

    /// The report of everything written so far (inexact values by tensor).
    pub fn finish(self) -> ConvertReport {
        ConvertReport {
            inexact: self.inexact,
            ..ConvertReport::default()
        }
    }

    fn weight(&self, id: WeightId) -> Result<MatRef<'a>> {
        self.src
            .weight(id)
            .map_err(|e| ConvertError::format(&self.src_path, format!("{id}: {e}")))
    }

    /// The source's integrity rule.
    fn guard(&self) -> Guard<'_> {
        Guard {
            allow: self.allow_nonfinite,
            src_path: &self.src_path,
        }
    }

    fn check_finite(&self, id: WeightId, xs: &[f32]) -> Result<()> {
        self.guard().floats(id, xs)
    }

    /// Encodes `xs` as `dtype` into `out`, tallying values that do not survive, in fixed-size
    /// pieces in parallel (see [`encode_into`]); returns the first index stored as ±Inf.
    fn encode(xs: &[f32], dtype: Dtype, out: &mut Vec<u8>, tally: &mut Tally) -> Option<usize> {
        const PIECE: usize = 1 << 14;
        let size = dtype.size();
        out.clear();
        out.resize(xs.len() * size, 0);
        let parts: Vec<(Tally, Option<usize>)> = xs
            .par_chunks(PIECE)
            .zip(out.par_chunks_mut(PIECE * size))
            .enumerate()
            .map(|(k, (xs, out))| {
                let mut t = Tally::default();
                let at = encode_into(xs, dtype, out, &mut t).map(|i| k * PIECE + i);
                (t, at)
            })
            .collect();
        let first = parts.iter().find_map(|p| p.1);
        tally.merge(Tally::merged(parts.into_iter().map(|p| p.0)));
        first
    }

    /// Refuses (unless `--allow-nonfinite`) the value `value` of row `row`, column `col` of
    /// `id`, which `dtype` stores as ±Inf.
    fn overflow(
        &self,
        id: WeightId,
        dtype: Dtype,
        row: usize,
        col: usize,
        value: f32,
    ) -> Result<()> {
        self.guard().overflow(
            id,
            &Overflow {
                row,
                col,
                value,
                codec: codec_of(dtype),
                mxfp4_scale: None,
            },
        )
    }

    fn emit(&self, w: &mut SafetensorsWriter, bytes: &[u8]) -> Result<()> {
        w.write(bytes)?;
        self.progress.advance(bytes.len() as u64);
        Ok(())
    }

    /// Reports what `tally` counted, per kind, as values of tensor `t`.
    fn record(&mut self, t: &PlannedTensor, tally: Tally) {
        for line in tally.into_report() {
            self.inexact.push(Inexact {
                what: format!("{} of `{}`", line.what, t.name),
                ..line
            });
        }
    }

    /// Writes the weight `id` whole as `dtype` (BF16, F16 or F32), returning what it stored
    /// inexactly: BF16 to BF16 copies the bytes (checked for NaN/Inf on the bits); anything else
    /// goes through f32 a chunk of rows at a time (`variant::encode_chunked`), in order.
    pub(crate) fn plain(
        &self,
        id: WeightId,
        dtype: Dtype,
        w: &mut SafetensorsWriter,
    ) -> Result<Tally> {
        let mut tally = Tally::default();
        let mut buf = Vec::new();
        let m = self.weight(id)?;
        let (rows, cols) = (m.rows(), m.cols());
        match *m.encoding() {
            Encoding::Dense {
                dtype: DenseType::BF16,
                data,
                row_stride,
                col_stride: 1,
            } if dtype == Dtype::BF16 && row_stride == cols => {
                copy_bf16(
                    self.src,
                    id,
                    &data[..rows * cols * 2],
                    self.guard(),
                    |piece| self.emit(w, piece),
                )?;
            }
            // Anything else through f32, a chunk of rows at a time
            // (`variant::encode_chunked`), written in order; a value past the dtype's range
            // is refused (float16 overflow).
            _ => {
                let (size, guard) = (dtype.size(), self.guard());
                let piece = |r0, out: &mut [u8], t: &mut Tally| {
                    let mut xs = vec![0f32; out.len() / size];
                    m.dequant_rows(r0, &mut xs);
                    guard.rows(id, r0, cols, &xs)?;
                    if let Some(i) = encode_into(&xs, dtype, out, t) {
                        let (row, col) = (r0 + i / cols, i % cols);
                        guard.overflow(
                            id,
                            &Overflow {
                                row,
                                col,
                                value: xs[i],
                                codec: codec_of(dtype),
                                mxfp4_scale: mxfp4_scale_at(&m, row, col),
                            },
                        )?;
                    }
                    Ok(())
                };
                tally.merge(encode_chunked(
                    rows,
                    cols,
                    cols * size,
                    &mut buf,
                    piece,
                    |bytes| {
                        self.emit(w, bytes)?;
                        self.src.release(id);
                        Ok(())
                    },
                )?);
            }
        }
        self.src.release(id);
        Ok(tally)
    }

    /// Writes the bytes of one planned tensor.
    pub fn write(
        &mut self,
        e: &Expect,
        t: &PlannedTensor,
        w: &mut SafetensorsWriter,
    ) -> Result<()> {
        let cfg = self.src.config();
        let (i, ne) = (cfg.intermediate_size, cfg.num_local_experts);
        let mut tally = Tally::default();
        let mut buf = Vec::new();
        match e.role {
            Role::Plain(id) => tally = self.plain(id, t.dtype, w)?,
            Role::GateUpT(l) => {
                for x in 0..ne {
                    let (gid, uid) = (WeightId::Gate(l, x), WeightId::Up(l, x));
                    let mats = [(gid, self.weight(gid)?), (uid, self.weight(uid)?)];
                    // Input-major: row c lists every output for input c, gate and up interleaved.
                    tally.merge(transposed(&mats, t.dtype, self.guard(), &mut buf)?);
                    self.emit(w, &buf)?;
                    self.src.release(gid);
                    self.src.release(uid);
                }
            }
            Role::GateUpBias(l) => {
                let mut row = vec![0f32; 2 * i];
                for x in 0..ne {
                    let (gate, up) = (
                        self.weight(WeightId::GateBias(l, x))?.to_f32(),
                        self.weight(WeightId::UpBias(l, x))?.to_f32(),
                    );
                    self.check_finite(WeightId::GateBias(l, x), &gate)?;
                    self.check_finite(WeightId::UpBias(l, x), &up)?;
                    for j in 0..i {
                        row[2 * j] = gate[j];
                        row[2 * j + 1] = up[j];
                    }
                    if let Some(k) = Self::encode(&row, t.dtype, &mut buf, &mut tally) {
                        let id = if k % 2 == 0 {
                            WeightId::GateBias(l, x)
                        } else {
                            WeightId::UpBias(l, x)
                        };
                        self.overflow(id, t.dtype, 0, k / 2, row[k])?;
                    }
                    self.emit(w, &buf)?;
                }
            }
            Role::DownT(l) => {
                for x in 0..ne {
                    let id = WeightId::Down(l, x);
                    // Row c of the output is column c of down.
                    tally.merge(transposed(
                        &[(id, self.weight(id)?)],
                        t.dtype,
                        self.guard(),
                        &mut buf,
                    )?);
                    self.emit(w, &buf)?;
                    self.src.release(id);
                }
            }
            Role::DownBias(l) => {
                for x in 0..ne {
                    let b = self.weight(WeightId::DownBias(l, x))?.to_f32();
                    self.check_finite(WeightId::DownBias(l, x), &b)?;
                    if let Some(k) = Self::encode(&b, t.dtype, &mut buf, &mut tally) {
                        self.overflow(WeightId::DownBias(l, x), t.dtype, 0, k, b[k])?;
                    }
                    self.emit(w, &buf)?;
                }
            }
            Role::Packed(id) => {
                let (packed, scales) = self.int8_module(id, &mut tally)?;
                self.emit(w, &packed)?;
                self.pending_scales = Some((id, scales));
                self.record(t, tally);
                return Ok(());
            }
            Role::Scale(id) => {
                let Some((pid, scales)) = self.pending_scales.take().filter(|(pid, _)| *pid == id)
                else {
                    return Err(ConvertError::tensor(
                        w_path(w),
                        &t.name,
                        "internal: weight_scale planned without its weight_packed",
                    ));
                };
                debug_assert_eq!(pid, id);
                self.emit(w, &scales)?;
            }
            Role::Shape(id) => {
                let (rows, cols) = id.shape(cfg);
                let bytes: Vec<u8> = [rows as i64, cols as i64]
                    .iter()
                    .flat_map(|d| d.to_le_bytes())
                    .collect();
                self.emit(w, &bytes)?;
            }
            Role::Blocks(l, gate_up) => {
                let mut scales = Vec::new();
                for x in 0..ne {
                    let ids = if gate_up {
                        vec![WeightId::Gate(l, x), WeightId::Up(l, x)]
                    } else {
                        vec![WeightId::Down(l, x)]
                    };
                    let mats = ids
                        .iter()
                        .map(|&id| Ok((id, self.weight(id)?)))
                        .collect::<Result<Vec<_>>>()?;
                    let (b, sc, t) = mxfp4_interleaved(&mats, self.guard(), self.rounding)?;
                    tally.merge(t);
                    self.emit(w, &b)?;
                    scales.extend_from_slice(&sc);
                    for id in ids {
                        self.src.release(id);
                    }
                }
                self.pending_mx_scales = Some(((l, gate_up), scales));
            }
            Role::Scales(l, gate_up) => {
                let Some((_, scales)) = self
                    .pending_mx_scales
                    .take()
                    .filter(|(k, _)| *k == (l, gate_up))
                else {
                    return Err(ConvertError::tensor(
                        w_path(w),
                        &t.name,
                        "internal: MXFP4 scales planned without their blocks",
                    ));
                };
                self.emit(w, &scales)?;
            }
            Role::Other | Role::Stacked(_) | Role::Quantized(..) => {
                return Err(ConvertError::tensor(
                    w_path(w),
                    &t.name,
                    "internal: not a tensor of a safetensors variant",
                ));
            }
        }
        self.record(t, tally);
        Ok(())
    }

    /// The packed bytes (`q + 128`, row-major) and BF16 scale bytes of the int8 module `id`.
    fn int8_module(&self, id: WeightId, tally: &mut Tally) -> Result<(Vec<u8>, Vec<u8>)> {
        let cfg = self.src.config();
        let group = self.layout.int8_group(id, cfg);
        let m = self.weight(id)?;
        let (rows, cols) = (m.rows(), m.cols());
        let mut packed = vec![0u8; rows * cols];
        let mut scales = Vec::with_capacity(rows * (cols / group) * 2);
        match *m.encoding() {
            // Exact: one MXFP4 block per group.
            Encoding::Mxfp4 {
                blocks,
                scales: sc,
                row_step,
            } if group == mxfp4::BLOCK => {
                // Rows in parallel: each row's bytes depend on that row alone.
                let nb = cols / mxfp4::BLOCK;
                scales.resize(rows * nb * 2, 0);
                packed
                    .par_chunks_mut(cols)
                    .zip(scales.par_chunks_mut(nb * 2))
                    .enumerate()
                    .try_for_each(|(r, (out, sout))| {
                        let s = r * row_step;
                        for (b, (o, so)) in out
                            .chunks_exact_mut(mxfp4::BLOCK)
                            .zip(sout.chunks_exact_mut(2))
                            .enumerate()
                        {
                            let block = &blocks[(s * nb + b) * mxfp4::BLOCK_BYTES
                                ..(s * nb + b + 1) * mxfp4::BLOCK_BYTES];
                            let bits = self.mxfp4_block(id, block, sc[s * nb + b], o)?;
                            so.copy_from_slice(&bits.to_le_bytes());
                        }
                        Ok::<(), ConvertError>(())
                    })?;
            }
            // Already int8 with this grouping: copy.
            Encoding::Int8 {
                packed: p,
                scales: sc,
                group: g,
            } if g == group => {
                packed.copy_from_slice(&p[..rows * cols]);
                scales.extend_from_slice(&sc[..rows * (cols / group) * 2]);
            }
            _ => {
                let mut x = vec![0f32; cols];
                let mut back = vec![0f32; cols];
                let mut sbits = vec![0u16; cols / group];
                let mut sbytes = vec![0u8; 2 * (cols / group)];
                for (r, out) in packed.chunks_exact_mut(cols).enumerate() {
                    m.dequant_rows(r, &mut x);
                    self.check_finite(id, &x)?;
                    int8::quantize_row_absmax(&x, group, out, &mut sbits);
                    for (o, b) in sbytes.chunks_exact_mut(2).zip(&sbits) {
                        o.copy_from_slice(&b.to_le_bytes());
                    }
                    int8::decode_row_bf16_scales(out, &sbytes, group, &mut back);
                    tally.compare(INT8_INEXACT, &x, &back);
                    scales.extend_from_slice(&sbytes);
                }
            }
        }
        self.src.release(id);
        Ok((packed, scales))
    }

    /// One MXFP4 block as int8, refusing the NaN scale 255 unless non-finite values are allowed.
    fn mxfp4_block(&self, id: WeightId, block: &[u8], s: u8, out: &mut [u8]) -> Result<u16> {
        match int8::from_mxfp4_block(block, s, out) {
            Some(bits) => Ok(bits),
            None if self.allow_nonfinite => {
                int8::mxfp4_codes_to_q(block, out);
                Ok(float::f32_to_bf16_bits(f32::NAN))
            }
            None => {
                self.guard().scale(id, s)?;
                unreachable!("from_mxfp4_block refuses only the NaN scale byte")
            }
        }
    }
}

/// Encodes `xs` as `dtype` (F32, BF16 or F16) into `out`, which holds exactly their bytes,
/// tallying values that do not survive. Each element's bytes depend on that element alone and
/// tallies merge by sum and maximum, so callers may split the work any way they like: the
/// bytes and the report do not depend on the thread count. Returns the index of the first
/// finite value stored as ±Inf (past float16's 65504), if any.
fn encode_into(xs: &[f32], dtype: Dtype, out: &mut [u8], t: &mut Tally) -> Option<usize> {
    match dtype {
        Dtype::F32 => {
            float::f32_row_to_le(xs, out);
            None
        }
        _ => {
            let f16 = dtype == Dtype::F16;
            let (n, err) = float::f32_row_to_half_counting(xs, f16, out);
            t.add(&format!("{dtype} values not exactly representable"), n, err);
            (err == f32::INFINITY)
                .then(|| first_half_overflow(xs, f16))
                .flatten()
        }
    }
}

/// The codec of a float dtype, for overflow messages.
fn codec_of(dtype: Dtype) -> Codec {
    match dtype {
        Dtype::F16 => Codec::F16,
        Dtype::BF16 => Codec::BF16,
        _ => Codec::F32,
    }
}

/// How int8 values that do not decode back unchanged are reported.
const INT8_INEXACT: &str = "int8 values not exactly representable";

/// The transposes of `mats` (each `[rows, cols]`) interleaved, encoded as `dtype` into `buf`:
/// output row `c` lists, for `j` in `0..rows`, `mats[0][j][c]`, `mats[1][j][c]`, ... Pieces
/// of [`TRANSPOSE_ROWS`] output rows are built and encoded in parallel, each decoding its strip
/// of columns straight from the source's storage (an MXFP4 expert's 4 MB stay in cache across
/// pieces; no f32 copy of the matrix is made). NaN/Inf, and a value `dtype` would store as
/// ±Inf, are refused unless `allow_nonfinite`.
fn transposed(
    mats: &[(WeightId, MatRef<'_>)],
    dtype: Dtype,
    guard: Guard<'_>,
    buf: &mut Vec<u8>,
) -> Result<Tally> {
    let (rows, cols) = (mats[0].1.rows(), mats[0].1.cols());
    let k = mats.len();
    let width = rows * k;
    let size = dtype.size();
    // Every byte is overwritten below: only a change of size needs the zero fill.
    if buf.len() != cols * width * size {
        buf.clear();
        buf.resize(cols * width * size, 0);
    }
    buf.par_chunks_mut((TRANSPOSE_ROWS * width * size).max(1))
        .enumerate()
        .map_init(
            || {
                (
                    vec![0f32; TRANSPOSE_ROWS * width],
                    vec![0f32; TRANSPOSE_ROWS],
                )
            },
            |(xs, strip), (p, out)| {
                let c0 = p * TRANSPOSE_ROWS;
                let n = out.len() / (width * size);
                let (xs, strip) = (&mut xs[..n * width], &mut strip[..n]);
                for (s, (id, m)) in mats.iter().enumerate() {
                    for j in 0..rows {
                        m.dequant_row_cols(j, c0, strip);
                        guard.floats(*id, strip)?;
                        for (dc, &v) in strip.iter().enumerate() {
                            xs[dc * width + j * k + s] = v;
                        }
                    }
                }
                let mut t = Tally::default();
                if let Some(i) = encode_into(xs, dtype, out, &mut t) {
                    // Output row c0 + i / width lists mats[s][j][c] at j * k + s.
                    let (dc, rest) = (i / width, i % width);
                    let (j, s) = (rest / k, rest % k);
                    let (id, m) = &mats[s];
                    guard.overflow(
                        *id,
                        &Overflow {
                            row: j,
                            col: c0 + dc,
                            value: xs[i],
                            codec: codec_of(dtype),
                            mxfp4_scale: mxfp4_scale_at(m, j, c0 + dc),
                        },
                    )?;
                }
                Ok(t)
            },
        )
        .collect::<Result<Vec<Tally>>>()
        .map(Tally::merged)
}

/// The release-layout MXFP4 rows of `mats` interleaved (row `r` of the output is row `r / k` of
/// `mats[r % k]`, so gate and up give `gate_up_proj_blocks`' even and odd rows): `(nibble
/// bytes, scale bytes, what was requantized)`. MXFP4 sources are copied (the release's bytes,
/// or ggml's blocks repacked); any other encoding is decoded and rounded by `rounding`, rows in
/// parallel.
fn mxfp4_interleaved(
    mats: &[(WeightId, MatRef<'_>)],
    guard: Guard<'_>,
    rounding: quant::mxfp4::Rounding,
) -> Result<(Vec<u8>, Vec<u8>, Tally)> {
    let (rows, cols) = (mats[0].1.rows(), mats[0].1.cols());
    let (k, nb) = (mats.len(), cols / mxfp4::BLOCK);
    let mut blocks = vec![0u8; rows * k * nb * mxfp4::BLOCK_BYTES];
    let mut scales = vec![0u8; rows * k * nb];
    let kind = format!("values requantized to MXFP4 ({rounding} rule, lossy by design)");
    let parts = blocks
        .par_chunks_mut(nb * mxfp4::BLOCK_BYTES)
        .zip(scales.par_chunks_mut(nb))
        .enumerate()
        .map_init(
            || vec![0f32; cols],
            |xs, (r, (bo, so))| {
                let (id, m) = &mats[r % k];
                let row = r / k;
                let mut t = Tally::default();
                match *m.encoding() {
                    Encoding::Mxfp4 {
                        blocks,
                        scales,
                        row_step,
                    } => {
                        let s = row * row_step;
                        bo.copy_from_slice(
                            &blocks[s * nb * mxfp4::BLOCK_BYTES..(s + 1) * nb * mxfp4::BLOCK_BYTES],
                        );
                        so.copy_from_slice(&scales[s * nb..(s + 1) * nb]);
                        so.iter().try_for_each(|&b| guard.scale(*id, b))?;
                    }
                    Encoding::Ggml {
                        codec: quant::Codec::MXFP4,
                        data,
                        row_step,
                    } => {
                        let rb = nb * mxfp4::GGML_BLOCK_BYTES;
                        let src = &data[row * row_step * rb..(row * row_step + 1) * rb];
                        for ((g, b), sc) in src
                            .chunks_exact(mxfp4::GGML_BLOCK_BYTES)
                            .zip(bo.chunks_exact_mut(mxfp4::BLOCK_BYTES))
                            .zip(so.iter_mut())
                        {
                            guard.scale(*id, g[0])?;
                            *sc = g[0];
                            b.copy_from_slice(&mxfp4::repack_from_ggml(&g[1..]));
                        }
                    }
                    _ => {
                        m.dequant_rows(row, xs);
                        guard.rows(*id, row, cols, xs)?;
                        mxfp4::quantize_row(rounding, xs, bo, so);
                        let mut back = vec![0f32; cols];
                        mxfp4::decode_row(bo, so, &mut back);
                        t.compare(&kind, xs, &back);
                    }
                }
                Ok(t)
            },
        )
        .collect::<Result<Vec<Tally>>>()?;
    Ok((blocks, scales, Tally::merged(parts)))
}

fn w_path(w: &SafetensorsWriter) -> PathBuf {
    w.path().to_path_buf()
}
