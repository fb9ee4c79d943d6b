use super::*;
use crate::mxfp4::{
    E2M1_VALUES, GGML_KVALUES, decode_block, decode_ggml_block, e2m1_magnitude_code,
    e8m0_to_f32_half, repack_from_ggml,
};

/// Golden blocks of llama-quantize's MXFP4 experts (fixtures `finetuned/*-gpt-oss-ft`): 32 f32
/// inputs then the 17-byte `block_mxfp4`. See `quant/tests/data/README.md`.
const GGML_FIXTURE: &[u8] = include_bytes!("../../../tests/data/mxfp4_ggml_fixture_blocks.bin");
/// Edge-case blocks through ggml's `quantize_row_mxfp4_ref`, same record layout.
const GGML_EDGE: &[u8] = include_bytes!("../../../tests/data/mxfp4_ggml_edge_blocks.bin");
/// Blocks through `mx.quantize(mode="mxfp4")`: 32 f32, the scale byte, 16 nibble bytes.
const MLX: &[u8] = include_bytes!("../../../tests/data/mxfp4_mlx_blocks.bin");

fn f32s(bytes: &[u8]) -> [f32; BLOCK] {
    let mut x = [0f32; BLOCK];
    for (v, b) in x.iter_mut().zip(bytes.chunks_exact(4)) {
        *v = f32::from_le_bytes(b.try_into().unwrap());
    }
    x
}

fn ggml_records(data: &[u8]) -> Vec<([f32; BLOCK], [u8; GGML_BLOCK_BYTES])> {
    assert_eq!(data.len() % (128 + GGML_BLOCK_BYTES), 0);
    data.chunks_exact(128 + GGML_BLOCK_BYTES)
        .map(|r| (f32s(&r[..128]), r[128..].try_into().unwrap()))
        .collect()
}

fn decode(block: &[u8; BLOCK_BYTES], scale: u8) -> [f32; BLOCK] {
    let mut out = [0f32; BLOCK];
    decode_block(block, scale, &mut out);
    out
}

/// A small deterministic generator (PCG-style LCG, top bits).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 32) as u32
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 8) as f32 / (1u32 << 24) as f32
    }
}

/// ggml's `best_index_mxfp4`, ported literally: the reference for [`ggml_codes`].
fn best_index_mxfp4(x: f32, e: f32) -> u8 {
    let mut best_index = 0;
    let mut best_err = (GGML_KVALUES[0] as f32 * e - x).abs();
    for (i, &kv) in GGML_KVALUES.iter().enumerate().skip(1) {
        let err = (kv as f32 * e - x).abs();
        if err < best_err {
            best_index = i;
            best_err = err;
        }
    }
    best_index as u8
}

#[test]
fn ggml_rule_reproduces_llama_quantize_fixture_blocks() {
    let recs = ggml_records(GGML_FIXTURE);
    assert_eq!(recs.len(), 36);
    let mut clipped = 0;
    for (i, (x, want)) in recs.iter().enumerate() {
        let mut got = [0u8; GGML_BLOCK_BYTES];
        quantize_ggml_row(Rounding::Ggml, x, &mut got);
        assert_eq!(&got, want, "fixture block {i}");
        let mut via_codec = [0u8; GGML_BLOCK_BYTES];
        crate::Codec::MXFP4.quantize_row(x, &mut via_codec);
        assert_eq!(&via_codec, want, "fixture block {i} through Codec");
        // Half of them hold a value whose floor-rule magnitude exceeds 6 units (ggml clips it).
        let units = x.iter().fold(0f32, |m, v| m.max(v.abs())) / crate::mxfp4::e8m0_to_f32(want[0]);
        clipped += (units > 6.0) as usize;
        // The release-layout row writer gives the same block, repacked.
        let mut blocks = [0u8; BLOCK_BYTES];
        let mut scale = [0u8; 1];
        quantize_row(Rounding::Ggml, x, &mut blocks, &mut scale);
        assert_eq!(scale[0], want[0]);
        assert_eq!(blocks, repack_from_ggml(&want[1..]));
        assert!(matching_rules(x, &blocks, scale[0]).contains(Rounding::Ggml));
    }
    assert_eq!(clipped, 18);
}

