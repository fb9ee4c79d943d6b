//! Weight check: every weight of the variant, dequantized, against the original's.
//!
//! Each weight gets a *bound*, the largest error its storage can honestly introduce:
//!
//! | variant stores | original stores | bound per element |
//! |---|---|---|
//! | F32; the original's own encoding; BF16 or MXFP4 (either nibble order) for an MXFP4 or BF16 original | anything it can hold exactly | 0 (identical) |
//! | F16 | anything | f16 rounding: \|x\|·2⁻¹¹ + 2⁻²⁵ |
//! | BF16 | F32 / F16 | bf16 rounding: \|x\|·2⁻⁸ |
//! | Q8_0 (group 32), int8 (its group) | anything | amax(group)/127, one quantization step |
//! | MLX affine, `b` bits, group `g` | anything | one step `s = max(range/(2^b-1), 1e-7)` scaled by `n/(n-1)` (the rounded edge), plus the BF16 rounding of the stored scale and bias: `s·n/(n-1) + (2·n·s + amax)·2⁻⁹` per group, `n = 2^b - 1` |
//! | MXFP4 | dense (a fine-tune) | each block that changed must be what one of the MXFP4 rounding rules (ggml, OCP, triton, MLX, least squares: `quant::mxfp4::Rounding`) makes of the original's 32 values; the report says which rule reproduces how many blocks |
//! | the other ggml block types (Q4_0 ... Q6_K, IQ4_NL, IQ4_XS) | anything | unbounded: judged by the logits and the format floor; the report says how many blocks equal ggml's reference quantizer (llama-quantize without an importance matrix) |
//! | anything else | | unbounded (reported, not judged) |
//!
//! A value outside its bound is a *violation*: the bytes do not hold this weight, whatever the
//! logits say. Whatever the bound (unbounded included), a value that is NaN or ±Inf in the
//! variant where the original's is finite is a violation too, and is counted apart
//! ([`TensorCheck::nonfinite`]): a float16 file whose values overflowed to Inf fails even when no
//! prompt routes a token through the expert that holds them. This is what catches converter bugs the logits of a small model may not show (a
//! scale byte off by one in a single expert, gate and up swapped, another expert's bytes). Expert
//! weights are reported per layer and projection (`layers.3.experts.gate`, all experts together).

use crate::VerifyError;
use quant::Codec;
use quant::mxfp4::{self, Rounding};
use rayon::prelude::*;
use reference::{Encoding, MatRef, WeightId, WeightSource};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// The check of one tensor (a weight, or one projection of all experts of a layer).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorCheck {
    /// `embedding`, `layers.0.q_proj`, `layers.0.experts.gate`, ...
    pub name: String,
    /// Encoding of the original (`mxfp4`, `bf16`, ...).
    pub original: &'static str,
    /// Encoding of the variant.
    pub variant: &'static str,
    /// Elements compared.
    pub elements: u64,
    /// Elements whose value differs.
    pub differing: u64,
    /// Largest absolute difference.
    pub max_abs_error: f64,
    /// The bound the variant's storage allows (`Some(0.0)` = must be identical; `None` = unbounded).
    pub bound: Bound,
    /// Elements outside the bound (the non-finite ones included).
    pub violations: u64,
    /// Elements that are NaN or ±Inf in the variant where the original's value is finite.
    pub nonfinite: u64,
    /// The first of them, in weight order then row-major order.
    pub first_nonfinite: Option<NonFiniteAt>,
    /// For requantized storage: how its blocks relate to the reference rounding.
    pub blocks: BlockMatch,
}

/// How the blocks of a requantized weight relate to the reference quantizers: for MXFP4 from
/// dense values, which rounding rules reproduce them; for the other ggml block types, how many
/// equal ggml's reference quantizer of the original's values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockMatch {
    /// Blocks examined (all 0 when the check does not apply).
    pub total: u64,
    /// Blocks whose values equal the original's (MXFP4: no rule needed to explain them).
    pub unchanged: u64,
    /// MXFP4: blocks each rule reproduces, in `quant::mxfp4::Rounding::ALL` order.
    pub by_rule: [u64; 5],
    /// MXFP4: changed blocks no rule reproduces (each is a violation).
    pub unexplained: u64,
    /// The other block types: blocks byte-identical to ggml's reference quantizer.
    pub reference: u64,
}

impl BlockMatch {
    /// Adds `o`'s counts.
    pub fn merge(&mut self, o: &BlockMatch) {
        self.total += o.total;
        self.unchanged += o.unchanged;
        for (a, b) in self.by_rule.iter_mut().zip(o.by_rule) {
            *a += b;
        }
        self.unexplained += o.unexplained;
        self.reference += o.reference;
    }

    /// The rules that reproduce every changed block (`ggml`, ...), best first; empty when none
    /// does or nothing changed.
    pub fn rules_for_all(&self) -> Vec<Rounding> {
        let changed = self.total - self.unchanged;
        if changed == 0 {
            return Vec::new();
        }
        Rounding::ALL
            .into_iter()
            .zip(self.by_rule)
            .filter(|&(_, n)| n == changed)
            .map(|(r, _)| r)
            .collect()
    }

