//! The one rayon pool all kernels run on, sized by `set_num_threads` /
//! `CNNRS_NUM_THREADS` (default: the machine's cores).
//!
//! Kernels never ask how many threads there are when they decide how to split a
//! reduction: chunk boundaries are fixed by the problem size alone, so results are
//! bit-identical for any thread count.

use std::sync::{Arc, OnceLock, RwLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

/// Below about this many flops a kernel stays on the calling thread: waking
/// rayon workers costs more than tiny ops gain.
pub const PARALLEL_MIN_FLOPS: usize = 500_000;

fn slot() -> &'static RwLock<Arc<ThreadPool>> {
    static POOL: OnceLock<RwLock<Arc<ThreadPool>>> = OnceLock::new();
    POOL.get_or_init(|| RwLock::new(Arc::new(build_pool(default_num_threads()))))
}

fn default_num_threads() -> usize {
    std::env::var("CNNRS_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn build_pool(n: usize) -> ThreadPool {
    ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("cnnrs-{i}"))
        .build()
        .expect("building a rayon thread pool only fails if threads cannot be spawned")
}

/// The current pool. Callers hold the `Arc`, so a concurrent `set_num_threads`
/// never pulls the pool from under a running kernel.
pub fn pool() -> Arc<ThreadPool> {
    slot().read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Runs `f` inside the cnnrs pool, so that its `par_iter`s use that pool.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool().install(f)
}

pub fn num_threads() -> usize {
    pool().current_num_threads()
}

/// Replaces the pool with one of `n` threads (`n >= 1`, checked by the caller).
pub fn set_num_threads(n: usize) {
    let new_pool = Arc::new(build_pool(n.max(1)));
    *slot().write().unwrap_or_else(|e| e.into_inner()) = new_pool;
}
