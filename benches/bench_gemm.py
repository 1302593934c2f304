"""Side-by-side timing of cnnrs.gemm against numpy's matmul (OpenBLAS) on square sizes.

    python benches/bench_gemm.py --threads 2 --sizes 64 128 256 512 1024 2048 --repeats 15

Both libraries get the same thread count: numpy's BLAS reads OPENBLAS_NUM_THREADS (and
OMP/MKL_NUM_THREADS) only when it is first loaded, so `main()` sets those variables before
it imports numpy (threadpoolctl is not a dependency). Call `main()` before anything else in
the process has imported numpy, or the BLAS keeps the thread count it started with.

The two are timed alternately, call by call, after a warm-up, and the medians are compared:
on a shared machine the absolute times drift, the ratio measured side by side much less. When
the machine is oversubscribed (load above the core count), wall-clock times of multithreaded
runs mostly measure the scheduler; the extra "cpu ratio" column (process CPU time) stays
meaningful there, though it counts spin-waiting threads as work.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

DEFAULT_SIZES = (64, 128, 256, 512, 1024, 2048)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2, help="threads for both libraries (default 2)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="square sizes n")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per library and size")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per library and size")
    return parser.parse_args(argv)


def _set_blas_threads(threads: int) -> None:
    if "numpy" in sys.modules:
        print("warning: numpy was imported before the thread count was set", file=sys.stderr)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def _timed_calls(repeats: int, calls_per_sample: int, fns):
    """Alternates the functions; returns per-function lists of (wall, cpu) seconds per call.

    cpu is the process CPU time (all threads), which on a loaded machine is not inflated by the
    time the threads spend waiting for a core; spinning threads still count."""
    samples = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, samples):
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(calls_per_sample):
                fn()
            out.append(
                (
                    (time.perf_counter() - wall) / calls_per_sample,
                    (time.process_time() - cpu) / calls_per_sample,
                )
            )
    return samples


def bench_size(n: int, repeats: int, warmup: int) -> dict:
    import numpy as np

    from cnnrs import _cnnrs

    rng = np.random.default_rng(n)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out_cnnrs = np.empty((n, n), dtype=np.float32)
    out_numpy = np.empty((n, n), dtype=np.float32)

    def run_cnnrs():
        _cnnrs.gemm(a, b, out=out_cnnrs)

    def run_numpy():
        np.matmul(a, b, out=out_numpy)

    flops = 2.0 * n**3
    # Small sizes: time batches of calls so that one sample lasts about a millisecond.
    calls_per_sample = max(1, int(2e6 / flops * 50))
    calls_per_sample = min(calls_per_sample, 200)
    _timed_calls(warmup, calls_per_sample, (run_cnnrs, run_numpy))
    t_cnnrs, t_numpy = _timed_calls(repeats, calls_per_sample, (run_cnnrs, run_numpy))
    med_cnnrs = statistics.median(w for w, _ in t_cnnrs)
    med_numpy = statistics.median(w for w, _ in t_numpy)
    cpu_cnnrs = statistics.median(c for _, c in t_cnnrs)
    cpu_numpy = statistics.median(c for _, c in t_numpy)
    return {
        "n": n,
        "cnnrs_ms": med_cnnrs * 1e3,
        "numpy_ms": med_numpy * 1e3,
        "cnnrs_gflops": flops / med_cnnrs / 1e9,
        "numpy_gflops": flops / med_numpy / 1e9,
        "ratio": med_numpy / med_cnnrs,
        "cpu_ratio": cpu_numpy / cpu_cnnrs if cpu_cnnrs > 0 else float("nan"),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    args = _parse_args(argv)
    _set_blas_threads(args.threads)

    from cnnrs import _cnnrs

    _cnnrs.set_num_threads(args.threads)
    print(
        f"gemm, float32, C = A @ B, {args.threads} thread(s), path {_cnnrs.simd_path()}, "
        f"median of {args.repeats} alternating samples"
    )
    header = (
        f"{'n':>6} {'cnnrs ms':>10} {'numpy ms':>10} {'cnnrs GF/s':>11} {'numpy GF/s':>11} {'ratio':>6}"
        f" {'cpu ratio':>9}"
    )
    print(header)
    rows = []
    for n in args.sizes:
        row = bench_size(n, args.repeats, args.warmup)
        rows.append(row)
        print(
            f"{row['n']:>6} {row['cnnrs_ms']:>10.3f} {row['numpy_ms']:>10.3f} "
            f"{row['cnnrs_gflops']:>11.1f} {row['numpy_gflops']:>11.1f} {row['ratio']:>6.2f}"
            f" {row['cpu_ratio']:>9.2f}",
            flush=True,
        )
    print("ratio = cnnrs throughput / numpy throughput (> 1: cnnrs faster), from wall-clock medians;")
    print("cpu ratio = the same from process CPU time (all threads), less sensitive to a loaded machine")
    return rows


if __name__ == "__main__":
    main()
