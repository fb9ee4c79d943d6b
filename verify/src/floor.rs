//! The format's own noise floor: the original with every lossy weight rounded the reference way
//! for the variant's storage.
//!
//! How far a lossy variant's logits may move depends on the model as much as on the format: a
//! trained 20b barely notices Q8_0 attention weights, a random-weight test model whose router
//! margins are 2e-3 flips experts and moves its logits by several units. So besides the fixed
//! gates, a lossy variant is compared with [`Rounded`], the original with each weight the variant
//! stores lossily re-encoded by this crate's reference quantizers:
//!
//! | variant storage | reference rounding |
//! |---|---|
//! | F16 / BF16 | round to nearest even |
//! | Q8_0 and every other ggml block type (Q4_0 ... Q6_K, IQ4_NL, IQ4_XS) | ggml's reference quantizer, as llama-quantize runs it without an importance matrix (`quant::Codec::quantize_row`) |
//! | MXFP4 from dense values | the rounding rule the weight check found reproducing the variant's blocks (ggml's when none or several) |
//! | int8, group g | `scale = bf16(amax/127)`, `q = round(x/scale)` clamped to ±127 |
//! | MLX affine, `b` bits, group g | `mx.quantize`'s rule ([`quant::affine::quantize_row`]), decoded in f32 |
//!
//! A correct converter lands on (or next to) that floor; one that rounds badly lands well above
//! it. Rounded weights are built on first use and kept (the dense weights of a 20b in Q8_0 are
//! about 2 GB); expert weights stored exactly are read from the original untouched.

use quant::{Codec, affine, int8, mxfp4};
use reference::{Config, DenseType, Encoding, MatRef, SourceError, WeightId, WeightSource};
use std::collections::HashMap;
use std::sync::OnceLock;

/// How one weight is re-encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// To a float type or ggml block type, by `quant::Codec::quantize_row`.
    Codec(Codec),
    /// To MXFP4 (ggml's block layout) by this rule.
    Mxfp4(mxfp4::Rounding),
    /// To symmetric int8 with BF16 scales per group.
    Int8(usize),
    /// To MLX affine codes with BF16 scales and biases.
    Affine {
        /// Bits per code.
        bits: u32,
        /// Inputs per scale.
        group: usize,
    },
}

impl Rounding {
    /// The reference rounding matching a variant's storage of a weight, if it is lossy for the
    /// original's storage; MXFP4 from dense values is rounded by `mxfp4_rule`.
    pub fn for_storage(
        orig: &Encoding<'_>,
        var: &Encoding<'_>,
        cols: usize,
        mxfp4_rule: mxfp4::Rounding,
    ) -> Option<Rounding> {
        use crate::weights::Bound;
        match (Bound::for_encodings(orig, var, cols), var) {
            (Bound::Exact | Bound::Unbounded, _) => None,
            (Bound::Mxfp4Rules, _) => Some(Rounding::Mxfp4(mxfp4_rule)),
            (_, Encoding::Int8 { group, .. }) => Some(Rounding::Int8(*group)),
            (_, Encoding::Affine { bits, group, .. }) => Some(Rounding::Affine {
                bits: *bits,
                group: *group,
            }),
            (_, v) => v.codec().map(Rounding::Codec),
        }
    }
}

/// Which weights a variant stores lossily, and how (MXFP4 from dense values by `mxfp4_rule`).
/// Reads encodings only (no decoding).
pub fn plan(
    orig: &dyn WeightSource,
    var: &dyn WeightSource,
    mxfp4_rule: mxfp4::Rounding,
) -> Result<Vec<(WeightId, Rounding)>, SourceError> {
    let mut out = Vec::new();
    for id in WeightId::all(orig.config()) {
        let (a, b) = (orig.weight(id)?, var.weight(id)?);
        if let Some(r) = Rounding::for_storage(a.encoding(), b.encoding(), a.cols(), mxfp4_rule) {
            out.push((id, r));
        }
    }
    Ok(out)
}

/// The original with the planned weights re-encoded (see the module docs).
pub struct Rounded<'a> {
    orig: &'a dyn WeightSource,
    plan: HashMap<WeightId, (Rounding, usize)>,
    cells: Vec<OnceLock<Vec<u8>>>,
}

