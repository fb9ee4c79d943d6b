//! Single-thread timings of the block encoders that GGUF presets spend their time in, the fast
//! row paths beside the plain ports they reproduce: `cargo run --release -p oss-forge-quant
//! --example encode_bench`. Input: 2 M BF16-representable values of a 0.01 spread (the size of
//! real weights); output: nanoseconds of this thread's CPU time per value (Linux schedstat, so
//! other jobs on a shared machine do not lengthen it), the best of 3 rounds of 20 passes.

use quant::mxfp4::encode::{Rounding, quantize_ggml_row, quantize_ggml_row_plain};
use quant::{float, iq4, legacy, q8_0};

/// This thread's CPU time in seconds (schedstat; wall time where it is missing).
fn cpu_secs() -> f64 {
    match std::fs::read_to_string("/proc/thread-self/schedstat") {
        Ok(s) => {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1e9
        }
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
    }
}

fn main() {
    let n = 1 << 21;
    let mut s = 12345u64;
    let x: Vec<f32> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.02;
            f32::from_bits(v.to_bits() & 0xffff_0000)
        })
        .collect();
    type Row = fn(&[f32], &mut [u8]);
    let cases: [(&str, usize, Row); 14] = [
        ("Q4_0 fast", 18, legacy::quantize_row_q4_0),
        ("Q4_0 plain", 18, legacy::quantize_row_q4_0_plain),
        ("Q4_1 fast", 20, legacy::quantize_row_q4_1),
        ("Q4_1 plain", 20, legacy::quantize_row_q4_1_plain),
        ("Q5_0 fast", 22, legacy::quantize_row_q5_0),
        ("Q5_0 plain", 22, legacy::quantize_row_q5_0_plain),
        ("Q5_1 fast", 24, legacy::quantize_row_q5_1),
        ("Q5_1 plain", 24, legacy::quantize_row_q5_1_plain),
        ("Q8_0 fast", 34, q8_0::quantize_row_ref),
        ("Q8_0 plain", 34, q8_0::quantize_row_plain),
        ("MXFP4 fast", 17, |x, y| {
            quantize_ggml_row(Rounding::Ggml, x, y)
        }),
        ("MXFP4 plain", 17, |x, y| {
            quantize_ggml_row_plain(Rounding::Ggml, x, y)
        }),
        ("IQ4_NL fast", 18, iq4::quantize_row_iq4_nl),
        ("IQ4_NL plain", 18, iq4::quantize_row_iq4_nl_scalar),
    ];
    let best = |f: &mut dyn FnMut()| {
        (0..3)
            .map(|_| {
                let t = cpu_secs();
                for _ in 0..20 {
                    f();
                }
                (cpu_secs() - t) / 20.0
            })
            .fold(f64::INFINITY, f64::min)
    };
    for (name, bytes, row) in cases {
        let mut y = vec![0u8; n / 32 * bytes];
        let secs = best(&mut || row(&x, &mut y));
        println!("{name:<12} {:>6.2} ns/value", secs * 1e9 / n as f64);
    }
    let mut back = x.clone();
    for v in back.iter_mut().step_by(3) {
        *v += 1e-3;
    }
    let secs = best(&mut || {
        std::hint::black_box(float::rounding_errors(&x, &back));
    });
    println!("{:<12} {:>6.2} ns/value", "tally", secs * 1e9 / n as f64);
}
