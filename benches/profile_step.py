"""Where does a cnnrs training step spend its time? Kernels against Python around them.

    python benches/profile_step.py --network lenet5 --batch 64 --steps 300 [--threads 2] [--cprofile 25]

1. Times the plain step (zero_grad, forward, loss, backward, SGD step), median
   over steps, and PyTorch's twin on the same batch, alternated.
2. Wraps every function of the compiled module ``cnnrs._cnnrs`` (wherever
   cnnrs's Python modules hold a reference to it) with a timer, and reports
   per kernel: calls per step, microseconds per step, share of the step. What
   is not inside a kernel call is Python (autograd graph, module calls, argument
   handling, numpy glue such as reshapes, zeros, sums).
3. With ``--cprofile N``: the N functions with the largest own time under cProfile.

A dev tool: it monkeypatches, so its timings are slightly above the suite's.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import pstats
import statistics
import sys
import time


def _step_times(step, steps: int) -> list[float]:
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def instrument_kernels():
    """Replace each _cnnrs function, in _cnnrs and in every cnnrs module that imported it by name,
    with a wrapper that adds its wall time to ``totals``; returns (totals, counts)."""
    import cnnrs
    from cnnrs import _cnnrs

    totals: dict[str, float] = collections.defaultdict(float)
    counts: dict[str, int] = collections.defaultdict(int)
    originals = {
        name: getattr(_cnnrs, name)
        for name in dir(_cnnrs)
        if not name.startswith("_") and callable(getattr(_cnnrs, name))
    }

    def wrap(name, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[name] += time.perf_counter() - t0
                counts[name] += 1

        return timed

    wrappers = {name: wrap(name, fn) for name, fn in originals.items()}
    by_identity = {id(fn): name for name, fn in originals.items()}
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == "cnnrs" or module_name.startswith("cnnrs.")):
            continue
        for attribute, value in list(vars(module).items()):
            name = by_identity.get(id(value))
            if name is not None:
                setattr(module, attribute, wrappers[name])
    del cnnrs
    return totals, counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--network", default="lenet5")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--cprofile", type=int, default=0, metavar="N", help="print the top N by own time")
    args = parser.parse_args(argv)

    import torch

    import cnnrs
    import cnnrs.nn
    import cnnrs.optim
    from cnnrs.bench.cases_networks import NETWORKS, cnnrs_training_step, make_pair, random_batch
    from cnnrs.bench.twins import torch_training_step

    if args.threads:
        cnnrs.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    network = NETWORKS[args.network]
    model, twin = make_pair(network, args.batch)
    model.train()
    twin.train()
    x, y = random_batch(network, args.batch)
    step = cnnrs_training_step(model, x, y)
    torch_step = torch_training_step(twin, torch.from_numpy(x), torch.from_numpy(y), 0.01, 0.9)
    for _ in range(20):
        step()
        torch_step()

    ours, theirs = [], []
    for _ in range(5):  # alternate in blocks so drift hits both
        ours += _step_times(step, args.steps // 5)
        theirs += _step_times(torch_step, args.steps // 5)
    ours_ms, theirs_ms = statistics.median(ours) * 1e3, statistics.median(theirs) * 1e3
    print(
        f"{args.network} train b{args.batch}, {cnnrs.get_num_threads()} threads: "
        f"cnnrs {ours_ms:.3f} ms/step, torch {theirs_ms:.3f} ms/step, "
        f"cnnrs advantage {theirs_ms / ours_ms:.2f}x"
    )

    totals, counts = instrument_kernels()
    instrumented = _step_times(step, args.steps)
    step_s = sum(instrumented) / args.steps
    kernel_s = sum(totals.values()) / args.steps
    print(f"\ninstrumented step: {step_s * 1e3:.3f} ms mean over {args.steps} steps")
    print(f"{'kernel':28} {'calls/step':>10} {'us/step':>10} {'us/call':>9} {'share':>7}")
    for name, total in sorted(totals.items(), key=lambda kv: -kv[1]):
        per_step = total / args.steps
        calls = counts[name] / args.steps
        per_call_us = per_step * 1e6 / calls
        print(f"{name:28} {calls:10.1f} {per_step * 1e6:10.1f} {per_call_us:9.1f} {per_step / step_s:7.1%}")
    kernel_calls = sum(counts.values()) / args.steps
    python_s = step_s - kernel_s
    print(
        f"{'all kernels':28} {kernel_calls:10.1f} {kernel_s * 1e6:10.1f} {'':9} {kernel_s / step_s:7.1%}\n"
        f"{'outside kernels (Python)':28} {'':10} {python_s * 1e6:10.1f} {'':9} {python_s / step_s:7.1%}"
    )

    if args.cprofile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.steps):
            step()
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(args.cprofile)
        print(f"\ncProfile, {args.steps} steps, top {args.cprofile} by own time:")
        print(text.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