#[test]
fn ggml_rule_reproduces_ggml_on_edge_blocks() {
    // Every midpoint of both signs at several scales, clipping, subnormal elements, zero and
    // negative-zero blocks, f32::MAX, and maxima just below powers of two (log2f rounding up).
    let recs = ggml_records(GGML_EDGE);
    assert_eq!(recs.len(), 46);
    for (i, (x, want)) in recs.iter().enumerate() {
        let (nibbles, scale) = quantize_block(Rounding::Ggml, x);
        assert_eq!(scale, want[0], "edge block {i}: scale");
        assert_eq!(
            nibbles,
            repack_from_ggml(&want[1..]),
            "edge block {i}: codes"
        );
    }
}

#[test]
fn ggml_codes_match_the_search() {
    let mut rng = Lcg(99);
    for e in 0..=254u8 {
        let d = e8m0_to_f32_half(e);
        let mut xs = Vec::new();
        for &m in &GGML_MIDPOINTS {
            let t = m * d;
            for t in [t, -t] {
                xs.extend([
                    t,
                    f32::from_bits(t.to_bits() - 1),
                    f32::from_bits(t.to_bits() + 1),
                ]);
            }
        }
        for _ in 0..200 {
            // Up to 16 half-scale units (ggml's largest scaled magnitude is below 16).
            xs.push((rng.unit() * 32.0 - 16.0) * d);
        }
        xs.extend([0.0, -0.0, 12.0 * d, -12.0 * d, 15.99 * d, f32::from_bits(1)]);
        for x in xs.into_iter().filter(|x| x.is_finite()) {
            let mut block = [0f32; BLOCK];
            block[0] = x;
            let mut codes = [0u8; BLOCK];
            ggml_codes(&block, e, &mut codes);
            assert_eq!(codes[0], best_index_mxfp4(x, d), "x = {x:e}, e = {e}");
        }
    }
}

#[test]
fn ggml_floor_log2f_is_exact_away_from_powers_of_two_and_rounds_up_just_below() {
    assert_eq!(ggml_floor_log2f(1.0), 0);
    assert_eq!(ggml_floor_log2f(0.75), -1);
    assert_eq!(ggml_floor_log2f(f32::from_bits(1)), -149);
    // Just below 2^-6: log2 = -6 - j·2^-24/ln2 rounds to -6 for j ≤ ln2·4 = 2.77.
    let below = |k: i32, j: u32| f32::from_bits(pow2(k).to_bits() - j);
    assert_eq!(ggml_floor_log2f(below(-6, 1)), -6);
    assert_eq!(ggml_floor_log2f(below(-6, 2)), -6);
    assert_eq!(ggml_floor_log2f(below(-6, 3)), -7);
    // Just below 2 (k = 1, a positive power of two): never rounds up.
    assert_eq!(ggml_floor_log2f(below(1, 1)), 0);
    // Just below 8 = 2^3 (k = 3, not a power of two): one step rounds up.
    assert_eq!(ggml_floor_log2f(below(3, 1)), 3);
    assert_eq!(ggml_floor_log2f(below(3, 2)), 2);
    // f32::MAX: log2 rounds to 128.
    assert_eq!(ggml_floor_log2f(f32::MAX), 128);
    assert_eq!(ggml_scale(f32::MAX), 253);
}

/// Compares with the platform's `log2f` (glibc's on Linux, the one llama.cpp's build uses)
/// around every power of two, where its rounding matters.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn ggml_floor_log2f_agrees_with_libm_near_every_power_of_two() {
    for f in 1..=254u32 {
        let p = f << 23;
        for j in 0..300u32 {
            for b in [p - j, p + j] {
                let x = f32::from_bits(b);
                // Subnormals differ (exact floor here) but only ever reach the clamp.
                if x.is_normal() {
                    assert_eq!(ggml_floor_log2f(x), x.log2().floor() as i32, "{x:e}");
                }
            }
        }
    }
}