    /// The rule reproducing the most changed blocks (ggml on a tie), if any block changed.
    pub fn best_rule(&self) -> Option<(Rounding, u64)> {
        if self.total == self.unchanged {
            return None;
        }
        Rounding::ALL.into_iter().zip(self.by_rule).fold(
            None,
            |best: Option<(Rounding, u64)>, (r, n)| match best {
                Some((_, m)) if m >= n => best,
                _ => Some((r, n)),
            },
        )
    }
}

/// Where a variant holds a non-finite value the original does not.
#[derive(Clone, Debug, PartialEq)]
pub struct NonFiniteAt {
    /// The weight (`layers.0.experts.1.gate`, `embedding`, ...).
    pub weight: String,
    /// Its row.
    pub row: usize,
    /// Its column.
    pub col: usize,
    /// The original's value there.
    pub original: f32,
    /// The variant's value there (NaN or ±Inf).
    pub variant: f32,
}

impl std::fmt::Display for NonFiniteAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} row {} column {}: {} where the original holds {}",
            self.weight, self.row, self.col, self.variant, self.original as f64
        )
    }
}

/// What error a storage may introduce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// The variant can hold the original exactly: any difference is a violation.
    Exact,
    /// Rounding to F16.
    F16Rounding,
    /// Rounding to BF16.
    Bf16Rounding,
    /// One quantization step of a symmetric 8-bit group of this size.
    Int8Step(usize),
    /// One step of MLX affine quantization (`bits`, `group`), with the BF16 rounding of its
    /// stored scale and bias.
    AffineStep {
        /// Bits per code.
        bits: u32,
        /// Inputs per scale.
        group: usize,
    },
    /// MXFP4 from dense values: each changed block must be one rounding rule's.
    Mxfp4Rules,
    /// A ggml block type without a simple bound: reported against ggml's reference quantizer.
    Reference(Codec),
    /// Requantization with no known bound (e.g. BF16 → MXFP4).
    Unbounded,
}

impl Bound {
    /// A short name for reports.
    pub fn name(self) -> String {
        match self {
            Bound::Exact => "exact".into(),
            Bound::F16Rounding => "f16 rounding".into(),
            Bound::Bf16Rounding => "bf16 rounding".into(),
            Bound::Int8Step(g) => format!("1 step of int8 group {g}"),
            Bound::AffineStep { bits, group } => {
                format!("1 step of affine {bits}-bit group {group}")
            }
            Bound::Mxfp4Rules => "an MXFP4 rounding rule".into(),
            Bound::Reference(c) => format!("{c} (judged by the logits)"),
            Bound::Unbounded => "unbounded".into(),
        }
    }

    /// The bound for a variant encoding `var` holding weights stored as `orig`.
    pub fn for_encodings(orig: &Encoding<'_>, var: &Encoding<'_>, cols: usize) -> Bound {
        if same_storage(orig, var) {
            return Bound::Exact;
        }
        let lossless_bf16 = orig.is_mxfp4() || orig.codec() == Some(Codec::BF16);
        match (var.codec(), var) {
            (Some(Codec::F32), _) => Bound::Exact,
            (Some(Codec::BF16), _) if lossless_bf16 => Bound::Exact,
            (Some(Codec::BF16), _) => Bound::Bf16Rounding,
            (Some(Codec::F16), _) => Bound::F16Rounding,
            (Some(Codec::Q8_0), _) => Bound::Int8Step(Codec::Q8_0.block()),
            (None, Encoding::Int8 { group, .. }) => Bound::Int8Step((*group).min(cols)),
            (None, Encoding::Affine { bits, group, .. }) => Bound::AffineStep {
                bits: *bits,
                group: *group,
            },
            _ if var.is_mxfp4() => Bound::Mxfp4Rules,
            (Some(c), _) if !c.is_float() => Bound::Reference(c),
            _ => Bound::Unbounded,
        }
    }
}

/// True when two encodings store values the same way (so equal values need equal storage):
/// the same codec, MXFP4 in either nibble order, int8 with the same group size, or MLX affine
/// with the same bits and group.
fn same_storage(a: &Encoding<'_>, b: &Encoding<'_>) -> bool {
    match (a, b) {
        _ if a.is_mxfp4() && b.is_mxfp4() => true,
        (Encoding::Int8 { group: x, .. }, Encoding::Int8 { group: y, .. }) => x == y,
        (
            Encoding::Affine {
                bits: b1,
                group: g1,
                ..
            },
            Encoding::Affine {
                bits: b2,
                group: g2,
                ..
            },
        ) => (b1, g1) == (b2, g2),
        _ => a.codec().is_some() && a.codec() == b.codec(),
    }
}

