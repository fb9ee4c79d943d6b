//! f32 ↔ bf16 / f16 conversion, for single values and little-endian byte rows.
//!
//! Rounding is IEEE round-to-nearest-even in both directions (the `half` crate), which is
//! what torch, numpy and ggml do (gguf-py `quants.py` BF16, ggml `ggml-impl.h`). bf16 NaN keeps its sign and becomes a
//! quiet NaN; f16 overflow becomes ±inf. Every bf16 and every f16 value is exact in f32, so
//! the decode direction never rounds.

use half::{bf16, f16, slice::HalfFloatSliceExt};

/// Values per step of the slice conversions (a stack buffer of `half` values in between, so
/// the conversion runs over whole slices: `half` picks its F16C path once per call).
const STEP: usize = 256;

/// Decodes little-endian bf16 bytes into f32. `bytes.len()` must be `2 * out.len()`.
pub fn bf16_row_to_f32(bytes: &[u8], out: &mut [f32]) {
    assert_eq!(bytes.len(), 2 * out.len(), "bf16 row length");
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16);
    }
}

/// Decodes little-endian f16 bytes into f32. `bytes.len()` must be `2 * out.len()`.
pub fn f16_row_to_f32(bytes: &[u8], out: &mut [f32]) {
    assert_eq!(bytes.len(), 2 * out.len(), "f16 row length");
    let mut tmp = [f16::ZERO; STEP];
    for (o, b) in out.chunks_mut(STEP).zip(bytes.chunks(2 * STEP)) {
        let t = &mut tmp[..o.len()];
        for (h, b) in t.iter_mut().zip(b.chunks_exact(2)) {
            *h = f16::from_bits(u16::from_le_bytes([b[0], b[1]]));
        }
        t.convert_to_f32_slice(o);
    }
}

