use super::*;

/// Rows quantized by MLX: `bits, group, cols` (u32 each), `cols` BF16 inputs, the packed codes,
/// the BF16 scales and biases, then `mx.dequantize`'s BF16 output. The first six are rows of
/// `mlx_lm.convert`'s output for tiny-gpt-oss; the rest `mx.quantize` on synthetic rows. See
/// `quant/tests/data/README.md`.
const MLX_ROWS: &[u8] = include_bytes!("../../tests/data/affine_mlx_rows.bin");

struct Row<'a> {
    bits: u32,
    group: usize,
    x: Vec<f32>,
    packed: &'a [u8],
    scales: &'a [u8],
    biases: &'a [u8],
    deq: Vec<f32>,
}

fn bf16s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(2)
        .map(|c| bf16_bits_to_f32(u16::from_le_bytes([c[0], c[1]])))
        .collect()
}

fn rows() -> Vec<Row<'static>> {
    let mut out = Vec::new();
    let mut d = MLX_ROWS;
    while !d.is_empty() {
        let u = |i: usize| u32::from_le_bytes(d[4 * i..4 * i + 4].try_into().unwrap()) as usize;
        let (bits, group, cols) = (u(0) as u32, u(1), u(2));
        let mut at = 12;
        let mut take = |n: usize| {
            let s = &d[at..at + n];
            at += n;
            s
        };
        let x = bf16s(take(2 * cols));
        let packed = take(packed_bytes(cols, bits));
        let scales = take(2 * cols / group);
        let biases = take(2 * cols / group);
        let deq = bf16s(take(2 * cols));
        out.push(Row {
            bits,
            group,
            x,
            packed,
            scales,
            biases,
            deq,
        });
        d = &d[at..];
    }
    out
}

#[test]
fn quantize_row_reproduces_mlx() {
    let rows = rows();
    assert_eq!(rows.len(), 24);
    let mut seen = std::collections::BTreeSet::new();
    for (i, r) in rows.iter().enumerate() {
        seen.insert((r.bits, r.group));
        let mut packed = vec![0u8; r.packed.len()];
        let mut scales = vec![0u8; r.scales.len()];
        let mut biases = vec![0u8; r.biases.len()];
        quantize_row(&r.x, r.bits, r.group, &mut packed, &mut scales, &mut biases);
        assert_eq!(packed, r.packed, "row {i} ({} bits): codes", r.bits);
        assert_eq!(scales, r.scales, "row {i}: scales");
        assert_eq!(biases, r.biases, "row {i}: biases");
    }
    // Every supported bits × group pair, plus the fixture's 4- and 8-bit groups of 64.
    assert_eq!(seen.len(), 18);
}

#[test]
fn dequantize_row_mlx_reproduces_mx_dequantize_and_f32_is_within_rounding() {
    for (i, r) in rows().iter().enumerate() {
        let mut out = vec![0f32; r.x.len()];
        dequantize_row_mlx(r.packed, r.scales, r.biases, r.bits, r.group, &mut out);
        assert_eq!(out, r.deq, "row {i}");
        let mut f = vec![0f32; r.x.len()];
        dequantize_row(r.packed, r.scales, r.biases, r.bits, r.group, &mut f);
        for (g, ((x, y), m)) in
            r.x.chunks(r.group)
                .zip(f.chunks(r.group))
                .zip(out.chunks(r.group))
                .enumerate()
        {
            let s = bf16s(&r.scales[2 * g..2 * g + 2])[0].abs();
            let b = bf16s(&r.biases[2 * g..2 * g + 2])[0].abs();
            let n_bins = ((1u32 << r.bits) - 1) as f32;
            // The size of the terms: BF16 roundings are relative 2^-9 of them.
            let size = s * n_bins + b;
            // The decoded values of the codes 2^bits - 1 (far edge) and 0 (the bias).
            let mut q = vec![0u8; r.group];
            unpack(
                &r.packed[g * packed_bytes(r.group, r.bits)..][..packed_bytes(r.group, r.bits)],
                r.bits,
                &mut q,
            );
            let at = |code: u8| q.iter().position(|&c| c == code).map(|k| y[k]);
            let (y_far, y_near) = (at(n_bins as u8), at(0));
            for ((x, y), m) in x.iter().zip(y).zip(m) {
                // The f32 decode differs from MLX's by MLX's two BF16 roundings only ...
                assert!((y - m).abs() <= size * 2f32.powi(-8), "row {i}: {y} vs {m}");
                // ... and from the input by half a step, plus the BF16 rounding of the stored
                // scale (times the code) and bias; except past the far edge: `q0` rounding can
                // shrink the step so that the edge opposite to the bias clips at 2^bits - 1.
                let tol = 0.5 * s + size * 2f32.powi(-8) + 1e-6;
                // Clipped: decoded to the far edge, with the input beyond it (seen from the bias).
                let clipped = Some(*y) == y_far
                    && y_near.is_some_and(|near| (x - near).abs() > (y - near).abs());
                assert!(
                    clipped || (x - y).abs() <= tol,
                    "row {i} group {g}: {x} vs {y}"
                );
            }
        }
    }
}