impl TensorCheck {
    fn merge(&mut self, o: &TensorCheck) {
        self.elements += o.elements;
        self.differing += o.differing;
        self.max_abs_error = self.max_abs_error.max(o.max_abs_error);
        self.violations += o.violations;
        self.nonfinite += o.nonfinite;
        if self.first_nonfinite.is_none() {
            self.first_nonfinite = o.first_nonfinite.clone();
        }
        self.blocks.merge(&o.blocks);
        if self.bound != o.bound {
            // Experts of one layer stored differently (e.g. gguf-q8_0's inexact blocks are all
            // Q8_0 anyway); keep the looser description.
            if self.bound == Bound::Exact {
                self.bound = o.bound;
            }
        }
    }

    /// True when every value is identical.
    pub fn identical(&self) -> bool {
        self.differing == 0
    }
}

/// The name a weight is reported under: experts are grouped per layer and projection.
pub fn group_name(id: WeightId) -> String {
    match id {
        WeightId::Gate(l, _) => format!("layers.{l}.experts.gate"),
        WeightId::Up(l, _) => format!("layers.{l}.experts.up"),
        WeightId::Down(l, _) => format!("layers.{l}.experts.down"),
        WeightId::GateBias(l, _) => format!("layers.{l}.experts.gate.bias"),
        WeightId::UpBias(l, _) => format!("layers.{l}.experts.up.bias"),
        WeightId::DownBias(l, _) => format!("layers.{l}.experts.down.bias"),
        other => other.to_string(),
    }
}

/// Rows decoded per work item.
const ROW_CHUNK: usize = 32;

/// Compares one weight.
pub fn check_weight(
    id: WeightId,
    orig: &MatRef<'_>,
    var: &MatRef<'_>,
) -> Result<TensorCheck, VerifyError> {
    let name = group_name(id);
    if (orig.rows(), orig.cols()) != (var.rows(), var.cols()) {
        return Err(VerifyError::Mismatch(format!(
            "{id}: the original is {}x{}, the variant {}x{}",
            orig.rows(),
            orig.cols(),
            var.rows(),
            var.cols()
        )));
    }
    let (rows, cols) = (orig.rows(), orig.cols());
    let bound = Bound::for_encodings(orig.encoding(), var.encoding(), cols);
    let mut check = TensorCheck {
        name,
        original: orig.encoding().name(),
        variant: var.encoding().name(),
        elements: (rows * cols) as u64,
        differing: 0,
        max_abs_error: 0.0,
        bound,
        violations: 0,
        nonfinite: 0,
        first_nonfinite: None,
        blocks: BlockMatch::default(),
    };
    if same_bytes(orig.encoding(), var.encoding()) {
        return Ok(check);
    }
    let chunks: Vec<usize> = (0..rows).step_by(ROW_CHUNK).collect();
    let parts: Vec<Compared> = chunks
        .into_par_iter()
        .map(|r0| {
            let n = ROW_CHUNK.min(rows - r0);
            let (mut a, mut b) = (vec![0f32; n * cols], vec![0f32; n * cols]);
            orig.dequant_rows(r0, &mut a);
            var.dequant_rows(r0, &mut b);
            let mut c = compare(&a, &b, cols, bound);
            match bound {
                Bound::Mxfp4Rules => {
                    c.blocks = mxfp4_rules(var, r0, &a, &b);
                    c.violations += c.blocks.unexplained * mxfp4::BLOCK as u64;
                }
                Bound::Reference(codec) => c.blocks = reference_blocks(codec, var, r0, &a),
                _ => {}
            }
            c
        })
        .collect();
    // In row order, so the first non-finite value is the same whatever the thread count.
    for (c, r0) in parts.into_iter().zip((0..rows).step_by(ROW_CHUNK)) {
        check.differing += c.differing;
        check.max_abs_error = check.max_abs_error.max(c.max_abs_error);
        check.violations += c.violations;
        check.nonfinite += c.nonfinite;
        check.blocks.merge(&c.blocks);
        if check.first_nonfinite.is_none()
            && let Some((i, x, y)) = c.first_nonfinite
        {
            check.first_nonfinite = Some(NonFiniteAt {
                weight: id.to_string(),
                row: r0 + i / cols.max(1),
                col: i % cols.max(1),
                original: x,
                variant: y,
            });
        }
    }
    Ok(check)
}

/// Byte-identical storage in the same encoding (skips decoding).
fn same_bytes(a: &Encoding<'_>, b: &Encoding<'_>) -> bool {
    use Encoding as E;
    match (a, b) {
        (
            E::Dense {
                dtype: t1,
                data: d1,
                row_stride: r1,
                col_stride: c1,
            },
            E::Dense {
                dtype: t2,
                data: d2,
                row_stride: r2,
                col_stride: c2,
            },
        ) => t1 == t2 && r1 == r2 && c1 == c2 && d1 == d2,
        (
            E::Mxfp4 {
                blocks: b1,
                scales: s1,
                row_step: r1,
            },
            E::Mxfp4 {
                blocks: b2,
                scales: s2,
                row_step: r2,
            },
        ) => r1 == r2 && b1 == b2 && s1 == s2,
        _ => false,
    }
}