/// Every positive normal f32 (about two billion `log2f` calls): run with `--ignored` in a
/// release build. Passed on x86-64 glibc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
#[ignore]
fn ggml_floor_log2f_agrees_with_libm_everywhere() {
    for b in 0x0080_0000u32..0x7F80_0000 {
        let x = f32::from_bits(b);
        assert_eq!(ggml_floor_log2f(x), x.log2().floor() as i32, "{x:e}");
    }
}

#[test]
fn mlx_rule_reproduces_mx_quantize_blocks() {
    const REC: usize = 128 + 1 + BLOCK_BYTES;
    assert_eq!(MLX.len() % REC, 0);
    assert_eq!(MLX.len() / REC, 26);
    for (i, r) in MLX.chunks_exact(REC).enumerate() {
        let x = f32s(&r[..128]);
        let (nibbles, scale) = quantize_block(Rounding::Mlx, &x);
        assert_eq!(scale, r[128], "mlx block {i}: scale");
        assert_eq!(nibbles[..], r[129..], "mlx block {i}: codes");
    }
}

/// Blocks whose values all lie on the MXFP4 grid, as a dequantized release holds them.
fn on_grid_blocks(n: usize, allow_negative_zero: bool) -> Vec<([u8; BLOCK_BYTES], u8)> {
    let mut rng = Lcg(2024);
    (0..n)
        .map(|i| {
            // Scale bytes 1..=252 (see the test below for 0; from 253 on, codes 6 and 7 decode
            // to more than f32 holds), biased to the usual range.
            let scale = if i % 4 == 0 {
                1 + (rng.next() % 252) as u8
            } else {
                110 + (rng.next() % 25) as u8
            };
            // Largest code limited per block so every "largest code" case occurs.
            let top = 1 + rng.next() % 7;
            let mut block = [0u8; BLOCK_BYTES];
            for b in block.iter_mut() {
                let mut code = || {
                    let mag = (rng.next() % (top + 1)) as u8;
                    let neg = rng.next() & 1 == 1;
                    if mag == 0 && !allow_negative_zero {
                        0
                    } else {
                        mag | (neg as u8) << 3
                    }
                };
                *b = code() | code() << 4;
            }
            (block, scale)
        })
        .collect()
}

#[test]
fn requantizing_on_grid_values_gives_them_back_under_every_rule() {
    let mut same_bytes = [0usize; 5];
    let mut top_ge4 = 0;
    for (block, scale) in on_grid_blocks(4000, true) {
        let values = decode(&block, scale);
        let top = (0..BLOCK)
            .map(|k| crate::mxfp4::code_at(&block, k) & 7)
            .max()
            .unwrap();
        top_ge4 += (top >= 6) as usize;
        for (r, rule) in Rounding::ALL.into_iter().enumerate() {
            let (b2, s2) = quantize_block(rule, &values);
            assert_eq!(
                decode(&b2, s2),
                values,
                "{rule}, scale {scale}, {block:02x?}"
            );
            // Same bytes whenever the largest code is 4 or 6 (codes 6, 7) and no -0 is in the
            // way (ggml, MLX and mse write +0).
            let has_neg_zero = (0..BLOCK).any(|k| crate::mxfp4::code_at(&block, k) == 8);
            if top >= 6 && (!has_neg_zero || matches!(rule, Rounding::Ocp | Rounding::Triton)) {
                assert_eq!((b2, s2), (block, scale), "{rule}: bytes");
            }
            same_bytes[r] += ((b2, s2) == (block, scale)) as usize;
        }
    }
    assert!(top_ge4 > 500);
    // Blocks whose largest code is below 4 get another scale byte (and codes) under every
    // rule, so no rule reproduces all bytes.
    assert!(same_bytes.iter().all(|&n| n < 4000), "{same_bytes:?}");
}

