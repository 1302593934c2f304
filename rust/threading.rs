//! The one rayon pool all kernels run on, sized by `set_num_threads` /
//! `CNNRS_NUM_THREADS` (default: the machine's cores).
//!
//! Kernels never ask how many threads there are when they decide how to split a
//! reduction: chunk boundaries are fixed by the problem size alone, so results are
//! bit-identical for any thread count.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use rayon::{ThreadPool, ThreadPoolBuilder};

/// The most threads a pool may have: far above any CPU this library targets,
/// and low enough that a typo (`set_num_threads(100000)`) fails fast instead
/// of spawning threads until the machine gives out.
pub const MAX_THREADS: usize = 256;

/// Below about this many flops a kernel stays on the calling thread: waking
/// rayon workers costs more than tiny ops gain.
pub const PARALLEL_MIN_FLOPS: usize = 500_000;

/// At most this many private partials in a reduction split into fixed chunks
/// (the grad-weight passes): enough to keep 16 threads busy. The chunk count
/// must not depend on the thread count (same bits for any), so it is sized for
/// the largest machine we measure; on 2 cores the extra partials cost little
/// next to the reduction itself.
pub const MAX_REDUCTION_CHUNKS: usize = 16;

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

/// How long pool workers stay awake after a kernel returns, for the next one.
///
/// A parked worker takes tens of microseconds to wake on a quiet VM (hundreds
/// on a busy one), longer than many of the kernels a training step calls with
/// a little Python between them; OpenBLAS and OpenMP spin after each call for
/// the same reason. Half a millisecond covers the Python between the kernels
/// of a step and costs at most that much of one core per kernel call.
const KEEP_WARM: Duration = Duration::from_micros(500);

/// Bumped by every outermost `install`: the keep-warm jobs of earlier calls
/// see the change and return, so their workers pick up the new work at once.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Runs `f` inside the cnnrs pool, so that its `par_iter`s use that pool.
///
/// Called from outside the pool (the Python thread), it then keeps
/// `threads - 1` workers spinning for `KEEP_WARM`: together with the caller
/// that is one busy thread per core, so the Python between two kernel calls is
/// not slowed, and the next call finds a worker awake. Nested calls (from
/// inside a kernel) just run `f` on the pool.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let pool = pool();
    if rayon::current_thread_index().is_some() {
        return pool.install(f);
    }
    GENERATION.fetch_add(1, Ordering::AcqRel);
    let result = pool.install(f);
    keep_warm(&pool);
    result
}

/// How long a caller of [`for_each_task`] spins for the pool's tasks to
/// finish before it parks: its own task took about as long as theirs, so they
/// are usually done or nearly so.
const CALLER_SPIN: Duration = Duration::from_micros(200);

