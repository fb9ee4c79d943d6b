//! Weight check: every weight of the variant, dequantized, against the original's.
//!
//! Each weight gets a *bound*, the largest error its storage can honestly introduce:
//!
//! | variant stores | original stores | bound per element |
//! |---|---|---|
//! | F32; the original's own encoding; BF16 or MXFP4 (either nibble order) for an MXFP4 or BF16 original | anything it can hold exactly | 0 (identical) |
//! | F16 | anything | f16 rounding: \|x\|·2⁻¹¹ + 2⁻²⁵ |
//! | BF16 | F32 / F16 | bf16 rounding: \|x\|·2⁻⁸ |
//! | Q8_0 | anything | half a step of the original's block, `amax/254`, plus the f16 rounding of the scale ([`block_bound`]) |
//! | int8, compressed-tensors (its group) | anything | one step, `amax(group)/127` |
//! | MLX affine, `b` bits, group `g` | anything | one step `s = max(range/(2^b-1), 1e-7)` scaled by `n/(n-1)` (the rounded edge), plus the BF16 rounding of the stored scale and bias: `s·n/(n-1) + (2·n·s + amax)·2⁻⁸` per group, `n = 2^b - 1` |
//! | MXFP4 | dense (a fine-tune) | each block that changed must be what one of the MXFP4 rounding rules (ggml, OCP, triton, MLX, least squares: `quant::mxfp4::Rounding`) makes of the original's 32 values, and when one rule makes at least half of them ([`REFERENCE_MAJORITY`]), that rule every one ([`BlockMatch::made_by_rule`]); the report says which rule reproduces how many blocks |
//! | the other ggml block types (Q4_0 ... Q6_K, IQ4_NL, IQ4_XS) | anything | [`STEPS_ALLOWED`] steps of the type's grid laid on the original's block (its amax or range; [`block_bound`]), valid with or without an importance matrix |
//! | anything else | | unbounded (reported, not judged) |
//!
//! On top of the bound, the *reference rule* for the ggml block types and MLX affine groups: a
//! tensor at least half of whose blocks ([`REFERENCE_MAJORITY`]) agree with the reference
//! quantizer of the original's values (ggml's `quantize_row_*_ref`, what llama-quantize writes
//! without an importance matrix; oss-forge's bit-exact port of `mx.quantize`; for Q8_0 also the
//! exact Q8_0 form of MXFP4 blocks) was made by it, so every block must: one that does not was
//! changed after quantization (a flipped bit in a code, a scale or a bias that no bound derived
//! from the original's values can see). The failure names the tensor, the first such block and
//! how many. Files made another way (an importance matrix) agree in almost no block and are
//! judged by the bound alone.
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
    /// Elements outside the bound: the non-finite ones, and those of the blocks that break the
    /// reference rule ([`TensorCheck::off_reference`]) or that no MXFP4 rule reproduces,
    /// included.
    pub violations: u64,
    /// Elements that are NaN or ±Inf in the variant where the original's value is finite.
    pub nonfinite: u64,
    /// The first of them, in weight order then row-major order.
    pub first_nonfinite: Option<NonFiniteAt>,
    /// For requantized storage: how its blocks relate to the reference rounding.
    pub blocks: BlockMatch,
    /// Blocks that break the reference rule: the tensor was made by the reference quantizer
    /// (at least [`REFERENCE_MAJORITY`] of its blocks agree with it), and these do not. For
    /// MXFP4 from dense values, the changed blocks that another rounding rule reproduces but not
    /// the one that made at least [`REFERENCE_MAJORITY`] of them ([`BlockMatch::made_by_rule`]).
    /// 0 when the rule does not apply.
    pub off_reference: u64,
}

/// How the blocks of a quantized weight relate to the reference quantizers: for MXFP4 from
/// dense values, which rounding rules reproduce them; for the other ggml block types and MLX
/// affine groups, how many equal the reference quantizer's encoding of the original's values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockMatch {
    /// Blocks (MLX: groups) examined (all 0 when the check does not apply).
    pub total: u64,
    /// Blocks whose values equal the original's (MXFP4: no rule needed to explain them).
    pub unchanged: u64,
    /// MXFP4: blocks each rule reproduces, in `quant::mxfp4::Rounding::ALL` order.
    pub by_rule: [u64; 5],
    /// MXFP4: changed blocks no rule reproduces (each is a violation).
    pub unexplained: u64,
    /// ggml block types and MLX affine groups: blocks that agree with the reference quantizer
    /// (ggml's `quantize_row_*_ref`, `mx.quantize`): byte-identical to its encoding of the
    /// original's values, or decoding to exactly the original's values (Q8_0's exact form of
    /// an MXFP4 block, an all-zero block).
    pub reference: u64,
    /// Values of the blocks that do not agree (ggml, MLX) or that no rule reproduces (MXFP4)
    /// which are outside the value bound or non-finite already, so that a value counts once.
    pub off_values: u64,
    /// The first block that does not agree (ggml, MLX) or that no rule reproduces (MXFP4), in
    /// weight order then row-major order.
    pub first_off: Option<BlockAt>,
    /// MXFP4: per rule (in `Rounding::ALL` order), the first changed block it does not
    /// reproduce.
    pub first_off_rule: [Option<BlockAt>; 5],
}

/// One block of a weight: `weight` row `row`, block `block` of that row (0-based, in units of
/// the storage's block or group).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockAt {
    /// The weight (`layers.0.experts.1.gate`, `embedding`, ...).
    pub weight: String,
    /// Its row (0-based).
    pub row: usize,
    /// The block within the row (0-based; columns `block·n .. block·n + n` for blocks of `n`).
    pub block: usize,
    /// What a block is called in this storage: `block` (ggml, MXFP4) or `group` (MLX affine).
    pub unit: &'static str,
}

impl std::fmt::Display for BlockAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} row {}, {} {} (counting from 0)",
            self.weight, self.row, self.unit, self.block
        )
    }
}

impl BlockMatch {
    /// Adds `o`'s counts (`o` comes after `self` in weight order).
    pub fn merge(&mut self, o: &BlockMatch) {
        self.total += o.total;
        self.unchanged += o.unchanged;
        for (a, b) in self.by_rule.iter_mut().zip(o.by_rule) {
            *a += b;
        }
        self.unexplained += o.unexplained;
        self.reference += o.reference;
        self.off_values += o.off_values;
        if self.first_off.is_none() {
            self.first_off = o.first_off.clone();
        }
        for (a, b) in self.first_off_rule.iter_mut().zip(&o.first_off_rule) {
            if a.is_none() {
                a.clone_from(b);
            }
        }
    }