/// Block `b` of row `r` of an MXFP4 view, in the release's nibble order: (16 bytes, scale).
fn mxfp4_block_at(m: &MatRef<'_>, r: usize, b: usize) -> Option<([u8; 16], u8)> {
    let nb = m.cols() / mxfp4::BLOCK;
    match *m.encoding() {
        Encoding::Mxfp4 {
            blocks,
            scales,
            row_step,
        } => {
            let k = r * row_step * nb + b;
            let mut a = [0u8; 16];
            a.copy_from_slice(&blocks[k * mxfp4::BLOCK_BYTES..(k + 1) * mxfp4::BLOCK_BYTES]);
            Some((a, scales[k]))
        }
        Encoding::Ggml {
            codec: Codec::MXFP4,
            data,
            row_step,
        } => {
            let k = r * row_step * nb + b;
            let g = &data[k * mxfp4::GGML_BLOCK_BYTES..(k + 1) * mxfp4::GGML_BLOCK_BYTES];
            Some((mxfp4::repack_from_ggml(&g[1..]), g[0]))
        }
        _ => None,
    }
}

/// Which rounding rules explain the MXFP4 blocks of rows `r0..` of `var` (`b` their values) from
/// the original's values `a`.
fn mxfp4_rules(var: &MatRef<'_>, r0: usize, a: &[f32], b: &[f32]) -> BlockMatch {
    let cols = var.cols();
    let mut m = BlockMatch::default();
    for (i, (ra, rb)) in a.chunks_exact(cols).zip(b.chunks_exact(cols)).enumerate() {
        for (k, (xa, xb)) in ra
            .chunks_exact(mxfp4::BLOCK)
            .zip(rb.chunks_exact(mxfp4::BLOCK))
            .enumerate()
        {
            m.total += 1;
            if xa
                .iter()
                .zip(xb)
                .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
            {
                m.unchanged += 1;
                continue;
            }
            let Some((block, scale)) = mxfp4_block_at(var, r0 + i, k) else {
                continue;
            };
            let rules = mxfp4::matching_rules(xa.try_into().expect("32 values"), &block, scale);
            if rules.is_empty() {
                m.unexplained += 1;
            }
            for (n, r) in m.by_rule.iter_mut().zip(Rounding::ALL) {
                *n += u64::from(rules.contains(r));
            }
        }
    }
    m
}

/// How many blocks of rows `r0..` of `var` (a ggml block type) equal ggml's reference
/// quantizer of the original's values `a`.
fn reference_blocks(codec: Codec, var: &MatRef<'_>, r0: usize, a: &[f32]) -> BlockMatch {
    let cols = var.cols();
    let Encoding::Ggml { data, row_step, .. } = *var.encoding() else {
        return BlockMatch::default();
    };
    let (rb, bb) = (codec.row_bytes(cols), codec.block_bytes());
    let mut ours = vec![0u8; rb];
    let mut m = BlockMatch::default();
    for (i, row) in a.chunks_exact(cols).enumerate() {
        if !row.iter().all(|x| x.is_finite()) {
            continue;
        }
        codec.quantize_row(row, &mut ours);
        let s = (r0 + i) * row_step;
        let theirs = &data[s * rb..(s + 1) * rb];
        for (x, y) in ours.chunks_exact(bb).zip(theirs.chunks_exact(bb)) {
            m.total += 1;
            m.reference += u64::from(x == y);
        }
    }
    m
}

/// What [`compare`] finds in some rows.
#[derive(Default)]
struct Compared {
    differing: u64,
    max_abs_error: f64,
    violations: u64,
    nonfinite: u64,
    /// Index (into the rows compared), original value, variant value.
    first_nonfinite: Option<(usize, f32, f32)>,
    blocks: BlockMatch,
}