/// Runs `task(0)`, ..., `task(tasks - 1)`, each exactly once, in parallel:
/// from outside the pool the calling thread runs task 0 itself and the pool
/// the others. A caller blocked in `install` sleeps on a lock, and waking it
/// when the work is done costs tens of microseconds on this kind of VM, as
/// much as a mid-size GEMM; a caller that works and then spins briefly never
/// sleeps. Called from inside the pool, the tasks go to the pool's join.
/// Results must not depend on which thread runs a task (every kernel's tasks
/// write disjoint outputs).
pub fn for_each_task(tasks: usize, task: &(dyn Fn(usize) + Sync)) {
    if tasks <= 1 {
        return (0..tasks).for_each(task);
    }
    if rayon::current_thread_index().is_some() || num_threads() == 1 {
        return install(|| {
            use rayon::prelude::*;
            (0..tasks).into_par_iter().for_each(task)
        });
    }
    let pool = pool();
    GENERATION.fetch_add(1, Ordering::AcqRel);
    let shared = Arc::new(TaskState {
        claimed: (0..tasks).map(|_| AtomicBool::new(false)).collect(),
        running: AtomicUsize::new(0),
        panicked: Mutex::new(None),
        caller: std::thread::current(),
    });
    // SAFETY (for the transmute below): a job calls `task` only after claiming
    // its index while counted in `running`, and this frame does not return
    // before `running` is back to zero with every index claimed; a job that
    // starts later finds its index claimed and touches only `shared`, which it owns.
    let task_static: &'static (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(task) };
    for t in 1..tasks {
        let shared = Arc::clone(&shared);
        pool.spawn(move || {
            shared.running.fetch_add(1, Ordering::AcqRel);
            if !shared.claimed[t].swap(true, Ordering::AcqRel) {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| task_static(t))) {
                    *shared.panicked.lock().unwrap_or_else(|e| e.into_inner()) = Some(payload);
                }
            }
            if shared.running.fetch_sub(1, Ordering::AcqRel) == 1 {
                shared.caller.unpark();
            }
        });
    }
    // Task 0, then every task no worker has started yet: a parked worker that
    // wakes late must not keep the caller waiting for work it can do itself.
    shared.claimed[0].store(true, Ordering::Release);
    let mut own = catch_unwind(AssertUnwindSafe(|| task(0)));
    for t in 1..tasks {
        if own.is_ok() && !shared.claimed[t].swap(true, Ordering::AcqRel) {
            own = catch_unwind(AssertUnwindSafe(|| task(t)));
        } else {
            shared.claimed[t].store(true, Ordering::Release);
        }
    }
    let start = Instant::now();
    let mut spins = 0u32;
    while shared.running.load(Ordering::Acquire) != 0 {
        if start.elapsed() < CALLER_SPIN {
            std::hint::spin_loop();
            spins += 1;
            if spins.is_multiple_of(64) {
                // Yield now and then rather than only spin: if the OS put a
                // worker of this call on the caller's core, spinning would
                // keep it from running. Not on every turn: a yield is a
                // system call (about a microsecond on this VM), and a caller
                // that yielded on every turn noticed the end of a 64^3
                // product's tasks late.
                std::thread::yield_now();
            }
        } else {
            std::thread::park_timeout(Duration::from_millis(1));
        }
    }
    keep_warm(&pool);
    if let Err(payload) = own {
        resume_unwind(payload);
    }
    let panicked = shared
        .panicked
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(payload) = panicked {
        resume_unwind(payload);
    }
}

/// What the caller of [`for_each_task`] and its pool jobs share.
struct TaskState {
    /// Whether task `t` has been taken, by its job or by the caller.
    claimed: Vec<AtomicBool>,
    /// Jobs between their start and their end (whether or not they ran a task).
    running: AtomicUsize,
    panicked: Mutex<Option<Box<dyn Any + Send>>>,
    caller: std::thread::Thread,
}

/// A raw pointer the tasks of one call share; each task touches only the
/// elements it was handed.
struct SharedMut<T>(*mut T);
// SAFETY: used only to hand disjoint chunks of a `&mut [T]` to the tasks of one call.
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// Chunk `i` (of `len`-long chunks) of the `total`-long slice.
    ///
    /// # Safety
    /// No other reference to that chunk may exist while the result lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn chunk(&self, i: usize, len: usize, total: usize) -> &mut [T] {
        let start = i * len;
        std::slice::from_raw_parts_mut(self.0.add(start), len.min(total - start))
    }
}

/// `data.par_chunks_mut(chunk_len).enumerate().for_each_init(init, f)` with
/// the calling thread taking part: `min(threads, chunks)` tasks (see
/// [`for_each_task`]) take chunks one at a time from a shared counter, each
/// with its own `init()` state, made at its first chunk. Which thread gets
/// which chunk varies, so a chunk's result must depend on the chunk only.
pub fn for_each_chunk_mut<T: Send, S>(
    data: &mut [T],
    chunk_len: usize,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, (usize, &mut [T])) + Sync,
) {
    let chunk_len = chunk_len.max(1);
    let (total, chunks) = (data.len(), data.len().div_ceil(chunk_len));
    let shared = SharedMut(data.as_mut_ptr());
    let next = AtomicUsize::new(0);
    for_each_task(num_threads().min(chunks), &|_| {
        let mut state = None;
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= chunks {
                break;
            }
            // SAFETY: the counter hands out each chunk index once, and `data`
            // is borrowed mutably for the whole call.
            let chunk = unsafe { shared.chunk(i, chunk_len, total) };
            f(state.get_or_insert_with(&init), (i, chunk));
        }
    });
}