    /// The rule that made this MXFP4 tensor: the one reproducing the most changed blocks, when
    /// that is at least [`REFERENCE_MAJORITY`] of them (then every changed block must be its).
    pub fn made_by_rule(&self) -> Option<(Rounding, u64)> {
        let changed = self.total - self.unchanged;
        self.best_rule()
            .filter(|&(_, n)| n * REFERENCE_MAJORITY.1 >= changed * REFERENCE_MAJORITY.0)
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

    /// True when the reference quantizer made this tensor: at least
    /// [`REFERENCE_MAJORITY`] of its blocks agree with it.
    pub fn made_by_reference(&self) -> bool {
        self.total > 0 && self.reference * REFERENCE_MAJORITY.1 >= self.total * REFERENCE_MAJORITY.0
    }
}

/// The share of a tensor's blocks (numerator, denominator) that must agree with the reference
/// quantizer for the tensor to count as made by it; then every block must agree.
///
/// Why a half: the reference quantizers are deterministic functions of the original's values,
/// so a file they made agrees in every block, and any block that does not was changed after
/// (a corrupted byte, a patched scale). A legitimate file made another way agrees in almost
/// none: with an importance matrix, ggml's `quantize_row_*_impl` searches each block's scale
/// under the importance weights (`make_qx_quants`, `make_qkx3_quants`, `make_qp_quants` in
/// `ggml-quants.c`), which moves nearly every block off the reference bytes. Measured with
/// llama.cpp's `llama-quantize --imatrix` (the version vendored in llama-cpp-python 0.3.36) on
/// `wide-gpt-oss-ft` for the 16 presets of `llamacpp-quants/`: at most 1.3 % of a tensor's
/// blocks equal the reference (Q5_0), 0 % for every k-quant and IQ4_XS; Q8_0 ignores the
/// importance matrix (`quantize_q8_0` calls the reference), so its files agree in 100 %. A
/// half sits far from both. (The importance matrix was synthetic, log-normal importances with
/// σ = 1.5 written in llama.cpp's legacy imatrix format; llama-imatrix was not at hand.)
pub const REFERENCE_MAJORITY: (u64, u64) = (1, 2);

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
    /// One quantization step of a symmetric 8-bit group of this size with a BF16 scale
    /// (compressed-tensors int8).
    Int8Step(usize),
    /// One step of MLX affine quantization (`bits`, `group`), with the BF16 rounding of its
    /// stored scale and bias; and the reference rule ([`REFERENCE_MAJORITY`]) against
    /// `mx.quantize`.
    AffineStep {
        /// Bits per code.
        bits: u32,
        /// Inputs per scale.
        group: usize,
    },
    /// MXFP4 from dense values: each changed block must be one rounding rule's.
    Mxfp4Rules,
    /// A ggml block type (Q8_0, Q4_0 ... Q6_K, IQ4_NL, IQ4_XS): each value within
    /// [`block_bound`] of the original's, and the reference rule ([`REFERENCE_MAJORITY`])
    /// against ggml's `quantize_row_*_ref`.
    Reference(Codec),
    /// Requantization with no known bound (e.g. BF16 → MXFP4).
    Unbounded,
}

impl Bound {
    /// What the bound allows, as a phrase for reports ("half a Q8_0 step of the original's
    /// block", "f16 rounding").
    pub fn name(self) -> String {
        match self {
            Bound::Exact => "identical values".into(),
            Bound::F16Rounding => "f16 rounding".into(),
            Bound::Bf16Rounding => "bf16 rounding".into(),
            Bound::Int8Step(g) => format!("one int8 step of the original's group of {g}"),
            Bound::AffineStep { bits, group } => {
                format!("one {bits}-bit affine step of the original's group of {group}")
            }
            Bound::Mxfp4Rules => "one of the MXFP4 rounding rules".into(),
            Bound::Reference(Codec::Q8_0) => "half a Q8_0 step of the original's block".into(),
            Bound::Reference(c) => format!(
                "{} {c} steps of the original's {}-value block",
                STEPS_ALLOWED,
                c.block()
            ),
            Bound::Unbounded => "none (judged by the logits)".into(),
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

    /// True for the storages judged by the reference rule ([`REFERENCE_MAJORITY`]).
    pub fn has_reference(self) -> bool {
        matches!(self, Bound::Reference(_) | Bound::AffineStep { .. })
    }

    /// Values per block (MLX: per group) the reference rule counts in, if it applies.
    fn block_len(self) -> Option<usize> {
        match self {
            Bound::Reference(c) => Some(c.block()),
            Bound::AffineStep { group, .. } => Some(group),
            Bound::Mxfp4Rules => Some(mxfp4::BLOCK),
            _ => None,
        }
    }
}

/// How many steps of a ggml block type's grid a value may move ([`block_bound`]).
pub const STEPS_ALLOWED: f64 = 4.0;

/// The largest error a ggml block type `codec` may honestly leave on one block of original
/// values `x` (`x.len() == codec.block()`), computed from the original's values alone (never
/// from the variant's stored scales, so a corrupted scale shows), valid for every quantizer of
/// `ggml-quants.c`, with or without an importance matrix.
///
/// **Q8_0**: half a step plus the f16 rounding of the scale: with `d = amax/127` (ggml's
/// `quantize_row_q8_0_ref`, gguf-py's `Q8_0`; `quantize_q8_0` ignores an importance matrix),
/// `q = round(x/d)` leaves `|x - q·d| ≤ d/2`, and storing `d` as f16 moves `q·d` by at most
/// `127·|Δd| ≤ 127·max(d·2⁻¹¹, 2⁻²⁵)`; oss-forge's exact Q8_0 of MXFP4 blocks (`d =
/// 2^(s-128)`, `q = 2·E2M1`) leaves no error at all. Bound: `amax/254 + 127·max(amax/127·2⁻¹¹,
/// 2⁻²⁵)`, times `1 + 2⁻²⁰` for the f32 arithmetic.
///
/// **The other types**: [`STEPS_ALLOWED`] steps of the type's grid as the reference quantizer
/// lays it on the original block, `step = amax/8` (Q4_0), `amax/16` (Q5_0), `amax/4` (Q3_K,
/// 16-value sub-blocks of a 256 super-block), `amax/32` (Q6_K), `24·amax/127` (IQ4_NL, IQ4_XS:
/// the widest gap of `kvalues_iq4nl` at `d = amax/127`), and for the types with a minimum
/// `range/15` (Q4_1, Q4_K), `range/31` (Q5_1, Q5_K), `range/3` (Q2_K), where `range =
/// max(hi, 0) - min(lo, 0)` (the k-quant searches clamp the minimum to ≤ 0). `amax` and
/// `range` are those of the whole block (the 256-value super-block for the k-quants and
/// IQ4_XS): the sub-block scales are quantized against the super-block's largest one
/// (6, 4 or 8 bits), so a sub-block's step is bounded by the super-block's, not its own.
/// Derivation: every scale search in `ggml-quants.c` starts from the reference scale and tries
/// scales within `(nmax ± 0.9)/max` (`make_qx_quants`, `is = -9..9`), `(nmax + rmin +
/// rdelta·is)/(max - min)` with `rmin ≥ -1`, `rdelta·nstep ≤ 2` (`make_qkx2/3_quants`) or
/// `(nmax ± 0.4)/max` (`make_qp_quants`, the sub-block scales), i.e. within a factor of about
/// `(nmax + 1)/(nmax - 1)` of `amax/levels`; the codes are then the nearest (clamped) grid
/// points, which is half a step, one step where clamped at the edge; and the least-squares
/// refit of the scale under the importance weights is a weighted mean of `x_i/l_i` over the
/// chosen codes, which stays within half a step per code of the candidate. Together: about two
/// steps; four leave room for the sub-block scale rounding. Measured worst, in steps of this
/// definition, over every tensor of the 16 `llamacpp-quants/` presets of `wide-gpt-oss-ft`:
/// 1.04 with the reference quantizer (Q3_K) and 2.64 with `llama-quantize --imatrix` (Q4_1;
/// the importance matrix synthetic, log-normal importances with σ = 1.5, more uneven than most
/// activation statistics: llama-imatrix was not at hand). Q8_0 measured 0.537 steps against its
/// bound of 0.562. Every type gets `2⁻¹³` more for rounding its f16 scales to subnormals (`|Δd| ≤
/// 2⁻²⁵` times at most 4096, the largest product of integer sub-scale and code, Q6_K's
/// 128·32). What the bound cannot see (a code moved by one step, a scale changed by a few
/// percent) the reference rule does, for files the reference quantizer made.
pub fn block_bound(codec: Codec, x: &[f32]) -> f64 {
    block_bound_of(codec, Extremes::of(x))
}

/// [`block_bound`] from the block's [`Extremes`].
fn block_bound_of(codec: Codec, e: Extremes) -> f64 {
    // The k-quant searches clamp the minimum to <= 0 (and the maximum to >= 0).
    let amax = e.amax as f64;
    let range = (e.hi as f64).max(0.0) - (e.lo as f64).min(0.0);
    let step = match codec {
        Codec::Q8_0 => {
            let d = amax / 127.0;
            return (d / 2.0 + 127.0 * (d * 2f64.powi(-11)).max(2f64.powi(-25)))
                * (1.0 + 2f64.powi(-20));
        }
        Codec::Q4_0 => amax / 8.0,
        Codec::Q5_0 => amax / 16.0,
        Codec::Q3_K => amax / 4.0,
        Codec::Q6_K => amax / 32.0,
        Codec::IQ4_NL | Codec::IQ4_XS => amax * 24.0 / 127.0,
        Codec::Q4_1 | Codec::Q4_K => range / 15.0,
        Codec::Q5_1 | Codec::Q5_K => range / 31.0,
        Codec::Q2_K => range / 3.0,
        // Not ggml block types of this bound (floats, MXFP4): no error allowed.
        _ => return 0.0,
    };
    STEPS_ALLOWED * step + 2f64.powi(-13)
}

/// A group's largest magnitude, lowest and highest value, NaN skipped (as `f64::max` skips
/// it); `lo`/`hi` are `+inf`/`-inf` for a group of NaNs. In f32, which is exact: taking a
/// magnitude, a minimum or a maximum rounds nothing, so widening the results to f64 gives
/// what an f64 fold gives.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Extremes {
    amax: f32,
    lo: f32,
    hi: f32,
}

impl Extremes {
    /// Of the values `x`, in branch-free lanes the compiler vectorizes.
    #[inline(always)]
    fn of(x: &[f32]) -> Extremes {
        let mut l = ExtremeLanes::new();
        let n = x.len() / LANES * LANES;
        for c in x[..n].chunks_exact(LANES) {
            for (k, &v) in c.iter().enumerate() {
                l.add(k, v);
            }
        }
        for (k, &v) in x[n..].iter().enumerate() {
            l.add(k, v);
        }
        l.finish()
    }