#[test]
fn hand_worked_groups() {
    // x[k] = 0.25·floor(k/2) = 0, 0, 0.25, 0.25, .., 3.75, 3.75: the max dominates, so
    // scale = -(3.75 - 0)/15 = -0.25, q0 = rint(3.75 / -0.25) = -15, scale = 3.75 / -15,
    // bias = 3.75 and q = 15 - k/2.
    let x: Vec<f32> = (0..32).map(|k| (k / 2) as f32 * 0.25).collect();
    let mut packed = [0u8; 16];
    let (mut s, mut b) = ([0u8; 2], [0u8; 2]);
    quantize_row(&x, 4, 32, &mut packed, &mut s, &mut b);
    let want: Vec<u8> = (0..16u8).map(|j| (15 - j) * 0x11).collect();
    assert_eq!(packed[..], want[..]);
    assert_eq!(u16::from_le_bytes(s), f32_to_bf16_bits(-0.25));
    assert_eq!(u16::from_le_bytes(b), f32_to_bf16_bits(3.75));
    let mut y = [0f32; 32];
    dequantize_row(&packed, &s, &b, 4, 32, &mut y);
    assert_eq!(y[..], x[..]);
    // Negated: the min dominates, scale = +0.25, bias = -3.75, q = 15 - k/2 again.
    let neg: Vec<f32> = x.iter().map(|v| -v).collect();
    quantize_row(&neg, 4, 32, &mut packed, &mut s, &mut b);
    assert_eq!(packed[..], want[..]);
    assert_eq!(u16::from_le_bytes(s), f32_to_bf16_bits(0.25));
    assert_eq!(u16::from_le_bytes(b), f32_to_bf16_bits(-3.75));
    // All zero: scale -1e-7 (the floor, negated: max wins the tie), bias 0, codes 0.
    quantize_row(&[0f32; 32], 8, 32, &mut [0u8; 32], &mut s, &mut b);
    assert_eq!(u16::from_le_bytes(s), f32_to_bf16_bits(-MIN_SCALE));
    assert_eq!(u16::from_le_bytes(b), 0);
    // A constant group: q0 = rint(0.5 / -1e-7) != 0, so bias = 0.5 and every code is 0.
    let mut packed8 = [0xAAu8; 32];
    quantize_row(&[0.5f32; 32], 8, 32, &mut packed8, &mut s, &mut b);
    assert_eq!(packed8, [0u8; 32]);
    assert_eq!(bf16_bits_to_f32(u16::from_le_bytes(b)), 0.5);
    // Codes: `rint` ties to even. With scale -0.5 and bias 7.5, 7.25 and 6.75 sit half-way
    // between codes (0.5 and 1.5 steps from the bias) and go to the even codes 0 and 2.
    let mut x = [0f32; 32];
    x[1] = 7.5; // max: scale = -0.5, bias 7.5
    x[2] = 7.5 - 0.25; // (x - 7.5) / -0.5 = 0.5 → 0
    x[3] = 7.5 - 0.75; // 1.5 → 2
    let mut p = [0u8; 16];
    quantize_row(&x, 4, 32, &mut p, &mut s, &mut b);
    assert_eq!(p[1], 0x20, "elements 2 and 3: codes 0 and 2");
}

#[test]
fn bit_streams_round_trip_for_every_width() {
    let mut seed = 0x9E37_79B9u32;
    for bits in BITS {
        for group in GROUPS {
            let n = 2 * group;
            let q: Vec<u8> = (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    ((seed >> 16) % (1 << bits)) as u8
                })
                .collect();
            // Build the stream by hand: element k at bit k·bits.
            let mut packed = vec![0u8; packed_bytes(n, bits)];
            for (k, &v) in q.iter().enumerate() {
                for i in 0..bits as usize {
                    let bit = k * bits as usize + i;
                    packed[bit / 8] |= ((v >> i) & 1) << (bit % 8);
                }
            }
            let mut back = vec![0u8; n];
            unpack(&packed, bits, &mut back);
            assert_eq!(back, q, "{bits} bits");
            // Scale 1, bias 0 decodes to the codes themselves.
            let ones = f32_to_bf16_bits(1.0).to_le_bytes().repeat(n / group);
            let zeros = vec![0u8; 2 * (n / group)];
            let mut out = vec![0f32; n];
            dequantize_row(&packed, &ones, &zeros, bits, group, &mut out);
            assert!(out.iter().zip(&q).all(|(o, &v)| *o == v as f32));
        }
    }
}

#[test]
fn non_finite_groups_decode_to_nan() {
    let mut x = [0.25f32; 64];
    x[40] = f32::NAN;
    let mut packed = [0xFFu8; 64];
    let (mut s, mut b) = ([0u8; 4], [0u8; 4]);
    quantize_row(&x, 8, 32, &mut packed, &mut s, &mut b);
    assert!(packed[32..].iter().all(|&v| v == 0));
    assert_eq!(crate::float::first_nonfinite(&x), Some(40));
    let mut y = [0f32; 64];
    dequantize_row(&packed, &s, &b, 8, 32, &mut y);
    assert!(y[..32].iter().all(|&v| v == 0.25));
    assert!(y[32..].iter().all(|v| v.is_nan()));
}

