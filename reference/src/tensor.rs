//! [`MatRef`]: a borrowed 2-D weight matrix in any storage encoding, read row by row as f32.
//!
//! Every matrix is *logically* `[rows = out, cols = in]` (nn.Linear orientation, `y = W x`),
//! whatever its physical layout. The encodings cover every format oss-forge reads:
//!
//! | encoding | element `(r, c)` |
//! |---|---|
//! | `Dense` F32/F16/BF16 | `data[r·row_stride + c·col_stride]` (so in-major `[in, out]` tensors, gate/up interleave and fused-qkv slices are views, not copies) |
//! | `Mxfp4` (release) | storage row `r·row_step` of `blocks [·, cols/32, 16]` + `scales [·, cols/32]` |
//! | `Ggml` | storage row `r·row_step` of ggml blocks of its [`Codec`] (Q8_0, MXFP4, Q4_K, ...) |
//! | `Int8` | row `r` of `packed [rows, cols]` (`q+128`) with BF16 `scales [rows, cols/group]` |
//! | `Affine` | row `r` of MLX affine codes `packed [rows, cols·bits/8]` with BF16 `scales` and `biases [rows, cols/group]`: `scale·q + bias` in f32 |
//!
//! [`MatRef::new`] checks that every element the view can address lies inside its slices, so the
//! decoders never index out of bounds, whatever a file's header claimed.

use crate::decode;
use quant::{Codec, affine, float, int8, mxfp4};

/// A dense element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DenseType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    BF16,
}

impl DenseType {
    /// The codec of the same name.
    pub fn codec(self) -> Codec {
        match self {
            DenseType::F32 => Codec::F32,
            DenseType::F16 => Codec::F16,
            DenseType::BF16 => Codec::BF16,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DenseType::F32 => 4,
            DenseType::F16 | DenseType::BF16 => 2,
        }
    }

    /// Decodes the element at `index` (in elements) of `data`.
    #[inline]
    fn at(self, data: &[u8], index: usize) -> f32 {
        match self {
            DenseType::F32 => {
                let b = &data[4 * index..4 * index + 4];
                f32::from_le_bytes([b[0], b[1], b[2], b[3]])
            }
            DenseType::F16 => {
                float::f16_bits_to_f32(u16::from_le_bytes([data[2 * index], data[2 * index + 1]]))
            }
            DenseType::BF16 => {
                float::bf16_bits_to_f32(u16::from_le_bytes([data[2 * index], data[2 * index + 1]]))
            }
        }
    }

    /// Decodes a contiguous run of elements.
    fn row(self, bytes: &[u8], out: &mut [f32]) {
        match self {
            DenseType::F32 => float::f32_row_from_le(bytes, out),
            DenseType::F16 => float::f16_row_to_f32(bytes, out),
            DenseType::BF16 => float::bf16_row_to_f32(bytes, out),
        }
    }
}