#[test]
fn requantizing_on_grid_values_without_negative_zero_gives_the_bytes_back_when_top_code_is_4_or_6()
{
    for (block, scale) in on_grid_blocks(2000, false) {
        // Below byte 4 triton's smallest scale 2^-126 can coincide with the block's own.
        if scale < 4 {
            continue;
        }
        let top = (0..BLOCK)
            .map(|k| crate::mxfp4::code_at(&block, k) & 7)
            .max()
            .unwrap();
        let values = decode(&block, scale);
        let rules = matching_rules(&values, &block, scale);
        if top >= 6 {
            assert_eq!(rules.len(), 5, "scale {scale}, {block:02x?}");
        } else {
            assert!(rules.is_empty(), "top code {top}: {:?}", rules);
        }
    }
}

#[test]
fn on_grid_values_at_the_smallest_scales() {
    // Scale bytes 0..=3: the floor rules and MLX clamp at byte 0 and keep every value;
    // triton's bit trick cannot go below byte 1, so at scale byte 0 it loses 0.5·2^-127.
    for scale in 0..=3u8 {
        for top in 1..=7u8 {
            let mut block = [0u8; BLOCK_BYTES];
            block[0] = top | 1 << 4; // element 0 = top code, element 1 = 0.5
            block[3] = 9 << 4; // element 7 = -0.5
            let values = decode(&block, scale);
            for rule in [Rounding::Ggml, Rounding::Ocp, Rounding::Mlx, Rounding::Mse] {
                let (b, s) = quantize_block(rule, &values);
                assert_eq!(decode(&b, s), values, "{rule}, scale {scale}, top {top}");
            }
            let (b, s) = quantize_block(Rounding::Triton, &values);
            assert!(s >= 1);
            assert_eq!(
                decode(&b, s) == values,
                scale >= 1,
                "triton, scale {scale}, top {top}"
            );
        }
    }
    // 0.5·2^-127 = 2^-128 under triton's smallest scale 2^-126 is 0.25 units: rounds to 0.
    let mut x = [0f32; BLOCK];
    x[0] = 6.0 * pow2(-127);
    x[1] = pow2(-128);
    assert_eq!(quantize_block(Rounding::Triton, &x).1, 1);
    assert_eq!(decode(&quantize_block(Rounding::Triton, &x).0, 1)[1], 0.0);
    assert_eq!(quantize_block(Rounding::Ggml, &x).1, 0);
    assert_eq!(
        decode(&quantize_block(Rounding::Ggml, &x).0, 0)[1],
        pow2(-128)
    );
}

#[test]
fn all_zero_blocks() {
    for (x, neg) in [([0f32; BLOCK], false), ([-0f32; BLOCK], true)] {
        for rule in Rounding::ALL {
            let (b, s) = quantize_block(rule, &x);
            let want_scale = if rule == Rounding::Mlx { 127 } else { 0 };
            assert_eq!(s, want_scale, "{rule}");
            let signed = neg && matches!(rule, Rounding::Ocp | Rounding::Triton);
            assert_eq!(b, [if signed { 0x88 } else { 0 }; BLOCK_BYTES], "{rule}");
            assert!(decode(&b, s).iter().all(|&v| v == 0.0));
        }
    }
}

