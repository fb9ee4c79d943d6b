//! ggml's k-quants: `Q2_K`, `Q3_K`, `Q4_K`, `Q5_K` and `Q6_K`, super-blocks of [`QK_K`] = 256
//! values split into 16 sub-blocks of 16 (Q2_K, Q3_K, Q6_K) or 8 of 32 (Q4_K, Q5_K), each
//! sub-block with its own quantized scale (and, for Q2/Q4/Q5_K, its own quantized minimum),
//! scaled again by one f16 per super-block.
//!
//! | type | bytes | layout (byte offsets) | value |
//! |---|---|---|---|
//! | Q2_K | 84 | `scales[16]` 0, `qs[64]` 16, `d` 80, `dmin` 82 | `d·(sc&15)·q − dmin·(sc>>4)`, q 2-bit |
//! | Q3_K | 110 | `hmask[32]` 0, `qs[64]` 32, `scales[12]` 96, `d` 108 | `d·(sc−32)·(q−4·!hbit)`, sc 6-bit, q 2+1-bit |
//! | Q4_K | 144 | `d` 0, `dmin` 2, `scales[12]` 4, `qs[128]` 16 | `d·sc·q − dmin·m`, sc/m 6-bit, q 4-bit |
//! | Q5_K | 176 | `d` 0, `dmin` 2, `scales[12]` 4, `qh[32]` 16, `qs[128]` 48 | as Q4_K, q 4+1-bit |
//! | Q6_K | 210 | `ql[128]` 0, `qh[64]` 128, `scales[16]` (i8) 192, `d` 208 | `d·sc·(q−32)`, q 4+2-bit |
//!
//! `d` and `dmin` are little-endian f16. Layouts: `block_q2_K` … `block_q6_K` in
//! `ggml/src/ggml-common.h`; codecs: `ggml/src/ggml-quants.c` (llama.cpp as vendored in
//! llama-cpp-python 0.3.36, <https://github.com/ggml-org/llama.cpp>).
//!
//! - `dequantize_row_*` is ggml's scalar `dequantize_row_*_K`, the same f32 operations in the
//!   same order (gguf-py's `gguf.quants.dequantize` computes the same products).
//! - `quantize_row_*` is ggml's `quantize_row_*_K_ref`: what `ggml_quantize_chunk` runs when no
//!   importance matrix is given (`quantize_*_K(.., quant_weights = NULL)`), so what
//!   `llama-quantize` writes without `--imatrix`. Every helper (`make_qx_quants`,
//!   `make_q3_quants`, `make_qkx2_quants`, `nearest_int`, `get_scale_min_k4`) is ported with
//!   its f32 arithmetic in C source order (ggml-base is built without `-march`, so without FMA
//!   contraction), C's integer truncations (`int` stored into `uint8_t`/`int8_t`) and ggml's
//!   own f32 → f16 rounding (`ggml_compute_fp32_to_fp16`, nearest-even, NaN → `0x7E00`).
//!
//! Row functions take whole super-blocks: `x.len()` a multiple of 256 and the byte slice
//! exactly `x.len() / 256 · BYTES`; they panic otherwise (a caller bug: [`crate::Codec`]
//! checks lengths first). Any f32 input is accepted, NaN and infinities included; the output
//! is then whatever ggml computes for it.

/// Values per super-block (ggml's `QK_K`).
pub const QK_K: usize = 256;
/// Bytes of one `block_q2_K`.
pub const Q2_K_BYTES: usize = 84;
/// Bytes of one `block_q3_K`.
pub const Q3_K_BYTES: usize = 110;
/// Bytes of one `block_q4_K`.
pub const Q4_K_BYTES: usize = 144;
/// Bytes of one `block_q5_K`.
pub const Q5_K_BYTES: usize = 176;
/// Bytes of one `block_q6_K`.
pub const Q6_K_BYTES: usize = 210;

/// ggml's `GROUP_MAX_EPS`: below this largest magnitude a group counts as all zero.
const GROUP_MAX_EPS: f32 = 1e-15;

// ===================================================================== shared helpers

/// ggml's `nearest_int`: round to nearest (ties to even) by adding `1.5·2^23` and reading the
/// low mantissa bits. Exact for `|x| ≤ 2^22 − 1`; outside that (ggml only `assert`s, and its
/// release builds define `NDEBUG`) it returns the same wrapped bits ggml does.
#[inline(always)]
fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12_582_912.0;
    let i = val.to_bits() as i32;
    (i & 0x007f_ffff) - 0x0040_0000
}

/// ggml's `ggml_compute_fp32_to_fp16` (`ggml/src/ggml-impl.h`), used for every
/// `GGML_FP32_TO_FP16` in `ggml-quants.c`: round to nearest even, overflow to ±inf, any NaN to
/// the quiet NaN `0x7E00` with its sign.
#[inline]
fn fp32_to_fp16(f: f32) -> u16 {
    let scale_to_inf = f32::from_bits(0x7780_0000); // 2^112
    let scale_to_zero = f32::from_bits(0x0880_0000); // 2^-110
    let mut base = (f.abs() * scale_to_inf) * scale_to_zero;

    let w = f.to_bits();
    let shl1_w = w.wrapping_add(w);
    let sign = w & 0x8000_0000;
    let mut bias = shl1_w & 0xFF00_0000;
    if bias < 0x7100_0000 {
        bias = 0x7100_0000;
    }

    base += f32::from_bits((bias >> 1) + 0x0780_0000);
    let bits = base.to_bits();
    let exp_bits = (bits >> 13) & 0x0000_7C00;
    let mantissa_bits = bits & 0x0000_0FFF;
    let nonsign = exp_bits + mantissa_bits;
    let magnitude = if shl1_w > 0xFF00_0000 {
        0x7E00
    } else {
        nonsign
    };
    ((sign >> 16) | magnitude) as u16
}

