//! Runtime dispatch to AVX2 copies of fast paths (x86_64): the portable body of an encoder
//! compiled a second time with AVX2 enabled, so the compiler's vectorized loops use 256-bit
//! registers. The same operations in the same order (Rust never contracts a multiply and an add
//! into an FMA, and only `avx2` is enabled), so the same bytes; the copies are compared with the
//! plain ports by the codecs' tests whichever path this machine takes.
//!
//! The only `unsafe` in this crate is here: calling a `#[target_feature]` function, after
//! [`available`] has confirmed the feature.

/// Whether this CPU has AVX2 (checked once; always false off x86_64).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| std::arch::is_x86_feature_detected!("avx2"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Defines `pub(crate) fn $name(x: &[f32], y: &mut [u8])` that runs `$body(x, y)` compiled with
/// AVX2 where [`available`], and as built elsewhere. `$body` must be `#[inline(always)]` (with
/// everything it calls that should vectorize), so that it is compiled inside the AVX2 copy.
macro_rules! dispatch_row {
    ($(#[$doc:meta])* $name:ident => $body:path) => {
        $(#[$doc])*
        pub(crate) fn $name(x: &[f32], y: &mut [u8]) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn with_avx2(x: &[f32], y: &mut [u8]) {
                    $body(x, y)
                }
                if $crate::avx2::available() {
                    // SAFETY: `with_avx2` requires only the AVX2 target feature, which
                    // `available()` just confirmed this CPU has; it has no other unsafe
                    // operation.
                    #[allow(unsafe_code)]
                    unsafe {
                        with_avx2(x, y)
                    };
                    return;
                }
            }
            $body(x, y)
        }
    };
}
pub(crate) use dispatch_row;