#[test]
fn exponents_out_of_the_e8m0_range_are_clamped() {
    // amax below 2^-125 (floor rules) / amax/6 below 2^-127 (ceil rules): byte 0, except
    // triton (byte 1, or 0 when amax/6 underflows to zero) and MLX (127 when it does).
    let tiny = |a: f32| {
        let mut x = [0f32; BLOCK];
        x[3] = a;
        x[4] = -a / 2.0;
        x
    };
    for a in [pow2(-126), 1e-40, pow2(-140), f32::from_bits(7)] {
        let x = tiny(a);
        for rule in [Rounding::Ggml, Rounding::Ocp, Rounding::Mse, Rounding::Mlx] {
            assert_eq!(quantize_block(rule, &x).1, 0, "{rule}, amax {a:e}");
        }
        assert_eq!(quantize_block(Rounding::Triton, &x).1, 1, "amax {a:e}");
        // Decoding with the clamped scale: values at least as accurate as the grid allows.
        let (b, s) = quantize_block(Rounding::Ggml, &x);
        let out = decode(&b, s);
        assert!((out[3] - a).abs() <= pow2(-128), "{a:e} → {:e}", out[3]);
    }
    let x = tiny(f32::from_bits(1)); // amax / 6 underflows to 0
    assert_eq!(quantize_block(Rounding::Triton, &x).1, 0);
    assert_eq!(quantize_block(Rounding::Mlx, &x).1, 127);
    assert_eq!(quantize_block(Rounding::Ggml, &x).1, 0);
    // The large end cannot leave the range: f32::MAX.
    let mut x = [0f32; BLOCK];
    x[0] = -f32::MAX;
    x[1] = f32::MAX / 7.0;
    let want = [
        (Rounding::Ggml, 253), // log2f(f32::MAX) rounds to 128
        (Rounding::Ocp, 252),
        (Rounding::Triton, 253),
        (Rounding::Mlx, 253),
        (Rounding::Mse, 253),
    ];
    for (rule, s) in want {
        let (b, got) = quantize_block(rule, &x);
        assert_eq!(got, s, "{rule}");
        let out = decode(&b, got);
        // 4·2^126 = 2^128 is an MXFP4 value but not an f32 one (see the module docs).
        let overflows = !matches!(rule, Rounding::Ggml | Rounding::Ocp);
        assert_eq!(out[0] == f32::NEG_INFINITY, overflows, "{rule}: {out:?}");
        assert!(out[1..].iter().all(|v| v.is_finite()), "{rule}: {out:?}");
    }
}

#[test]
fn subnormal_inputs_are_quantized_exactly_where_the_grid_allows() {
    // Scale byte 0 (2^-127): the grid is k·2^-128, all subnormal.
    let mut x = [0f32; BLOCK];
    x[0] = 6.0 * pow2(-127); // 1.5·2^-125: normal, sets the scale
    for k in 1..=6 {
        x[k] = E2M1_VALUES[k] * pow2(-127);
        x[k + 8] = -E2M1_VALUES[k] * pow2(-127);
    }
    x[20] = 0.7 * pow2(-127); // nearest 0.5·2^-127
    x[21] = pow2(-149); // the smallest subnormal: 0
    for rule in [Rounding::Ggml, Rounding::Ocp, Rounding::Mlx, Rounding::Mse] {
        let (b, s) = quantize_block(rule, &x);
        assert_eq!(s, 0, "{rule}");
        let out = decode(&b, s);
        assert_eq!(out[..15], x[..15], "{rule}");
        assert_eq!(out[20], 0.5 * pow2(-127), "{rule}");
        assert_eq!(out[21], 0.0, "{rule}");
    }
}

#[test]
fn scaled_magnitudes_between_6_and_8_clip_under_the_floor_rules() {
    // amax = 7.5: floor rules pick 2^0 and clip everything in (6, 8) to 6; the ceil rules
    // pick 2^1 and round 7.5/2 = 3.75 to 4.
    let mut x = [0f32; BLOCK];
    x[..6].copy_from_slice(&[7.5, 7.0, 6.5, -6.01, 5.5, 6.0]);
    for rule in [Rounding::Ggml, Rounding::Ocp] {
        let (b, s) = quantize_block(rule, &x);
        assert_eq!(s, 127, "{rule}");
        assert_eq!(
            decode(&b, s)[..6],
            [6.0, 6.0, 6.0, -6.0, 6.0, 6.0],
            "{rule}"
        );
    }
    for rule in [Rounding::Triton, Rounding::Mlx] {
        let (b, s) = quantize_block(rule, &x);
        assert_eq!(s, 128, "{rule}");
        // 7.0/2 = 3.5 and 5.5/2 = 2.75: ties and non-ties.
        let want_35 = if rule == Rounding::Mlx { 6.0 } else { 8.0 };
        assert_eq!(
            decode(&b, s)[..6],
            [8.0, want_35, 6.0, -6.0, 6.0, 6.0],
            "{rule}"
        );
    }
    // mse: floor error 1.5²+1²+0.5²+0.01²+0.5² = 3.7501, ceil error 0.5²+1²+0.5²+0.01²+0.5² =
    // 1.7501 (7.0/2 = 3.5 ties to even, 4).
    let (b, s) = quantize_block(Rounding::Mse, &x);
    assert_eq!(s, 128);
    assert_eq!(decode(&b, s)[..6], [8.0, 8.0, 6.0, -6.0, 6.0, 6.0]);
}

