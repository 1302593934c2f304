"""Max-pool 2x2 / stride 2 forward + backward: cnnrs against PyTorch, side by side.

Runs both libraries in one process, alternating them repetition by repetition,
with the same thread count, and prints medians and ratios (cnnrs / torch; below
1 means cnnrs is faster). Shapes are LeNet's and VGG's pools at batch 64.
PyTorch columns are left empty when torch is not installed.

    python benches/bench_pool.py --threads 2 --repeat 30
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from cnnrs import _cnnrs

SHAPES = {
    "lenet-pool1": (64, 6, 28, 28),
    "lenet-pool2": (64, 16, 10, 10),
    "vgg-pool1": (64, 64, 32, 32),
    "vgg-pool2": (64, 128, 16, 16),
    "vgg-pool3": (64, 256, 8, 8),
    "vgg-pool4": (64, 512, 4, 4),
}


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cnnrs_calls(x, relu):
    y, idx = _cnnrs.max_pool2d_forward(x, (2, 2), (2, 2), relu=relu)
    dy = np.ones_like(y)
    forward = lambda: _cnnrs.max_pool2d_forward(x, (2, 2), (2, 2), relu=relu)  # noqa: E731
    backward = lambda: _cnnrs.max_pool2d_backward(dy, idx, x.shape, (2, 2), (2, 2))  # noqa: E731
    return forward, backward


def torch_calls(torch, x, relu):
    import torch.nn.functional as F  # noqa: N812

    tx = torch.from_numpy(x)
    src = torch.relu(tx) if relu else tx
    y, idx = F.max_pool2d(src, 2, 2, return_indices=True)
    dy = torch.ones_like(y)

    def forward():
        with torch.no_grad():
            F.max_pool2d(torch.relu(tx) if relu else tx, 2, 2, return_indices=True)

    def backward():
        torch.ops.aten.max_pool2d_with_indices_backward(dy, src, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)

    return forward, backward


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=_cnnrs.get_num_threads())
    parser.add_argument("--repeat", type=int, default=30, help="timed repetitions per call (median reported)")
    parser.add_argument("--relu", action="store_true", help="time relu + max-pool (cnnrs fuses them)")
    parser.add_argument("--shapes", nargs="*", choices=sorted(SHAPES), default=list(SHAPES))
    args = parser.parse_args(argv)

    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    _cnnrs.set_num_threads(args.threads)

    print(
        f"max_pool2d 2x2/2 {'with ReLU ' if args.relu else ''}| threads={args.threads} "
        f"simd={_cnnrs.simd_path()} repeat={args.repeat} | median microseconds, ratio = cnnrs / torch"
    )
    print(
        f"{'shape':14s} {'(N, C, H, W)':>20s} {'fwd cnnrs':>10s} {'fwd torch':>10s} {'ratio':>6s} "
        f"{'bwd cnnrs':>10s} {'bwd torch':>10s} {'ratio':>6s}"
    )
    rng = np.random.default_rng(0)
    for name in args.shapes:
        shape = SHAPES[name]
        x = rng.standard_normal(shape).astype(np.float32)
        calls = {"cnnrs": cnnrs_calls(x, args.relu)}
        if torch is not None:
            calls["torch"] = torch_calls(torch, x, args.relu)
        times = {(lib, d): [] for lib in calls for d in (0, 1)}
        for fns in calls.values():  # warm up
            for fn in fns:
                fn()
        for _ in range(args.repeat):
            for lib, fns in calls.items():  # alternate the libraries
                for d, fn in enumerate(fns):
                    times[(lib, d)].append(timed(fn))
        med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
        cols = []
        for d in (0, 1):
            ours = med[("cnnrs", d)]
            if torch is None:
                cols += [f"{ours:10.1f}", f"{'-':>10s}", f"{'-':>6s}"]
            else:
                theirs = med[("torch", d)]
                cols += [f"{ours:10.1f}", f"{theirs:10.1f}", f"{ours / theirs:6.2f}"]
        print(f"{name:14s} {str(shape):>20s} " + " ".join(cols))


if __name__ == "__main__":
    main()