/// Compares rows of `cols` values.
fn compare(a: &[f32], b: &[f32], cols: usize, bound: Bound) -> Compared {
    let mut c = Compared::default();
    let group = match bound {
        Bound::Int8Step(g) | Bound::AffineStep { group: g, .. }
            if g > 0 && cols.is_multiple_of(g) =>
        {
            g
        }
        _ => cols.max(1),
    };
    for (k, (ga, gb)) in a.chunks(group).zip(b.chunks(group)).enumerate() {
        // A group of the same bits (most of a lossless copy) has nothing to report; the test
        // is a branch-free fold the compiler vectorizes.
        if ga
            .iter()
            .zip(gb)
            .fold(0u32, |d, (x, y)| d | (x.to_bits() ^ y.to_bits()))
            == 0
        {
            continue;
        }
        // The group's step, computed at its first value that needs it.
        let mut step = None;
        let step_of = || {
            let amax = ga.iter().fold(0f64, |m, &x| m.max((x as f64).abs()));
            match bound {
                Bound::AffineStep { bits, .. } => affine_bound(ga, bits, amax),
                _ => amax / 127.0,
            }
        };
        if let Some((differing, max_err, violations)) = compare_finite(ga, gb, bound, step_of) {
            c.differing += differing;
            c.max_abs_error = c.max_abs_error.max(max_err);
            c.violations += violations;
            continue;
        }
        for (j, (&x, &y)) in ga.iter().zip(gb).enumerate() {
            if x.to_bits() == y.to_bits() || (x == y) {
                continue;
            }
            c.differing += 1;
            let err = if x.is_nan() || y.is_nan() {
                f64::INFINITY
            } else {
                (x as f64 - y as f64).abs()
            };
            c.max_abs_error = c.max_abs_error.max(err);
            if x.is_finite() && !y.is_finite() {
                // Whatever the bound: the variant cannot hold this weight.
                c.nonfinite += 1;
                c.violations += 1;
                if c.first_nonfinite.is_none() {
                    c.first_nonfinite = Some((k * group + j, x, y));
                }
                continue;
            }
            let ax = (x as f64).abs();
            let ok = match bound {
                Bound::Exact => false,
                Bound::F16Rounding => err <= ax * 2f64.powi(-11) + 2f64.powi(-25),
                Bound::Bf16Rounding => err <= ax * 2f64.powi(-8),
                Bound::Int8Step(_) | Bound::AffineStep { .. } => {
                    err <= *step.get_or_insert_with(step_of) * (1.0 + 1e-6)
                }
                // Judged per block (`mxfp4_rules`) or by the logits.
                Bound::Mxfp4Rules | Bound::Reference(_) | Bound::Unbounded => true,
            };
            c.violations += u64::from(!ok);
        }
    }
    c
}

/// Lanes of [`compare_finite`]'s branch-free passes.
const LANES: usize = 8;

/// [`compare`]'s counts for one group whose values are all finite on both sides — differing
/// values, the largest error, values outside `bound` (`step` gives the group's step) — in
/// branch-free passes over [`LANES`] lanes that the compiler vectorizes; the same numbers as
/// the loop in [`compare`] (for finite values, a pair that differs is a pair that is not `==`,
/// and a pair that is equal has error 0, within every bound). `None` when a value is NaN or
/// infinite: that loop then names it.
fn compare_finite(
    ga: &[f32],
    gb: &[f32],
    bound: Bound,
    step: impl FnOnce() -> f64,
) -> Option<(u64, f64, u64)> {
    let n = ga.len() / LANES * LANES;
    let (ca, ta) = ga.split_at(n);
    let (cb, tb) = gb.split_at(n);
    let mut finite = [true; LANES];
    let mut differing = [0u64; LANES];
    let mut max_err = [0f64; LANES];
    let mut lane = |l: usize, x: f32, y: f32| {
        finite[l] &= x.is_finite() & y.is_finite();
        differing[l] += u64::from(x != y);
        let e = (x as f64 - y as f64).abs();
        max_err[l] = if e > max_err[l] { e } else { max_err[l] };
    };
    for (xa, xb) in ca.chunks_exact(LANES).zip(cb.chunks_exact(LANES)) {
        for l in 0..LANES {
            lane(l, xa[l], xb[l]);
        }
    }
    for (l, (&x, &y)) in ta.iter().zip(tb).enumerate() {
        lane(l, x, y);
    }
    if !finite.iter().all(|&f| f) {
        return None;
    }
    let differing: u64 = differing.iter().sum();
    let max_err = max_err.iter().fold(0f64, |m, &e| if e > m { e } else { m });
    let errs = || {
        ga.iter()
            .zip(gb)
            .map(|(&x, &y)| (x, (x as f64 - y as f64).abs()))
    };
    let violations = match bound {
        _ if differing == 0 => 0,
        Bound::Exact => differing,
        Bound::F16Rounding => errs()
            .map(|(x, e)| u64::from(e > (x as f64).abs() * 2f64.powi(-11) + 2f64.powi(-25)))
            .sum(),
        Bound::Bf16Rounding => errs()
            .map(|(x, e)| u64::from(e > (x as f64).abs() * 2f64.powi(-8)))
            .sum(),
        Bound::Int8Step(_) | Bound::AffineStep { .. } => {
            let limit = step() * (1.0 + 1e-6);
            errs().map(|(_, e)| u64::from(e > limit)).sum()
        }
        Bound::Mxfp4Rules | Bound::Reference(_) | Bound::Unbounded => 0,
    };
    Some((differing, max_err, violations))
}

