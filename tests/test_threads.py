"""Thread-pool controls, CNNRS_NUM_THREADS, concurrent callers, and bit-identical
results for any thread count, for every kernel of cnnrs._cnnrs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from cnnrs import _cnnrs as c


def test_set_and_get_num_threads():
    for n in (1, 3, 2):
        c.set_num_threads(n)
        assert c.get_num_threads() == n


def _threads_in_subprocess(env_value):
    env = dict(os.environ)
    env.pop("CNNRS_NUM_THREADS", None)
    if env_value is not None:
        env["CNNRS_NUM_THREADS"] = env_value
    code = "from cnnrs import _cnnrs; print(_cnnrs.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_env_var_sets_the_default_pool():
    default = _threads_in_subprocess(None)
    assert default >= 1
    assert _threads_in_subprocess("3") == 3
    assert _threads_in_subprocess(" 1 ") == 1
    # Not a usable count: the default (the machine's cores) instead.
    for bad in ("0", "-2", "abc", "", "100000"):
        assert _threads_in_subprocess(bad) == default, bad


def _case_inputs(seed):
    """Inputs large enough for every kernel to take its parallel path."""
    rng = np.random.default_rng(seed)

    def r(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    return dict(
        a=r(150, 260),
        b=r(260, 170),
        x=r(8, 6, 30, 30),
        w=r(10, 6, 3, 3),
        bias=r(10),
        pool_x=r(16, 24, 28, 28),
        logits=r(900, 100),
        target=rng.integers(0, 100, size=900),
        big=r(300_000),
        big_g=r(300_000),
    )


def _run_every_kernel(d):
    """Calls each kernel once; returns every output as a dict of arrays."""
    out = {}
    out["gemm"] = c.gemm(d["a"], d["b"])
    out["gemm_t"] = c.gemm(d["b"], d["a"], trans_a=True, trans_b=True)
    acc = np.ones((150, 170), np.float32)
    c.gemm(d["a"], d["b"], alpha=0.5, beta=2.0, out=acc)
    out["gemm_acc"] = acc
    out["conv"] = c.conv2d_forward(d["x"], d["w"], d["bias"], padding=(1, 1, 1, 1), relu=True)
    dy = out["conv"] * 0.5
    for k, v in zip(
        ("conv_dx", "conv_dw", "conv_db"), c.conv2d_backward(d["x"], d["w"], dy, padding=(1, 1, 1, 1))
    ):
        out[k] = v
    out["conv_g"] = c.conv2d_forward(
        d["x"], np.ascontiguousarray(d["w"][:, :3]), None, stride=(2, 2), groups=2
    )
    y, idx = c.max_pool2d_forward(d["pool_x"], (2, 2), (2, 2))
    out["max"], out["argmax"] = y, idx
    out["max_relu"] = c.max_pool2d_forward(d["pool_x"], (3, 3), (2, 2), (1, 1), relu=True)[0]
    out["max_dx"] = c.max_pool2d_backward(y, idx, d["pool_x"].shape, (2, 2), (2, 2))
    out["avg"] = c.avg_pool2d_forward(d["pool_x"], (3, 3), (2, 2), (1, 1), ceil_mode=True)
    out["avg_dx"] = c.avg_pool2d_backward(
        out["avg"], d["pool_x"].shape, (3, 3), (2, 2), (1, 1), ceil_mode=True
    )
    out["relu"] = c.relu_forward(d["big"])
    out["relu_dx"] = c.relu_backward(d["big_g"], out["relu"])
    biased = d["pool_x"].copy()
    c.bias_add_(biased, d["pool_x"][0, :, 0, 0].copy())
    out["bias_add"] = biased
    bn_w, bn_b = d["pool_x"][0, :, 0, 0].copy(), d["pool_x"][1, :, 0, 0].copy()
    out["bn"], bn_mean, out["bn_var"], bn_inv = c.batch_norm_forward(d["pool_x"], bn_w, bn_b)
    out["bn_dx"], out["bn_dw"], out["bn_db"] = c.batch_norm_backward(
        d["pool_x"] * 0.5, d["pool_x"], bn_mean, bn_inv, bn_w
    )
    out["ce"], out["ce_grad"] = c.cross_entropy(d["logits"], d["target"], label_smoothing=0.1)
    p, buf = d["big"].copy(), np.zeros_like(d["big"])
    for step in range(2):
        c.sgd_step(
            [p, out["relu"].copy()],
            [d["big_g"], d["big"]],
            [buf, buf.copy()],
            0.1,
            momentum=0.9,
            nesterov=True,
            weight_decay=1e-3,
            first_step=step == 0,
        )
    out["sgd"] = p
    q, m, v, vm = d["big"].copy(), *(np.zeros_like(d["big"]) for _ in range(3))
    for step in (1, 2):
        c.adam_step(
            [q],
            [d["big_g"]],
            [m],
            [v],
            [vm],
            step,
            1e-3,
            weight_decay=0.01,
            decoupled_weight_decay=True,
            amsgrad=True,
        )
    out["adam"] = q
    return out


KERNELS = {
    "gemm",
    "conv2d_forward",
    "conv2d_backward",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "relu_forward",
    "relu_backward",
    "bias_add_",
    "cross_entropy",
    "batch_norm_forward",
    "batch_norm_backward",
    "sgd_step",
    "adam_step",
}


def test_the_list_covers_every_kernel():
    runtime = {"set_num_threads", "get_num_threads", "set_force_fallback", "get_force_fallback", "simd_path"}
    runtime |= {"set_winograd", "get_winograd"}
    public = {n for n in dir(c) if callable(getattr(c, n)) and not n.startswith("_")}
    assert public - runtime == KERNELS


@pytest.mark.parametrize("fallback", [False, True], ids=["simd", "fallback"])
def test_results_bit_identical_for_any_thread_count(fallback):
    c.set_force_fallback(fallback)
    d = _case_inputs(0)
    results = {}
    for n in (1, 2, 3):
        c.set_num_threads(n)
        results[n] = _run_every_kernel(d)
    for n in (2, 3):
        for name, value in results[1].items():
            np.testing.assert_array_equal(results[n][name], value, err_msg=f"{name}: 1 vs {n} threads")


def test_concurrent_python_threads_get_their_own_results():
    c.set_num_threads(2)
    inputs = [_case_inputs(seed) for seed in range(4)]
    serial = [_run_every_kernel(d) for d in inputs]
    start = threading.Barrier(len(inputs))

    def work(i):
        start.wait()
        return [_run_every_kernel(inputs[i]) for _ in range(2)]

    with ThreadPoolExecutor(len(inputs)) as pool:
        concurrent = list(pool.map(work, range(len(inputs))))
    for i, runs in enumerate(concurrent):
        for run in runs:
            for name, value in serial[i].items():
                np.testing.assert_array_equal(run[name], value, err_msg=f"input {i}, {name}")


def test_resizing_the_pool_while_kernels_run():
    d = _case_inputs(1)
    expected = _run_every_kernel(d)
    stop = threading.Event()

    def resize():
        n = 1
        while not stop.is_set():
            c.set_num_threads(n)
            n = 3 - n

    resizer = threading.Thread(target=resize)
    resizer.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            runs = list(pool.map(lambda _: _run_every_kernel(d), range(4)))
    finally:
        stop.set()
        resizer.join()
    for run in runs:
        for name, value in expected.items():
            np.testing.assert_array_equal(run[name], value, err_msg=name)
