//! Single-thread timings of the matmul kernels at gpt-oss-20b shapes: `cargo run --release -p
//! oss-forge-reference --example kernel_bench`. Prints the best of several runs (the machine is
//! shared), in GFLOP/s (two FLOPs per multiply-add) and decoded values per second.

use quant::{float, mxfp4};
use reference::kernel;
use reference::linear::matmul;
use reference::tensor::{DenseType, Encoding, MatRef};
use std::time::Instant;

fn pseudo(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

/// This thread's time on a CPU, in seconds (Linux's schedstat; wall time elsewhere): other jobs
/// on a shared machine then slow a run without lengthening it.
fn cpu_secs() -> f64 {
    match std::fs::read_to_string("/proc/thread-self/schedstat") {
        Ok(s) => {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1e9
        }
        Err(_) => {
            static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
            START.get_or_init(Instant::now).elapsed().as_secs_f64()
        }
    }
}

/// The least CPU time per call of `f` over 3 rounds of at least 0.3 s of calls each (the
/// schedstat clock advances at scheduler ticks, so it needs long rounds).
fn best(mut f: impl FnMut()) -> f64 {
    // Calls per clock reading: about 10 ms of work.
    let t = Instant::now();
    f();
    let batch = (0.01 / t.elapsed().as_secs_f64().max(1e-9)).clamp(1.0, 1e6) as usize;
    (0..3)
        .map(|_| {
            let t = cpu_secs();
            let mut calls = 0;
            while cpu_secs() - t < 0.3 {
                for _ in 0..batch {
                    f();
                }
                calls += batch;
            }
            (cpu_secs() - t) / calls as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    // `kernel_bench [FILTER]`: only the lines containing FILTER.
    let filter = std::env::args().nth(1).unwrap_or_default();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let cols = 2880;
    println!("kernel path: {}", kernel::path());
    // The kernel alone on a decoded 24-row tile.
    for n_tok in [1usize, 4, 8, 16, 64] {
        let rows = 24;
        let w = pseudo(rows * cols, 1);
        let x = pseudo(n_tok * cols, 2);
        let mut out = vec![0f32; rows * n_tok];
        let mut lanes = Vec::new();
        let label = format!("kernel 24x2880 by {n_tok:3}");
        if !label.contains(&filter) {
            continue;
        }
        let s = best(|| kernel::rows_by_tokens(&w, &x, cols, &mut out, &mut lanes, [&[], &[]]));
        let flops = 2.0 * (rows * cols * n_tok) as f64;
        println!("{label}: {:7.1} GFLOP/s", flops / s / 1e9);
    }
    // matmul over encodings, one thread.
    let rows = 2880;
    let wf = pseudo(rows * cols, 3);
    let mut bf = vec![0u8; rows * cols * 2];
    float::f32_row_to_bf16(&wf, &mut bf);
    let nb = rows * cols / 32;
    let blocks: Vec<u8> = (0..nb * 16).map(|i| (i * 73 % 256) as u8).collect();
    let scales: Vec<u8> = (0..nb).map(|i| 120 + (i % 9) as u8).collect();
    let mats = [
        (
            "bf16",
            MatRef::dense(DenseType::BF16, &bf, rows, cols).unwrap(),
        ),
        (
            "mxfp4",
            MatRef::new(
                rows,
                cols,
                Encoding::Mxfp4 {
                    blocks: &blocks,
                    scales: &scales,
                    row_step: 1,
                },
            )
            .unwrap(),
        ),
    ];
    let _ = mxfp4::BLOCK;
    for (name, m) in &mats {
        let label = format!("decode {name:5} 2880x2880 in 24-row tiles");
        if label.contains(&filter) {
            let mut tile = vec![0f32; 24 * cols];
            let s = best(|| {
                for r0 in (0..rows).step_by(24) {
                    m.dequant_rows(r0, &mut tile);
                }
            });
            println!("{label}: {:6.2} Gvalues/s", (rows * cols) as f64 / s / 1e9);
        }
        for n_tok in [1usize, 8, 18, 64, 170] {
            let label = format!("matmul {name:5} 2880x2880 by {n_tok:3}");
            if !label.contains(&filter) {
                continue;
            }
            let x = pseudo(n_tok * cols, 4);
            let mut y = vec![0f32; n_tok * rows];
            let s = pool.install(|| best(|| matmul(m, &x, n_tok, None, &mut y)));
            let flops = 2.0 * (rows * cols * n_tok) as f64;
            println!(
                "{label}: {:7.1} GFLOP/s, {:6.2} Gvalues/s, {:7.2} ms",
                flops / s / 1e9,
                (rows * cols) as f64 / s / 1e9,
                s * 1e3
            );
        }
    }
}
