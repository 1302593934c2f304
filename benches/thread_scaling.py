"""How cnnrs and PyTorch scale with threads: the suite's cases at 1, 2, 4, ... threads.

Each thread count runs the benchmark suite (``cnnrs.bench.suite``) in its own
interpreter, because numpy's OpenBLAS and PyTorch's OpenMP read their thread
counts when they load; the suite sets the variables and re-runs itself. Each run
saves its JSON under ``--out``; the summary table is built from those files, so
``--summarize DIR`` remakes it from a run done elsewhere (the 16-core device
machine, say).

    python benches/thread_scaling.py --threads 1,2,4,8,16 --out runs/scaling
    python benches/thread_scaling.py --summarize runs/scaling

Columns: each library's median throughput, cnnrs's advantage at that thread
count (cnnrs / torch), and each library's speed-up over its own 1-thread run.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time

DEFAULT_CASES = r"^(lenet5|vgg_small|vgg11) (train|infer) b(64|256)$|^gemm n=(512|1024|2048)$"


def _json_path(out: pathlib.Path, threads: int) -> pathlib.Path:
    return out / f"scaling_t{threads}.json"


def run_all(thread_counts: list[int], cases: str, out: pathlib.Path, extra: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for threads in thread_counts:
        started = time.perf_counter()
        command = [sys.executable, "-m", "cnnrs.bench.suite", "--threads", str(threads)]
        command += ["--cases", cases, "--json", str(_json_path(out, threads)), *extra]
        print(f"== {threads} threads: {' '.join(command)}", flush=True)
        status = subprocess.call(command)
        print(f"== {threads} threads: exit {status}, {time.perf_counter() - started:.0f} s", flush=True)


def _load(out: pathlib.Path) -> dict[int, dict]:
    runs = {}
    for path in sorted(out.glob("scaling_t*.json")):
        threads = int(path.stem.removeprefix("scaling_t"))
        runs[threads] = json.loads(path.read_text(encoding="utf-8"))
    return dict(sorted(runs.items()))


def _values(case: dict) -> dict[str, float]:
    return {m["name"]: m["value"] for m in case["measurements"] if m.get("value")}


def _row(name: str, unit: str, threads: int, values: dict[str, float], base: dict[str, float]) -> str:
    ours = values.get("cnnrs")
    anchor = next((lib for lib in values if lib != "cnnrs"), None)
    theirs = values.get(anchor) if anchor else None

    def cell(value):
        return f"{value:,.1f}" if value else "-"

    def speedup(lib):
        return f"{values[lib] / base[lib]:.2f}x" if lib in values and base.get(lib) else "-"

    ratio = f"{ours / theirs:.2f}x" if ours and theirs else "-"
    return (
        f"| {name} ({unit}) | {threads} | {cell(ours)} | {anchor or '-'} {cell(theirs)} | {ratio} "
        f"| {speedup('cnnrs')} | {speedup(anchor) if anchor else '-'} |"
    )


def summarize(out: pathlib.Path) -> str:
    """A Markdown table: per case and thread count, medians, ratio and speed-ups over the fewest threads."""
    runs = _load(out)
    if not runs:
        return f"no scaling_t*.json in {out}"
    meta = next(iter(runs.values()))["meta"]
    lines = [
        f"machine: {meta['machine']}",
        f"date: {meta['date']}; OMP_WAIT_POLICY: {meta['OMP_WAIT_POLICY']}",
        f"cnnrs {meta['cnnrs'].split(',')[0]}; torch {meta['torch'].split(',')[0]}; numpy {meta['numpy']}",
        "",
        "| case | threads | cnnrs | anchor | cnnrs / anchor | cnnrs speed-up | anchor speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    fewest = min(runs)
    for name in [c["name"] for c in runs[fewest]["cases"]]:
        base: dict[str, float] = {}
        for threads, run in runs.items():
            case = next((c for c in run["cases"] if c["name"] == name), None)
            if case is None:
                continue
            values = _values(case)
            if threads == fewest:
                base = values
            lines.append(_row(name, case["unit"], threads, values, base))
    lines += ["", f"speed-up: over the same library's run at {fewest} thread(s)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2,4,8,16", help="comma-separated thread counts")
    parser.add_argument("--cases", default=DEFAULT_CASES, metavar="REGEX", help="the suite's --cases")
    parser.add_argument("--out", default="runs/scaling", help="folder for the per-thread-count JSON")
    parser.add_argument("--quick", action="store_true", help="the suite's quick settings")
    parser.add_argument(
        "--omp-wait-policy", choices=("passive", "active", "default"), default="passive", help="the suite's"
    )
    parser.add_argument("--summarize", metavar="DIR", help="only print the table from DIR's JSON files")
    args = parser.parse_args(argv)
    if args.summarize:
        print(summarize(pathlib.Path(args.summarize)))
        return 0
    out = pathlib.Path(args.out)
    extra = ["--omp-wait-policy", args.omp_wait_policy] + (["--quick"] if args.quick else [])
    run_all([int(t) for t in args.threads.split(",")], args.cases, out, extra)
    print(summarize(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