    /// The step of `bound` for a group with these extremes: what a value may move
    /// ([`block_bound`], [`affine_bound`], one int8 step `amax/127`).
    #[inline]
    fn step(self, bound: Bound) -> f64 {
        match bound {
            Bound::AffineStep { bits, .. } => affine_bound(bits, self),
            Bound::Reference(c) => block_bound_of(c, self),
            _ => self.amax as f64 / 127.0,
        }
    }
}

/// [`Extremes`] per lane.
struct ExtremeLanes {
    amax: [f32; LANES],
    lo: [f32; LANES],
    hi: [f32; LANES],
}

impl ExtremeLanes {
    fn new() -> ExtremeLanes {
        ExtremeLanes {
            amax: [0.0; LANES],
            lo: [f32::INFINITY; LANES],
            hi: [f32::NEG_INFINITY; LANES],
        }
    }

    /// Adds `v` to lane `k` (a NaN compares false and changes nothing).
    #[inline(always)]
    fn add(&mut self, k: usize, v: f32) {
        let a = v.abs();
        self.amax[k] = if a > self.amax[k] { a } else { self.amax[k] };
        self.lo[k] = if v < self.lo[k] { v } else { self.lo[k] };
        self.hi[k] = if v > self.hi[k] { v } else { self.hi[k] };
    }

