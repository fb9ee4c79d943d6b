//! MXFP4 encoders: 32 values → one E8M0 scale byte + 32 E2M1 codes, under the rounding rule of
//! each tool that writes MXFP4. The rules agree on values that already lie on the MXFP4 grid
//! (their scale bytes can still differ, see below) and disagree on everything else, so a
//! requantized fine-tune is only byte-identical to a peer's output under that peer's rule.
//!
//! | rule | shared exponent `e` (scale `2^e`) | element rounding | source |
//! |---|---|---|---|
//! | [`Rounding::Ggml`] | `floor(log2f(amax)) - 2` | nearest, ties to the smaller magnitude; scaled magnitudes in (6, 8) clip to 6 | llama.cpp `quantize_row_mxfp4_ref` |
//! | [`Rounding::Ocp`] | `floor(log2(amax)) - 2` | nearest, ties to even; (6, 8) clamps to 6 | OCP MX v1.0, Algorithm 1 |
//! | [`Rounding::Triton`] | `ceil(log2(amax / 6))` (f32 bit trick) | nearest, ties to even (triton's bit algorithm) | triton_kernels `downcast_to_mxfp`, `ROUND_UP` |
//! | [`Rounding::Mlx`] | `ceil(log2(amax / 6))` | nearest, ties to the smaller magnitude | `mx.quantize(mode="mxfp4")`, mlx 0.32.4 |
//! | [`Rounding::Mse`] | the floor or the ceil candidate, whichever reconstructs the block with the smaller squared error | nearest, ties to even | oss-forge |
//!
//! `amax` is the largest magnitude in the block. The floor rules put it in `[4, 8)` scale
//! units (so values above 6 units clip), the ceil rules in `(3, 6]` (never clipping). The two
//! exponents differ by at most one: by one exactly when `amax / 2^floor(log2 amax)` exceeds
//! 1.5. On a block of on-grid values both reproduce every value exactly; when the block's
//! largest code is below 4 (its largest value is not 4 or 6 times its scale), the rules can
//! pick different scale bytes for those same values.
//!
//! **Defined results** (every rule, every input; no panics):
//! - All-zero block: scale byte 0 and codes 0, except [`Rounding::Mlx`], which writes scale
//!   byte 127 as MLX does. [`Rounding::Ocp`] and [`Rounding::Triton`] keep the sign of a
//!   negative zero (code 8), the others write code 0 for every value that rounds to zero.
//! - Exponent out of the E8M0 range: clamped to the nearest byte in `0..=254`. Only the low
//!   end can be reached by finite f32 inputs (`amax < 2^-125` for the floor rules,
//!   `amax / 6 < 2^-127` for the ceil rules); the byte is then 0 (`2^-127`), except for
//!   [`Rounding::Triton`], whose bit trick cannot produce 0 and gives byte 1 (`2^-126`),
//!   or byte 0 when `amax / 6` underflows to zero. ggml itself casts the negative exponent to
//!   `uint8_t` (undefined in C; x86-64 builds wrap it to bytes 232..=255), and MLX wraps it
//!   too; clamping is the one choice that keeps the values.
//! - Subnormal inputs are quantized like any other value (all arithmetic is exact for them).
//! - The top of the f32 range: MXFP4 can express `4·2^126 = 2^128`, which f32 cannot. A
//!   block whose largest magnitude is at least `1.75·2^127` (the top eighth of the f32 range)
//!   decodes that value to ±inf under [`Rounding::Triton`], [`Rounding::Mlx`] and
//!   [`Rounding::Mse`]; ggml's search never picks an entry whose product overflows, and
//!   [`Rounding::Ocp`] clamps to `6·2^125`. Weights are many orders of magnitude smaller.
//! - Non-finite input (NaN or ±Inf anywhere in the block): scale byte 255 (the E8M0 NaN, so
//!   the OCP decode of the block is NaN; ggml's `ggml_validate_row_data` rejects it) and codes
//!   0. The converter refuses non-finite weights before encoding
//!   ([`crate::float::first_nonfinite`]); this result only keeps the function total.
//!
//! Release layout (what [`quantize_block`] returns): byte `b` holds element `2b` in its low
//! nibble and element `2b+1` in its high nibble; the scale is stored apart. [`quantize_ggml_row`]
//! writes ggml's `block_mxfp4` (scale byte first, `qs[j]` = element `j` low, `j+16` high).