/// How a matrix's elements are stored. See the module table.
#[derive(Clone, Copy, Debug)]
pub enum Encoding<'a> {
    /// Dense elements with arbitrary (element) strides.
    Dense {
        /// Element type.
        dtype: DenseType,
        /// Bytes starting at element (0, 0).
        data: &'a [u8],
        /// Elements between consecutive rows.
        row_stride: usize,
        /// Elements between consecutive columns.
        col_stride: usize,
    },
    /// Release-layout MXFP4 (`*_blocks` / `*_scales`).
    Mxfp4 {
        /// Nibble bytes starting at storage row 0.
        blocks: &'a [u8],
        /// Scale bytes starting at storage row 0.
        scales: &'a [u8],
        /// Storage rows per logical row (2 selects gate or up out of interleaved gate_up).
        row_step: usize,
    },
    /// Rows of ggml blocks (`block_q8_0`, `block_mxfp4`, `block_q4_K`, ...).
    Ggml {
        /// The block type.
        codec: Codec,
        /// Block bytes starting at storage row 0.
        data: &'a [u8],
        /// Storage rows per logical row.
        row_step: usize,
    },
    /// compressed-tensors pack-quantized int8 with BF16 group scales.
    Int8 {
        /// `rows × cols` bytes holding `q + 128`.
        packed: &'a [u8],
        /// `rows × cols/group` little-endian BF16 scales.
        scales: &'a [u8],
        /// Inputs per scale.
        group: usize,
    },
    /// MLX affine quantization (`mx.quantize`, mode `affine`; [`quant::affine`]): unsigned
    /// `bits`-bit codes with a BF16 scale and bias per `group` inputs. Decoded as
    /// `scale · q + bias` in f32 ([`quant::affine::dequantize_row`]), the value the stored
    /// numbers denote.
    Affine {
        /// `rows × cols·bits/8` bytes of codes, a little-endian bit stream per row (the bytes
        /// of MLX's U32 `.weight`).
        packed: &'a [u8],
        /// `rows × cols/group` little-endian BF16 scales (`.scales`).
        scales: &'a [u8],
        /// `rows × cols/group` little-endian BF16 biases (`.biases`).
        biases: &'a [u8],
        /// Bits per code: 2, 3, 4, 5, 6 or 8.
        bits: u32,
        /// Inputs per scale and bias: 32, 64 or 128.
        group: usize,
    },
}

impl Encoding<'_> {
    /// A short name for reports (`bf16`, `mxfp4`, `q8_0`, ...): the ggml type name in lower
    /// case for ggml blocks.
    pub fn name(&self) -> &'static str {
        match *self {
            Encoding::Affine { bits, .. } => match bits {
                2 => "affine2",
                3 => "affine3",
                4 => "affine4",
                5 => "affine5",
                6 => "affine6",
                8 => "affine8",
                _ => "affine",
            },
            _ => match self.codec() {
                Some(c) => c.lower_name(),
                None if self.is_mxfp4() => "mxfp4",
                None => "int8",
            },
        }
    }

    /// The codec of the values, where one describes them (dense and ggml storage); `None` for
    /// the release MXFP4, int8 and MLX affine layouts, whose scales live apart from the values.
    pub fn codec(&self) -> Option<Codec> {
        match *self {
            Encoding::Dense { dtype, .. } => Some(dtype.codec()),
            Encoding::Ggml { codec, .. } => Some(codec),
            Encoding::Mxfp4 { .. } | Encoding::Int8 { .. } | Encoding::Affine { .. } => None,
        }
    }

    /// True for MXFP4 values in either layout (the release's or ggml's).
    pub fn is_mxfp4(&self) -> bool {
        matches!(
            self,
            Encoding::Mxfp4 { .. }
                | Encoding::Ggml {
                    codec: Codec::MXFP4,
                    ..
                }
        )
    }
}

/// Why a view cannot be built over the given bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The slices are shorter than the shape and strides require.
    #[error("{encoding} view of {rows}x{cols} needs {needed} bytes of {what}, the data has {have}")]
    TooShort {
        /// Encoding name.
        encoding: &'static str,
        /// Rows of the view.
        rows: usize,
        /// Columns of the view.
        cols: usize,
        /// Which slice.
        what: &'static str,
        /// Bytes needed.
        needed: u128,
        /// Bytes present.
        have: usize,
    },
    /// The column count does not fit the block size, or a step/group is zero.
    #[error("{encoding} view of {rows}x{cols}: {why}")]
    Shape {
        /// Encoding name.
        encoding: &'static str,
        /// Rows of the view.
        rows: usize,
        /// Columns of the view.
        cols: usize,
        /// What is wrong.
        why: &'static str,
    },
}

/// A borrowed `[rows, cols]` matrix. Cheap to copy.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    rows: usize,
    cols: usize,
    enc: Encoding<'a>,
}