#[test]
fn parameters_are_checked() {
    assert_eq!(check_params(4, 64), Ok(()));
    assert_eq!(check_params(7, 64), Err(AffineParamsError::Bits(7)));
    assert_eq!(check_params(8, 16), Err(AffineParamsError::Group(16)));
    assert!(
        AffineParamsError::Bits(7)
            .to_string()
            .contains("2, 3, 4, 5, 6 or 8")
    );
    assert_eq!(packed_bytes(64, 3), 24);
    assert_eq!(packed_bytes(128, 8), 128);
}

#[test]
#[should_panic(expected = "affine scales length")]
fn row_lengths_are_checked() {
    quantize_row(
        &[0f32; 128],
        4,
        64,
        &mut [0u8; 64],
        &mut [0u8; 2],
        &mut [0u8; 4],
    );
}

#[test]
#[should_panic(expected = "not 7")]
fn unsupported_bits_panic_in_the_row_functions() {
    dequantize_row(&[], &[], &[], 7, 64, &mut []);
}

/// The encoder as first written (MLX's loop, `round_ties_even` per value, codes streamed into
/// the bit stream): the vectorized one must give the same bytes.
fn quantize_group_plain(x: &[f32], bits: u32, out: &mut [u8]) -> (u16, u16) {
    let n_bins = ((1u32 << bits) - 1) as f32;
    let (mut w_max, mut w_min) = (f32::NEG_INFINITY, f32::INFINITY);
    for &w in x {
        if w_max < w {
            w_max = w;
        }
        if w < w_min {
            w_min = w;
        }
    }
    let mask = w_min.abs() > w_max.abs();
    let mut scale = ((w_max - w_min) / n_bins).max(MIN_SCALE);
    if !mask {
        scale = -scale;
    }
    let edge = if mask { w_min } else { w_max };
    let q0 = (edge / scale).round_ties_even();
    let mut bias = 0f32;
    if q0 != 0.0 {
        scale = edge / q0;
        bias = edge;
    }
    let (mut acc, mut nbits, mut o) = (0u64, 0u32, 0usize);
    for &w in x {
        let q = ((w - bias) / scale).round_ties_even().clamp(0.0, n_bins);
        acc |= (q as u64) << nbits;
        nbits += bits;
        while nbits >= 8 {
            out[o] = acc as u8;
            o += 1;
            acc >>= 8;
            nbits -= 8;
        }
    }
    (f32_to_bf16_bits(scale), f32_to_bf16_bits(bias))
}

#[test]
fn the_vectorized_encoder_equals_the_plain_loop() {
    let mut seed = 0x2545_F491u32;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    for case in 0..3000 {
        let bits = BITS[case % BITS.len()];
        let group = GROUPS[(case / BITS.len()) % GROUPS.len()];
        // Random magnitudes over many binades, exact ties (values on a half-step grid),
        // constant and near-constant groups, huge and tiny values.
        let x: Vec<f32> = (0..group)
            .map(|k| match case % 5 {
                0 => f32::from_bits(next() & 0xBFFF_FFFF) % 100.0,
                1 => (next() % 64) as f32 * 0.125 - 3.0,
                2 => 1.0 + (k % 2) as f32 * 1e-7,
                3 => (next() as f32 - 2e9) * 1e28,
                _ => (next() as f32 - 2e9) * 1e-45,
            })
            .collect();
        let (mut a, mut b) = (
            vec![0u8; packed_bytes(group, bits)],
            vec![0u8; packed_bytes(group, bits)],
        );
        let sa = quantize_group(&x, bits, &mut a);
        let sb = quantize_group_plain(&x, bits, &mut b);
        assert_eq!((a, sa), (b, sb), "case {case}: {bits} bits, group {group}");
    }
}

#[test]
fn the_count_of_changed_values_is_what_decoding_back_gives() {
    let mut seed = 0x1234_5678u32;
    let mut next = || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 8) as f32 / (1 << 24) as f32 - 0.5
    };
    for bits in BITS {
        for group in GROUPS {
            let n = 3 * group;
            let mut x: Vec<f32> = (0..n)
                .map(|k| if k % 5 == 0 { 0.25 } else { next() })
                .collect();
            // One group exactly on a grid (nothing changes), one with a NaN and an Inf.
            for (k, v) in x[..group].iter_mut().enumerate() {
                *v = (k % 4) as f32;
            }
            x[2 * group + 1] = f32::NAN;
            x[2 * group + 2] = f32::INFINITY;
            let (mut p, mut s, mut b) = (
                vec![0u8; packed_bytes(n, bits)],
                vec![0u8; 2 * n / group],
                vec![0u8; 2 * n / group],
            );
            let got = quantize_row_counting(&x, bits, group, &mut p, &mut s, &mut b);
            let mut back = vec![0f32; n];
            dequantize_row(&p, &s, &b, bits, group, &mut back);
            assert_eq!(
                got,
                crate::float::rounding_errors(&x, &back),
                "{bits} bits, group {group}"
            );
        }
    }
}