/// The largest error MLX affine quantization (`quant::affine`, `mx.quantize`'s rule) can leave
/// on a group `g` of original values. With `n = 2^bits - 1` and `s = max((max - min)/n, 1e-7)`,
/// the encoder rounds the edge of larger magnitude to a whole number of steps `q0 ≥ n/2`, which
/// stretches the step to at most `s·n/(n-1)`; every value then lies within half a step of a
/// code, or at most one step past the last code (clamped). Storing the scale and bias in BF16
/// (relative error 2⁻⁹ each) adds at most `q·|Δscale| + |Δbias| ≤ (2·n·s + amax)·2⁻⁹`.
fn affine_bound(g: &[f32], bits: u32, amax: f64) -> f64 {
    let n = ((1u64 << bits) - 1) as f64;
    let (lo, hi) = g
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x as f64), hi.max(x as f64))
        });
    let s = ((hi - lo) / n).max(quant::affine::MIN_SCALE as f64);
    s * n / (n - 1.0) + (2.0 * n * s + amax) * 2f64.powi(-9)
}

/// Checks every weight; `progress(done, total)` is called after each weight.
pub fn check_all(
    orig: &dyn WeightSource,
    var: &dyn WeightSource,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<TensorCheck>, VerifyError> {
    let ids = WeightId::all(orig.config());
    // Experts come interleaved (gate, up, down of expert 0, then expert 1, ...): each joins its
    // layer's group wherever that group started.
    let mut out: Vec<TensorCheck> = Vec::new();
    let checking = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let (to_map, checked) = mpsc::channel::<usize>();
        s.spawn(|| read_ahead(&[orig, var], &ids, &checking, checked));
        for (k, &id) in ids.iter().enumerate() {
            checking.store(k, Ordering::Relaxed);
            // The thread only ends when this sender is dropped, so the send cannot fail.
            let _ = to_map.send(k);
            let a = orig.weight(id).map_err(|source| VerifyError::Read {
                model: "original".into(),
                source,
            })?;
            let b = var.weight(id).map_err(|source| VerifyError::Read {
                model: "variant".into(),
                source,
            })?;
            let c = check_weight(id, &a, &b)?;
            orig.release(id);
            var.release(id);
            match out.iter_mut().rev().find(|m| m.name == c.name) {
                Some(m) => m.merge(&c),
                None => out.push(c),
            }
            progress(k + 1, ids.len());
        }
        // Past the last weight: the thread stops mapping.
        checking.store(ids.len(), Ordering::Relaxed);
        Ok(out)
    })
}

/// Bytes of both models the weight check has mapped ahead of the weight it is checking.
const READ_AHEAD_BYTES: usize = 256 << 20;