impl<'a> Rounded<'a> {
    /// Wraps `orig`; nothing is computed until a weight is asked for.
    pub fn new(orig: &'a dyn WeightSource, plan: &[(WeightId, Rounding)]) -> Rounded<'a> {
        Rounded {
            orig,
            plan: plan
                .iter()
                .enumerate()
                .map(|(k, &(id, r))| (id, (r, k)))
                .collect(),
            cells: (0..plan.len()).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The planned weight re-encoded: rows in chunks over the threads, concatenated in row
    /// order (the bytes do not depend on the thread count).
    fn encode(&self, id: WeightId, r: Rounding) -> Result<Vec<u8>, SourceError> {
        use rayon::prelude::*;
        let m = self.orig.weight(id)?;
        let rows = m.rows();
        let parts: Vec<[Vec<u8>; 3]> = (0..rows)
            .step_by(ENCODE_ROWS)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|r0| encode_rows(&m, r, r0, ENCODE_ROWS.min(rows - r0)))
            .collect();
        // Packed rows, then (int8, affine) the BF16 scales, then (affine) the biases.
        let mut out = Vec::with_capacity(
            parts
                .iter()
                .map(|p| p.iter().map(Vec::len).sum::<usize>())
                .sum(),
        );
        for k in 0..3 {
            for p in &parts {
                out.extend_from_slice(&p[k]);
            }
        }
        self.orig.release(id);
        Ok(out)
    }
}

/// Rows re-encoded per work item of [`Rounded`]'s encoder.
const ENCODE_ROWS: usize = 64;

/// Rows `r0 .. r0 + n` of `m` re-encoded by `r`: the packed rows, their BF16 scales (int8,
/// affine) and their BF16 biases (affine).
fn encode_rows(m: &MatRef<'_>, r: Rounding, r0: usize, n: usize) -> [Vec<u8>; 3] {
    let cols = m.cols();
    let mut out = Vec::new();
    let mut int8_scales = Vec::new();
    let mut affine_biases = Vec::new();
    let mut row = vec![0f32; cols];
    for i in r0..r0 + n {
        m.dequant_rows(i, &mut row);
        match r {
            Rounding::Codec(c) => {
                let mut b = vec![0u8; c.row_bytes(cols)];
                c.quantize_row(&row, &mut b);
                out.extend_from_slice(&b);
            }
            Rounding::Mxfp4(rule) => {
                let mut b = vec![0u8; Codec::MXFP4.row_bytes(cols)];
                mxfp4::quantize_ggml_row(rule, &row, &mut b);
                out.extend_from_slice(&b);
            }
            Rounding::Int8(g) => {
                let mut packed = vec![0u8; cols];
                let mut scales = vec![0u16; cols / g];
                int8::quantize_row_absmax(&row, g, &mut packed, &mut scales);
                out.extend_from_slice(&packed);
                int8_scales.extend(scales.iter().flat_map(|s| s.to_le_bytes()));
            }
            Rounding::Affine { bits, group } => {
                let mut packed = vec![0u8; affine::packed_bytes(cols, bits)];
                let (mut sc, mut bi) = (vec![0u8; cols / group * 2], vec![0u8; cols / group * 2]);
                affine::quantize_row(&row, bits, group, &mut packed, &mut sc, &mut bi);
                out.extend_from_slice(&packed);
                int8_scales.extend_from_slice(&sc);
                affine_biases.extend_from_slice(&bi);
            }
        }
    }
    [out, int8_scales, affine_biases]
}

impl WeightSource for Rounded<'_> {
    fn config(&self) -> &Config {
        self.orig.config()
    }

    fn weight(&self, id: WeightId) -> Result<MatRef<'_>, SourceError> {
        let Some(&(r, k)) = self.plan.get(&id) else {
            return self.orig.weight(id);
        };
        let bytes = match self.cells[k].get() {
            Some(b) => b,
            None => {
                let b = self.encode(id, r)?;
                self.cells[k].get_or_init(|| b)
            }
        };
        let (rows, cols) = id.shape(self.orig.config());
        let dense = |dtype| Encoding::Dense {
            dtype,
            data: bytes,
            row_stride: cols,
            col_stride: 1,
        };
        let enc = match r {
            Rounding::Codec(Codec::F32) => dense(DenseType::F32),
            Rounding::Codec(Codec::F16) => dense(DenseType::F16),
            Rounding::Codec(Codec::BF16) => dense(DenseType::BF16),
            Rounding::Codec(codec) => Encoding::Ggml {
                codec,
                data: bytes,
                row_step: 1,
            },
            Rounding::Mxfp4(_) => Encoding::Ggml {
                codec: Codec::MXFP4,
                data: bytes,
                row_step: 1,
            },
            Rounding::Int8(group) => {
                let (packed, scales) = bytes.split_at(rows * cols);
                Encoding::Int8 {
                    packed,
                    scales,
                    group,
                }
            }
            Rounding::Affine { bits, group } => {
                let (packed, rest) = bytes.split_at(rows * affine::packed_bytes(cols, bits));
                let (scales, biases) = rest.split_at(rest.len() / 2);
                Encoding::Affine {
                    packed,
                    scales,
                    biases,
                    bits,
                    group,
                }
            }
        };
        Ok(MatRef::new(rows, cols, enc)?)
    }