/// As [`for_each_chunk_mut`] without state, over two slices cut into the same
/// number of chunks (`a_len` and `b_len` elements each).
pub fn for_each_chunk_pair_mut<T: Send, U: Send>(
    a: &mut [T],
    a_len: usize,
    b: &mut [U],
    b_len: usize,
    f: impl Fn(usize, &mut [T], &mut [U]) + Sync,
) {
    let (a_len, b_len) = (a_len.max(1), b_len.max(1));
    let chunks = a.len().div_ceil(a_len).min(b.len().div_ceil(b_len));
    let (a_total, b_total) = (a.len(), b.len());
    let (sa, sb) = (SharedMut(a.as_mut_ptr()), SharedMut(b.as_mut_ptr()));
    let next = AtomicUsize::new(0);
    for_each_task(num_threads().min(chunks), &|_| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= chunks {
            break;
        }
        // SAFETY: as in `for_each_chunk_mut`, for both slices.
        let (ca, cb) = unsafe { (sa.chunk(i, a_len, a_total), sb.chunk(i, b_len, b_total)) };
        f(i, ca, cb);
    });
}

/// Queues `threads - 1` jobs that spin until `KEEP_WARM` has passed or the
/// next `install` starts. They hold no data and touch nothing but two atomics
/// and the clock, so results never depend on them.
fn keep_warm(pool: &ThreadPool) {
    let generation = GENERATION.load(Ordering::Acquire);
    let deadline = Instant::now() + KEEP_WARM;
    for _ in 1..pool.current_num_threads() {
        pool.spawn(move || {
            let mut spins = 0u32;
            while GENERATION.load(Ordering::Acquire) == generation && Instant::now() < deadline {
                std::hint::spin_loop();
                spins += 1;
                if spins.is_multiple_of(128) {
                    // Let the calling thread run if the OS put it on this
                    // core; not on every turn (see `for_each_task`'s wait).
                    std::thread::yield_now();
                }
            }
        });
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_exactly_once() {
        for tasks in [0, 1, 2, 3, 7] {
            for _ in 0..200 {
                let runs: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                for_each_task(tasks, &|t| {
                    runs[t].fetch_add(1, Ordering::Relaxed);
                });
                assert!(
                    runs.iter().all(|r| r.load(Ordering::Relaxed) == 1),
                    "{tasks} tasks"
                );
            }
        }
    }

    #[test]
    fn a_panicking_task_reaches_the_caller() {
        for bad in 0..3 {
            let result = catch_unwind(|| for_each_task(3, &|t| assert_ne!(t, bad, "task {t}")));
            assert!(result.is_err(), "task {bad} panicked but the call returned");
        }
        // The pool still works afterwards.
        let sum = AtomicUsize::new(0);
        for_each_task(4, &|t| {
            sum.fetch_add(t, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn chunks_are_handed_out_once_each_with_their_index() {
        for (len, chunk) in [(1000, 64), (64, 64), (5, 8), (0, 3)] {
            let mut data = vec![usize::MAX; len];
            for_each_chunk_mut(&mut data, chunk, || (), |_, (i, c)| c.fill(i));
            assert!(
                data.iter().enumerate().all(|(j, &v)| v == j / chunk),
                "{len} / {chunk}"
            );
            let (mut a, mut b) = (vec![0u8; len], vec![0u32; 2 * len]);
            for_each_chunk_pair_mut(&mut a, chunk, &mut b, 2 * chunk, |i, ca, cb| {
                ca.fill(i as u8 + 1);
                cb.fill(i as u32 + 1);
            });
            assert!(a
                .iter()
                .enumerate()
                .all(|(j, &v)| v as usize == j / chunk + 1));
            assert!(b
                .iter()
                .enumerate()
                .all(|(j, &v)| v as usize == j / (2 * chunk) + 1));
        }
    }
}