#[test]
fn element_tie_rules() {
    // amax = 6 puts the scale at 2^0 under every rule: q = x.
    let ties = [0.25f32, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0];
    let down = [0.0f32, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0]; // smaller magnitude
    let even = [0.0f32, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0]; // even code
    for rule in Rounding::ALL {
        let mut x = [0f32; BLOCK];
        x[0] = 6.0;
        x[1..8].copy_from_slice(&ties);
        for k in 0..7 {
            x[9 + k] = -ties[k];
        }
        let (b, s) = quantize_block(rule, &x);
        assert_eq!(s, 127, "{rule}");
        let out = decode(&b, s);
        let want = match rule {
            Rounding::Ggml | Rounding::Mlx => down,
            Rounding::Ocp | Rounding::Triton | Rounding::Mse => even,
        };
        assert_eq!(out[1..8], want, "{rule}");
        for k in 0..7 {
            assert_eq!(out[9 + k], -want[k], "{rule}");
        }
        // -0.25 rounds to zero: +0 (code 0) or -0 (code 8) by rule.
        let neg_zero = crate::mxfp4::code_at(&b, 9) == 8;
        assert_eq!(
            neg_zero,
            matches!(rule, Rounding::Ocp | Rounding::Triton),
            "{rule}"
        );
    }
}

#[test]
fn triton_bit_rounding_is_nearest_even_except_just_above_a_quarter() {
    let mut checked = 0;
    for i in 0..=160_000u32 {
        let base = i as f32 * 5e-5; // 0 ..= 8
        for q in [base, f32::from_bits(base.to_bits() + 1), -base] {
            let a = q.abs().to_bits();
            if a > 0.25f32.to_bits() && a < 0.25f32.to_bits() + 4 {
                continue; // the quirk, checked below
            }
            let got = triton_e2m1(q.to_bits());
            let want = e2m1_magnitude_code(q.abs()) | (q.is_sign_negative() as u8) << 3;
            assert_eq!(got, want, "{q:e}");
            checked += 1;
        }
    }
    assert!(checked > 400_000);
    // The quirk: 0.25·(1 + j·2^-23) for j = 1, 2, 3 rounds to 0; exact RNE says 0.5.
    for j in 1..=3u32 {
        let q = f32::from_bits(0.25f32.to_bits() + j);
        assert_eq!(triton_e2m1(q.to_bits()), 0, "{q:e}");
        assert_eq!(e2m1_magnitude_code(q), 1);
    }
    assert_eq!(
        triton_e2m1(f32::from_bits(0.25f32.to_bits() + 4).to_bits()),
        1
    );
    // Tiny and huge q.
    assert_eq!(triton_e2m1(f32::from_bits(1).to_bits()), 0);
    assert_eq!(triton_e2m1((-1e-30f32).to_bits()), 8);
    assert_eq!(triton_e2m1(100.0f32.to_bits()), 7);
}

#[test]
fn triton_scale_is_the_smallest_power_of_two_not_below_amax_over_6() {
    let mut rng = Lcg(5);
    for _ in 0..2000 {
        let mut x = [0f32; BLOCK];
        let mag = (rng.unit() * 60.0 - 40.0).exp2();
        for v in x.iter_mut() {
            *v = (rng.unit() - 0.5) * mag;
        }
        let (_, s) = quantize_block(Rounding::Triton, &x);
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = crate::mxfp4::e8m0_to_f32(s);
        assert!(amax / 6.0 <= d && amax / 6.0 > d / 2.0, "{amax:e}: {s}");
        // MLX's exponent is the same one (both ceil, in range here).
        assert_eq!(quantize_block(Rounding::Mlx, &x).1, s);
    }
}