/// Decodes little-endian f32 bytes. `bytes.len()` must be `4 * out.len()`.
pub fn f32_row_from_le(bytes: &[u8], out: &mut [f32]) {
    assert_eq!(bytes.len(), 4 * out.len(), "f32 row length");
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

/// Decodes one bf16 value given as its raw bits.
#[inline]
pub fn bf16_bits_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// Decodes one f16 value given as its raw bits.
#[inline]
pub fn f16_bits_to_f32(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// Rounds f32 to bf16 bits, nearest-even (NaN stays NaN).
#[inline]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    bf16::from_f32(x).to_bits()
}

/// Rounds f32 to f16 bits, nearest-even; values beyond ±65504 become ±inf.
#[inline]
pub fn f32_to_f16_bits(x: f32) -> u16 {
    f16::from_f32(x).to_bits()
}

/// Encodes f32 values as little-endian bf16 bytes (`out.len() == 2 * xs.len()`).
pub fn f32_row_to_bf16(xs: &[f32], out: &mut [u8]) {
    assert_eq!(out.len(), 2 * xs.len(), "bf16 output length");
    for (x, o) in xs.iter().zip(out.chunks_exact_mut(2)) {
        o.copy_from_slice(&f32_to_bf16_bits_branchless(*x).to_le_bytes());
    }
}

/// [`f32_to_bf16_bits`] without branches, so row loops vectorize: round to nearest even by
/// adding `0x7fff` plus the kept part's lowest bit; NaN keeps its sign and top mantissa bits and
/// becomes quiet, as in `half`. Equal to it on every input (tested on a sweep of bit patterns).
#[inline]
pub fn f32_to_bf16_bits_branchless(x: f32) -> u16 {
    let b = x.to_bits();
    let rounded = (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16;
    let nan = ((b >> 16) as u16) | 0x40;
    if b & 0x7fff_ffff > 0x7f80_0000 {
        nan
    } else {
        rounded
    }
}

/// Encodes f32 values as little-endian f16 bytes (`out.len() == 2 * xs.len()`).
pub fn f32_row_to_f16(xs: &[f32], out: &mut [u8]) {
    assert_eq!(out.len(), 2 * xs.len(), "f16 output length");
    let mut tmp = [f16::ZERO; STEP];
    for (x, o) in xs.chunks(STEP).zip(out.chunks_mut(2 * STEP)) {
        let t = &mut tmp[..x.len()];
        t.convert_from_f32_slice(x);
        for (h, o) in t.iter().zip(o.chunks_exact_mut(2)) {
            o.copy_from_slice(&h.to_bits().to_le_bytes());
        }
    }
}

/// Encodes f32 values as little-endian f32 bytes (`out.len() == 4 * xs.len()`).
pub fn f32_row_to_le(xs: &[f32], out: &mut [u8]) {
    assert_eq!(out.len(), 4 * xs.len(), "f32 output length");
    for (x, o) in xs.iter().zip(out.chunks_exact_mut(4)) {
        o.copy_from_slice(&x.to_le_bytes());
    }
}

/// How many of `exact` were stored as something else in `stored` (the same values after a
/// round trip), and the largest absolute change. NaN stored as NaN is no change; a change whose
/// size is NaN counts as infinite.
pub fn rounding_errors(exact: &[f32], stored: &[f32]) -> (u64, f32) {
    // Branch-free so it vectorizes on the baseline target (SSE2): sizes are non-negative, so
    // their bit patterns order like the values as `i32` (whose maximum SSE2 computes with a
    // compare), and a NaN size orders above +inf. `&` instead of `&&` and a mask instead of a
    // branch leave no control flow per value.
    let (mut n, mut worst) = (0u64, 0i32);
    for (x, y) in exact.chunks(STEP).zip(stored.chunks(STEP)) {
        let (mut k, mut w) = (0u32, 0i32);
        for (&a, &b) in x.iter().zip(y) {
            let changed = ((a != b) & !(a.is_nan() & b.is_nan())) as u32;
            let size = ((a - b).abs().to_bits() & 0u32.wrapping_sub(changed)) as i32;
            k += changed;
            w = w.max(size);
        }
        n += k as u64;
        worst = worst.max(w);
    }
    (
        n,
        if worst as u32 > f32::INFINITY.to_bits() {
            f32::INFINITY
        } else {
            f32::from_bits(worst as u32)
        },
    )
}

/// Encodes `xs` as little-endian f16 (`f16 == true`) or bf16 bytes into `out` (two bytes a
/// value) and returns [`rounding_errors`] of the values as stored.
pub fn f32_row_to_half_counting(xs: &[f32], f16: bool, out: &mut [u8]) -> (u64, f32) {
    if f16 {
        f32_row_to_f16(xs, out);
    } else {
        f32_row_to_bf16(xs, out);
    }
    let (mut n, mut err) = (0u64, 0f32);
    let mut back = [0f32; STEP];
    for (x, o) in xs.chunks(STEP).zip(out.chunks(2 * STEP)) {
        let b = &mut back[..x.len()];
        if f16 {
            f16_row_to_f32(o, b);
        } else {
            bf16_row_to_f32(o, b);
        }
        let (k, e) = rounding_errors(x, b);
        n += k;
        err = err.max(e);
    }
    (n, err)
}

/// True when `x` survives the round trip f32 → f16 → f32 unchanged (NaN counts as exact:
/// f16 has NaN too).
#[inline]
pub fn is_exact_in_f16(x: f32) -> bool {
    x.is_nan() || f16::from_f32(x).to_f32() == x
}

/// True when `x` survives the round trip f32 → bf16 → f32 unchanged.
#[inline]
pub fn is_exact_in_bf16(x: f32) -> bool {
    x.is_nan() || bf16::from_f32(x).to_f32() == x
}

/// True when every value of `xs` is finite (no NaN, no ±Inf); branch-free within steps so it
/// vectorizes.
pub fn all_finite(xs: &[f32]) -> bool {
    xs.chunks(STEP)
        .all(|c| c.iter().fold(true, |ok, x| ok & x.is_finite()))
}

/// The index of the first NaN or ±Inf in `xs`, `None` when every value is finite. Scans in
/// branch-free steps (like [`all_finite`]) and only looks inside the step that failed, so the
/// common all-finite case costs what [`all_finite`] costs. Encoders call this to refuse a
/// tensor with the position of its first bad value (block = index / 32 for MXFP4).
pub fn first_nonfinite(xs: &[f32]) -> Option<usize> {
    let mut base = 0;
    for c in xs.chunks(STEP) {
        if !c.iter().fold(true, |ok, x| ok & x.is_finite()) {
            return c.iter().position(|x| !x.is_finite()).map(|i| base + i);
        }
        base += c.len();
    }
    None
}

/// True when no value of the little-endian BF16 `bytes` is NaN or ±Inf (the values whose
/// eight exponent bits are all ones), decided on the bits without decoding.
pub fn bf16_bytes_all_finite(bytes: &[u8]) -> bool {
    bytes.chunks(2 * STEP).all(|c| {
        c.chunks_exact(2).fold(true, |ok, b| {
            ok & (u16::from_le_bytes([b[0], b[1]]) & 0x7f80 != 0x7f80)
        })
    })
}

/// `(NaN, ±Inf)` counts among little-endian IEEE values of `size` bytes (2 for F16 and BF16,
/// 4 for F32) whose exponent field is `exp` and mantissa field `man` (all ones in the exponent:
/// infinite when the mantissa is zero, NaN otherwise).
fn nonfinite_counts(bytes: &[u8], size: usize, exp: u32, man: u32) -> (u64, u64) {
    let (mut nan, mut inf) = (0u64, 0u64);
    for b in bytes.chunks_exact(size) {
        let v = if size == 2 {
            u16::from_le_bytes([b[0], b[1]]) as u32
        } else {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        };
        let special = v & exp == exp;
        nan += (special && v & man != 0) as u64;
        inf += (special && v & man == 0) as u64;
    }
    (nan, inf)
}

/// `(NaN, ±Inf)` counts among little-endian BF16 values.
pub fn nonfinite_counts_bf16(bytes: &[u8]) -> (u64, u64) {
    nonfinite_counts(bytes, 2, 0x7F80, 0x007F)
}

/// `(NaN, ±Inf)` counts among little-endian F16 values.
pub fn nonfinite_counts_f16(bytes: &[u8]) -> (u64, u64) {
    nonfinite_counts(bytes, 2, 0x7C00, 0x03FF)
}

/// `(NaN, ±Inf)` counts among little-endian F32 values.
pub fn nonfinite_counts_f32(bytes: &[u8]) -> (u64, u64) {
    nonfinite_counts(bytes, 4, 0x7F80_0000, 0x007F_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonfinite_counts_by_exponent_and_mantissa() {
        let bf: Vec<u8> = [0x7F80u16, 0xFF80, 0x7FC0, 0x3F80, 0x7F7F]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(nonfinite_counts_bf16(&bf), (1, 2));
        let h: Vec<u8> = [0x7C00u16, 0x7E00, 0x7BFF]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(nonfinite_counts_f16(&h), (1, 1));
        let f: Vec<u8> = [f32::NAN, f32::NEG_INFINITY, f32::MAX, 1.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(nonfinite_counts_f32(&f), (1, 1));
    }

    /// Edge values: zeros, subnormals of both formats, halfway cases, the largest finite values,
    /// overflow, infinities and NaNs of both signs, plus a sweep of the f32 exponent range.
    fn edge_values() -> Vec<f32> {
        let mut xs = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            65504.0,
            65520.0,
            65536.0,
            -70000.0,
            1e-8,
            -6e-8,
            2f32.powi(-24),
            2f32.powi(-25),
            2f32.powi(-14),
            1.0 + 1.0 / 2048.0,
            1.0 + 3.0 / 2048.0,
            1.0 + 1.0 / 256.0,
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7f80_0001),
            f32::from_bits(0xffc0_1234),
        ];
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20000 {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            xs.push(f32::from_bits((s >> 32) as u32));
        }
        xs
    }

    #[test]
    fn branchless_bf16_rounding_equals_half_on_a_sweep_of_bit_patterns() {
        let mut bits: Vec<u32> = (0..=u32::MAX).step_by(4093).collect();
        bits.extend([
            0x7f7f_ffff,
            0xff7f_ffff,
            0x7f80_0000,
            0x7f80_0001,
            0xffff_ffff,
            0x3f80_8000,
            0x3f81_8000,
            0x0000_8000,
            0x8000_8001,
        ]);
        for b in bits {
            let x = f32::from_bits(b);
            assert_eq!(
                f32_to_bf16_bits_branchless(x),
                f32_to_bf16_bits(x),
                "{b:#010x}"
            );
        }
    }

    #[test]
    fn slice_conversions_equal_the_value_by_value_ones() {
        let xs = edge_values();
        let mut out = vec![0u8; 2 * xs.len()];
        f32_row_to_f16(&xs, &mut out);
        for (x, o) in xs.iter().zip(out.chunks_exact(2)) {
            assert_eq!(
                u16::from_le_bytes([o[0], o[1]]),
                f32_to_f16_bits(*x),
                "{x:e}"
            );
        }
        let mut back = vec![0f32; xs.len()];
        f16_row_to_f32(&out, &mut back);
        for (y, o) in back.iter().zip(out.chunks_exact(2)) {
            assert_eq!(
                y.to_bits(),
                f16_bits_to_f32(u16::from_le_bytes([o[0], o[1]])).to_bits()
            );
        }
    }

    #[test]
    fn counting_encoders_count_what_changed() {
        let xs = edge_values();
        for f16 in [true, false] {
            let mut out = vec![0u8; 2 * xs.len()];
            let (n, err) = f32_row_to_half_counting(&xs, f16, &mut out);
            let (mut want_n, mut want_err) = (0u64, 0f32);
            for (x, o) in xs.iter().zip(out.chunks_exact(2)) {
                let bits = u16::from_le_bytes([o[0], o[1]]);
                let (exact, y) = if f16 {
                    (is_exact_in_f16(*x), f16_bits_to_f32(bits))
                } else {
                    (is_exact_in_bf16(*x), bf16_bits_to_f32(bits))
                };
                assert_eq!(
                    bits,
                    if f16 {
                        f32_to_f16_bits(*x)
                    } else {
                        f32_to_bf16_bits(*x)
                    }
                );
                if !exact {
                    want_n += 1;
                    let d = (x - y).abs();
                    want_err = if d.is_nan() {
                        f32::INFINITY
                    } else {
                        want_err.max(d)
                    };
                }
            }
            assert_eq!((n, err), (want_n, want_err), "f16 = {f16}");
            assert!(
                n > 0 && err == f32::INFINITY,
                "overflow to inf counts as an infinite change"
            );
        }
        assert_eq!(
            rounding_errors(&[1.0, f32::NAN], &[1.0, f32::NAN]),
            (0, 0.0)
        );
        assert_eq!(rounding_errors(&[1.0, 2.0], &[1.5, 2.0]), (1, 0.5));
        // Against the plain definition, on lengths around the step, with NaN, ±inf and ±0.
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            1e-45,
            3.0,
        ];
        let mut state = 7u32;
        let mut next = move || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            state
        };
        for len in [0, 1, 3, 255, 256, 257, 1000] {
            for rate in [0u32, 3, 50] {
                let x: Vec<f32> = (0..len)
                    .map(|_| match next() % 100 {
                        r if r < rate => specials[(next() % 7) as usize],
                        _ => (next() >> 8) as f32 / 1e3,
                    })
                    .collect();
                let y: Vec<f32> = x
                    .iter()
                    .map(|&v| match next() % 100 {
                        r if r < rate => specials[(next() % 7) as usize],
                        r if r < 60 => v + (next() % 5) as f32 * 0.25,
                        _ => v,
                    })
                    .collect();
                let (mut want_n, mut want_err) = (0u64, 0f32);
                for (&a, &b) in x.iter().zip(&y) {
                    if a != b && !(a.is_nan() && b.is_nan()) {
                        want_n += 1;
                        let d = (a - b).abs();
                        want_err = if d.is_nan() || want_err == f32::INFINITY {
                            f32::INFINITY
                        } else {
                            want_err.max(d)
                        };
                    }
                }
                let (n, err) = rounding_errors(&x, &y);
                assert_eq!(n, want_n, "len {len} rate {rate}");
                assert_eq!(err.to_bits(), want_err.to_bits(), "len {len} rate {rate}");
            }
        }
    }

    #[test]
    fn bf16_finite_check_agrees_with_decoding_on_every_bit_pattern() {
        for bits in 0u16..=0xFFFF {
            let finite = bf16_bits_to_f32(bits).is_finite();
            assert_eq!(
                bf16_bytes_all_finite(&bits.to_le_bytes()),
                finite,
                "{bits:#06x}"
            );
        }
        assert!(bf16_bytes_all_finite(&[]));
        let mut xs = vec![1.0f32; 1000];
        assert!(all_finite(&xs) && all_finite(&[]));
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            xs[777] = bad;
            assert!(!all_finite(&xs));
        }
    }

    #[test]
    fn first_nonfinite_finds_the_first_bad_value_in_any_step() {
        let mut xs = vec![0.5f32; 1000];
        assert_eq!(first_nonfinite(&xs), None);
        assert_eq!(first_nonfinite(&[]), None);
        for (i, bad) in [
            (999, f32::NAN),
            (256, f32::INFINITY),
            (3, f32::NEG_INFINITY),
        ] {
            xs[i] = bad;
            assert_eq!(first_nonfinite(&xs), Some(i), "{bad} at {i}");
        }
        // f32::MAX and subnormals are finite.
        assert_eq!(first_nonfinite(&[f32::MAX, -f32::MAX, 1e-45]), None);
    }

    #[test]
    fn bf16_golden_values() {
        // 1.0 = 0x3F80, -2.0 = 0xC000, smallest normal 2^-126 = 0x0080.
        let bytes = [0x80, 0x3F, 0x00, 0xC0, 0x80, 0x00];
        let mut out = [0f32; 3];
        bf16_row_to_f32(&bytes, &mut out);
        assert_eq!(out, [1.0, -2.0, f32::MIN_POSITIVE]);
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties go to the even mantissa (1.0).
        assert_eq!(f32_to_bf16_bits(1.0 + 1.0 / 256.0), 0x3F80);
        // 1 + 3·2^-8 is halfway between 1.0078125 (odd) and 1.015625 (even).
        assert_eq!(f32_to_bf16_bits(1.0 + 3.0 / 256.0), 0x3F82);
        assert!(bf16_bits_to_f32(f32_to_bf16_bits(f32::NAN)).is_nan());
    }

    #[test]
    fn bf16_round_trip_is_identity_on_bf16_values() {
        for bits in (0u16..=0xFFFF).step_by(7) {
            let x = bf16_bits_to_f32(bits);
            if x.is_nan() {
                continue;
            }
            assert_eq!(f32_to_bf16_bits(x), bits);
        }
    }

    #[test]
    fn f16_golden_values_and_overflow() {
        assert_eq!(f16_bits_to_f32(0x3C00), 1.0);
        assert_eq!(f16_bits_to_f32(0x7BFF), 65504.0);
        assert_eq!(f16_bits_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f32_to_f16_bits(70000.0), 0x7C00);
        assert!(is_exact_in_f16(2f32.powi(-24)));
        assert!(!is_exact_in_f16(2f32.powi(-25)));
        assert!(!is_exact_in_f16(65536.0));
        assert!(is_exact_in_bf16(65536.0));
    }

    #[test]
    fn rows_round_trip() {
        let xs = [0.5f32, -3.25, 1e-3, 0.0, -0.0, 1234.0];
        let mut b = vec![0u8; 12];
        f32_row_to_f16(&xs, &mut b);
        let mut back = [0f32; 6];
        f16_row_to_f32(&b, &mut back);
        for (x, y) in xs.iter().zip(back) {
            assert!((x - y).abs() <= x.abs() * 1e-3);
        }
        let mut b4 = vec![0u8; 24];
        f32_row_to_le(&xs, &mut b4);
        f32_row_from_le(&b4, &mut back);
        assert_eq!(back, xs);
    }
}
