//! Sizes as every command prints them: binary units (KiB, MiB, GiB: powers of 1024), the
//! units GPU memory, llama.cpp's model sizes and `free -h` use. Inputs take both kinds
//! (`--gpu-mem 24GiB`, `--split-max-size 4GB`); outputs are always binary.

/// `n` bytes in the largest binary unit that keeps the number at least 1: `512 B`, `1.5 KiB`,
/// `12.3 MiB`, `12.84 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u >= 2 {
        format!("{v:.2} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `n` bytes in GiB with two decimals (tables whose rows compare sizes: `fit`).
pub fn gib(n: u64) -> String {
    format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64)
}

/// A transfer rate in MiB/s.
pub fn rate(n: u64, secs: f64) -> String {
    format!(
        "{:.1} MiB/s",
        n as f64 / (1u64 << 20) as f64 / secs.max(1e-9)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_units_throughout() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(bytes(13_761_264_768), "12.82 GiB");
        assert_eq!(gib(24 << 30), "24.00 GiB");
        assert_eq!(rate(10 << 20, 2.0), "5.0 MiB/s");
    }
}