use super::{BLOCK, BLOCK_BYTES, E8M0_NAN, GGML_BLOCK_BYTES, repack_to_ggml};

/// A rule for choosing an MXFP4 block's scale and rounding its elements. See the module table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Rounding {
    /// llama.cpp / ggml (`quantize_row_mxfp4_ref` and `best_index_mxfp4` in
    /// `ggml/src/ggml-quants.c`, llama.cpp as vendored in llama-cpp-python 0.3.36): what
    /// `llama-quantize ... MXFP4_MOE` writes. `e = floor(log2f(amax)) - 2`; each value goes to
    /// the code whose doubled table value times the half scale `2^(e-1)` is nearest, the first
    /// (smaller) index on a tie, which makes zero `+0` and ties go to the smaller magnitude.
    /// Bit-identical to ggml for every finite block with `amax == 0` or `amax >= 2^-125`,
    /// including ggml's use of the f32 `log2f` (which rounds up to the next integer for a few
    /// f32 values just below a power of two; reproduced exactly, see `ggml_floor_log2f`).
    #[default]
    Ggml,
    /// The OCP Microscaling Formats (MX) v1.0 specification, §6.3 Algorithm 1
    /// (<https://www.opencompute.org/documents/ocp-microscaling-formats-mx-v1-0-spec-final-pdf>,
    /// also arXiv 2310.10537): `shared_exp = floor(log2(amax)) - emax_elem` with
    /// `emax_elem = 2` for E2M1 (computed exactly from the f32 bits), clamped to the E8M0
    /// range; elements `V / 2^shared_exp` converted with round to nearest, ties to even (IEEE
    /// roundTiesToEven), values beyond 6 clamped to ±6 ("clamping normal numbers"), sign kept (a
    /// negative value that rounds to zero is `-0`, code 8). pytorch/ao's MX reference does the
    /// same (`ScaleCalculationMode.FLOOR`, "recommended by the OCP MX Spec 1.0", with
    /// `_f32_to_floatx_unpacked` in `torchao/prototype/custom_fp_utils.py`: round to even,
    /// saturating, sign preserved). microsoft/microxcaling's `quantize_mx_op` (`mx/mx_ops.py`)
    /// computes the same exponent (it also clamps below at -127) but its default element
    /// rounding `round="nearest"` is ties away from zero; its `round="even"` is this rule.
    Ocp,
    /// OpenAI triton_kernels `downcast_to_mxfp` with `DequantScaleRoundingMode.ROUND_UP`
    /// (`python/triton_kernels/triton_kernels/numerics_details/mxfp_details/_downcast_to_mxfp.py`,
    /// `_compute_quant_and_scale`, triton-lang/triton @0616e645), the quantizer transformers
    /// uses when saving MXFP4: `d = amax / 6` in f32, rounded up to a power of two on its bits
    /// (`(bits(d) + 0x7FFFFF) & 0x7F800000`), `q = x · (1/d)`, and triton's integer
    /// round-to-nearest-even on the bits of `q`, saturating at 6, sign kept. Ported bit for
    /// bit, including one quirk of that kernel: for `q` in `[0.25, 0.5)` it shifts out the two
    /// lowest mantissa bits before testing the sticky bit, so the three f32 values just above
    /// `0.25` (relative distance below `2^-21`) round to 0 instead of 0.5.
    Triton,
    /// MLX `mx.quantize(w, mode="mxfp4")` (mlx 0.32.4, CPU backend; `fp_quantize` in
    /// `mlx/ops.cpp`): the scale exponent is `ceil(log2(amax / 6))` (measured bit for bit on
    /// that release for f32 and bf16 inputs; mlx's main branch source at 0.32.2 rounds the
    /// logarithm to nearest instead, so check again when MLX moves), and each value goes to the
    /// first entry of the FP4 table (`+0, 0.5, .. 6, -0, -0.5, .. -6`) at the smallest
    /// distance (`argmin`): ties to the smaller magnitude, zero as `+0`. An all-zero block
    /// gets scale byte 127 (`2^0`).
    Mlx,
    /// oss-forge's own: of the floor-based exponent ([`Rounding::Ggml`]'s) and the ceil-based
    /// one ([`Rounding::Mlx`]'s, the same as triton's whenever that is in range), the one whose
    /// reconstruction has the smaller sum of squared errors (computed in f64), the ggml one on
    /// a tie; elements rounded to nearest with ties to even, clipped at 6, zero as `+0`.
    Mse,
}

