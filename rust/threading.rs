//! The one rayon pool all kernels run on, sized by `set_num_threads` /
//! `CNNRS_NUM_THREADS` (default: the machine's cores).
//!
//! Kernels never ask how many threads there are when they decide how to split a
//! reduction: chunk boundaries are fixed by the problem size alone, so results are
//! bit-identical for any thread count.

use std::sync::{Arc, OnceLock, RwLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

/// The most threads a pool may have: far above any CPU this library targets,
/// and low enough that a typo (`set_num_threads(100000)`) fails fast instead
/// of spawning threads until the machine gives out.
pub const MAX_THREADS: usize = 256;

/// Below about this many flops a kernel stays on the calling thread: waking
/// rayon workers costs more than tiny ops gain.
pub const PARALLEL_MIN_FLOPS: usize = 500_000;

fn slot() -> &'static RwLock<Arc<ThreadPool>> {
    static POOL: OnceLock<RwLock<Arc<ThreadPool>>> = OnceLock::new();
    POOL.get_or_init(|| RwLock::new(Arc::new(build_pool(default_num_threads()))))
}

/// `CNNRS_NUM_THREADS` if it is an integer in 1..=MAX_THREADS, else the machine's cores.
fn default_num_threads() -> usize {
    std::env::var("CNNRS_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| (1..=MAX_THREADS).contains(&n))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn try_build_pool(n: usize) -> Result<ThreadPool, rayon::ThreadPoolBuildError> {
    ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("cnnrs-{i}"))
        .build()
}

/// The first pool: if its threads cannot be spawned, one thread (rayon then
/// runs the work on that thread) rather than a panic inside a kernel call.
fn build_pool(n: usize) -> ThreadPool {
    try_build_pool(n)
        .or_else(|_| try_build_pool(1))
        .or_else(|_| {
            ThreadPoolBuilder::new()
                .num_threads(1)
                .use_current_thread()
                .build()
        })
        .unwrap_or_else(|e| panic!("cnnrs: cannot start even one worker thread: {e}"))
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

/// Whether a kernel should stay on the calling thread although its work is
/// large: with a one-thread pool, handing the work to that pool's thread
/// only adds a wake-up (milliseconds on a loaded machine).
pub fn single_threaded() -> bool {
    num_threads() == 1
}

/// Replaces the pool with one of `n` threads (`1 <= n <= MAX_THREADS`, checked
/// by the caller). On failure (threads cannot be spawned) the old pool stays.
pub fn set_num_threads(n: usize) -> Result<(), String> {
    let new_pool = Arc::new(try_build_pool(n.clamp(1, MAX_THREADS)).map_err(|e| e.to_string())?);
    *slot().write().unwrap_or_else(|e| e.into_inner()) = new_pool;
    Ok(())
}
