"""``cnnrs bench`` / ``python benches/run_suite.py``: cnnrs against its anchors, side by side.

Thread count: every library gets the same number of threads. numpy's
OpenBLAS and PyTorch's OpenMP read their thread-count environment variables
when they are loaded, which has already happened by the time this module runs
(cnnrs imports numpy). So ``main`` checks OMP_NUM_THREADS, OPENBLAS_NUM_THREADS,
MKL_NUM_THREADS and CNNRS_NUM_THREADS, and when any differs from ``--threads``
it runs itself again in a child interpreter with them set, and returns the
child's exit status. It also calls ``cnnrs.set_num_threads`` and
``torch.set_num_threads``.

OpenMP wait policy: by default the suite also sets OMP_WAIT_POLICY=PASSIVE.
PyTorch's libgomp otherwise spins after every parallel region; on a machine
whose cores are shared with other work (this project's 2-core machine) a LeNet-5
step with 2 threads then took 180 ms instead of 4 ms, which measures the
machine's load, not PyTorch. cnnrs's rayon workers also sleep when idle.
``--omp-wait-policy default`` leaves the variable unset (PyTorch's default).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional

from .timing import Case, CaseResult, Settings, measure_case

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "CNNRS_NUM_THREADS")
_CHILD_MARK = "CNNRS_BENCH_CHILD"

QUICK = Settings(warmup=1, repetitions=5, min_sample_s=0.02, max_case_s=5.0)
FULL = Settings(warmup=2, repetitions=9, min_sample_s=0.05, max_case_s=20.0)


@dataclass
class Task:
    """A selectable unit of the suite: a timed Case, or a footprint/accuracy measurement."""

    name: str
    group: str
    run: Callable[[Settings], list[CaseResult]]


def _case_task(case: Case) -> Task:
    return Task(case.name, case.group, lambda settings: [measure_case(case, settings)])


def build_tasks(quick: bool, threads: int, tta_cap: float) -> list[Task]:
    from . import cases_gemm, cases_layers, cases_networks, memory

    tasks = [_case_task(c) for c in cases_gemm.cases(quick)]
    tasks += [_case_task(c) for c in cases_layers.cases(quick)]
    tasks += [_case_task(c) for c in cases_networks.cases(quick)]
    memory_runs = (
        [("lenet5", 64, 20)] if quick else [("lenet5", 64, 20), ("vgg_small", 64, 5), ("vgg11", 64, 3)]
    )
    for network, batch, steps in memory_runs:
        tasks.append(
            Task(
                f"peak RSS {network} train b{batch}",
                "footprint",
                lambda s, n=network, b=batch, k=steps: [memory.peak_memory(n, b, k, threads)],
            )
        )
    tasks.append(Task("import time", "footprint", lambda s: [memory.import_time(3 if quick else 7)]))
    tasks.append(Task("installed size", "footprint", lambda s: memory.installed_size()))
    if not quick:
        from . import cases_accuracy

        tasks.append(
            Task(
                "LeNet-5 MNIST time to 99.0%",
                "accuracy",
                lambda s: [cases_accuracy.time_to_accuracy(cap_seconds=tta_cap)],
            )
        )
    return tasks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The suite's options; shared by ``cnnrs bench`` (cli.py's registry) and ``main``."""
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repetitions (under 2 minutes)")
    parser.add_argument(
        "--threads", type=int, default=0, help="threads for every library (default: all cores)"
    )
    parser.add_argument("--cases", default="", metavar="REGEX", help="run only cases whose name matches")
    parser.add_argument("--list", action="store_true", help="list the case names and exit")
    parser.add_argument("--json", metavar="PATH", help="save the results (samples included) as JSON")
    parser.add_argument("--png", metavar="PATH", help="save a bar chart of the ratios")
    parser.add_argument("--repetitions", type=int, default=0, help="timed repetitions per case")
    parser.add_argument(
        "--tta-cap", type=float, default=180.0, help="time-to-accuracy: seconds of training per library"
    )
    parser.add_argument(
        "--omp-wait-policy",
        choices=("passive", "active", "default"),
        default="passive",
        help="OMP_WAIT_POLICY for PyTorch's OpenMP ('default': leave it unset; see benches/README.md)",
    )