    fn release(&self, id: WeightId) {
        if !self.plan.contains_key(&id) {
            self.orig.release(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quant::{float, q8_0};

    /// A one-weight source over owned BF16 bytes (the rest of the model is never asked for).
    struct One {
        cfg: Config,
        bytes: Vec<u8>,
    }

    impl WeightSource for One {
        fn config(&self) -> &Config {
            &self.cfg
        }
        fn weight(&self, id: WeightId) -> Result<MatRef<'_>, SourceError> {
            let (r, c) = id.shape(&self.cfg);
            Ok(MatRef::dense(
                DenseType::BF16,
                &self.bytes[..2 * r * c],
                r,
                c,
            )?)
        }
    }

    #[test]
    fn rounded_weights_equal_the_reference_quantizers() {
        let mut cfg = Config::from_hf_json(&convert::synth::preset_config(
            convert::synth::Preset::Tiny,
            None,
        ))
        .unwrap();
        cfg.num_hidden_layers = 1;
        let (r, c) = WeightId::QProj(0).shape(&cfg);
        // Small values: BF16 holds them, F16 only as subnormals (so F16 rounding changes some).
        let xs: Vec<f32> = (0..r * c)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-8)
            .collect();
        let mut bytes = vec![0u8; 2 * r * c];
        float::f32_row_to_bf16(&xs, &mut bytes);
        let src = One { cfg, bytes };
        let orig = src.weight(WeightId::QProj(0)).unwrap().to_f32();
        for rounding in [
            Rounding::Codec(Codec::Q8_0),
            Rounding::Int8(32),
            Rounding::Codec(Codec::F16),
            Rounding::Codec(Codec::Q4_0),
            Rounding::Affine { bits: 4, group: 64 },
        ] {
            let rounded = Rounded::new(&src, &[(WeightId::QProj(0), rounding)]);
            let got = rounded.weight(WeightId::QProj(0)).unwrap().to_f32();
            let want: Vec<f32> = match rounding {
                Rounding::Codec(Codec::Q8_0) => {
                    let mut q = vec![0u8; r * c / 32 * 34];
                    q8_0::quantize_row_ref(&orig, &mut q);
                    let mut out = vec![0f32; r * c];
                    q8_0::decode_row(&q, &mut out);
                    out
                }
                Rounding::Codec(Codec::Q4_0) => {
                    let mut q = vec![0u8; Codec::Q4_0.row_bytes(r * c)];
                    quant::legacy::quantize_row_q4_0(&orig, &mut q);
                    let mut out = vec![0f32; r * c];
                    quant::legacy::dequantize_row_q4_0(&q, &mut out);
                    out
                }
                Rounding::Affine { bits, group } => orig
                    .chunks(c)
                    .flat_map(|row| {
                        let mut p = vec![0u8; affine::packed_bytes(c, bits)];
                        let (mut s, mut b) = (vec![0u8; c / group * 2], vec![0u8; c / group * 2]);
                        affine::quantize_row(row, bits, group, &mut p, &mut s, &mut b);
                        let mut out = vec![0f32; c];
                        affine::dequantize_row(&p, &s, &b, bits, group, &mut out);
                        out
                    })
                    .collect(),
                Rounding::Int8(_) => orig
                    .chunks(c)
                    .flat_map(|row| {
                        let (mut p, mut s) = (vec![0u8; c], vec![0u16; c / 32]);
                        int8::quantize_row_absmax(row, 32, &mut p, &mut s);
                        let sb: Vec<u8> = s.iter().flat_map(|v| v.to_le_bytes()).collect();
                        let mut out = vec![0f32; c];
                        int8::decode_row_bf16_scales(&p, &sb, 32, &mut out);
                        out
                    })
                    .collect(),
                _ => orig
                    .iter()
                    .map(|&v| float::f16_bits_to_f32(float::f32_to_f16_bits(v)))
                    .collect(),
            };
            assert_eq!(got, want, "{rounding:?}");
            assert_ne!(got, orig, "{rounding:?} must change some value");
            // Weights outside the plan come from the original.
            assert_eq!(
                rounded.weight(WeightId::KProj(0)).unwrap().to_f32(),
                src.weight(WeightId::KProj(0)).unwrap().to_f32()
            );
        }
    }
}