impl Rounding {
    /// Every rule, default first.
    pub const ALL: [Rounding; 5] = [
        Rounding::Ggml,
        Rounding::Ocp,
        Rounding::Triton,
        Rounding::Mlx,
        Rounding::Mse,
    ];

    /// The rule's name as the command line spells it: `ggml`, `ocp`, `triton`, `mlx`, `mse`.
    pub const fn name(self) -> &'static str {
        match self {
            Rounding::Ggml => "ggml",
            Rounding::Ocp => "ocp",
            Rounding::Triton => "triton",
            Rounding::Mlx => "mlx",
            Rounding::Mse => "mse",
        }
    }

    /// The rule named `s` (ASCII case-insensitive), `None` for any other name.
    pub fn parse(s: &str) -> Option<Rounding> {
        Rounding::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(s))
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl std::fmt::Display for Rounding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing an unknown rounding rule name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownRounding(pub String);

impl std::fmt::Display for UnknownRounding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown MXFP4 rounding rule `{}` (expected one of: ggml, ocp, triton, mlx, mse)",
            self.0
        )
    }
}

impl std::error::Error for UnknownRounding {}

impl std::str::FromStr for Rounding {
    type Err = UnknownRounding;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rounding::parse(s).ok_or_else(|| UnknownRounding(s.to_owned()))
    }
}

/// A set of rounding rules (the answer of [`matching_rules`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct RuleSet(u8);

impl RuleSet {
    /// No rule.
    pub const EMPTY: RuleSet = RuleSet(0);

    /// True when `rule` is in the set.
    pub const fn contains(self, rule: Rounding) -> bool {
        self.0 & rule.bit() != 0
    }

    /// Adds `rule`.
    pub fn insert(&mut self, rule: Rounding) {
        self.0 |= rule.bit();
    }

    /// True for the empty set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// How many rules the set holds.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The rules in the set, in [`Rounding::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Rounding> {
        Rounding::ALL.into_iter().filter(move |&r| self.contains(r))
    }
}

impl FromIterator<Rounding> for RuleSet {
    fn from_iter<I: IntoIterator<Item = Rounding>>(iter: I) -> Self {
        let mut s = RuleSet::EMPTY;
        for r in iter {
            s.insert(r);
        }
        s
    }
}

/// Quantizes 32 values into one release-layout block under `rule`, returning
/// `(nibbles, scale byte)`: byte `b` of the nibbles holds element `2b` (low) and `2b+1` (high);
/// the scale byte `s` means `2^(s-127)`. See the module docs for zero blocks, clamping and
/// non-finite input.
pub fn quantize_block(rule: Rounding, x: &[f32; BLOCK]) -> ([u8; BLOCK_BYTES], u8) {
    let mut codes = [0u8; BLOCK];
    let scale = quantize_codes(rule, x, &mut codes);
    (pack_pairs(&codes), scale)
}

/// Quantizes a row under `rule` into the release layout: `xs.len()` a multiple of 32,
/// `blocks` 16 bytes and `scales` one byte per block of 32 values.
///
/// Panics if the lengths disagree (a caller bug).
pub fn quantize_row(rule: Rounding, xs: &[f32], blocks: &mut [u8], scales: &mut [u8]) {
    assert_eq!(
        xs.len() % BLOCK,
        0,
        "MXFP4 row length must be a multiple of 32"
    );
    let n = xs.len() / BLOCK;
    assert_eq!(blocks.len(), n * BLOCK_BYTES, "MXFP4 blocks length");
    assert_eq!(scales.len(), n, "MXFP4 scales length");
    for ((x, b), s) in xs
        .chunks_exact(BLOCK)
        .zip(blocks.chunks_exact_mut(BLOCK_BYTES))
        .zip(scales.iter_mut())
    {
        let (nibbles, scale) = quantize_block(rule, x.try_into().expect("32 values"));
        b.copy_from_slice(&nibbles);
        *s = scale;
    }
}

