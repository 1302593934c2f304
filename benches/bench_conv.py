"""conv2d forward and forward+backward: cnnrs against PyTorch, side by side.

Each repeat times cnnrs and PyTorch one after the other (alternating, same
thread count) and the table reports medians, GFLOP/s and the throughput ratio
cnnrs / torch (> 1 means cnnrs is faster). PyTorch columns are left empty when
torch is not installed.

    python benches/bench_conv.py --threads 2 --repeats 15
    python benches/bench_conv.py --threads 2 --filter vgg_small   # vgg_small's six layers
"""

import argparse
import statistics
import time

import numpy as np

from cnnrs import _cnnrs

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the torch columns stay empty
    torch = None

# (name, batch, c_in, c_out, h=w, kernel, padding, grad wrt input needed)
LAYERS = [
    ("lenet conv1 1->6 5x5 28x28 p2", 64, 1, 6, 28, 5, 2, False),
    ("lenet conv2 6->16 5x5 14x14", 64, 6, 16, 14, 5, 0, True),
    ("vgg 64->64 3x3 32x32 p1", 64, 64, 64, 32, 3, 1, True),
    ("vgg 256->256 3x3 8x8 p1", 64, 256, 256, 8, 3, 1, True),
    # vgg_small's six layers at 32x32 input (--filter vgg_small)
    ("vgg_small 3->16 3x3 32x32 p1", 64, 3, 16, 32, 3, 1, False),
    ("vgg_small 16->16 3x3 32x32 p1", 64, 16, 16, 32, 3, 1, True),
    ("vgg_small 16->32 3x3 16x16 p1", 64, 16, 32, 16, 3, 1, True),
    ("vgg_small 32->32 3x3 16x16 p1", 64, 32, 32, 16, 3, 1, True),
    ("vgg_small 32->64 3x3 8x8 p1", 64, 32, 64, 8, 3, 1, True),
    ("vgg_small 64->64 3x3 8x8 p1", 64, 64, 64, 8, 3, 1, True),
]


def flops(batch, c_in, c_out, hw, k, pad, need_input):
    out = hw + 2 * pad - k + 1
    macs = batch * c_out * out * out * c_in * k * k
    return 2 * macs, 2 * macs * (3 if need_input else 2)


def timed(fn, min_seconds=0.02):
    """Seconds per call: calls `fn` until `min_seconds` have passed (at least once)."""
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / calls


def layer_fns(batch, c_in, c_out, hw, k, pad, need_input):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, c_in, hw, hw)).astype(np.float32)
    w = (rng.standard_normal((c_out, c_in, k, k)) / np.sqrt(c_in * k * k)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    padding = (pad, pad, pad, pad)
    y = _cnnrs.conv2d_forward(x, w, b, padding=padding)
    dy = rng.standard_normal(y.shape).astype(np.float32)

    def ours_fwd():
        _cnnrs.conv2d_forward(x, w, b, padding=padding)

    def ours_fwd_bwd():
        _cnnrs.conv2d_forward(x, w, b, padding=padding)
        _cnnrs.conv2d_backward(x, w, dy, padding=padding, need_input=need_input)

    fns = {"fwd": [ours_fwd, None], "fwd+bwd": [ours_fwd_bwd, None]}
    if torch is not None:
        tx = torch.from_numpy(x).requires_grad_(need_input)
        tw, tb = torch.from_numpy(w).requires_grad_(), torch.from_numpy(b).requires_grad_()
        tdy = torch.from_numpy(dy)

        def torch_fwd():
            with torch.no_grad():
                F.conv2d(tx, tw, tb, padding=pad)

        def torch_fwd_bwd():
            tw.grad = tb.grad = tx.grad = None
            F.conv2d(tx, tw, tb, padding=pad).backward(tdy)

        fns["fwd"][1], fns["fwd+bwd"][1] = torch_fwd, torch_fwd_bwd
    return fns


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--filter", default="", help="only layers whose name contains this")
    args = parser.parse_args(argv)

    _cnnrs.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    print(
        f"threads={args.threads} repeats={args.repeats} simd={_cnnrs.simd_path()} "
        f"torch={torch.__version__ if torch is not None else 'not installed'}"
    )
    header = (
        f"{'layer':34} {'pass':8} {'cnnrs ms':>9} {'GFLOP/s':>8} {'torch ms':>9} {'GFLOP/s':>8} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for name, *shape in LAYERS:
        if args.filter not in name:
            continue
        fwd_flops, fwd_bwd_flops = flops(*shape)
        for pass_name, (ours, theirs) in layer_fns(*shape).items():
            work = fwd_flops if pass_name == "fwd" else fwd_bwd_flops
            ours(), theirs and theirs()  # warm up (allocations, thread pools)
            ours_t, theirs_t = [], []
            for _ in range(args.repeats):
                ours_t.append(timed(ours))
                if theirs is not None:
                    theirs_t.append(timed(theirs))
            ours_med = statistics.median(ours_t)
            row = f"{name:34} {pass_name:8} {ours_med * 1e3:9.3f} {work / ours_med / 1e9:8.1f}"
            if theirs_t:
                theirs_med = statistics.median(theirs_t)
                row += f" {theirs_med * 1e3:9.3f} {work / theirs_med / 1e9:8.1f} {theirs_med / ours_med:6.2f}"
            print(row, flush=True)


if __name__ == "__main__":
    main()