#[test]
fn mse_picks_the_exponent_with_the_smaller_error_and_ggmls_on_a_tie() {
    // amax = 6.5 (floor 2^0 clips it to 6, error 0.25; ceil 2^1 rounds 6.5/2 = 3.25 to 3 → 6,
    // error 0.25), plus 0.75: floor keeps 0.75 → 1.0 (RNE tie → 1.0, error 0.0625), ceil
    // 0.375 → 0.5 → 1.0 (error 0.0625). Equal errors: the ggml exponent.
    let mut x = [0f32; BLOCK];
    x[0] = 6.5;
    x[1] = 0.75;
    let (_, s) = quantize_block(Rounding::Mse, &x);
    assert_eq!(s, quantize_block(Rounding::Ggml, &x).1);
    // Many small values favour the finer floor grid even with one clipped value.
    let mut x = [0.3f32; BLOCK];
    x[0] = 6.2;
    assert_eq!(quantize_block(Rounding::Mse, &x).1, 127);
    // A block of large values favours the ceil scale.
    let x = [7.9f32; BLOCK];
    assert_eq!(quantize_block(Rounding::Mse, &x).1, 128);
    // Never worse than either candidate on random blocks.
    let mut rng = Lcg(77);
    let sse = |x: &[f32; BLOCK], rule| {
        let (b, s) = quantize_block(rule, x);
        decode(&b, s)
            .iter()
            .zip(x)
            .map(|(a, b)| ((*a as f64) - (*b as f64)).powi(2))
            .sum::<f64>()
    };
    for _ in 0..2000 {
        let mut x = [0f32; BLOCK];
        for v in x.iter_mut() {
            *v = (rng.unit() - 0.5) * 0.1;
        }
        let m = sse(&x, Rounding::Mse);
        assert!(m <= sse(&x, Rounding::Ocp) + 1e-18);
        assert!(m <= sse(&x, Rounding::Mlx) + 1e-18);
    }
}

#[test]
fn non_finite_blocks_get_the_nan_scale_and_zero_codes() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -f32::NAN] {
        let mut x = [0.5f32; BLOCK];
        x[17] = bad;
        for rule in Rounding::ALL {
            assert_eq!(
                quantize_block(rule, &x),
                ([0u8; BLOCK_BYTES], E8M0_NAN),
                "{rule}, {bad}"
            );
        }
        assert_eq!(crate::float::first_nonfinite(&x), Some(17));
        let mut g = [0u8; GGML_BLOCK_BYTES];
        quantize_ggml_row(Rounding::Ggml, &x, &mut g);
        assert_eq!(g[0], 0xFF);
        let mut out = [0f32; BLOCK];
        decode_block(&[0u8; BLOCK_BYTES], g[0], &mut out);
        assert!(
            out.iter().all(|v| v.is_nan()),
            "OCP decode of a NaN scale is NaN"
        );
    }
}

#[test]
fn rows_write_both_layouts_block_by_block() {
    let mut rng = Lcg(31);
    let xs: Vec<f32> = (0..96).map(|_| rng.unit() - 0.5).collect();
    for rule in Rounding::ALL {
        let mut blocks = [0u8; 3 * BLOCK_BYTES];
        let mut scales = [0u8; 3];
        quantize_row(rule, &xs, &mut blocks, &mut scales);
        let mut ggml = [0u8; 3 * GGML_BLOCK_BYTES];
        quantize_ggml_row(rule, &xs, &mut ggml);
        for k in 0..3 {
            let x: &[f32; BLOCK] = xs[k * BLOCK..(k + 1) * BLOCK].try_into().unwrap();
            let (b, s) = quantize_block(rule, x);
            assert_eq!(blocks[k * 16..(k + 1) * 16], b);
            assert_eq!(scales[k], s);
            let g = &ggml[k * 17..(k + 1) * 17];
            assert_eq!(g[0], s);
            assert_eq!(repack_from_ggml(&g[1..]), b);
            let mut v1 = [0f32; BLOCK];
            let mut v2 = [0f32; BLOCK];
            decode_block(&b, s, &mut v1);
            decode_ggml_block(g, &mut v2);
            assert_eq!(v1, v2);
        }
    }
}