    #[inline(always)]
    fn finish(&self) -> Extremes {
        let mut e = Extremes {
            amax: 0.0,
            lo: f32::INFINITY,
            hi: f32::NEG_INFINITY,
        };
        for k in 0..LANES {
            e.amax = if self.amax[k] > e.amax {
                self.amax[k]
            } else {
                e.amax
            };
            e.lo = if self.lo[k] < e.lo { self.lo[k] } else { e.lo };
            e.hi = if self.hi[k] > e.hi { self.hi[k] } else { e.hi };
        }
        e
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
    /// Adds another weight of the same group (unjudged: see [`TensorCheck::judge_blocks`]).
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

    /// Applies the reference rule to the whole tensor (once, after every weight of its group
    /// is merged): when most blocks agree with the reference quantizer, the others are
    /// violations ([`TensorCheck::off_reference`]).
    fn judge_blocks(&mut self) {
        if self.bound.has_reference() && self.blocks.made_by_reference() {
            self.off_reference = self.blocks.total - self.blocks.reference;
            let n = self.bound.block_len().unwrap_or(1) as u64;
            // Every value of those blocks, each counted once.
            self.violations += (self.off_reference * n).saturating_sub(self.blocks.off_values);
        }
        if self.bound == Bound::Mxfp4Rules
            && let Some((_, n)) = self.blocks.made_by_rule()
        {
            // Blocks another rule reproduces but not the one that made the others (those no rule
            // reproduces are violations already).
            let changed = self.blocks.total - self.blocks.unchanged;
            self.off_reference = changed - n - self.blocks.unexplained;
            self.violations += self.off_reference * mxfp4::BLOCK as u64;
        }
    }

    /// The failures this check finds, one line each (empty when it passes): non-finite
    /// values, values outside the bound, blocks that break the reference rule, MXFP4 blocks no
    /// rule reproduces; each names the tensor, how many and the first.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(at) = &self.first_nonfinite {
            out.push(format!(
                "{}: {} of {} values are NaN or Inf where the original's are finite (first: {at})",
                self.name, self.nonfinite, self.elements
            ));
        }
        let blocks = match self.bound {
            Bound::Mxfp4Rules => self.blocks.unexplained + self.off_reference,
            _ => self.off_reference,
        };
        // The values the failing blocks added beyond those outside the bound already.
        let block_values = (blocks * self.bound.block_len().unwrap_or(0) as u64)
            .saturating_sub(self.blocks.off_values);
        let outside = self
            .violations
            .saturating_sub(self.nonfinite)
            .saturating_sub(block_values);
        if outside > 0 && self.bound == Bound::Exact {
            out.push(format!(
                "{}: {} of {} values differ from the original's, which {} storage holds exactly (max error {:.3e})",
                self.name, outside, self.elements, self.variant, self.max_abs_error
            ));
        } else if outside > 0 {
            out.push(format!(
                "{}: {} of {} values outside the bound of {} storage ({}; max error {:.3e})",
                self.name,
                outside,
                self.elements,
                self.variant,
                self.bound.name(),
                self.max_abs_error
            ));
        }
        let first = self
            .blocks
            .first_off
            .as_ref()
            .map(|b| format!("; first at {b}"))
            .unwrap_or_default();
        if self.off_reference > 0
            && self.bound == Bound::Mxfp4Rules
            && let Some((rule, n)) = self.blocks.made_by_rule()
        {
            let at = self.blocks.first_off_rule
                [Rounding::ALL.iter().position(|&r| r == rule).unwrap_or(0)]
            .as_ref()
            .map(|b| format!("; first at {b}"))
            .unwrap_or_default();
            out.push(format!(
                "{}: {} of {} requantized MXFP4 blocks are not the {} rule's rounding of the original's values, which made the other {n}: changed after quantization{at}",
                self.name,
                self.off_reference,
                self.blocks.total - self.blocks.unchanged,
                rule.name()
            ));
        } else if self.off_reference > 0 {
            let (unit, who) = match self.bound {
                Bound::AffineStep { .. } => ("groups", "mx.quantize"),
                _ => ("blocks", "ggml's reference quantizer"),
            };
            out.push(format!(
                "{}: {} of {} {} {unit} differ from {who}, which made the other {} of this tensor: changed after quantization{first}",
                self.name,
                self.off_reference,
                self.blocks.total,
                self.variant,
                self.blocks.reference
            ));
        }
        if matches!(self.bound, Bound::Mxfp4Rules) && self.blocks.unexplained > 0 {
            out.push(format!(
                "{}: {} of {} MXFP4 blocks are reproduced by no MXFP4 rounding rule of the original's values{first}",
                self.name, self.blocks.unexplained, self.blocks.total
            ));
        }
        out
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

/// Compares one weight, as a tensor of its own (the reference rule judged on its blocks).
pub fn check_weight(
    id: WeightId,
    orig: &MatRef<'_>,
    var: &MatRef<'_>,
) -> Result<TensorCheck, VerifyError> {
    let mut c = compare_weight(id, orig, var)?;
    c.judge_blocks();
    Ok(c)
}

/// Compares one weight, the reference rule not yet judged (its group may hold more weights).
fn compare_weight(
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
        off_reference: 0,
    };
    if same_bytes(orig.encoding(), var.encoding()) {
        return Ok(check);
    }
    let chunks: Vec<usize> = (0..rows).step_by(ROW_CHUNK).collect();
    let parts: Vec<Compared> = chunks
        .into_par_iter()
        .map(|r0| {
            let n = ROW_CHUNK.min(rows - r0);
            if same_mxfp4_codes(orig, var, r0, n) {
                return Compared::default();
            }
            let (mut a, mut b) = (vec![0f32; n * cols], vec![0f32; n * cols]);
            orig.dequant_rows(r0, &mut a);
            var.dequant_rows(r0, &mut b);
            let mut c = compare(&a, &b, cols, bound);
            match bound {
                Bound::Mxfp4Rules => {
                    c.blocks = mxfp4_rules(var, r0, &a, &b);
                    c.violations += (c.blocks.unexplained * mxfp4::BLOCK as u64)
                        .saturating_sub(c.blocks.off_values);
                }
                Bound::Reference(codec) => c.blocks = reference_blocks(codec, var, r0, &a, &b),
                Bound::AffineStep { .. } => c.blocks = affine_reference(var, r0, &a, &b),
                _ => {}
            }
            for at in c
                .blocks
                .first_off
                .iter_mut()
                .chain(c.blocks.first_off_rule.iter_mut().flatten())
            {
                at.weight = id.to_string();
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

/// True when rows `r0..r0 + n` of two MXFP4 views (the release's layout or ggml's, in any
/// pairing) hold the same scale and the same 32 codes in every block, and no scale is the NaN
/// byte 0xFF: then their values are equal, so comparing them finds nothing (the two layouts'
/// decoders differ only in the sign of the zero code 8, which [`compare`] counts as equal),
/// and decoding them can be skipped. False for any other view.
fn same_mxfp4_codes(a: &MatRef<'_>, b: &MatRef<'_>, r0: usize, n: usize) -> bool {
    if !(a.encoding().is_mxfp4() && b.encoding().is_mxfp4()) || a.cols() % mxfp4::BLOCK != 0 {
        return false;
    }
    let nb = a.cols() / mxfp4::BLOCK;
    (r0..r0 + n).all(|r| {
        (0..nb).all(
            |k| match (mxfp4_block_at(a, r, k), mxfp4_block_at(b, r, k)) {
                (Some(x), Some(y)) => x == y && x.1 != 0xFF,
                _ => false,
            },
        )
    })
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
            for (first, r) in m.first_off_rule.iter_mut().zip(Rounding::ALL) {
                if first.is_none() && !rules.contains(r) {
                    *first = Some(BlockAt {
                        weight: String::new(),
                        row: r0 + i,
                        block: k,
                        unit: "block",
                    });
                }
            }
            if rules.is_empty() {
                m.unexplained += 1;
                m.off_values += compare(xa, xb, mxfp4::BLOCK, Bound::Mxfp4Rules).violations;
                note_first(&mut m, r0 + i, k, "block");
            }
            for (n, r) in m.by_rule.iter_mut().zip(Rounding::ALL) {
                *n += u64::from(rules.contains(r));
            }
        }
    }
    m
}

/// Records block `block` of row `row` as the first one off, unless one is already recorded
/// (the weight's name is filled in by the caller).
fn note_first(m: &mut BlockMatch, row: usize, block: usize, unit: &'static str) {
    if m.first_off.is_none() {
        m.first_off = Some(BlockAt {
            weight: String::new(),
            row,
            block,
            unit,
        });
    }
}

/// True when two blocks of values are the same numbers (NaN matching NaN).
fn same_values(a: &[f32], b: &[f32]) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
}

/// How many blocks of rows `r0..` of `var` (a ggml block type; `b` their values) agree with
/// ggml's reference quantizer of the original's values `a`: byte-identical to it, or holding
/// exactly the original's values (Q8_0's exact form of MXFP4 blocks, `q8_0::from_mxfp4_block`).
/// Rows whose original values are not all finite are skipped.
fn reference_blocks(codec: Codec, var: &MatRef<'_>, r0: usize, a: &[f32], b: &[f32]) -> BlockMatch {
    let cols = var.cols();
    let Encoding::Ggml { data, row_step, .. } = *var.encoding() else {
        return BlockMatch::default();
    };
    let (rb, bb, n) = (codec.row_bytes(cols), codec.block_bytes(), codec.block());
    let mut ours = vec![0u8; rb];
    let mut m = BlockMatch::default();
    for (i, (row, vrow)) in a.chunks_exact(cols).zip(b.chunks_exact(cols)).enumerate() {
        if !row.iter().all(|x| x.is_finite()) {
            continue;
        }
        codec.quantize_row(row, &mut ours);
        let s = (r0 + i) * row_step;
        let theirs = &data[s * rb..(s + 1) * rb];
        for (k, (x, y)) in ours
            .chunks_exact(bb)
            .zip(theirs.chunks_exact(bb))
            .enumerate()
        {
            m.total += 1;
            let agrees = x == y || same_values(&row[k * n..(k + 1) * n], &vrow[k * n..(k + 1) * n]);
            if agrees {
                m.reference += 1;
            } else {
                let (xa, xb) = (&row[k * n..(k + 1) * n], &vrow[k * n..(k + 1) * n]);
                m.off_values += compare(xa, xb, n, Bound::Reference(codec)).violations;
                note_first(&mut m, r0 + i, k, "block");
            }
        }
    }
    m
}

/// How many groups of rows `r0..` of `var` (MLX affine; `b` their values) agree with
/// `mx.quantize` (oss-forge's bit-exact port, `quant::affine::quantize_row`) of the original's
/// values `a`: codes, scale and bias byte-identical, or the group holding exactly the original's
/// values. Rows whose original values are not all finite are skipped.
fn affine_reference(var: &MatRef<'_>, r0: usize, a: &[f32], b: &[f32]) -> BlockMatch {
    let cols = var.cols();
    let Encoding::Affine {
        packed,
        scales,
        biases,
        bits,
        group,
    } = *var.encoding()
    else {
        return BlockMatch::default();
    };
    let mut m = BlockMatch::default();
    if group == 0
        || !cols.is_multiple_of(group)
        || quant::affine::check_params(bits, group).is_err()
    {
        return m;
    }
    let (pb, pg, ng) = (
        quant::affine::packed_bytes(cols, bits),
        quant::affine::packed_bytes(group, bits),
        cols / group,
    );
    let (mut q, mut s, mut z) = (vec![0u8; pb], vec![0u8; 2 * ng], vec![0u8; 2 * ng]);
    for (i, (row, vrow)) in a.chunks_exact(cols).zip(b.chunks_exact(cols)).enumerate() {
        if !row.iter().all(|x| x.is_finite()) {
            continue;
        }
        quant::affine::quantize_row(row, bits, group, &mut q, &mut s, &mut z);
        let r = r0 + i;
        let (tq, ts, tz) = (
            &packed[r * pb..(r + 1) * pb],
            &scales[r * 2 * ng..(r + 1) * 2 * ng],
            &biases[r * 2 * ng..(r + 1) * 2 * ng],
        );
        for k in 0..ng {
            m.total += 1;
            let bytes = q[k * pg..(k + 1) * pg] == tq[k * pg..(k + 1) * pg]
                && s[2 * k..2 * k + 2] == ts[2 * k..2 * k + 2]
                && z[2 * k..2 * k + 2] == tz[2 * k..2 * k + 2];
            let g = k * group..(k + 1) * group;
            if bytes || same_values(&row[g.clone()], &vrow[g.clone()]) {
                m.reference += 1;
            } else {
                let bound = Bound::AffineStep { bits, group };
                m.off_values += compare(&row[g.clone()], &vrow[g], group, bound).violations;
                note_first(&mut m, r, k, "group");
            }
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

/// Compares rows of `cols` values: [`compare_body`], compiled for AVX2 where the CPU has it
/// (the same operations in the same order on wider registers; no FMA, so the same numbers).
fn compare(a: &[f32], b: &[f32], cols: usize, bound: Bound) -> Compared {
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        return avx2::compare(a, b, cols, bound);
    }
    compare_body(a, b, cols, bound)
}

/// [`compare`] with AVX2 enabled (x86_64 only).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Bound, Compared};
    use std::sync::OnceLock;

    /// Whether the CPU has AVX2 (checked once).
    pub fn available() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| std::arch::is_x86_feature_detected!("avx2"))
    }

