"""conv2d per pass (forward, grad input, grad weight + bias) on LeNet's layers and one VGG layer.

Median microseconds per call and GFLOP/s (useful flops), cnnrs only:

    python benches/convparts.py --threads 2
"""

import argparse
import statistics
import time

import numpy as np

import cnnrs
from cnnrs import _cnnrs

# name: (batch, c_in, c_out, h=w, kernel, padding)
LAYERS = {
    "lenet conv1": (64, 1, 6, 28, 5, 2),
    "lenet conv2": (64, 6, 16, 14, 5, 0),
    "vgg 256@8x8": (64, 256, 256, 8, 3, 1),
}


def median_us(fn, seconds=0.4):
    """Median time of one call in microseconds, over at least 5 calls and `seconds`."""
    fn()
    samples, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(samples) < 5:
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def time_layer(name, n, c_in, c_out, hw, k, pad, threads, rng):
    """Prints one line: each pass of the layer, median us and GFLOP/s."""
    x = rng.standard_normal((n, c_in, hw, hw), dtype=np.float32)
    w = rng.standard_normal((c_out, c_in, k, k), dtype=np.float32)
    b = np.zeros(c_out, np.float32)
    padding = (pad,) * 4
    y = _cnnrs.conv2d_forward(x, w, b, padding=padding)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    flops = 2 * n * c_out * y.shape[2] * y.shape[3] * c_in * k * k
    passes = {
        "fwd": lambda: _cnnrs.conv2d_forward(x, w, b, padding=padding),
        "gin": lambda: _cnnrs.conv2d_backward(
            x, w, dy, padding=padding, need_input=True, need_weight=False, need_bias=False
        ),
        "gw+b": lambda: _cnnrs.conv2d_backward(
            x, w, dy, padding=padding, need_input=False, need_weight=True, need_bias=True
        ),
    }
    cells = []
    for label, fn in passes.items():
        us = median_us(fn)
        cells.append(f"{label} {us:8.0f} us {flops / us / 1e3:6.1f} GF/s")
    print(f"{name:12s} threads={threads}: " + " | ".join(cells))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--filter", default="", help="only layers whose name contains this")
    args = parser.parse_args()
    cnnrs.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    for name, shape in LAYERS.items():
        if args.filter in name:
            time_layer(name, *shape, args.threads, rng)


if __name__ == "__main__":
    main()