/// Maps the weights after the one being checked ([`WeightSource::prefetch`]), up to
/// [`READ_AHEAD_BYTES`] ahead, on a thread that mostly waits for the disk: the check's reads
/// then overlap its arithmetic (a whole model is larger than the page cache). Receives the
/// index being checked; weights the check has reached are its own to map (mapping one it
/// already released would keep its pages resident).
fn read_ahead(
    sources: &[&dyn WeightSource],
    ids: &[WeightId],
    checking: &AtomicUsize,
    checked: mpsc::Receiver<usize>,
) {
    let mut mapped: std::collections::VecDeque<(usize, usize)> = Default::default();
    let mut next = 0;
    for k in checked {
        while mapped.front().is_some_and(|&(i, _)| i <= k) {
            mapped.pop_front();
        }
        next = next.max(k + 1);
        while next < ids.len() && mapped.iter().map(|m| m.1).sum::<usize>() < READ_AHEAD_BYTES {
            if checking.load(Ordering::Relaxed) >= next {
                break;
            }
            let mut bytes = 0;
            for src in sources {
                if let Ok(m) = src.weight(ids[next]) {
                    for s in m.rows_storage(0, m.rows()) {
                        bytes += s.len();
                        src.prefetch(s);
                    }
                }
            }
            mapped.push_back((next, bytes));
            next += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reference::DenseType;

    fn bf16(xs: &[f32]) -> Vec<u8> {
        let mut b = vec![0u8; xs.len() * 2];
        quant::float::f32_row_to_bf16(xs, &mut b);
        b
    }

    /// The branch-free pass gives what the per-value loop gives, for every bound, on groups
    /// with and without differences, ±0 pairs, tails past the lanes.
    #[test]
    fn the_branch_free_pass_counts_as_the_loop() {
        let mut s = 7u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        let bounds = [
            Bound::Exact,
            Bound::F16Rounding,
            Bound::Bf16Rounding,
            Bound::Int8Step(32),
            Bound::AffineStep { bits: 4, group: 32 },
            Bound::Unbounded,
        ];
        for len in [32, 37, 5, 2880] {
            for noise in [0.0f32, 1e-7, 1e-4, 3e-2] {
                let a: Vec<f32> = (0..len).map(|_| next()).collect();
                let mut b: Vec<f32> = a
                    .iter()
                    .map(|&x| if next() > 0.2 { x + noise * next() } else { x })
                    .collect();
                b[0] = -a[0] * 0.0;
                for bound in bounds {
                    let amax = a.iter().fold(0f64, |m, &x| m.max((x as f64).abs()));
                    let step = match bound {
                        Bound::AffineStep { bits, .. } => affine_bound(&a, bits, amax),
                        _ => amax / 127.0,
                    };
                    // The loop of `compare`, for finite values.
                    let (mut d, mut m, mut v) = (0u64, 0f64, 0u64);
                    for (&x, &y) in a.iter().zip(&b) {
                        if x == y {
                            continue;
                        }
                        d += 1;
                        let err = (x as f64 - y as f64).abs();
                        m = m.max(err);
                        let ax = (x as f64).abs();
                        let ok = match bound {
                            Bound::Exact => false,
                            Bound::F16Rounding => err <= ax * 2f64.powi(-11) + 2f64.powi(-25),
                            Bound::Bf16Rounding => err <= ax * 2f64.powi(-8),
                            Bound::Int8Step(_) | Bound::AffineStep { .. } => {
                                err <= step * (1.0 + 1e-6)
                            }
                            _ => true,
                        };
                        v += u64::from(!ok);
                    }
                    let got = compare_finite(&a, &b, bound, || step).unwrap();
                    assert_eq!(got, (d, m, v), "{bound:?} len {len} noise {noise}");
                }
                let mut nan = b.clone();
                nan[len - 1] = f32::NAN;
                assert_eq!(compare_finite(&a, &nan, Bound::Exact, || 0.0), None);
            }
        }
    }

    #[test]
    fn identical_views_pass_and_a_changed_value_is_a_violation() {
        let xs: Vec<f32> = (0..64).map(|i| i as f32 * 0.25 - 3.0).collect();
        let a = bf16(&xs);
        let mut b = a.clone();
        let ma = MatRef::dense(DenseType::BF16, &a, 2, 32).unwrap();
        let c = check_weight(
            WeightId::QProj(0),
            &ma,
            &MatRef::dense(DenseType::BF16, &b, 2, 32).unwrap(),
        )
        .unwrap();
        assert!(c.identical() && c.violations == 0 && c.bound == Bound::Exact);
        b[10] ^= 1;
        let c = check_weight(
            WeightId::QProj(0),
            &ma,
            &MatRef::dense(DenseType::BF16, &b, 2, 32).unwrap(),
        )
        .unwrap();
        assert_eq!((c.differing, c.violations), (1, 1));
    }

    #[test]
    fn q8_0_rounding_is_within_bound_and_a_swap_is_not() {
        let xs: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 64) as f32 - 31.5) * 0.01)
            .collect();
        let a = bf16(&xs);
        let mut vals = vec![0f32; 64];
        quant::float::bf16_row_to_f32(&a, &mut vals);
        let mut q = vec![0u8; 2 * quant::q8_0::BLOCK_BYTES];
        quant::q8_0::quantize_row_ref(&vals, &mut q);
        let ma = MatRef::dense(DenseType::BF16, &a, 2, 32).unwrap();
        let mq = MatRef::new(
            2,
            32,
            Encoding::Ggml {
                codec: Codec::Q8_0,
                data: &q,
                row_step: 1,
            },
        )
        .unwrap();
        let c = check_weight(WeightId::Down(0, 0), &ma, &mq).unwrap();
        assert!(c.differing > 0 && c.violations == 0, "{c:?}");
        // Rows swapped: far outside one quantization step.
        let swapped: Vec<u8> = q[34..].iter().chain(&q[..34]).copied().collect();
        let ms = MatRef::new(
            2,
            32,
            Encoding::Ggml {
                codec: Codec::Q8_0,
                data: &swapped,
                row_step: 1,
            },
        )
        .unwrap();
        assert!(
            check_weight(WeightId::Down(0, 0), &ma, &ms)
                .unwrap()
                .violations
                > 0
        );
    }

    #[test]
    fn affine_quantization_is_within_its_bound_and_a_shifted_group_is_not() {
        // Rows whose groups stress the rule: a wide range, a negative edge, a near-constant
        // group (the 1e-7 floor) and values just off the grid.
        let xs: Vec<f32> = (0..4 * 64)
            .map(|i| match i / 64 {
                0 => ((i * 37 % 64) as f32 - 20.0) * 0.013,
                1 => -3.0 + (i % 7) as f32 * 0.01,
                2 => 1e-9 * (i % 3) as f32,
                _ => ((i * 7919 % 1000) as f32 - 500.0) * 1e-3,
            })
            .collect();
        let a = bf16(&xs);
        let mut vals = vec![0f32; xs.len()];
        quant::float::bf16_row_to_f32(&a, &mut vals);
        for bits in [2, 3, 4, 8] {
            let pb = quant::affine::packed_bytes(64, bits);
            let (mut c, mut s, mut b) = (vec![0u8; 4 * pb], vec![0u8; 8], vec![0u8; 8]);
            for r in 0..4 {
                quant::affine::quantize_row(
                    &vals[r * 64..(r + 1) * 64],
                    bits,
                    64,
                    &mut c[r * pb..(r + 1) * pb],
                    &mut s[2 * r..2 * r + 2],
                    &mut b[2 * r..2 * r + 2],
                );
            }
            let view = |c: &[u8]| {
                let (c, s, b) = (c.to_vec(), s.clone(), b.clone());
                (c, s, b)
            };
            let (c0, s0, b0) = view(&c);
            let mq = MatRef::new(
                4,
                64,
                Encoding::Affine {
                    packed: &c0,
                    scales: &s0,
                    biases: &b0,
                    bits,
                    group: 64,
                },
            )
            .unwrap();
            let ma = MatRef::dense(DenseType::BF16, &a, 4, 64).unwrap();
            let check = check_weight(WeightId::QProj(0), &ma, &mq).unwrap();
            assert_eq!(check.bound, Bound::AffineStep { bits, group: 64 });
            assert!(
                check.differing > 0 && check.violations == 0,
                "{bits}: {check:?}"
            );
            // Rows 0 and 3 swapped: far outside one step.
            let mut sw = c0.clone();
            sw[..pb].copy_from_slice(&c0[3 * pb..]);
            sw[3 * pb..].copy_from_slice(&c0[..pb]);
            let ms = MatRef::new(
                4,
                64,
                Encoding::Affine {
                    packed: &sw,
                    scales: &s0,
                    biases: &b0,
                    bits,
                    group: 64,
                },
            )
            .unwrap();
            assert!(
                check_weight(WeightId::QProj(0), &ma, &ms)
                    .unwrap()
                    .violations
                    > 0
            );
        }
    }

    #[test]
    fn f16_rounding_is_within_bound() {
        let xs: Vec<f32> = (0..32).map(|i| 1.0 + i as f32 * 1e-3).collect();
        let a = bf16(&xs);
        let mut vals = vec![0f32; 32];
        quant::float::bf16_row_to_f32(&a, &mut vals);
        let mut h = vec![0u8; 64];
        quant::float::f32_row_to_f16(&vals, &mut h);
        let c = check_weight(
            WeightId::OProj(0),
            &MatRef::dense(DenseType::BF16, &a, 1, 32).unwrap(),
            &MatRef::dense(DenseType::F16, &h, 1, 32).unwrap(),
        )
        .unwrap();
        assert_eq!((c.bound, c.violations), (Bound::F16Rounding, 0));
    }

    #[test]
    fn f16_overflow_to_inf_is_a_violation_and_is_located() {
        // 98304 = 6 x 2^14, an MXFP4 value past float16's 65504: f16 rounds it to +Inf.
        let mut xs: Vec<f32> = (0..64).map(|i| i as f32 * 0.5).collect();
        xs[37] = 98304.0;
        let a = bf16(&xs);
        let mut vals = vec![0f32; 64];
        quant::float::bf16_row_to_f32(&a, &mut vals);
        let mut h = vec![0u8; 128];
        quant::float::f32_row_to_f16(&vals, &mut h);
        let c = check_weight(
            WeightId::Up(2, 5),
            &MatRef::dense(DenseType::BF16, &a, 2, 32).unwrap(),
            &MatRef::dense(DenseType::F16, &h, 2, 32).unwrap(),
        )
        .unwrap();
        assert_eq!(
            (c.bound, c.violations, c.nonfinite),
            (Bound::F16Rounding, 1, 1)
        );
        let at = c.first_nonfinite.unwrap();
        assert_eq!(
            (at.weight.as_str(), at.row, at.col, at.original),
            ("layers.2.experts.5.up", 1, 5, 98304.0)
        );
        assert!(at.variant.is_infinite());
    }

    #[test]
    fn a_non_finite_value_is_a_violation_even_when_unbounded() {
        let xs: Vec<f32> = (0..32).map(|i| i as f32).collect();
        let a = bf16(&xs);
        let mut ys = xs.clone();
        ys[3] = f32::NAN;
        ys[4] = 4.5; // A change an unbounded storage may make.
        let b: Vec<u8> = ys.iter().flat_map(|v| v.to_le_bytes()).collect();
        let orig = MatRef::dense(DenseType::BF16, &a, 1, 32).unwrap();
        let var = MatRef::dense(DenseType::F32, &b, 1, 32).unwrap();
        let (a_row, b_row) = (orig.to_f32(), var.to_f32());
        let c = compare(&a_row, &b_row, 32, Bound::Unbounded);
        assert_eq!((c.differing, c.violations, c.nonfinite), (2, 1, 1));
        assert_eq!(c.first_nonfinite.map(|f| f.0), Some(3));
        // NaN where the original is NaN too is no new non-finite value.
        let c = compare(&[f32::NAN, 1.0], &[f32::NAN, 1.0], 2, Bound::Unbounded);
        assert_eq!((c.differing, c.nonfinite), (0, 0));
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let a = bf16(&[0.0; 64]);
        let r = check_weight(
            WeightId::QProj(0),
            &MatRef::dense(DenseType::BF16, &a, 2, 32).unwrap(),
            &MatRef::dense(DenseType::BF16, &a, 1, 64).unwrap(),
        );
        assert!(r.is_err());
    }
}