/// ggml's `ggml_compute_fp16_to_fp32` (`ggml/src/ggml-impl.h`), `GGML_FP16_TO_FP32`.
#[inline]
fn fp16_to_fp32(h: u16) -> f32 {
    let w = (h as u32) << 16;
    let sign = w & 0x8000_0000;
    let two_w = w.wrapping_add(w);

    let exp_offset = 0xE0u32 << 23;
    let exp_scale = f32::from_bits(0x0780_0000); // 2^-112
    let normalized_value = f32::from_bits((two_w >> 4) + exp_offset) * exp_scale;

    let magic_mask = 126u32 << 23;
    let magic_bias = 0.5f32;
    let denormalized_value = f32::from_bits((two_w >> 17) | magic_mask) - magic_bias;

    let denormalized_cutoff = 1u32 << 27;
    let result = sign
        | if two_w < denormalized_cutoff {
            denormalized_value.to_bits()
        } else {
            normalized_value.to_bits()
        };
    f32::from_bits(result)
}

#[inline(always)]
fn read_f16(b: &[u8], at: usize) -> f32 {
    fp16_to_fp32(u16::from_le_bytes([b[at], b[at + 1]]))
}

#[inline(always)]
fn write_f16(b: &mut [u8], at: usize, v: f32) {
    b[at..at + 2].copy_from_slice(&fp32_to_fp16(v).to_le_bytes());
}

/// `MAX(lo, MIN(hi, l))` on ints.
#[inline(always)]
fn clamp(l: i32, lo: i32, hi: i32) -> i32 {
    l.min(hi).max(lo)
}