    #[target_feature(enable = "avx2")]
    fn compare_avx2(a: &[f32], b: &[f32], cols: usize, bound: Bound) -> Compared {
        super::compare_body(a, b, cols, bound)
    }

    pub fn compare(a: &[f32], b: &[f32], cols: usize, bound: Bound) -> Compared {
        assert!(available());
        // SAFETY: `compare_avx2` only requires the AVX2 target feature, which `available()`
        // just confirmed this CPU has. It contains no other unsafe operation.
        #[allow(unsafe_code)]
        unsafe {
            compare_avx2(a, b, cols, bound)
        }
    }
}

/// The body of [`compare`].
#[inline(always)]
fn compare_body(a: &[f32], b: &[f32], cols: usize, bound: Bound) -> Compared {
    let mut c = Compared::default();
    let group = match bound {
        Bound::Int8Step(g) | Bound::AffineStep { group: g, .. }
            if g > 0 && cols.is_multiple_of(g) =>
        {
            g
        }
        Bound::Reference(c) if cols.is_multiple_of(c.block()) => c.block(),
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
        if let Some((differing, max_err, violations)) = compare_finite(ga, gb, bound) {
            c.differing += differing;
            c.max_abs_error = c.max_abs_error.max(max_err);
            c.violations += violations;
            continue;
        }
        // The group's step, computed at its first value that needs it.
        let mut step = None;
        let step_of = || Extremes::of(ga).step(bound);
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
                Bound::Reference(_) => err <= *step.get_or_insert_with(step_of),
                // Judged per block (`mxfp4_rules`) or by the logits.
                Bound::Mxfp4Rules | Bound::Unbounded => true,
            };
            c.violations += u64::from(!ok);
        }
    }
    c
}

/// Lanes of [`compare_finite`]'s branch-free passes.
const LANES: usize = 8;

/// [`compare`]'s counts for one group whose values are all finite on both sides — differing
/// values, the largest error, values outside `bound` (its step from the original group's
/// [`Extremes`], gathered in the same pass) — in branch-free passes over [`LANES`] lanes that
/// the compiler vectorizes; the same numbers as the loop in [`compare`] (for finite values, a
/// pair that differs is a pair that is not `==`, and a pair that is equal has error 0, within
/// every bound). A step bound is not walked again when the largest error is within it. `None`
/// when a value is NaN or infinite: that loop then names it.
#[inline(always)]
fn compare_finite(ga: &[f32], gb: &[f32], bound: Bound) -> Option<(u64, f64, u64)> {
    let n = ga.len() / LANES * LANES;
    let (ca, ta) = ga.split_at(n);
    let (cb, tb) = gb.split_at(n);
    let mut finite = [true; LANES];
    let mut differing = [0u64; LANES];
    let mut max_err = [0f64; LANES];
    let mut ext = ExtremeLanes::new();
    let mut lane = |l: usize, x: f32, y: f32| {
        finite[l] &= x.is_finite() & y.is_finite();
        differing[l] += u64::from(x != y);
        let e = (x as f64 - y as f64).abs();
        max_err[l] = if e > max_err[l] { e } else { max_err[l] };
        ext.add(l, x);
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
    // Values beyond `limit`: none when the largest error is not.
    let beyond = |limit: f64| match max_err <= limit {
        true => 0,
        false => errs().map(|(_, e)| u64::from(e > limit)).sum(),
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
            beyond(ext.finish().step(bound) * (1.0 + 1e-6))
        }
        Bound::Reference(_) => beyond(ext.finish().step(bound)),
        Bound::Mxfp4Rules | Bound::Unbounded => 0,
    };
    Some((differing, max_err, violations))
}