def _argv_from_args(args: argparse.Namespace) -> list[str]:
    """The command line that reproduces ``args`` (for the child run with the thread variables set)."""
    argv = ["--threads", str(args.threads)] if args.threads else []
    for flag in ("quick", "list"):
        if getattr(args, flag):
            argv.append(f"--{flag}")
    for option in ("cases", "json", "png", "repetitions"):
        value = getattr(args, option)
        if value:
            argv += [f"--{option}", str(value)]
    return argv + ["--tta-cap", str(args.tta_cap), "--omp-wait-policy", args.omp_wait_policy]


def _wanted_environment(threads: int, omp_wait_policy: str) -> dict[str, Optional[str]]:
    """Variable -> value the run needs (None: must be unset)."""
    wanted: dict[str, Optional[str]] = {v: str(threads) for v in THREAD_VARIABLES}
    wanted["OMP_WAIT_POLICY"] = None if omp_wait_policy == "default" else omp_wait_policy.upper()
    return wanted


def _thread_environment_ok(threads: int, omp_wait_policy: str = "passive") -> bool:
    return all(os.environ.get(k) == v for k, v in _wanted_environment(threads, omp_wait_policy).items())


def _rerun_with_threads(args: argparse.Namespace, threads: int) -> int:
    env = dict(os.environ)
    for key, value in _wanted_environment(threads, args.omp_wait_policy).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env[_CHILD_MARK] = "1"
    argv = _argv_from_args(argparse.Namespace(**{**vars(args), "threads": threads}))
    return subprocess.call([sys.executable, "-m", "cnnrs.bench.suite", *argv], env=env)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_metadata(threads: int, quick: bool, argv: list[str]) -> dict:
    import numpy

    import cnnrs

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "cnnrs bench " + " ".join(argv),
        "mode": "quick" if quick else "full",
        "machine": f"{_cpu_model()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "threads": threads,
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "unset (libgomp default: spin, then sleep)"),
        "load average (1, 5, 15 min)": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "cnnrs": f"{cnnrs.__version__} ({cnnrs._cnnrs.simd_path()}), {cnnrs.get_num_threads()} threads",
        "numpy": numpy.__version__,
    }
    try:
        import torch

        meta["torch"] = f"{torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        meta["torch"] = "missing"
    try:
        import jax

        meta["jax"] = jax.__version__
    except ImportError:
        meta["jax"] = "missing"
    return meta


def _header(meta: dict) -> str:
    return "\n".join(f"{key}: {value}" for key, value in meta.items()) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m cnnrs.bench.suite`` / ``benches/run_suite.py``: parse ``argv`` and run."""
    parser = argparse.ArgumentParser(
        prog="cnnrs bench",
        description="Benchmark cnnrs against numpy (GEMM) and PyTorch (layers, networks), side by side.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run the selected cases and print (and save) the table; returns the exit status."""
    threads = args.threads or os.cpu_count() or 1
    if not args.list and not _thread_environment_ok(threads, args.omp_wait_policy):
        if os.environ.get(_CHILD_MARK):
            print("cnnrs bench: could not set the thread environment variables", file=sys.stderr)
            return 2
        return _rerun_with_threads(args, threads)

    tasks = build_tasks(args.quick, threads, args.tta_cap)
    if args.cases:
        pattern = re.compile(args.cases, re.IGNORECASE)
        tasks = [t for t in tasks if pattern.search(t.name) or pattern.search(t.group)]
    if args.list:
        for t in tasks:
            print(f"{t.group:10} {t.name}")
        return 0

    import cnnrs

    cnnrs.set_num_threads(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    settings = QUICK if args.quick else FULL
    if args.repetitions:
        settings = Settings(**{**settings.__dict__, "repetitions": args.repetitions})

    from .report import format_table, save_json, save_png

    meta = run_metadata(threads, args.quick, _argv_from_args(args))
    print(_header(meta), flush=True)
    results: list[CaseResult] = []
    started = time.perf_counter()
    for i, task in enumerate(tasks, 1):
        print(
            f"[{i}/{len(tasks)}] {time.perf_counter() - started:6.1f} s  {task.name}",
            file=sys.stderr,
            flush=True,
        )
        results += task.run(settings)
    print(f"cnnrs bench: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    print(format_table(results))
    if args.json:
        save_json(results, meta, args.json)
        print(f"saved {args.json}")
    if args.png:
        save_png(results, args.png, title=f"cnnrs bench ({meta['mode']}, {threads} threads) {meta['date']}")
        print(f"saved {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