/// Quantizes a row under `rule` into ggml `block_mxfp4`s (17 bytes each: the scale byte, then
/// `qs[j]` = element `j` in the low nibble and element `j+16` in the high nibble).
/// `out.len()` must be `xs.len() / 32 * 17`. With [`Rounding::Ggml`] this is
/// `quantize_row_mxfp4_ref` byte for byte.
///
/// Panics if the lengths disagree (a caller bug).
pub fn quantize_ggml_row(rule: Rounding, xs: &[f32], out: &mut [u8]) {
    check_ggml_row(xs, out);
    for (x, o) in xs
        .chunks_exact(BLOCK)
        .zip(out.chunks_exact_mut(GGML_BLOCK_BYTES))
    {
        let x: &[f32; BLOCK] = x.try_into().expect("32 values");
        if rule == Rounding::Ggml && crate::legacy::block_finite(x) {
            ggml_block_fast(x, o);
        } else {
            quantize_ggml_block_plain(rule, x, o);
        }
    }
}

/// The length rule of a ggml MXFP4 row: whole blocks of 32 values, 17 bytes each.
///
/// Panics if the lengths disagree (a caller bug).
fn check_ggml_row(xs: &[f32], out: &[u8]) {
    assert_eq!(
        xs.len() % BLOCK,
        0,
        "MXFP4 row length must be a multiple of 32"
    );
    assert_eq!(
        out.len(),
        xs.len() / BLOCK * GGML_BLOCK_BYTES,
        "ggml MXFP4 row bytes"
    );
}

/// One ggml `block_mxfp4` by [`quantize_block`] and [`repack_to_ggml`] (the plain path).
fn quantize_ggml_block_plain(rule: Rounding, x: &[f32; BLOCK], o: &mut [u8]) {
    let (nibbles, scale) = quantize_block(rule, x);
    o[0] = scale;
    o[1..].copy_from_slice(&repack_to_ggml(&nibbles));
}

/// [`quantize_ggml_row`] block by block through the plain path alone (for the tests, and as
/// the readable statement of what the fast path computes).
pub fn quantize_ggml_row_plain(rule: Rounding, xs: &[f32], out: &mut [u8]) {
    check_ggml_row(xs, out);
    for (x, o) in xs
        .chunks_exact(BLOCK)
        .zip(out.chunks_exact_mut(GGML_BLOCK_BYTES))
    {
        quantize_ggml_block_plain(rule, x.try_into().expect("32 values"), o);
    }
}

/// [`Rounding::Ggml`] for a block of finite values, straight into ggml's layout: the same
/// `amax`, scale byte and codes as [`quantize_codes`] + [`ggml_codes`], in loops over fixed
/// lanes that the compiler vectorizes (the largest magnitude over 4-lane trees, the code as a
/// count of the midpoints below `|x|` in `u32` lanes), and the nibbles packed as ggml stores
/// them instead of through the release layout.
fn ggml_block_fast(x: &[f32; BLOCK], o: &mut [u8]) {
    let amax = crate::legacy::block_absmax(x);
    let e = ggml_scale(amax);
    let d = super::e8m0_to_f32_half(e);
    let mids = GGML_MIDPOINTS.map(|t| t * d);
    let cap = (1..8u32)
        .rev()
        .find(|&i| (super::GGML_KVALUES[i as usize] as f32 * d).is_finite())
        .unwrap_or(0);
    let mut q = [0u8; BLOCK];
    for (q, &v) in q.iter_mut().zip(x) {
        let a = v.abs();
        let mut n = 0u32;
        for &t in &mids {
            n += (a > t) as u32;
        }
        let n = n.min(cap);
        *q = (n | ((((v < 0.0) & (n != 0)) as u32) << 3)) as u8;
    }
    o[0] = e;
    for j in 0..BLOCK / 2 {
        o[1 + j] = q[j] | (q[j + BLOCK / 2] << 4);
    }
}

/// Which rules, applied to the dense values `x`, give exactly this release-layout block
/// (`block`: 16 nibble bytes, `scale`: its E8M0 byte). Bytes are compared, so a `-0` (code 8)
/// where a rule writes `+0` (code 0) is a difference. For a ggml `block_mxfp4`, pass
/// `&repack_from_ggml(&b[1..])` and `b[0]`.
pub fn matching_rules(x: &[f32; BLOCK], block: &[u8], scale: u8) -> RuleSet {
    Rounding::ALL
        .into_iter()
        .filter(|&r| {
            let (b, s) = quantize_block(r, x);
            s == scale && b[..] == *block
        })
        .collect()
}

