"""conv2d per pass (forward, grad input, grad weight) on 3x3 'same' layers, with the
Winograd path on and off: median milliseconds per call, cnnrs only.

    python benches/conv_passes.py --threads 2                   # VGG-11's and vgg_small's layers
    python benches/conv_passes.py --threads 1 64,32,32,16 ...   # batch,c_in,c_out,size
"""

import argparse
import statistics
import time

import numpy as np

import cnnrs
from cnnrs import _cnnrs

LAYERS = [
    # vgg_small on 3x32x32 (widths 16/32/64)
    (64, 16, 16, 32),
    (64, 16, 32, 16),
    (64, 32, 32, 16),
    (64, 32, 64, 8),
    (64, 64, 64, 8),
    # VGG-11 on 32x32
    (64, 64, 128, 16),
    (64, 128, 256, 8),
    (64, 256, 256, 8),
    (64, 256, 512, 4),
    (64, 512, 512, 4),
    (64, 512, 512, 2),
]


def median_ms(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("layers", nargs="*", help="batch,c_in,c_out,size (default: the list above)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    if args.threads:
        cnnrs.set_num_threads(args.threads)
    layers = [tuple(int(v) for v in spec.split(",")) for spec in args.layers] or LAYERS
    rng = np.random.default_rng(0)
    _warm_up(rng)
    print(f"threads={cnnrs.get_num_threads()} simd={_cnnrs.simd_path()}")
    print("milliseconds: forward / grad input / grad weight")
    for n, c_in, c_out, size in layers:
        x = rng.standard_normal((n, c_in, size, size), dtype=np.float32)
        w = rng.standard_normal((c_out, c_in, 3, 3), dtype=np.float32) * 0.05
        dy = rng.standard_normal((n, c_out, size, size), dtype=np.float32)
        row = []
        for winograd in (False, True):
            _cnnrs.set_winograd(winograd)
            row.append([median_ms(p, args.repeats) for p in _passes(x, w, dy)])
        _cnnrs.set_winograd(True)
        off, on = ("/".join(f"{v:.2f}" for v in r) for r in row)
        print(f"{c_in:>3}->{c_out:<3}@{size:<2} b{n}:  without Winograd {off}  with {on}")


def _warm_up(rng, seconds=0.5):
    """Half a second of convolutions first: the first layer timed would otherwise
    pay for the clock ramping up and the pool starting."""
    x = rng.standard_normal((16, 32, 16, 16), dtype=np.float32)
    w = rng.standard_normal((32, 32, 3, 3), dtype=np.float32)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        _cnnrs.conv2d_forward(x, w, padding=(1, 1, 1, 1))


def _passes(x, w, dy):
    pad = (1, 1, 1, 1)
    return (
        lambda: _cnnrs.conv2d_forward(x, w, padding=pad),
        lambda: _cnnrs.conv2d_backward(x, w, dy, padding=pad, need_weight=False, need_bias=False),
        lambda: _cnnrs.conv2d_backward(x, w, dy, padding=pad, need_input=False, need_bias=False),
    )


if __name__ == "__main__":
    main()
