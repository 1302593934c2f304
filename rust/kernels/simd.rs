//! Run-time choice between the AVX2+FMA kernels and the portable fallback.
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

pub fn set_force_fallback(force: bool) {
    force_flag().store(force, Ordering::Relaxed);
}

pub fn force_fallback() -> bool {
    force_flag().load(Ordering::Relaxed)
}