/// Packs 32 codes pairwise (release layout).
fn pack_pairs(codes: &[u8; BLOCK]) -> [u8; BLOCK_BYTES] {
    let mut out = [0u8; BLOCK_BYTES];
    for (o, pair) in out.iter_mut().zip(codes.chunks_exact(2)) {
        *o = pair[0] | (pair[1] << 4);
    }
    out
}

/// Fills `codes` (one 4-bit code per element) and returns the scale byte.
fn quantize_codes(rule: Rounding, x: &[f32; BLOCK], codes: &mut [u8; BLOCK]) -> u8 {
    if !x.iter().all(|v| v.is_finite()) {
        *codes = [0; BLOCK];
        return E8M0_NAN;
    }
    // ggml: `if (amax < fabsf(v)) amax = fabsf(v)`; for finite values any max is the same.
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    match rule {
        Rounding::Ggml => {
            let e = ggml_scale(amax);
            ggml_codes(x, e, codes);
            e
        }
        Rounding::Ocp => {
            let e = if amax == 0.0 {
                0
            } else {
                clamp_byte(floor_log2(amax) - 2)
            };
            let inv = pow2(127 - e as i32);
            for (c, &v) in codes.iter_mut().zip(x) {
                *c = e2m1_rne(v * inv, true);
            }
            e
        }
        Rounding::Triton => triton(x, amax, codes),
        Rounding::Mlx => {
            let e = mlx_scale(amax);
            let inv = pow2(127 - e as i32);
            for (c, &v) in codes.iter_mut().zip(x) {
                *c = e2m1_ties_down(v * inv);
            }
            e
        }
        Rounding::Mse => mse(x, amax, codes),
    }
}

/// `2^k` as f32, exact for `k` in `-149..=127` (subnormals included).
const fn pow2(k: i32) -> f32 {
    if k >= -126 {
        f32::from_bits(((k + 127) as u32) << 23)
    } else {
        f32::from_bits(1u32 << (k + 149))
    }
}

/// An exponent `e` (scale `2^e`) as an E8M0 byte, clamped to `0..=254`.
fn clamp_byte(e: i32) -> u8 {
    (e + 127).clamp(0, 254) as u8
}

/// `floor(log2(x))` exactly, for finite `x > 0` (subnormals included).
fn floor_log2(x: f32) -> i32 {
    let b = x.to_bits();
    let f = (b >> 23) as i32;
    if f == 0 {
        (31 - b.leading_zeros()) as i32 - 149
    } else {
        f - 127
    }
}

/// `ceil(log2(x))` exactly, for finite `x > 0`.
fn ceil_log2(x: f32) -> i32 {
    let b = x.to_bits();
    let exact = if b >> 23 == 0 {
        b.is_power_of_two()
    } else {
        b & 0x7F_FFFF == 0
    };
    floor_log2(x) + !exact as i32
}

/// `floorf(log2f(x))` as ggml computes it with the C library's `log2f`, for finite `x > 0`.
///
/// `log2f` returns its result rounded to f32, so for the few normal `x` just below a power of
/// two `2^k` (`k != 0`), `log2(x) = k - δ` rounds up to `k` and the floor is `k` instead of
/// `k - 1`. With `x = 2^k (1 - j·2^-24)`, `δ ≈ j·2^-24 / ln 2`, and the rounding goes up when
/// `δ` is below half the spacing of f32 values just below `k`: `j < ln 2 · 2^p` with
/// `p = floor(log2 |k|)`, or `j < ln 2 · 2^(p-1)` when `k` is a positive power of two. This
/// is what a correctly rounded `log2f` gives, and it agrees with glibc's `log2f` on every
/// positive normal f32 (checked exhaustively on x86-64). Subnormal `x` gets the exact floor
/// (`log2f` may round it up by one); either way it is below -125 and the scale clamps to 0.
fn ggml_floor_log2f(x: f32) -> i32 {
    let b = x.to_bits();
    let f = b >> 23;
    if f == 0 {
        return floor_log2(x);
    }
    let e = f as i32 - 127;
    let k = e + 1;
    // How many f32 steps `x` lies below 2^k.
    let j = ((f + 1) << 23) - b;
    if j <= log2f_round_up_steps(k) { k } else { e }
}