/// The largest error MLX affine quantization (`quant::affine`, `mx.quantize`'s rule) can leave
/// on a group `g` of original values. With `n = 2^bits - 1` and `s = max((max - min)/n, 1e-7)`,
/// the encoder rounds the edge of larger magnitude to a whole number of steps `q0 ≥ n/2`, which
/// stretches the step to at most `s·n/(n-1)`; every value then lies within half a step of a
/// code, or at most one step past the last code (clamped). Storing the scale and bias in BF16
/// (round to nearest with 8 significant bits: relative error up to 2⁻⁸ each, reached just above
/// a power of two) adds at most `q·|Δscale| + |Δbias| ≤ (2·n·s + amax)·2⁻⁸`.
fn affine_bound(bits: u32, e: Extremes) -> f64 {
    let n = ((1u64 << bits) - 1) as f64;
    let (lo, hi, amax) = (e.lo as f64, e.hi as f64, e.amax as f64);
    let s = ((hi - lo) / n).max(quant::affine::MIN_SCALE as f64);
    s * n / (n - 1.0) + (2.0 * n * s + amax) * 2f64.powi(-8)
}

/// `n` of `d` as a percentage that never rounds a difference away: as many decimals as it
/// takes for a share below 100 % to print below 100 and one above 0 to print above 0
/// (`99.99%` for 8703 of 8704, `100%` only when `n == d`).
pub fn exact_percent(n: u64, d: u64) -> String {
    if d == 0 || n == d {
        return if d == 0 { "0%".into() } else { "100%".into() };
    }
    let p = 100.0 * n as f64 / d as f64;
    for decimals in 1..=12usize {
        let s = format!("{p:.decimals$}");
        let v: f64 = s.parse().unwrap_or(p);
        if (n == 0 || v > 0.0) && v < 100.0 {
            return format!("{s}%");
        }
    }
    format!("{p}%")
}