/// ggml's `make_qx_quants` with `rmse_type = 1` and no weights (`qw = NULL`), the only way
/// the no-imatrix path calls it (Q6_K: `n = 16`, `nmax = 32`). Writes `L[i]` in
/// `0..2·nmax` (`nmax` + a level in `-nmax..nmax`) and returns the sub-block scale.
fn make_qx_quants_rmse1(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let mut max = 0f32;
    let mut amax = 0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let mut iscale = -nmaxf / max;
    let mut sumlx = 0f32;
    let mut suml2 = 0f32;
    for (&xi, li) in x.iter().zip(l_out.iter_mut()) {
        let l = clamp(nearest_int(iscale * xi), -nmax, nmax - 1);
        *li = (l + nmax) as i8;
        let w = xi * xi;
        let lf = l as f32;
        sumlx += w * xi * lf;
        suml2 += w * lf * lf;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmaxf + 0.1f32 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for &xi in x {
            let l = clamp(nearest_int(iscale * xi), -nmax, nmax - 1);
            let w = xi * xi;
            let lf = l as f32;
            sumlx += w * xi * lf;
            suml2 += w * lf * lf;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (&xi, li) in x.iter().zip(l_out.iter_mut()) {
                let l = nearest_int(iscale * xi);
                *li = (nmax + clamp(l, -nmax, nmax - 1)) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml's `make_q3_quants` with `do_rmse = true` (Q3_K: `n = 16`, `nmax = 4`). Writes `L[i]`
/// in `0..2·nmax` (all zero for an all-zero group) and returns the sub-block scale.
fn make_q3_quants_rmse(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let mut max = 0f32;
    let mut amax = 0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut sumlx = 0f32;
    let mut suml2 = 0f32;
    for (&xi, li) in x.iter().zip(l_out.iter_mut()) {
        let l = clamp(nearest_int(iscale * xi), -nmax, nmax - 1);
        *li = l as i8;
        let w = xi * xi;
        let lf = l as f32;
        sumlx += w * xi * lf;
        suml2 += w * lf * lf;
    }
    for _itry in 0..5 {
        let mut n_changed = 0;
        for (&xi, li) in x.iter().zip(l_out.iter_mut()) {
            let w = xi * xi;
            let cur = *li as f32;
            let mut slx = sumlx - w * xi * cur;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * cur * cur;
                let new_l = clamp(nearest_int(xi * sl2 / slx), -nmax, nmax - 1);
                if new_l != *li as i32 {
                    let nf = new_l as f32;
                    slx += w * xi * nf;
                    sl2 += w * nf * nf;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *li = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for li in l_out.iter_mut() {
        *li += nmax as i8;
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// Search parameters of ggml's `make_qkx2_quants` (`rmin`, `rdelta`, `nstep`, `use_mad`).
struct Qkx2 {
    nmax: i32,
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
}

/// ggml's `make_qkx2_quants`: an asymmetric fit `x ≈ scale·L + min` (`min ≤ 0`) minimising the
/// weighted squared (or absolute, `use_mad`) error over `nstep + 1` trial scales. Writes
/// `L[i]` in `0..=nmax` and returns `(scale, -min)`. `laux` is scratch.
fn make_qkx2_quants<const N: usize>(
    p: &Qkx2,
    x: &[f32; N],
    weights: &[f32; N],
    l_out: &mut [u8; N],
    laux: &mut [u8; N],
) -> (f32, f32) {
    let n = N;
    let nmax = p.nmax;
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min));
        l_out[i] = clamp(l, 0, nmax) as u8;
        let mut diff = scale * l_out[i] as f32 + min - x[i];
        diff = if p.use_mad { diff.abs() } else { diff * diff };
        best_error += weights[i] * diff;
    }
    if p.nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=p.nstep {
        iscale = (p.rmin + p.rdelta * is as f32 + nmax as f32) / (max - min);
        let mut sum_l = 0f32;
        let mut sum_l2 = 0f32;
        let mut sum_xl = 0f32;
        for i in 0..n {
            let l = clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
            laux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0f32;
            for i in 0..n {
                let mut diff = this_scale * laux[i] as f32 + this_min - x[i];
                diff = if p.use_mad { diff.abs() } else { diff * diff };
                cur_error += weights[i] * diff;
            }
            if cur_error < best_error {
                *l_out = *laux;
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` (0..8) from the 12
/// packed bytes of Q4_K / Q5_K.
#[inline(always)]
fn get_scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Packs four 2-bit planes: `qs[j/4 + l] = L[j+l] | L[j+l+32]<<2 | L[j+l+64]<<4 | L[j+l+96]<<6`.
#[inline(always)]
fn pack_2bit(l: &[i32; QK_K], qs: &mut [u8]) {
    for j in (0..QK_K).step_by(128) {
        for k in 0..32 {
            qs[j / 4 + k] =
                (l[j + k] | (l[j + k + 32] << 2) | (l[j + k + 64] << 4) | (l[j + k + 96] << 6))
                    as u8;
        }
    }
}

/// Packs the 6-bit sub-block scales and mins of Q4_K / Q5_K, as `quantize_row_q4_K_ref`
/// does (the inverse of [`get_scale_min_k4`]), from the f32 scales and mins.
fn pack_scales_mins_k4(
    scales: &[f32; 8],
    mins: &[f32; 8],
    max_scale: f32,
    max_min: f32,
    out: &mut [u8],
) {
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    for j in 0..8 {
        // `uint8_t ls = nearest_int(..)`: C truncates the int to its low byte.
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            out[j] = ls;
            out[j + 4] = lm;
        } else {
            out[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
            out[j - 4] |= (ls >> 4) << 6;
            out[j] |= (lm >> 4) << 6;
        }
    }
}

/// The shared part of `quantize_row_q4_K_ref` / `quantize_row_q5_K_ref`: per-sub-block fits,
/// packed scales/mins, `d`, `dmin` (bytes 0..16 of the block) and the final levels `L`.
fn quantize_k4_scales(x: &[f32; QK_K], p: &Qkx2, head: &mut [u8], l: &mut [u8; QK_K]) {
    let mut laux = [0u8; 32];
    let mut weights = [0f32; 32];
    let mut mins = [0f32; 8];
    let mut scales = [0f32; 8];
    let mut max_scale = 0f32;
    let mut max_min = 0f32;
    let (xs_all, _) = x.as_chunks::<32>();
    let (ls_all, _) = l.as_chunks_mut::<32>();
    for j in 0..8 {
        let xs = &xs_all[j];
        let mut sum_x2 = 0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        let (scale, min) = make_qkx2_quants(p, xs, &weights, &mut ls_all[j], &mut laux);
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }
    pack_scales_mins_k4(&scales, &mins, max_scale, max_min, &mut head[4..16]);
    write_f16(head, 0, max_scale / 63.0);
    write_f16(head, 2, max_min / 63.0);

    let dd = read_f16(head, 0);
    let dmin = read_f16(head, 2);
    for j in 0..8 {
        let (sc, m) = get_scale_min_k4(j, &head[4..16]);
        let d = dd * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin * m as f32;
        for ii in 0..32 {
            let q = nearest_int((x[32 * j + ii] + dm) / d);
            l[32 * j + ii] = clamp(q, 0, p.nmax) as u8;
        }
    }
}

fn check_row(x_len: usize, bytes_len: usize, block_bytes: usize, name: &str) {
    assert_eq!(
        x_len % QK_K,
        0,
        "{name} row length must be a multiple of 256"
    );
    assert_eq!(bytes_len, x_len / QK_K * block_bytes, "{name} row bytes");
}

// ===================================================================== Q2_K

/// Quantizes one super-block to `block_q2_K` (ggml's `quantize_row_q2_K_ref`).
pub fn quantize_block_q2_k(x: &[f32; QK_K], y: &mut [u8; Q2_K_BYTES]) {
    const Q4SCALE: f32 = 15.0;
    let p = Qkx2 {
        nmax: 3,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    let mut l = [0u8; QK_K];
    let mut laux = [0u8; 16];
    let mut weights = [0f32; 16];
    let mut mins = [0f32; 16];
    let mut scales = [0f32; 16];
    let mut max_scale = 0f32;
    let mut max_min = 0f32;
    let (xs_all, _) = x.as_chunks::<16>();
    let (ls_all, _) = l.as_chunks_mut::<16>();
    for j in 0..16 {
        let xs = &xs_all[j];
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = v.abs();
        }
        let (scale, min) = make_qkx2_quants(&p, xs, &weights, &mut ls_all[j], &mut laux);
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }

    let (sc, rest) = y.split_at_mut(16);
    if max_scale > 0.0 {
        let iscale = Q4SCALE / max_scale;
        for j in 0..16 {
            sc[j] = nearest_int(iscale * scales[j]) as u8;
        }
        write_f16(rest, 64, max_scale / Q4SCALE);
    } else {
        sc.fill(0);
        write_f16(rest, 64, 0.0);
    }
    if max_min > 0.0 {
        let iscale = Q4SCALE / max_min;
        for j in 0..16 {
            let lm = nearest_int(iscale * mins[j]);
            sc[j] = (sc[j] as i32 | (lm << 4)) as u8;
        }
        write_f16(rest, 66, max_min / Q4SCALE);
    } else {
        write_f16(rest, 66, 0.0);
    }

    let dd = read_f16(rest, 64);
    let dmin = read_f16(rest, 66);
    let mut li = [0i32; QK_K];
    for (o, &v) in li.iter_mut().zip(&l) {
        *o = v as i32;
    }
    for j in 0..16 {
        let d = dd * (sc[j] & 0xF) as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin * (sc[j] >> 4) as f32;
        for ii in 0..16 {
            let q = nearest_int((x[16 * j + ii] + dm) / d);
            li[16 * j + ii] = clamp(q, 0, 3);
        }
    }
    pack_2bit(&li, &mut rest[..64]);
}

/// Decodes one `block_q2_K` (ggml's `dequantize_row_q2_K`).
pub fn dequantize_block_q2_k(x: &[u8; Q2_K_BYTES], y: &mut [f32; QK_K]) {
    let d = read_f16(x, 80);
    let min = read_f16(x, 82);
    // Output sub-block `is` (16 values) reads `qs[32·(is/8) + 16·(is%2) ..][..16]` at bit
    // `2·((is/2)%4)` with scale byte `is`, as ggml's loop nest does.
    for (is, ys) in y.chunks_exact_mut(16).enumerate() {
        let sc = x[is];
        let dl = d * (sc & 0xF) as f32;
        let ml = min * (sc >> 4) as f32;
        let shift = 2 * ((is / 2) % 4);
        let q = &x[16 + 32 * (is / 8) + 16 * (is % 2)..][..16];
        for (o, &b) in ys.iter_mut().zip(q) {
            *o = dl * ((b >> shift) & 3) as f32 - ml;
        }
    }
}

/// Quantizes a row (`x.len()` a multiple of 256) into `x.len() / 256` blocks of 84 bytes,
/// bit for bit what `llama-quantize` writes for Q2_K without an importance matrix.
pub fn quantize_row_q2_k(x: &[f32], y: &mut [u8]) {
    check_row(x.len(), y.len(), Q2_K_BYTES, "Q2_K");
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.chunks_exact_mut(Q2_K_BYTES)) {
        quantize_block_q2_k(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

/// Decodes a row of Q2_K blocks (`x.len() == y.len() / 256 · 84`), bit for bit ggml's
/// `dequantize_row_q2_K`.
pub fn dequantize_row_q2_k(x: &[u8], y: &mut [f32]) {
    check_row(y.len(), x.len(), Q2_K_BYTES, "Q2_K");
    for (xb, yb) in x.chunks_exact(Q2_K_BYTES).zip(y.chunks_exact_mut(QK_K)) {
        dequantize_block_q2_k(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

// ===================================================================== Q3_K

/// The signed 6-bit scale of sub-block `j` (0..16) from Q3_K's 12 packed scale bytes.
#[inline(always)]
fn q3_scale(sc: &[u8], j: usize) -> i32 {
    let low = if j < 8 { sc[j] & 0xF } else { sc[j - 8] >> 4 } as i32;
    let high = ((sc[8 + j % 4] >> (2 * (j / 4))) & 3) as i32;
    (low | (high << 4)) - 32
}

/// Quantizes one super-block to `block_q3_K` (ggml's `quantize_row_q3_K_ref`).
pub fn quantize_block_q3_k(x: &[f32; QK_K], y: &mut [u8; Q3_K_BYTES]) {
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; 16];
    let mut max_scale = 0f32;
    let mut amax = 0f32;
    for j in 0..16 {
        scales[j] = make_q3_quants_rmse(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
        let scale = scales[j].abs();
        if scale > amax {
            amax = scale;
            max_scale = scales[j];
        }
    }

    let (hmask, rest) = y.split_at_mut(32);
    let (qs, rest) = rest.split_at_mut(64);
    let (sc, dbytes) = rest.split_at_mut(12);
    sc.fill(0);
    // C: `if (max_scale)`, true for NaN too.
    if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for j in 0..16 {
            // `int8_t l = nearest_int(..)`: truncated to the low byte first.
            let lq = nearest_int(iscale * scales[j]) as i8 as i32;
            let lq = clamp(lq, -32, 31) + 32;
            if j < 8 {
                sc[j] = (lq & 0xF) as u8;
            } else {
                sc[j - 8] |= ((lq & 0xF) << 4) as u8;
            }
            let hi = lq >> 4;
            sc[j % 4 + 8] |= (hi << (2 * (j / 4))) as u8;
        }
        write_f16(dbytes, 0, 1.0 / iscale);
    } else {
        write_f16(dbytes, 0, 0.0);
    }

    let dd = read_f16(dbytes, 0);
    for j in 0..16 {
        let d = dd * q3_scale(sc, j) as f32;
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let q = nearest_int(x[16 * j + ii] / d);
            l[16 * j + ii] = (clamp(q, -4, 3) + 4) as i8;
        }
    }

    hmask.fill(0);
    let mut m = 0;
    let mut hm = 1u8;
    for lj in l.iter_mut() {
        if *lj > 3 {
            hmask[m] |= hm;
            *lj -= 4;
        }
        m += 1;
        if m == QK_K / 8 {
            m = 0;
            hm = hm.wrapping_shl(1);
        }
    }
    let mut li = [0i32; QK_K];
    for (o, &v) in li.iter_mut().zip(&l) {
        *o = v as i32;
    }
    pack_2bit(&li, qs);
}

/// Decodes one `block_q3_K` (ggml's `dequantize_row_q3_K`).
pub fn dequantize_block_q3_k(x: &[u8; Q3_K_BYTES], y: &mut [f32; QK_K]) {
    let d_all = read_f16(x, 108);
    let sc = &x[96..108];
    // Output sub-block `is` (16 values) reads `qs[32·(is/8) + 16·(is%2) ..][..16]` at bit
    // `2·((is/2)%4)` and `hmask[16·(is%2) ..][..16]` at bit `is/2`, as ggml's loop nest does.
    for (is, ys) in y.chunks_exact_mut(16).enumerate() {
        let dl = d_all * q3_scale(sc, is) as f32;
        let shift = 2 * ((is / 2) % 4);
        let m = 1u8 << (is / 2);
        let q = &x[32 + 32 * (is / 8) + 16 * (is % 2)..][..16];
        let hm = &x[16 * (is % 2)..][..16];
        for ((o, &b), &h) in ys.iter_mut().zip(q).zip(hm) {
            let lo = ((b >> shift) & 3) as i32;
            let sub = if h & m != 0 { 0 } else { 4 };
            *o = dl * (lo - sub) as f32;
        }
    }
}

/// Quantizes a row (`x.len()` a multiple of 256) into `x.len() / 256` blocks of 110 bytes,
/// bit for bit what `llama-quantize` writes for Q3_K without an importance matrix.
pub fn quantize_row_q3_k(x: &[f32], y: &mut [u8]) {
    check_row(x.len(), y.len(), Q3_K_BYTES, "Q3_K");
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.chunks_exact_mut(Q3_K_BYTES)) {
        quantize_block_q3_k(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

/// Decodes a row of Q3_K blocks (`x.len() == y.len() / 256 · 110`), bit for bit ggml's
/// `dequantize_row_q3_K`.
pub fn dequantize_row_q3_k(x: &[u8], y: &mut [f32]) {
    check_row(y.len(), x.len(), Q3_K_BYTES, "Q3_K");
    for (xb, yb) in x.chunks_exact(Q3_K_BYTES).zip(y.chunks_exact_mut(QK_K)) {
        dequantize_block_q3_k(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

// ===================================================================== Q4_K

/// Quantizes one super-block to `block_q4_K` (ggml's `quantize_row_q4_K_ref`).
pub fn quantize_block_q4_k(x: &[f32; QK_K], y: &mut [u8; Q4_K_BYTES]) {
    let p = Qkx2 {
        nmax: 15,
        rmin: -1.0,
        rdelta: 0.1,
        nstep: 20,
        use_mad: false,
    };
    let mut l = [0u8; QK_K];
    let (head, qs) = y.split_at_mut(16);
    quantize_k4_scales(x, &p, head, &mut l);
    for (n, q) in qs.chunks_exact_mut(32).enumerate() {
        let j = 64 * n;
        for k in 0..32 {
            q[k] = l[j + k] | (l[j + k + 32] << 4);
        }
    }
}

/// Decodes one `block_q4_K` (ggml's `dequantize_row_q4_K`).
pub fn dequantize_block_q4_k(x: &[u8; Q4_K_BYTES], y: &mut [f32; QK_K]) {
    let d = read_f16(x, 0);
    let min = read_f16(x, 2);
    let scales = &x[4..16];
    for (n, (q, ys)) in x[16..]
        .chunks_exact(32)
        .zip(y.chunks_exact_mut(64))
        .enumerate()
    {
        let (sc, m) = get_scale_min_k4(2 * n, scales);
        let (d1, m1) = (d * sc as f32, min * m as f32);
        let (sc, m) = get_scale_min_k4(2 * n + 1, scales);
        let (d2, m2) = (d * sc as f32, min * m as f32);
        for k in 0..32 {
            ys[k] = d1 * (q[k] & 0xF) as f32 - m1;
        }
        for k in 0..32 {
            ys[32 + k] = d2 * (q[k] >> 4) as f32 - m2;
        }
    }
}

/// Quantizes a row (`x.len()` a multiple of 256) into `x.len() / 256` blocks of 144 bytes,
/// bit for bit what `llama-quantize` writes for Q4_K without an importance matrix.
pub fn quantize_row_q4_k(x: &[f32], y: &mut [u8]) {
    check_row(x.len(), y.len(), Q4_K_BYTES, "Q4_K");
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.chunks_exact_mut(Q4_K_BYTES)) {
        quantize_block_q4_k(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

/// Decodes a row of Q4_K blocks (`x.len() == y.len() / 256 · 144`), bit for bit ggml's
/// `dequantize_row_q4_K`.
pub fn dequantize_row_q4_k(x: &[u8], y: &mut [f32]) {
    check_row(y.len(), x.len(), Q4_K_BYTES, "Q4_K");
    for (xb, yb) in x.chunks_exact(Q4_K_BYTES).zip(y.chunks_exact_mut(QK_K)) {
        dequantize_block_q4_k(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

// ===================================================================== Q5_K

/// Quantizes one super-block to `block_q5_K` (ggml's `quantize_row_q5_K_ref`).
pub fn quantize_block_q5_k(x: &[f32; QK_K], y: &mut [u8; Q5_K_BYTES]) {
    let p = Qkx2 {
        nmax: 31,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    };
    let mut l = [0u8; QK_K];
    let (head, rest) = y.split_at_mut(16);
    quantize_k4_scales(x, &p, head, &mut l);
    let (qh, ql) = rest.split_at_mut(32);
    qh.fill(0);
    let mut m1 = 1u8;
    let mut m2 = 2u8;
    for (n, q) in ql.chunks_exact_mut(32).enumerate() {
        let base = 64 * n;
        for j in 0..32 {
            let mut l1 = l[base + j];
            if l1 > 15 {
                l1 -= 16;
                qh[j] |= m1;
            }
            let mut l2 = l[base + j + 32];
            if l2 > 15 {
                l2 -= 16;
                qh[j] |= m2;
            }
            q[j] = l1 | (l2 << 4);
        }
        m1 = m1.wrapping_shl(2);
        m2 = m2.wrapping_shl(2);
    }
}

/// Decodes one `block_q5_K` (ggml's `dequantize_row_q5_K`).
pub fn dequantize_block_q5_k(x: &[u8; Q5_K_BYTES], y: &mut [f32; QK_K]) {
    let d = read_f16(x, 0);
    let min = read_f16(x, 2);
    let scales = &x[4..16];
    let qh = &x[16..48];
    let mut u1 = 1u8;
    let mut u2 = 2u8;
    for (n, (ql, ys)) in x[48..]
        .chunks_exact(32)
        .zip(y.chunks_exact_mut(64))
        .enumerate()
    {
        let (sc, m) = get_scale_min_k4(2 * n, scales);
        let (d1, m1) = (d * sc as f32, min * m as f32);
        let (sc, m) = get_scale_min_k4(2 * n + 1, scales);
        let (d2, m2) = (d * sc as f32, min * m as f32);
        for k in 0..32 {
            let h = if qh[k] & u1 != 0 { 16 } else { 0 };
            ys[k] = d1 * ((ql[k] & 0xF) + h) as f32 - m1;
        }
        for k in 0..32 {
            let h = if qh[k] & u2 != 0 { 16 } else { 0 };
            ys[32 + k] = d2 * ((ql[k] >> 4) + h) as f32 - m2;
        }
        u1 = u1.wrapping_shl(2);
        u2 = u2.wrapping_shl(2);
    }
}

/// Quantizes a row (`x.len()` a multiple of 256) into `x.len() / 256` blocks of 176 bytes,
/// bit for bit what `llama-quantize` writes for Q5_K without an importance matrix.
pub fn quantize_row_q5_k(x: &[f32], y: &mut [u8]) {
    check_row(x.len(), y.len(), Q5_K_BYTES, "Q5_K");
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.chunks_exact_mut(Q5_K_BYTES)) {
        quantize_block_q5_k(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

/// Decodes a row of Q5_K blocks (`x.len() == y.len() / 256 · 176`), bit for bit ggml's
/// `dequantize_row_q5_K`.
pub fn dequantize_row_q5_k(x: &[u8], y: &mut [f32]) {
    check_row(y.len(), x.len(), Q5_K_BYTES, "Q5_K");
    for (xb, yb) in x.chunks_exact(Q5_K_BYTES).zip(y.chunks_exact_mut(QK_K)) {
        dequantize_block_q5_k(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

// ===================================================================== Q6_K

/// Quantizes one super-block to `block_q6_K` (ggml's `quantize_row_q6_K_ref`).
pub fn quantize_block_q6_k(x: &[f32; QK_K], y: &mut [u8; Q6_K_BYTES]) {
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; 16];
    let mut max_scale = 0f32;
    let mut max_abs_scale = 0f32;
    for ib in 0..16 {
        let scale =
            make_qx_quants_rmse1(32, &x[16 * ib..16 * ib + 16], &mut l[16 * ib..16 * ib + 16]);
        scales[ib] = scale;
        let abs_scale = scale.abs();
        if abs_scale > max_abs_scale {
            max_abs_scale = abs_scale;
            max_scale = scale;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        y.fill(0);
        write_f16(y, 208, 0.0);
        return;
    }

    let (ql, rest) = y.split_at_mut(128);
    let (qh, rest) = rest.split_at_mut(64);
    let (sc, dbytes) = rest.split_at_mut(16);
    let iscale = -128.0 / max_scale;
    write_f16(dbytes, 0, 1.0 / iscale);
    for ib in 0..16 {
        // `MIN(127, nearest_int(..))` stored into an `int8_t`.
        sc[ib] = nearest_int(iscale * scales[ib]).min(127) as i8 as u8;
    }
    let dd = read_f16(dbytes, 0);
    for j in 0..16 {
        let d = dd * (sc[j] as i8) as f32;
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let q = nearest_int(x[16 * j + ii] / d);
            l[16 * j + ii] = (clamp(q, -32, 31) + 32) as i8;
        }
    }
    for (n, (ql, qh)) in ql
        .chunks_exact_mut(64)
        .zip(qh.chunks_exact_mut(32))
        .enumerate()
    {
        let j = 128 * n;
        for k in 0..32 {
            let [a, b, c, d] =
                [l[j + k], l[j + k + 32], l[j + k + 64], l[j + k + 96]].map(i32::from);
            ql[k] = ((a & 0xF) | ((c & 0xF) << 4)) as u8;
            ql[k + 32] = ((b & 0xF) | ((d & 0xF) << 4)) as u8;
            qh[k] = ((a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((d >> 4) << 6)) as u8;
        }
    }
}

/// Decodes one `block_q6_K` (ggml's `dequantize_row_q6_K`).
pub fn dequantize_block_q6_k(x: &[u8; Q6_K_BYTES], y: &mut [f32; QK_K]) {
    let d = read_f16(x, 208);
    for n in 0..2 {
        let ql = &x[64 * n..64 * n + 64];
        let qh = &x[128 + 32 * n..128 + 32 * n + 32];
        let sc = &x[192 + 8 * n..192 + 8 * n + 8];
        let ys = &mut y[128 * n..128 * n + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            ys[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            ys[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            ys[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            ys[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}

/// Quantizes a row (`x.len()` a multiple of 256) into `x.len() / 256` blocks of 210 bytes,
/// bit for bit what `llama-quantize` writes for Q6_K without an importance matrix.
pub fn quantize_row_q6_k(x: &[f32], y: &mut [u8]) {
    check_row(x.len(), y.len(), Q6_K_BYTES, "Q6_K");
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.chunks_exact_mut(Q6_K_BYTES)) {
        quantize_block_q6_k(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

/// Decodes a row of Q6_K blocks (`x.len() == y.len() / 256 · 210`), bit for bit ggml's
/// `dequantize_row_q6_K`.
pub fn dequantize_row_q6_k(x: &[u8], y: &mut [f32]) {
    check_row(y.len(), x.len(), Q6_K_BYTES, "Q6_K");
    for (xb, yb) in x.chunks_exact(Q6_K_BYTES).zip(y.chunks_exact_mut(QK_K)) {
        dequantize_block_q6_k(xb.try_into().unwrap(), yb.try_into().unwrap());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Codec;

    const TYPES: [Codec; 5] = [
        Codec::Q2_K,
        Codec::Q3_K,
        Codec::Q4_K,
        Codec::Q5_K,
        Codec::Q6_K,
    ];

    /// Test data (see `tests/data/README.md`): source rows as bf16, the bytes llama-quantize
    /// wrote for them, gguf-py's dequantization of those bytes.
    fn fixture(c: Codec) -> (&'static [u8], &'static [u8], &'static [u8]) {
        macro_rules! data {
            ($t:literal) => {
                (
                    &include_bytes!(concat!("../tests/data/kquants/", $t, ".in.bf16"))[..],
                    &include_bytes!(concat!("../tests/data/kquants/", $t, ".q"))[..],
                    &include_bytes!(concat!("../tests/data/kquants/", $t, ".deq.f32"))[..],
                )
            };
        }
        match c {
            Codec::Q2_K => data!("q2_k"),
            Codec::Q3_K => data!("q3_k"),
            Codec::Q4_K => data!("q4_k"),
            Codec::Q5_K => data!("q5_k"),
            Codec::Q6_K => data!("q6_k"),
            _ => unreachable!(),
        }
    }

    /// Edge-case super-blocks (f32) and ggml's encoding of them.
    const EDGE_IN: &[u8] = include_bytes!("../tests/data/kquants/edge.in.f32");
    const EDGE_NAMES: [&str; 10] = [
        "all zero",
        "one huge value (1e6)",
        "one value past the f16 range (-3e9)",
        "negative only",
        "f32 subnormals",
        "tiny values (f16-subnormal d)",
        "all equal, negative",
        "zero sub-blocks",
        "mixed magnitudes",
        "below GROUP_MAX_EPS (1e-20)",
    ];

    fn edge_q(c: Codec) -> &'static [u8] {
        match c {
            Codec::Q2_K => include_bytes!("../tests/data/kquants/edge.q2_k.q"),
            Codec::Q3_K => include_bytes!("../tests/data/kquants/edge.q3_k.q"),
            Codec::Q4_K => include_bytes!("../tests/data/kquants/edge.q4_k.q"),
            Codec::Q5_K => include_bytes!("../tests/data/kquants/edge.q5_k.q"),
            Codec::Q6_K => include_bytes!("../tests/data/kquants/edge.q6_k.q"),
            _ => unreachable!(),
        }
    }

    /// FNV-1a 64 of the little-endian f32 bytes gguf-py's `dequantize` returns for
    /// `edge.T.q` (equal, bit for bit, to ggml's `dequantize_row_*` on them).
    fn edge_dequant_fnv(c: Codec) -> u64 {
        match c {
            Codec::Q2_K => 0xdf94_9f2a_eb6d_318f,
            Codec::Q3_K => 0xd721_a997_7373_54e7,
            Codec::Q4_K => 0x0657_b29a_6756_ff27,
            Codec::Q5_K => 0x714d_31ff_4ecc_d96e,
            Codec::Q6_K => 0xb61b_49ac_f6f6_cd5d,
            _ => unreachable!(),
        }
    }

    fn f32s(b: &[u8]) -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    fn fnv1a64(vals: &[f32]) -> u64 {
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        fnv1a64_bytes(&bytes)
    }

    #[test]
    fn fixture_rows_quantize_like_llama_quantize() {
        for c in TYPES {
            let (input, want, _) = fixture(c);
            let mut x = vec![0f32; input.len() / 2];
            crate::float::bf16_row_to_f32(input, &mut x);
            // One super-block per row, as in the fixture tensors (rows of 256).
            for (r, (xr, wr)) in x
                .chunks_exact(QK_K)
                .zip(want.chunks_exact(c.block_bytes()))
                .enumerate()
            {
                let mut got = vec![0u8; c.block_bytes()];
                c.quantize_row(xr, &mut got);
                assert_eq!(got, wr, "{c} fixture row {r}");
            }
            // The same rows as one row of three super-blocks.
            let mut got = vec![0u8; want.len()];
            c.quantize_row(&x, &mut got);
            assert_eq!(got, want, "{c} three-block row");
        }
    }

    #[test]
    fn fixture_rows_dequantize_like_ggml() {
        for c in TYPES {
            let (_, bytes, deq) = fixture(c);
            let want = f32s(deq);
            let mut got = vec![0f32; want.len()];
            c.dequantize_row(bytes, &mut got);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "{c} value {i}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn edge_blocks_quantize_like_ggml() {
        let x = f32s(EDGE_IN);
        assert_eq!(x.len(), EDGE_NAMES.len() * QK_K);
        for c in TYPES {
            let want = edge_q(c);
            let bb = c.block_bytes();
            for (k, xb) in x.chunks_exact(QK_K).enumerate() {
                let mut got = vec![0u8; bb];
                c.quantize_row(xb, &mut got);
                assert_eq!(
                    got,
                    want[k * bb..(k + 1) * bb],
                    "{c}, edge block {k}: {}",
                    EDGE_NAMES[k]
                );
            }
        }
    }

    #[test]
    fn edge_blocks_dequantize_like_ggml() {
        for c in TYPES {
            let q = edge_q(c);
            let mut got = vec![0f32; q.len() / c.block_bytes() * QK_K];
            c.dequantize_row(q, &mut got);
            assert_eq!(fnv1a64(&got), edge_dequant_fnv(c), "{c}");
        }
    }

    /// What the edge cases mean, beyond matching ggml's bytes.
    #[test]
    fn edge_blocks_behave() {
        let x = f32s(EDGE_IN);
        let block = |k: usize| &x[k * QK_K..(k + 1) * QK_K];
        for c in TYPES {
            let bb = c.block_bytes();
            let mut q = vec![0u8; bb];
            let mut back = vec![0f32; QK_K];

            c.quantize_row(block(0), &mut q);
            assert!(
                q.iter().all(|&b| b == 0),
                "{c}: an all-zero block is all-zero bytes"
            );
            c.dequantize_row(&q, &mut back);
            assert!(back.iter().all(|&v| v == 0.0), "{c}: and decodes to zeros");

            // The huge value survives within a few percent; the rest of its sub-block is lost
            // to it, as in ggml.
            c.quantize_row(block(1), &mut q);
            c.dequantize_row(&q, &mut back);
            assert!(
                (back[77] - 1e6).abs() < 0.05e6,
                "{c}: huge value -> {}",
                back[77]
            );
            assert!(back.iter().all(|v| v.is_finite()), "{c}");

            // Beyond f16's range the super-block scale overflows to inf, as in ggml.
            c.quantize_row(block(2), &mut q);
            c.dequantize_row(&q, &mut back);
            assert!(!back[200].is_finite(), "{c}: f16 overflow of d");

            // f32 subnormals: every scale rounds to f16 zero, so the block decodes to zeros.
            c.quantize_row(block(4), &mut q);
            c.dequantize_row(&q, &mut back);
            assert!(back.iter().all(|&v| v == 0.0), "{c}: subnormal block");

            // Below ggml's GROUP_MAX_EPS: Q3_K and Q6_K write an all-zero block; the others
            // fit the values but their scales round to f16 zero. Either way, zeros come back.
            c.quantize_row(block(9), &mut q);
            if matches!(c, Codec::Q3_K | Codec::Q6_K) {
                assert!(q.iter().all(|&b| b == 0), "{c}: below GROUP_MAX_EPS");
            }
            c.dequantize_row(&q, &mut back);
            assert!(back.iter().all(|&v| v == 0.0), "{c}: below GROUP_MAX_EPS");

            // Tiny values still get a (subnormal) f16 scale and come back close.
            c.quantize_row(block(5), &mut q);
            c.dequantize_row(&q, &mut back);
            let amax = block(5).iter().fold(0f32, |m, v| m.max(v.abs()));
            for (a, b) in block(5).iter().zip(&back) {
                assert!((a - b).abs() <= 0.8 * amax, "{c}: tiny {a} -> {b}");
            }
        }
        // Negative-only input round-trips like any other (no sign flip beyond rounding).
        for c in TYPES {
            let r = relative_rmse(c, block(3));
            assert!(
                r < max_relative_rmse(c),
                "{c}: negative-only relative rmse {r}"
            );
        }
    }

    /// Round-trip rmse over rms of the input.
    fn relative_rmse(c: Codec, x: &[f32]) -> f32 {
        let mut q = vec![0u8; c.row_bytes(x.len())];
        c.quantize_row(x, &mut q);
        let mut back = vec![0f32; x.len()];
        c.dequantize_row(&q, &mut back);
        let se: f32 = x.iter().zip(&back).map(|(a, b)| (a - b) * (a - b)).sum();
        let s2: f32 = x.iter().map(|a| a * a).sum();
        (se / s2).sqrt()
    }

    /// Loose bounds, about twice what ggml's quantizers reach on smooth data (measured:
    /// 0.30, 0.14, 0.069, 0.035, 0.016).
    fn max_relative_rmse(c: Codec) -> f32 {
        match c {
            Codec::Q2_K => 0.6,
            Codec::Q3_K => 0.3,
            Codec::Q4_K => 0.14,
            Codec::Q5_K => 0.07,
            Codec::Q6_K => 0.035,
            _ => unreachable!(),
        }
    }

    /// Round-trip error on smooth data falls with every added bit (a layout slip between
    /// encoder and decoder would not).
    #[test]
    fn round_trip_error_shrinks_with_bits() {
        let x: Vec<f32> = (0..4 * QK_K)
            .map(|i| ((i as f32) * 0.37).sin() * (1.0 + (i % 7) as f32))
            .collect();
        let mut last = f32::INFINITY;
        for c in TYPES {
            let r = relative_rmse(c, &x);
            assert!(r < last, "{c}: relative rmse {r} not below {last}");
            assert!(r < max_relative_rmse(c), "{c}: relative rmse {r}");
            last = r;
        }
    }

    /// xorshift64, for [`synthetic_blocks`].
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// About normal: the sum of four uniforms in [-1, 1), each exact in f32.
        fn normal(&mut self) -> f32 {
            let mut t = 0f32;
            for _ in 0..4 {
                t += ((self.next() >> 40) as i32 - (1 << 23)) as f32 / (1 << 23) as f32;
            }
            t
        }
    }

    /// A deterministic mix of super-blocks built with exact f32 operations only (integer → f32
    /// conversions, power-of-two scales, one sum), so every platform builds the same bits:
    /// normal-ish, negative only, small integers (ties), sparse, heavy tails, sub-blocks of
    /// different magnitudes, positive with an offset, raw bit patterns below 2 (subnormals
    /// included). Scales span 2^-30 .. 2^9.
    fn synthetic_blocks(n: usize) -> Vec<f32> {
        let mut r = XorShift(0x2545_f491_4f6c_dd1d);
        let pow2 = |e: i32| f32::from_bits(((127 + e) as u32) << 23);
        let mut x = Vec::with_capacity(n * QK_K);
        for b in 0..n {
            let e = (r.next() % 40) as i32 - 30;
            for i in 0..QK_K {
                let v = match b % 8 {
                    0 => r.normal() * pow2(e),
                    1 => -r.normal().abs() * pow2(e),
                    2 => ((r.next() % 9) as i32 - 4) as f32 * pow2(e),
                    3 if !r.next().is_multiple_of(10) => 0.0,
                    3 => r.normal() * pow2(e),
                    4 if r.next().is_multiple_of(64) => r.normal() * pow2(e + 10),
                    4 => r.normal() * pow2(e),
                    5 => r.normal() * pow2((i / 16 % 5) as i32 * 3 - 6),
                    6 => 1.0 + r.normal() * pow2(-4),
                    _ => f32::from_bits(r.next() as u32 & 0xBFFF_FFFF),
                };
                x.push(v);
            }
        }
        x
    }

    /// FNV-1a 64 of the bytes ggml's `quantize_*_K(.., NULL)` writes for
    /// `synthetic_blocks(512)`, and of ggml's `dequantize_row_*` of those bytes (f32 LE), from
    /// `ggml-quants.c` of the vendored llama.cpp built with llama.cpp's own flags (see
    /// `tests/data/README.md`).
    fn synthetic_fnv(c: Codec) -> (u64, u64) {
        match c {
            Codec::Q2_K => (0x995c_dc8f_6704_021d, 0x0e71_b127_580c_d04b),
            Codec::Q3_K => (0x63df_53a3_abf4_a5f0, 0xd85b_28e1_68ff_0bb2),
            Codec::Q4_K => (0x5ad8_8d77_7fc5_ec16, 0xf6a4_e2e4_5a7c_0b9f),
            Codec::Q5_K => (0x78d1_b372_79cf_e64f, 0x7075_dfeb_6554_dc37),
            Codec::Q6_K => (0x39c4_be48_ad27_54c6, 0xe402_1466_8cfe_1318),
            _ => unreachable!(),
        }
    }

    fn fnv1a64_bytes(bytes: &[u8]) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }

    #[test]
    fn synthetic_blocks_match_ggml() {
        let x = synthetic_blocks(512);
        for c in TYPES {
            let mut q = vec![0u8; c.row_bytes(x.len())];
            c.quantize_row(&x, &mut q);
            let mut back = vec![0f32; x.len()];
            c.dequantize_row(&q, &mut back);
            let (want_q, want_deq) = synthetic_fnv(c);
            assert_eq!(fnv1a64_bytes(&q), want_q, "{c} bytes");
            assert_eq!(fnv1a64(&back), want_deq, "{c} dequantized");
        }
    }

    #[test]
    fn nearest_int_is_ggmls_round_half_even() {
        for (v, want) in [
            (0.0, 0),
            (-0.0, 0),
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (-2.5, -2),
            (-3.5, -4),
            (7.49, 7),
            (-31.6, -32),
            (4_194_303.0, 4_194_303),
        ] {
            assert_eq!(nearest_int(v), want, "{v}");
        }
    }

    fn check_fp16_against_half(bits: u32) {
        let f = f32::from_bits(bits);
        let ours = fp32_to_fp16(f);
        if f.is_nan() {
            assert_eq!(ours & 0x7FFF, 0x7E00, "{bits:#x}");
            assert_eq!(ours >> 15, (bits >> 31) as u16, "{bits:#x}");
        } else {
            assert_eq!(ours, crate::float::f32_to_f16_bits(f), "{bits:#x}");
        }
    }

    /// ggml's f32 -> f16 rounding equals the crate's (`half`, nearest even) except for NaN
    /// payloads, where ggml always writes the quiet NaN 0x7E00.
    #[test]
    fn fp16_rounding_matches_half_except_nan_payloads() {
        for bits in (0..=u32::MAX).step_by(997) {
            check_fp16_against_half(bits);
        }
        for bits in [
            0x3380_0000,
            0x3380_0001,
            0x477F_F000,
            0x477F_EFFF,
            0x7F80_0001,
            0xFFC0_0000,
        ] {
            check_fp16_against_half(bits);
        }
        for h in 0..=u16::MAX {
            let f = fp16_to_fp32(h);
            let want = crate::float::f16_bits_to_f32(h);
            assert!(
                f.to_bits() == want.to_bits() || (f.is_nan() && want.is_nan()),
                "{h:#x}"
            );
            if !f.is_nan() {
                assert_eq!(fp32_to_fp16(f), h, "{h:#x} round trip");
            }
        }
    }

    /// Every f32 bit pattern (about 20 s with `--release`).
    #[test]
    #[ignore]
    fn fp16_rounding_matches_half_exhaustively() {
        for bits in 0..=u32::MAX {
            check_fp16_against_half(bits);
        }
    }

    #[test]
    #[should_panic(expected = "Q4_K row length must be a multiple of 256")]
    fn partial_super_block_is_rejected() {
        quantize_row_q4_k(&[0.0; 128], &mut [0u8; 72]);
    }

    #[test]
    #[should_panic(expected = "Q6_K row bytes")]
    fn wrong_byte_count_is_rejected() {
        dequantize_row_q6_k(&[0u8; 200], &mut [0.0; 256]);
    }
}
