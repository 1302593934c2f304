//! Run-time choice between the AVX2+FMA kernels (plus the GEMM's AVX-512
//! kernel where the CPU has it) and the portable fallback.
//!
//! Detection runs once and is cached. `set_force_fallback(true)` (or
//! `CNNRS_FORCE_FALLBACK=1`) makes every kernel take the portable path, so tests
//! can check that both paths agree.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static FORCE_FALLBACK: OnceLock<AtomicBool> = OnceLock::new();

fn force_flag() -> &'static AtomicBool {
    FORCE_FALLBACK.get_or_init(|| {
        let env = std::env::var("CNNRS_FORCE_FALLBACK").unwrap_or_default();
        AtomicBool::new(matches!(env.trim(), "1" | "true" | "yes"))
    })
}

/// Whether this CPU has AVX2 and FMA (cached after the first call).
pub fn cpu_has_avx2_fma() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// Whether kernels should take the AVX2+FMA path now.
pub fn use_avx2_fma() -> bool {
    cpu_has_avx2_fma() && !force_flag().load(Ordering::Relaxed)
}

/// Whether this CPU has AVX-512F (cached after the first call).
pub fn cpu_has_avx512f() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// `CNNRS_AVX512=0` (read once) keeps the GEMM on its AVX2 kernels on a CPU
/// with AVX-512, for comparisons; the results are the same bits either way.
fn avx512_allowed() -> bool {
    static ALLOWED: OnceLock<bool> = OnceLock::new();
    *ALLOWED.get_or_init(|| {
        let env = std::env::var("CNNRS_AVX512").unwrap_or_default();
        !matches!(env.trim(), "0" | "false" | "off")
    })
}

/// Whether the GEMM should use its AVX-512 kernel now (never when the
/// portable fallback is forced).
pub fn use_avx512() -> bool {
    use_avx2_fma() && cpu_has_avx512f() && avx512_allowed()
}

pub fn set_force_fallback(force: bool) {
    force_flag().store(force, Ordering::Relaxed);
}

pub fn force_fallback() -> bool {
    force_flag().load(Ordering::Relaxed)
}

/// Transposes the 8 x 8 matrix whose rows are `r` (the GEMM's transposed
/// packing and the direct convolution's channel kernels use it).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub unsafe fn transpose_8x8(r: [std::arch::x86_64::__m256; 8]) -> [std::arch::x86_64::__m256; 8] {
    let t0 = std::arch::x86_64::_mm256_unpacklo_ps(r[0], r[1]);
    let t1 = std::arch::x86_64::_mm256_unpackhi_ps(r[0], r[1]);
    let t2 = std::arch::x86_64::_mm256_unpacklo_ps(r[2], r[3]);
    let t3 = std::arch::x86_64::_mm256_unpackhi_ps(r[2], r[3]);
    let t4 = std::arch::x86_64::_mm256_unpacklo_ps(r[4], r[5]);
    let t5 = std::arch::x86_64::_mm256_unpackhi_ps(r[4], r[5]);
    let t6 = std::arch::x86_64::_mm256_unpacklo_ps(r[6], r[7]);
    let t7 = std::arch::x86_64::_mm256_unpackhi_ps(r[6], r[7]);
    let s0 = std::arch::x86_64::_mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = std::arch::x86_64::_mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = std::arch::x86_64::_mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = std::arch::x86_64::_mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = std::arch::x86_64::_mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = std::arch::x86_64::_mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = std::arch::x86_64::_mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = std::arch::x86_64::_mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        std::arch::x86_64::_mm256_permute2f128_ps::<0x20>(s0, s4),
        std::arch::x86_64::_mm256_permute2f128_ps::<0x20>(s1, s5),
        std::arch::x86_64::_mm256_permute2f128_ps::<0x20>(s2, s6),
        std::arch::x86_64::_mm256_permute2f128_ps::<0x20>(s3, s7),
        std::arch::x86_64::_mm256_permute2f128_ps::<0x31>(s0, s4),
        std::arch::x86_64::_mm256_permute2f128_ps::<0x31>(s1, s5),
        std::arch::x86_64::_mm256_permute2f128_ps::<0x31>(s2, s6),
        std::arch::x86_64::_mm256_permute2f128_ps::<0x31>(s3, s7),
    ]
}