/// What a variant's quantized blocks say about how it was made, as report lines: for MXFP4
/// experts requantized from dense values, which rounding rules reproduce them; for the ggml
/// block types and MLX affine groups, how many agree with the reference quantizer (counts and a
/// share that never rounds a difference away) and, when some do not, how many and the first.
pub fn requantization_notes(weights: &[TensorCheck]) -> Vec<String> {
    let (mut mx, mut ggml, mut mlx) = (
        BlockMatch::default(),
        BlockMatch::default(),
        BlockMatch::default(),
    );
    for w in weights {
        match w.bound {
            Bound::Mxfp4Rules => mx.merge(&w.blocks),
            Bound::Reference(_) => ggml.merge(&w.blocks),
            Bound::AffineStep { .. } => mlx.merge(&w.blocks),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let changed = mx.total - mx.unchanged;
    if changed > 0 {
        let rules: Vec<String> = Rounding::ALL
            .into_iter()
            .zip(mx.by_rule)
            .filter(|&(_, n)| n > 0)
            .map(|(r, n)| format!("{r} rule {}", exact_percent(n, changed)))
            .collect();
        out.push(format!(
            "MXFP4 experts requantized: {changed} of {} blocks changed; reproduced by {}{}",
            mx.total,
            if rules.is_empty() {
                "no rule".to_string()
            } else {
                rules.join(", ")
            },
            if mx.unexplained > 0 {
                format!("; {} blocks by none (violations)", mx.unexplained)
            } else {
                String::new()
            }
        ));
    } else if mx.total > 0 {
        out.push(format!(
            "MXFP4 experts: all {} blocks hold the original's values",
            mx.total
        ));
    }
    let mut agree = |m: &BlockMatch, unit: &str, who: &str| {
        if m.total == 0 {
            return;
        }
        let off = m.total - m.reference;
        out.push(format!(
            "{} of {} quantized {unit} ({}) equal {who}{}",
            m.reference,
            m.total,
            exact_percent(m.reference, m.total),
            match (&m.first_off, off) {
                (_, 0) => String::new(),
                (Some(at), 1) => format!("; 1 differs, at {at}"),
                (Some(at), _) => format!("; {off} differ, the first at {at}"),
                (None, _) => format!("; {off} differ"),
            }
        ));
    };
    agree(
        &ggml,
        "blocks",
        "ggml's reference quantizer (llama-quantize without an importance matrix)",
    );
    agree(&mlx, "groups", "mx.quantize's (mlx-lm's quantizer)");
    out
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
            let c = compare_weight(id, &a, &b)?;
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
        for c in &mut out {
            c.judge_blocks();
        }
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

    /// The comparison as built for the baseline target counts what the dispatched one (the AVX2
    /// copy where this CPU has AVX2) counts, for every kind of bound, on rows with differences,
    /// non-finite values and signed zeros.
    #[test]
    fn the_baseline_comparison_is_the_dispatched_one() {
        let mut s = 3u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as u32
        };
        let cols = 256;
        let a: Vec<f32> = (0..8 * cols)
            .map(|_| (next() % 20001) as f32 / 1e4 - 1.0)
            .collect();
        let mut b: Vec<f32> = a
            .iter()
            .map(|&x| match next() % 16 {
                0 => x + 1e-3,
                1 => -x * 0.0,
                2 => x * 1.01,
                _ => x,
            })
            .collect();
        b[5] = f32::NAN;
        b[700] = f32::INFINITY;
        let bounds = [
            Bound::Exact,
            Bound::F16Rounding,
            Bound::Bf16Rounding,
            Bound::Int8Step(32),
            Bound::AffineStep { bits: 4, group: 64 },
            Bound::Reference(Codec::Q8_0),
            Bound::Reference(Codec::Q4_K),
            Bound::Unbounded,
        ];
        for bound in bounds {
            let (x, y) = (
                compare(&a, &b, cols, bound),
                compare_body(&a, &b, cols, bound),
            );
            assert_eq!(
                (
                    x.differing,
                    x.max_abs_error.to_bits(),
                    x.violations,
                    x.nonfinite
                ),
                (
                    y.differing,
                    y.max_abs_error.to_bits(),
                    y.violations,
                    y.nonfinite
                ),
                "{bound:?}"
            );
            let bits = |c: &Compared| {
                c.first_nonfinite
                    .map(|(i, u, v)| (i, u.to_bits(), v.to_bits()))
            };
            assert_eq!(bits(&x), bits(&y), "{bound:?}");
            assert!(x.first_nonfinite.is_some() && x.violations > 0, "{bound:?}");
        }
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
            Bound::Reference(Codec::Q8_0),
            Bound::Reference(Codec::Q4_1),
            Bound::Reference(Codec::Q6_K),
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
                    let step = Extremes::of(&a).step(bound);
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
                            Bound::Reference(_) => err <= step,
                            _ => true,
                        };
                        v += u64::from(!ok);
                    }
                    let got = compare_finite(&a, &b, bound).unwrap();
                    assert_eq!(got, (d, m, v), "{bound:?} len {len} noise {noise}");
                }
                let mut nan = b.clone();
                nan[len - 1] = f32::NAN;
                assert_eq!(compare_finite(&a, &nan, Bound::Exact), None);
            }
        }
    }

    /// The f32 lanes give what a plain f64 fold gives (`f64::max`/`min` skip a NaN), on
    /// signed zeros, NaNs, infinities, subnormals and tails past the lanes.
    #[test]
    fn extremes_in_f32_lanes_are_the_f64_fold() {
        let specials = [
            0.0f32,
            -0.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e-45,
            -3.5,
            65504.0,
            -1e30,
            0.25,
        ];
        let mut s = 11u64;
        for len in [1usize, 3, 8, 9, 32, 37, 256] {
            for round in 0..200 {
                let x: Vec<f32> = (0..len)
                    .map(|_| {
                        s = s
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        match round % 3 {
                            0 => specials[(s >> 60) as usize % specials.len()],
                            _ => f32::from_bits(
                                (s >> 32) as u32 & 0x7f7f_ffff | (s as u32 & 1) << 31,
                            ),
                        }
                    })
                    .collect();
                let (mut amax, mut lo, mut hi) = (0f64, f64::INFINITY, f64::NEG_INFINITY);
                for &v in &x {
                    amax = amax.max((v as f64).abs());
                    lo = lo.min(v as f64);
                    hi = hi.max(v as f64);
                }
                let e = Extremes::of(&x);
                assert_eq!(e.amax as f64, amax, "{x:?}");
                assert_eq!(e.lo as f64, lo, "{x:?}");
                assert_eq!(e.hi as f64, hi, "{x:?}");
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
        let c = check_weight(WeightId::Down(0, 0), &ma, &ms).unwrap();
        assert!(c.violations > 0);
        let f = c.failures();
        assert!(
            f[0].contains(
                "values outside the bound of q8_0 storage (half a Q8_0 step of the original's block; max error"
            ),
            "{f:?}"
        );
    }

    /// An F16 group whose lower edge, −0.5337, lies just above a power of two in magnitude:
    /// BF16 stores that bias as −0.53515625, a relative error near 2⁻⁸. The group is row 359,
    /// columns 128..192 of `layers.1.self_attn.q_proj` in the `small-gpt-oss-ft` fixture, whose
    /// `mlx-mxfp4-q8` failed its own verify under the former 2⁻⁹ term (error 9.125e-3 against
    /// 9.098e-3 at column 132). `mx.quantize`'s group is within the bound at every width.
    #[test]
    fn an_affine_bias_rounded_near_two_to_the_minus_8_is_within_the_bound() {
        const GROUP: [u16; 64] = [
            11866, 45268, 12270, 13017, 14309, 45345, 12515, 13143, 10703, 46950, 10815, 43126,
            45976, 45294, 43770, 46596, 43067, 39896, 43635, 11363, 11497, 13744, 13268, 43573,
            42723, 10433, 14017, 46317, 47173, 9710, 45884, 44811, 12584, 12155, 12879, 12863,
            43784, 8544, 13525, 45687, 13326, 45290, 44222, 42687, 9256, 44174, 12964, 44177,
            12071, 10474, 46343, 11418, 44471, 44432, 11480, 11419, 12155, 8926, 11667, 11683,
            43213, 12349, 13822, 12011,
        ];
        let a: Vec<u8> = GROUP.iter().flat_map(|h| h.to_le_bytes()).collect();
        let mut vals = vec![0f32; 64];
        quant::float::f16_row_to_f32(&a, &mut vals);
        let ma = MatRef::dense(DenseType::F16, &a, 1, 64).unwrap();
        for bits in [2, 3, 4, 8] {
            let pb = quant::affine::packed_bytes(64, bits);
            let (mut c, mut sc, mut bi) = (vec![0u8; pb], [0u8; 2], [0u8; 2]);
            quant::affine::quantize_row(&vals, bits, 64, &mut c, &mut sc, &mut bi);
            let mq = MatRef::new(
                1,
                64,
                Encoding::Affine {
                    packed: &c,
                    scales: &sc,
                    biases: &bi,
                    bits,
                    group: 64,
                },
            )
            .unwrap();
            let check = check_weight(WeightId::QProj(1), &ma, &mq).unwrap();
            assert!(
                check.differing > 0 && check.violations == 0,
                "{bits} bits: {} violations, max error {}",
                check.violations,
                check.max_abs_error
            );
        }
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

    /// Rows of `cols` values, varied enough that every block has its own scale.
    fn rows(n: usize, cols: usize, seed: u32) -> Vec<f32> {
        let mut x = seed.wrapping_mul(2654435761) | 1;
        (0..n * cols)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                ((x % 20001) as f32 - 10000.0) * 1e-5
            })
            .collect()
    }

    fn ggml<'a>(codec: Codec, data: &'a [u8], rows: usize, cols: usize) -> MatRef<'a> {
        MatRef::new(
            rows,
            cols,
            Encoding::Ggml {
                codec,
                data,
                row_step: 1,
            },
        )
        .unwrap()
    }

    /// MXFP4 rows in the release's layout and in ggml's: the same codes skip decoding and find
    /// nothing; one changed code, one changed scale or a NaN scale byte go to the full compare,
    /// which finds the change.
    #[test]
    fn mxfp4_rows_of_the_same_codes_are_equal_in_either_layout() {
        let (rows, cols) = (4usize, 64usize);
        let nb = rows * cols / mxfp4::BLOCK;
        let blocks: Vec<u8> = (0..nb * mxfp4::BLOCK_BYTES)
            .map(|i| (i * 37 % 251) as u8)
            .collect();
        let scales: Vec<u8> = (0..nb).map(|i| 120 + (i % 9) as u8).collect();
        let to_ggml = |blocks: &[u8], scales: &[u8]| -> Vec<u8> {
            // Block by block in ggml's layout: scale byte, then the nibbles in ggml's order.
            let mut g = Vec::new();
            for (b, &s) in blocks.chunks_exact(mxfp4::BLOCK_BYTES).zip(scales) {
                g.push(s);
                g.extend(mxfp4::repack_to_ggml(b));
            }
            g
        };
        let orig = MatRef::new(
            rows,
            cols,
            Encoding::Mxfp4 {
                blocks: &blocks,
                scales: &scales,
                row_step: 1,
            },
        )
        .unwrap();
        let same = to_ggml(&blocks, &scales);
        let var = ggml(Codec::MXFP4, &same, rows, cols);
        assert!(same_mxfp4_codes(&orig, &var, 0, rows));
        let c = compare_weight(WeightId::Gate(0, 0), &orig, &var).unwrap();
        assert_eq!((c.differing, c.violations), (0, 0));

        let mut code = blocks.clone();
        code[3 * mxfp4::BLOCK_BYTES + 5] ^= 0x10;
        let mut scale = scales.clone();
        scale[6] += 1;
        let mut nan = scales.clone();
        nan[1] = 0xFF;
        for (bl, sc) in [(&code, &scales), (&blocks, &scale), (&blocks, &nan)] {
            let other = to_ggml(bl, sc);
            let var = ggml(Codec::MXFP4, &other, rows, cols);
            assert!(!same_mxfp4_codes(&orig, &var, 0, rows));
            let c = compare_weight(WeightId::Gate(0, 0), &orig, &var).unwrap();
            assert!(
                c.differing > 0 && c.violations > 0,
                "{:?}",
                (c.differing, c.violations)
            );
        }
        // Not MXFP4 on one side: never taken.
        let q8 = vec![0u8; rows * cols / 32 * 34];
        assert!(!same_mxfp4_codes(
            &orig,
            &ggml(Codec::Q8_0, &q8, rows, cols),
            0,
            rows
        ));
    }

    #[test]
    fn a_changed_block_of_a_reference_made_tensor_fails_every_type() {
        let (n, cols) = (8, 512);
        let xs = rows(n, cols, 7);
        let a = bf16(&xs);
        let mut vals = vec![0f32; xs.len()];
        quant::float::bf16_row_to_f32(&a, &mut vals);
        let ma = MatRef::dense(DenseType::BF16, &a, n, cols).unwrap();
        for codec in Codec::ALL
            .into_iter()
            .filter(|c| !c.is_float() && *c != Codec::MXFP4)
        {
            let rb = codec.row_bytes(cols);
            let mut q = vec![0u8; n * rb];
            for (r, o) in vals.chunks_exact(cols).zip(q.chunks_exact_mut(rb)) {
                codec.quantize_row(r, o);
            }
            let c = check_weight(WeightId::OProj(0), &ma, &ggml(codec, &q, n, cols)).unwrap();
            assert_eq!(c.bound, Bound::Reference(codec));
            assert_eq!(
                (
                    c.violations,
                    c.off_reference,
                    c.blocks.reference,
                    c.blocks.total
                ),
                (0, 0, c.blocks.total, (n * cols / codec.block()) as u64),
                "{codec}"
            );
            // The last byte of row 5's second block: a code (every type ends its block with
            // codes), its lowest bit.
            let at = 5 * rb + 2 * codec.block_bytes() - 1;
            q[at] ^= 1;
            let c = check_weight(WeightId::OProj(0), &ma, &ggml(codec, &q, n, cols)).unwrap();
            assert_eq!(c.off_reference, 1, "{codec}");
            let first = c.blocks.first_off.as_ref().unwrap();
            assert_eq!((first.row, first.block), (5, 1), "{codec}");
            assert!(
                c.failures()
                    .iter()
                    .any(|f| f.contains("differ from ggml's reference quantizer")),
                "{codec}: {:?}",
                c.failures()
            );
        }
    }

    #[test]
    fn a_tensor_mostly_unlike_the_reference_is_judged_by_the_bound_alone() {
        // Quantized from values nudged by a fraction of a step (as an importance matrix's
        // scale search nudges the scales): most blocks differ from the reference, the values
        // stay within the bound, and no block is blamed.
        let (n, cols) = (8, 512);
        let xs = rows(n, cols, 11);
        let a = bf16(&xs);
        let mut vals = vec![0f32; xs.len()];
        quant::float::bf16_row_to_f32(&a, &mut vals);
        let nudged: Vec<f32> = vals.iter().map(|v| v * 1.03).collect();
        let ma = MatRef::dense(DenseType::BF16, &a, n, cols).unwrap();
        for codec in [Codec::Q4_0, Codec::Q4_K, Codec::Q6_K, Codec::IQ4_XS] {
            let rb = codec.row_bytes(cols);
            let mut q = vec![0u8; n * rb];
            for (r, o) in nudged.chunks_exact(cols).zip(q.chunks_exact_mut(rb)) {
                codec.quantize_row(r, o);
            }
            let c = check_weight(WeightId::OProj(0), &ma, &ggml(codec, &q, n, cols)).unwrap();
            assert!(!c.blocks.made_by_reference(), "{codec}: {:?}", c.blocks);
            assert_eq!((c.violations, c.off_reference), (0, 0), "{codec}");
            assert!(c.failures().is_empty(), "{codec}");
        }
    }

    #[test]
    fn a_scale_changed_by_a_power_of_two_blows_the_bound() {
        // The bound comes from the original's values: doubling or halving a Q4_K super-block's
        // `d` (an f16 exponent bit) or a Q8_0 block's `d` puts values outside it.
        let (n, cols) = (2, 256);
        // Values up to 6.4, so that every `d` is a normal f16 (an exponent step stays one).
        let xs: Vec<f32> = rows(n, cols, 3).iter().map(|x| x * 64.0).collect();
        let a = bf16(&xs);
        let mut vals = vec![0f32; xs.len()];
        quant::float::bf16_row_to_f32(&a, &mut vals);
        let ma = MatRef::dense(DenseType::BF16, &a, n, cols).unwrap();
        for codec in [Codec::Q4_K, Codec::Q6_K, Codec::Q8_0, Codec::Q5_0] {
            let rb = codec.row_bytes(cols);
            let mut q = vec![0u8; n * rb];
            for (r, o) in vals.chunks_exact(cols).zip(q.chunks_exact_mut(rb)) {
                codec.quantize_row(r, o);
            }
            // `d` is the first f16 of every block type here but Q6_K (its last).
            let d_at = if codec == Codec::Q6_K {
                codec.block_bytes() - 2
            } else {
                0
            };
            for (dir, delta) in [("doubled", 1i16), ("halved", -1)] {
                let mut bad = q.clone();
                let d = u16::from_le_bytes([bad[d_at], bad[d_at + 1]]);
                let d = (d as i16 + (delta << 10)) as u16;
                bad[d_at..d_at + 2].copy_from_slice(&d.to_le_bytes());
                let c = check_weight(WeightId::OProj(0), &ma, &ggml(codec, &bad, n, cols)).unwrap();
                assert!(
                    c.failures()
                        .iter()
                        .any(|f| f.contains("values outside the bound")),
                    "{codec} {dir}: {c:?}"
                );
                // Each value counts once: the block's values, no more.
                assert!(c.violations <= c.elements, "{codec} {dir}: {c:?}");
            }
        }
    }

    #[test]
    fn shares_never_round_a_difference_away() {
        assert_eq!(exact_percent(8703, 8704), "99.99%");
        assert_eq!(exact_percent(69631, 69632), "99.999%");
        assert_eq!(exact_percent(5, 5), "100%");
        assert_eq!(exact_percent(1, 3), "33.3%");
        assert_eq!(exact_percent(1, 1_000_000), "0.0001%");
        assert_eq!(exact_percent(0, 7), "0.0%");
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