/// The largest `j` for which `log2f(2^k (1 - j·2^-24))` rounds to `k` (see
/// [`ggml_floor_log2f`]): `floor(ln 2 · 2^q)` with `q` as described there.
fn log2f_round_up_steps(k: i32) -> u32 {
    if k == 0 {
        // Just below 1, log2 is a tiny negative number, itself representable: never 0.
        return 0;
    }
    let a = k.unsigned_abs();
    let p = (31 - a.leading_zeros()) as i32;
    let q = if k > 0 && a.is_power_of_two() {
        p - 1
    } else {
        p
    };
    // floor(ln 2 · 2^q) for q = -1..=7; the products are at least 0.09 away from an integer.
    const STEPS: [u32; 9] = [0, 0, 1, 2, 5, 11, 22, 44, 88];
    STEPS[(q + 1) as usize]
}

/// ggml's scale byte: `(uint8_t)(floorf(log2f(amax)) - 2 + 127)`, 0 for `amax == 0`, clamped
/// at 0 where ggml's cast is undefined.
fn ggml_scale(amax: f32) -> u8 {
    if amax > 0.0 {
        clamp_byte(ggml_floor_log2f(amax) - 2)
    } else {
        0
    }
}

/// Half-scale thresholds of `best_index_mxfp4`: the midpoints between neighbouring entries of
/// ggml's doubled table `0, 1, 2, 3, 4, 6, 8, 12`.
const GGML_MIDPOINTS: [f32; 7] = [0.5, 1.5, 2.5, 3.5, 5.0, 7.0, 10.0];

/// ggml's element codes for scale byte `e`, equal to `best_index_mxfp4(x, 2^(e-128))` for
/// every finite `x`: that search compares `fabsf(kvalues[i]·d - x)` with a strict `<` in
/// index order, so it returns the nearest entry with the smaller magnitude on a tie, never a
/// negative index for `x >= 0` and never index 8 (`-0`). Near each crossing the subtraction is
/// exact (Sterbenz: neighbouring table entries differ by at most a factor 2), so comparing
/// `|x|` with the exact midpoint `m·d` (a power of two times a short constant) decides as the
/// search does. At the top scale bytes (253, 254) the products `kvalues[i]·d` of the largest
/// entries overflow to infinity and the search never picks them; the count is capped the same
/// way. `tests::ggml_codes_match_the_search` checks all this against a port of the search.
fn ggml_codes(x: &[f32; BLOCK], e: u8, codes: &mut [u8; BLOCK]) {
    let d = super::e8m0_to_f32_half(e);
    let mids = GGML_MIDPOINTS.map(|m| m * d);
    // The largest magnitude index whose table value times `d` is finite.
    let cap = (1..8u8)
        .rev()
        .find(|&i| (super::GGML_KVALUES[i as usize] as f32 * d).is_finite())
        .unwrap_or(0);
    for (c, &v) in codes.iter_mut().zip(x) {
        let a = v.abs();
        let m = mids.iter().map(|&t| (a > t) as u8).sum::<u8>().min(cap);
        *c = if m == 0 {
            0
        } else {
            m | ((v < 0.0) as u8) << 3
        };
    }
}

/// The E2M1 code of a scaled value `q`: nearest, ties to the smaller magnitude, saturating at 6,
/// zero as `+0` (MLX's `argmin` over its FP4 table, and ggml's rule in scale units).
fn e2m1_ties_down(q: f32) -> u8 {
    let a = q.abs();
    let m = (a > 0.25) as u8
        + (a > 0.75) as u8
        + (a > 1.25) as u8
        + (a > 1.75) as u8
        + (a > 2.5) as u8
        + (a > 3.5) as u8
        + (a > 5.0) as u8;
    if m == 0 {
        0
    } else {
        m | ((q < 0.0) as u8) << 3
    }
}

/// The E2M1 code of a scaled value `q`: nearest, ties to even, saturating at 6; the sign of a
/// value that rounds to zero is kept (code 8) when `signed_zero`, else zero is `+0`.
fn e2m1_rne(q: f32, signed_zero: bool) -> u8 {
    let m = super::e2m1_magnitude_code(q.abs());
    let neg = if signed_zero {
        q.is_sign_negative()
    } else {
        m != 0 && q < 0.0
    };
    m | (neg as u8) << 3
}