#[test]
#[should_panic(expected = "MXFP4 scales length")]
fn row_lengths_are_checked() {
    quantize_row(Rounding::Ggml, &[0.0; 64], &mut [0u8; 32], &mut [0u8; 1]);
}

#[test]
fn matching_rules_names_every_rule_that_reproduces_a_block() {
    let mut rng = Lcg(8);
    for _ in 0..300 {
        let mut x = [0f32; BLOCK];
        let mag = (rng.unit() * 10.0 - 8.0).exp2();
        for v in x.iter_mut() {
            *v = (rng.unit() - 0.5) * mag;
        }
        for rule in Rounding::ALL {
            let (b, s) = quantize_block(rule, &x);
            let set = matching_rules(&x, &b, s);
            assert!(set.contains(rule), "{rule}");
            for other in set.iter() {
                assert_eq!(quantize_block(other, &x), (b, s));
            }
        }
    }
    // A block no rule writes.
    let x = [1.0f32; BLOCK];
    assert!(matching_rules(&x, &[0x11; BLOCK_BYTES], 127).is_empty());
    // 1.75 everywhere: the floor rules pick 2^-2 and clip 7 units to 6 (1.5), MLX picks 2^-1
    // and rounds the tie 3.5 units down (1.5 too, other bytes), triton rounds it up (2.0).
    let x = [1.75f32; BLOCK];
    let (b, s) = quantize_block(Rounding::Ggml, &x);
    let set = matching_rules(&x, &b, s);
    let want: RuleSet = [Rounding::Ggml, Rounding::Ocp, Rounding::Mse]
        .into_iter()
        .collect();
    assert_eq!(set, want);
}

#[test]
fn names_parse_and_display() {
    for rule in Rounding::ALL {
        assert_eq!(Rounding::parse(rule.name()), Some(rule));
        assert_eq!(rule.to_string().parse::<Rounding>(), Ok(rule));
        assert_eq!(Rounding::parse(&rule.name().to_uppercase()), Some(rule));
    }
    assert_eq!(Rounding::default(), Rounding::Ggml);
    let err = "nearest".parse::<Rounding>().unwrap_err();
    assert_eq!(err, UnknownRounding("nearest".into()));
    assert!(err.to_string().contains("ggml, ocp, triton, mlx, mse"));
    let set: RuleSet = [Rounding::Mse, Rounding::Ggml].into_iter().collect();
    assert_eq!(set.len(), 2);
    assert_eq!(
        set.iter().collect::<Vec<_>>(),
        [Rounding::Ggml, Rounding::Mse]
    );
    assert!(RuleSet::EMPTY.is_empty());
}

/// The fast ggml path of `quantize_ggml_row` writes the plain path's bytes: on random blocks
/// of every magnitude and kind (`legacy`'s stress blocks, NaN and Inf included), and on blocks
/// scaled to every E8M0 byte, the top ones where the largest entries overflow.
#[test]
fn ggml_rows_fast_equal_plain() {
    let mut xs = crate::legacy::test_data::stress_blocks();
    let mut rng = Lcg(11);
    for e in 0..=254u32 {
        let scale = f32::from_bits(e.max(1) << 23);
        for _ in 0..4 {
            xs.extend((0..BLOCK).map(|_| (rng.unit() * 2.0 - 1.0) * scale * 7.0));
        }
    }
    let n = xs.len() / BLOCK * GGML_BLOCK_BYTES;
    let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
    quantize_ggml_row(Rounding::Ggml, &xs, &mut a);
    quantize_ggml_row_plain(Rounding::Ggml, &xs, &mut b);
    for (k, (p, q)) in a
        .chunks(GGML_BLOCK_BYTES)
        .zip(b.chunks(GGML_BLOCK_BYTES))
        .enumerate()
    {
        assert_eq!(p, q, "block {k}: {:?}", &xs[k * BLOCK..(k + 1) * BLOCK]);
    }
}
