"""Shared test helper: compare an op with a float64 numpy reference, forward and gradient
(central finite differences of the reference), in the style of tinygrad's test_ops."""

import numpy as np

import cnnrs


def numeric_grad(fn, xs, i, w, eps=1e-6):
    """d sum(fn(*xs) * w) / d xs[i] by central differences, all in float64."""
    x = xs[i]
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + eps
        plus = np.sum(fn(*xs) * w)
        flat[k] = old - eps
        minus = np.sum(fn(*xs) * w)
        flat[k] = old
        gflat[k] = (plus - minus) / (2 * eps)
    return grad


def check(
    shapes, cn_fn, np_fn, low=-2.0, high=2.0, atol=1e-5, rtol=1e-4, grad_atol=1e-3, grad_rtol=1e-3, seed=0
):
    """Forward of cn_fn vs np_fn (float64) and gradients of every input vs finite differences."""
    rng = np.random.default_rng(seed)
    xs32 = [rng.uniform(low, high, s).astype(np.float32) for s in shapes]
    xs64 = [x.astype(np.float64) for x in xs32]
    ts = [cnnrs.tensor(x, requires_grad=True) for x in xs32]
    out = cn_fn(*ts)
    ref = np_fn(*xs64)
    np.testing.assert_allclose(out.data, ref, atol=atol, rtol=rtol)
    w = rng.standard_normal(np.shape(ref))
    (out * cnnrs.tensor(w.astype(np.float32))).sum().backward()
    for i, t in enumerate(ts):
        expected = numeric_grad(np_fn, xs64, i, w)
        assert t.grad is not None, f"input {i} got no gradient"
        assert t.grad.shape == t.shape
        np.testing.assert_allclose(
            t.grad.data, expected, atol=grad_atol, rtol=grad_rtol, err_msg=f"input {i}"
        )