impl<'a> MatRef<'a> {
    /// Builds a view after checking that every addressable element lies inside the slices.
    pub fn new(rows: usize, cols: usize, enc: Encoding<'a>) -> Result<Self, LayoutError> {
        let name = enc.name();
        let shape = |why| {
            Err(LayoutError::Shape {
                encoding: name,
                rows,
                cols,
                why,
            })
        };
        let check = |what, needed: u128, have: usize| {
            if needed > have as u128 {
                Err(LayoutError::TooShort {
                    encoding: name,
                    rows,
                    cols,
                    what,
                    needed,
                    have,
                })
            } else {
                Ok(())
            }
        };
        // Bytes covering storage rows 0, step, ..., (rows-1)·step, each `row_bytes` long
        // (saturating: an overflow can only mean "more than any slice holds").
        let span = |step: usize, row_bytes: u128| {
            if rows == 0 {
                0
            } else {
                (rows as u128 - 1)
                    .saturating_mul(step as u128)
                    .saturating_add(1)
                    .saturating_mul(row_bytes)
            }
        };
        match enc {
            Encoding::Dense {
                dtype,
                data,
                row_stride,
                col_stride,
            } => {
                if rows > 0 && cols > 0 {
                    let last = (rows as u128 - 1)
                        .saturating_mul(row_stride as u128)
                        .saturating_add((cols as u128 - 1).saturating_mul(col_stride as u128));
                    check(
                        "data",
                        last.saturating_add(1).saturating_mul(dtype.size() as u128),
                        data.len(),
                    )?;
                }
            }
            Encoding::Mxfp4 {
                blocks,
                scales,
                row_step,
            } => {
                if !cols.is_multiple_of(mxfp4::BLOCK) || row_step == 0 {
                    return shape("columns must be a multiple of 32 and the row step non-zero");
                }
                let nb = (cols / mxfp4::BLOCK) as u128;
                check(
                    "blocks",
                    span(row_step, nb * mxfp4::BLOCK_BYTES as u128),
                    blocks.len(),
                )?;
                check("scales", span(row_step, nb), scales.len())?;
            }
            Encoding::Ggml {
                codec,
                data,
                row_step,
            } => {
                if !cols.is_multiple_of(codec.block()) || row_step == 0 {
                    return shape(
                        "columns must be a multiple of the block and the row step non-zero",
                    );
                }
                check(
                    "data",
                    span(row_step, codec.row_bytes(cols) as u128),
                    data.len(),
                )?;
            }
            Encoding::Int8 {
                packed,
                scales,
                group,
            } => {
                if group == 0 || !cols.is_multiple_of(group) {
                    return shape("the group size must divide the columns");
                }
                check("packed", rows as u128 * cols as u128, packed.len())?;
                check(
                    "scales",
                    rows as u128 * (cols / group) as u128 * 2,
                    scales.len(),
                )?;
            }
            Encoding::Affine {
                packed,
                scales,
                biases,
                bits,
                group,
            } => {
                if affine::check_params(bits, group).is_err() {
                    return shape(
                        "MLX affine takes 2, 3, 4, 5, 6 or 8 bits in groups of 32, 64 or 128",
                    );
                }
                if !cols.is_multiple_of(group) {
                    return shape("the group size must divide the columns");
                }
                let groups = rows as u128 * (cols / group) as u128;
                check(
                    "packed",
                    rows as u128 * affine::packed_bytes(cols, bits) as u128,
                    packed.len(),
                )?;
                check("scales", groups * 2, scales.len())?;
                check("biases", groups * 2, biases.len())?;
            }
        }
        Ok(MatRef { rows, cols, enc })
    }

    /// A dense row-major `[rows, cols]` view.
    pub fn dense(
        dtype: DenseType,
        data: &'a [u8],
        rows: usize,
        cols: usize,
    ) -> Result<Self, LayoutError> {
        MatRef::new(
            rows,
            cols,
            Encoding::Dense {
                dtype,
                data,
                row_stride: cols,
                col_stride: 1,
            },
        )
    }