/// triton_kernels `_compute_quant_and_scale` for an fp4 output (`ROUND_UP`), returning the
/// scale byte.
fn triton(x: &[f32; BLOCK], amax: f32, codes: &mut [u8; BLOCK]) -> u8 {
    let d = amax / 6.0;
    // Adding 0x7FFFFF bumps the exponent unless the mantissa is zero (finite d, no overflow).
    let bits = (d.to_bits() + 0x007F_FFFF) & 0x7F80_0000;
    let quant_scale = if bits == 0 {
        0.0
    } else {
        1.0 / f32::from_bits(bits)
    };
    for (c, &v) in codes.iter_mut().zip(x) {
        *c = triton_e2m1((v * quant_scale).to_bits());
    }
    (bits >> 23) as u8
}

/// triton_kernels' f32 → E2M1 conversion on the bits of `q` (round to nearest even with
/// guard/sticky bits, subnormals through a right shift, saturating at code 7, sign kept).
fn triton_e2m1(q: u32) -> u8 {
    const E8_BIAS: u32 = 127;
    const E2_BIAS: u32 = 1;
    let sign = (q & 0x8000_0000) >> 28;
    let exponent = (q >> 23) & 0xFF;
    let mut mantissa = q & 0x7F_FFFF;
    if exponent < E8_BIAS {
        // `(0x400000 | (m >> 1)) >> (126 - exponent)`; a shift of 32 or more gives 0 (PTX
        // `shr` clamps the count, and such a value is far below the first rounding point).
        let shift = E8_BIAS - (exponent + 1);
        mantissa = (0x40_0000 | (mantissa >> 1))
            .checked_shr(shift)
            .unwrap_or(0);
    }
    let exponent = exponent.max(E8_BIAS - E2_BIAS) - (E8_BIAS - E2_BIAS);
    let m2bits = mantissa >> 21;
    let lsb_keep = (m2bits >> 1) & 1;
    let guard = m2bits & 1;
    let sticky = (mantissa & 0x1F_FFFF != 0) as u32;
    let round_inc = guard & (sticky | lsb_keep);
    let code = ((((exponent << 2) | m2bits) + round_inc) >> 1).min(7);
    (sign | code) as u8
}

/// MLX's scale byte: `ceil(log2(amax / 6))` (`amax / 6` rounded to f32 first), 127 when that
/// quotient is zero, clamped to `0..=254`.
fn mlx_scale(amax: f32) -> u8 {
    let d = amax / 6.0;
    if d == 0.0 {
        127
    } else {
        clamp_byte(ceil_log2(d))
    }
}

/// The [`Rounding::Mse`] rule, returning the scale byte.
fn mse(x: &[f32; BLOCK], amax: f32, codes: &mut [u8; BLOCK]) -> u8 {
    if amax == 0.0 {
        *codes = [0; BLOCK];
        return 0;
    }
    let lo = ggml_scale(amax);
    let hi = clamp_byte(ceil_log2(amax / 6.0));
    let err_lo = mse_candidate(x, lo, codes);
    if hi == lo {
        return lo;
    }
    let mut other = [0u8; BLOCK];
    if mse_candidate(x, hi, &mut other) < err_lo {
        *codes = other;
        hi
    } else {
        lo
    }
}

/// Codes for scale byte `e` (nearest, ties to even, `+0`) and their squared error: the
/// decoded value is computed as decoding does (the f32 product, which can overflow to ±inf at
/// the top of the f32 range), the differences and their sum in f64.
fn mse_candidate(x: &[f32; BLOCK], e: u8, codes: &mut [u8; BLOCK]) -> f64 {
    let inv = pow2(127 - e as i32);
    let scale = super::e8m0_to_f32(e);
    let mut sse = 0f64;
    for (c, &v) in codes.iter_mut().zip(x) {
        *c = e2m1_rne(v * inv, false);
        let r = super::E2M1_VALUES[*c as usize] * scale;
        let diff = v as f64 - r as f64;
        sse += diff * diff;
    }
    sse
}

#[cfg(test)]
mod tests;