    /// Rows (outputs).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (inputs).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The storage encoding.
    pub fn encoding(&self) -> &Encoding<'a> {
        &self.enc
    }

    /// Decodes rows `r0 .. r0 + out.len()/cols` into `out` (row-major f32).
    ///
    /// Panics if the rows are out of range or `out` is not a whole number of rows: both are
    /// caller bugs, the bytes themselves were checked by [`MatRef::new`].
    pub fn dequant_rows(&self, r0: usize, out: &mut [f32]) {
        let cols = self.cols;
        if cols == 0 {
            return;
        }
        assert_eq!(out.len() % cols, 0, "output must hold whole rows");
        let n = out.len() / cols;
        assert!(
            r0 + n <= self.rows,
            "rows {r0}..{} out of {}",
            r0 + n,
            self.rows
        );
        match self.enc {
            Encoding::Dense {
                dtype,
                data,
                row_stride,
                col_stride,
            } => {
                let sz = dtype.size();
                if col_stride == 1 {
                    for (i, o) in out.chunks_exact_mut(cols).enumerate() {
                        let start = (r0 + i) * row_stride * sz;
                        dtype.row(&data[start..start + cols * sz], o);
                    }
                } else if row_stride < col_stride {
                    // In-major storage: walk each input's run of outputs, which is contiguous
                    // (or nearly) in memory, and scatter into the output rows.
                    for c in 0..cols {
                        let base = c * col_stride + r0 * row_stride;
                        for r in 0..n {
                            out[r * cols + c] = dtype.at(data, base + r * row_stride);
                        }
                    }
                } else {
                    for (r, o) in out.chunks_exact_mut(cols).enumerate() {
                        let base = (r0 + r) * row_stride;
                        for (c, v) in o.iter_mut().enumerate() {
                            *v = dtype.at(data, base + c * col_stride);
                        }
                    }
                }
            }
            Encoding::Mxfp4 {
                blocks,
                scales,
                row_step,
            } => {
                let nb = cols / mxfp4::BLOCK;
                for (i, o) in out.chunks_exact_mut(cols).enumerate() {
                    let s = (r0 + i) * row_step;
                    decode::mxfp4_row(
                        &blocks[s * nb * mxfp4::BLOCK_BYTES..(s + 1) * nb * mxfp4::BLOCK_BYTES],
                        &scales[s * nb..(s + 1) * nb],
                        o,
                    );
                }
            }
            Encoding::Ggml {
                codec,
                data,
                row_step,
            } => {
                let rb = codec.row_bytes(cols);
                for (i, o) in out.chunks_exact_mut(cols).enumerate() {
                    let s = (r0 + i) * row_step;
                    decode::ggml_row(codec, &data[s * rb..(s + 1) * rb], o);
                }
            }
            Encoding::Int8 {
                packed,
                scales,
                group,
            } => {
                let sb = cols / group * 2;
                for (i, o) in out.chunks_exact_mut(cols).enumerate() {
                    let r = r0 + i;
                    int8::decode_row_bf16_scales(
                        &packed[r * cols..(r + 1) * cols],
                        &scales[r * sb..(r + 1) * sb],
                        group,
                        o,
                    );
                }
            }
            Encoding::Affine {
                packed,
                scales,
                biases,
                bits,
                group,
            } => {
                let pb = affine::packed_bytes(cols, bits);
                let sb = cols / group * 2;
                for (i, o) in out.chunks_exact_mut(cols).enumerate() {
                    let r = r0 + i;
                    affine::dequantize_row(
                        &packed[r * pb..(r + 1) * pb],
                        &scales[r * sb..(r + 1) * sb],
                        &biases[r * sb..(r + 1) * sb],
                        bits,
                        group,
                        o,
                    );
                }
            }
        }
    }

    /// The bytes that hold rows `r0 .. r1` (a span of storage and, for MXFP4, int8 and MLX
    /// affine, the span of their scales; empty where the rows are not contiguous, as in in-major dense storage).
    /// For prefetching: the spans may include rows of another view interleaved with these (the
    /// up rows between gate rows).
    pub fn rows_storage(&self, r0: usize, r1: usize) -> [&'a [u8]; 2] {
        let r1 = r1.min(self.rows);
        if r0 >= r1 || self.cols == 0 {
            return [&[], &[]];
        }
        let cols = self.cols;
        // Storage rows s0 ..= s_last, each `rb` bytes, starting at `base`.
        let span = |data: &'a [u8], s0: usize, s_last: usize, rb: usize| {
            &data[s0 * rb..((s_last + 1) * rb).min(data.len())]
        };
        match self.enc {
            Encoding::Dense {
                dtype,
                data,
                row_stride,
                col_stride,
            } => {
                if col_stride != 1 {
                    return [&[], &[]];
                }
                let sz = dtype.size();
                let end = ((r1 - 1) * row_stride + cols) * sz;
                [&data[r0 * row_stride * sz..end], &[]]
            }
            Encoding::Mxfp4 {
                blocks,
                scales,
                row_step,
            } => {
                let nb = cols / mxfp4::BLOCK;
                let (s0, s1) = (r0 * row_step, (r1 - 1) * row_step);
                [
                    span(blocks, s0, s1, nb * mxfp4::BLOCK_BYTES),
                    span(scales, s0, s1, nb),
                ]
            }
            Encoding::Ggml {
                codec,
                data,
                row_step,
            } => [
                span(
                    data,
                    r0 * row_step,
                    (r1 - 1) * row_step,
                    codec.row_bytes(cols),
                ),
                &[],
            ],
            Encoding::Int8 {
                packed,
                scales,
                group,
            } => [
                span(packed, r0, r1 - 1, cols),
                span(scales, r0, r1 - 1, cols / group * 2),
            ],
            // The codes and the scales; the biases, as small as the scales, are left to the
            // page faults (two spans is what the callers take).
            Encoding::Affine {
                packed,
                scales,
                bits,
                group,
                ..
            } => [
                span(packed, r0, r1 - 1, affine::packed_bytes(cols, bits)),
                span(scales, r0, r1 - 1, cols / group * 2),
            ],
        }
    }

    /// Columns decoded together by this encoding: 1 for dense, the block for MXFP4 and the ggml
    /// codecs, the scale group for int8 and MLX affine.
    pub fn col_block(&self) -> usize {
        match self.enc {
            Encoding::Dense { .. } => 1,
            Encoding::Mxfp4 { .. } => mxfp4::BLOCK,
            Encoding::Ggml { codec, .. } => codec.block(),
            Encoding::Int8 { group, .. } | Encoding::Affine { group, .. } => group.max(1),
        }
    }

    /// Decodes columns `c0 .. c0 + out.len()` of row `r` (for reading a matrix a column strip
    /// at a time, e.g. to transpose it). Ranges that start or end inside a block (see
    /// [`MatRef::col_block`]) decode the whole row and copy the range.
    ///
    /// Panics if the row or the columns are out of range (caller bugs).
    pub fn dequant_row_cols(&self, r: usize, c0: usize, out: &mut [f32]) {
        let (cols, n) = (self.cols, out.len());
        assert!(
            r < self.rows && c0 + n <= cols,
            "row {r}, columns {c0}..{} out of {}x{}",
            c0 + n,
            self.rows,
            cols
        );
        let b = self.col_block();
        if !c0.is_multiple_of(b) || !n.is_multiple_of(b) {
            out.copy_from_slice(&self.row_f32(r)[c0..c0 + n]);
            return;
        }
        let (b0, nb) = (c0 / b, n / b);
        match self.enc {
            Encoding::Dense {
                dtype,
                data,
                row_stride,
                col_stride,
            } => {
                let sz = dtype.size();
                if col_stride == 1 {
                    let start = (r * row_stride + c0) * sz;
                    dtype.row(&data[start..start + n * sz], out);
                } else {
                    for (k, o) in out.iter_mut().enumerate() {
                        *o = dtype.at(data, r * row_stride + (c0 + k) * col_stride);
                    }
                }
            }
            Encoding::Mxfp4 {
                blocks,
                scales,
                row_step,
            } => {
                let k = r * row_step * (cols / b) + b0;
                mxfp4::decode_row(
                    &blocks[k * mxfp4::BLOCK_BYTES..(k + nb) * mxfp4::BLOCK_BYTES],
                    &scales[k..k + nb],
                    out,
                );
            }
            Encoding::Ggml {
                codec,
                data,
                row_step,
            } => {
                let k = r * row_step * (cols / b) + b0;
                let bb = codec.block_bytes();
                codec.dequantize_row(&data[k * bb..(k + nb) * bb], out);
            }
            Encoding::Int8 {
                packed,
                scales,
                group,
            } => {
                let sb = r * (cols / group) + b0;
                int8::decode_row_bf16_scales(
                    &packed[r * cols + c0..r * cols + c0 + n],
                    &scales[2 * sb..2 * (sb + nb)],
                    group,
                    out,
                );
            }
            Encoding::Affine {
                packed,
                scales,
                biases,
                bits,
                group,
            } => {
                // c0 and n are multiples of the group (>= 32), so their codes start and end on
                // whole bytes.
                let p0 = r * affine::packed_bytes(cols, bits) + affine::packed_bytes(c0, bits);
                let sb = r * (cols / group) + b0;
                affine::dequantize_row(
                    &packed[p0..p0 + affine::packed_bytes(n, bits)],
                    &scales[2 * sb..2 * (sb + nb)],
                    &biases[2 * sb..2 * (sb + nb)],
                    bits,
                    group,
                    out,
                );
            }
        }
    }

    /// Decodes the whole matrix (for vectors and other small tensors).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        self.dequant_rows(0, &mut out);
        out
    }

    /// Decodes one row.
    pub fn row_f32(&self, r: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.cols];
        self.dequant_rows(r, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every column strip of every row equals the same columns of the whole row.
    fn strips_agree(m: &MatRef<'_>) {
        for r in 0..m.rows() {
            let row = m.row_f32(r);
            let c = m.cols();
            for (c0, n) in [
                (0, c),
                (0, 32),
                (32, 64),
                (c.saturating_sub(32), 32),
                (5, 7),
                (31, 2),
                (1, 2),
            ]
            .into_iter()
            .filter(|&(c0, n)| c0 + n <= c)
            {
                let mut out = vec![0f32; n];
                m.dequant_row_cols(r, c0, &mut out);
                assert_eq!(
                    out,
                    row[c0..c0 + n],
                    "{} row {r} cols {c0}+{n}",
                    m.encoding().name()
                );
            }
        }
    }

    #[test]
    fn column_strips_equal_whole_rows_for_every_encoding() {
        let (rows, cols) = (3, 96);
        let xs: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 16.0)
            .collect();
        let bf = bf16_bytes(&xs);
        strips_agree(&MatRef::dense(DenseType::BF16, &bf, rows, cols).unwrap());
        // The same bytes read transposed (column-major storage).
        strips_agree(
            &MatRef::new(
                cols,
                rows,
                Encoding::Dense {
                    dtype: DenseType::BF16,
                    data: &bf,
                    row_stride: 1,
                    col_stride: cols,
                },
            )
            .unwrap(),
        );
        let nb = rows * cols / 32;
        let blocks: Vec<u8> = (0..nb * 16).map(|i| (i * 73 % 256) as u8).collect();
        let scales: Vec<u8> = (0..nb).map(|i| 120 + (i % 9) as u8).collect();
        strips_agree(
            &MatRef::new(
                rows,
                cols,
                Encoding::Mxfp4 {
                    blocks: &blocks,
                    scales: &scales,
                    row_step: 1,
                },
            )
            .unwrap(),
        );
        let ggml: Vec<u8> = (0..nb * 17)
            .map(|i| {
                if i % 17 == 0 {
                    125
                } else {
                    (i * 29 % 256) as u8
                }
            })
            .collect();
        strips_agree(
            &MatRef::new(
                rows,
                cols,
                Encoding::Ggml {
                    codec: Codec::MXFP4,
                    data: &ggml,
                    row_step: 1,
                },
            )
            .unwrap(),
        );
        let mut q8 = vec![0u8; nb * 34];
        quant::q8_0::quantize_row_ref(&xs, &mut q8);
        strips_agree(
            &MatRef::new(
                rows,
                cols,
                Encoding::Ggml {
                    codec: Codec::Q8_0,
                    data: &q8,
                    row_step: 1,
                },
            )
            .unwrap(),
        );
        let packed: Vec<u8> = (0..rows * cols).map(|i| (i * 11 % 256) as u8).collect();
        let sc = bf16_bytes(&vec![0.25f32; nb]);
        strips_agree(
            &MatRef::new(
                rows,
                cols,
                Encoding::Int8 {
                    packed: &packed,
                    scales: &sc,
                    group: 32,
                },
            )
            .unwrap(),
        );
        for bits in [3, 4, 8] {
            let pb = affine::packed_bytes(cols, bits);
            let (mut codes, mut s, mut b) =
                (vec![0u8; rows * pb], vec![0u8; nb * 2], vec![0u8; nb * 2]);
            for r in 0..rows {
                affine::quantize_row(
                    &xs[r * cols..(r + 1) * cols],
                    bits,
                    32,
                    &mut codes[r * pb..(r + 1) * pb],
                    &mut s[r * 6..(r + 1) * 6],
                    &mut b[r * 6..(r + 1) * 6],
                );
            }
            let m = MatRef::new(
                rows,
                cols,
                Encoding::Affine {
                    packed: &codes,
                    scales: &s,
                    biases: &b,
                    bits,
                    group: 32,
                },
            )
            .unwrap();
            strips_agree(&m);
            // The view decodes what quant::affine decodes.
            let mut want = vec![0f32; cols];
            affine::dequantize_row(
                &codes[pb..2 * pb],
                &s[6..12],
                &b[6..12],
                bits,
                32,
                &mut want,
            );
            assert_eq!(m.row_f32(1), want);
            assert_eq!(m.encoding().name(), format!("affine{bits}"));
        }
    }

    #[test]
    fn affine_views_check_their_parameters_and_lengths() {
        let (codes, sc) = (vec![0u8; 2 * 32], vec![0u8; 2 * 2]);
        let enc = |bits, group, packed: &'static [u8]| Encoding::Affine {
            packed,
            scales: &[],
            biases: &[],
            bits,
            group,
        };
        let ok = MatRef::new(
            2,
            64,
            Encoding::Affine {
                packed: &codes,
                scales: &sc,
                biases: &sc,
                bits: 4,
                group: 64,
            },
        );
        assert!(ok.is_ok());
        let short_biases = MatRef::new(
            2,
            64,
            Encoding::Affine {
                packed: &codes,
                scales: &sc,
                biases: &sc[..2],
                bits: 4,
                group: 64,
            },
        );
        assert!(matches!(
            short_biases,
            Err(LayoutError::TooShort { what: "biases", .. })
        ));
        let short_codes = MatRef::new(
            3,
            64,
            Encoding::Affine {
                packed: &codes,
                scales: &[0; 6],
                biases: &[0; 6],
                bits: 4,
                group: 64,
            },
        );
        assert!(matches!(
            short_codes,
            Err(LayoutError::TooShort { what: "packed", .. })
        ));
        for (bits, group, cols) in [(7, 64, 64), (4, 48, 96), (4, 64, 96), (4, 0, 64)] {
            assert!(
                matches!(
                    MatRef::new(1, cols, enc(bits, group, &[])),
                    Err(LayoutError::Shape { .. })
                ),
                "{bits} bits, group {group}, {cols} columns"
            );
        }
    }

    fn bf16_bytes(xs: &[f32]) -> Vec<u8> {
        let mut out = vec![0u8; xs.len() * 2];
        float::f32_row_to_bf16(xs, &mut out);
        out
    }

    #[test]
    fn dense_strided_views_select_the_right_elements() {
        // A [3, 4] in-major tensor (in = 3, out = 4): element (out o, in i) at i*4 + o.
        let xs: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let b = bf16_bytes(&xs);
        let m = MatRef::new(
            4,
            3,
            Encoding::Dense {
                dtype: DenseType::BF16,
                data: &b,
                row_stride: 1,
                col_stride: 4,
            },
        )
        .unwrap();
        assert_eq!(
            m.to_f32(),
            vec![0., 4., 8., 1., 5., 9., 2., 6., 10., 3., 7., 11.]
        );
        // Odd columns of the in-major tensor (the "up" half of an interleaved gate_up).
        let up = MatRef::new(
            2,
            3,
            Encoding::Dense {
                dtype: DenseType::BF16,
                data: &b[2..],
                row_stride: 2,
                col_stride: 4,
            },
        )
        .unwrap();
        assert_eq!(up.to_f32(), vec![1., 5., 9., 3., 7., 11.]);
        assert_eq!(up.row_f32(1), vec![3., 7., 11.]);
    }

    #[test]
    fn views_reject_short_data_instead_of_panicking() {
        let b = vec![0u8; 10];
        assert!(MatRef::dense(DenseType::BF16, &b, 1, 5).is_ok());
        assert!(matches!(
            MatRef::dense(DenseType::BF16, &b, 2, 3),
            Err(LayoutError::TooShort { .. })
        ));
        let blocks = vec![0u8; 16 * 3];
        let scales = vec![127u8; 3];
        assert!(
            MatRef::new(
                2,
                32,
                Encoding::Mxfp4 {
                    blocks: &blocks,
                    scales: &scales,
                    row_step: 2
                }
            )
            .is_ok()
        );
        assert!(
            MatRef::new(
                3,
                32,
                Encoding::Mxfp4 {
                    blocks: &blocks,
                    scales: &scales,
                    row_step: 2
                }
            )
            .is_err()
        );
        assert!(
            MatRef::new(
                1,
                33,
                Encoding::Mxfp4 {
                    blocks: &blocks,
                    scales: &scales,
                    row_step: 1
                }
            )
            .is_err()
        );
        let huge = MatRef::new(
            usize::MAX,
            usize::MAX,
            Encoding::Dense {
                dtype: DenseType::F32,
                data: &b,
                row_stride: usize::MAX,
                col_stride: 1,
            },
        );
        assert!(huge.is_err());
    }

    #[test]
    fn mxfp4_row_step_selects_interleaved_rows() {
        // 4 storage rows of one block each; storage row s has every code = s+1.
        let mut blocks = Vec::new();
        for s in 0..4u8 {
            blocks.extend_from_slice(&[(s + 1) | ((s + 1) << 4); 16]);
        }
        let scales = [127u8; 4];
        let up = MatRef::new(
            2,
            32,
            Encoding::Mxfp4 {
                blocks: &blocks[16..],
                scales: &scales[1..],
                row_step: 2,
            },
        )
        .unwrap();
        let v = up.to_f32();
        assert_eq!(v[0], mxfp4::E2M1_VALUES[2]);
        assert_eq!(v[32], mxfp4::E2M1_VALUES[4]);
    }
}
