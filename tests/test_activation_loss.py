"""ReLU, bias add and fused cross-entropy against tests/reference.py, PyTorch and finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from cnnrs import _cnnrs

SIZES = [(1,), (7,), (3, 5), (2, 3, 4, 5), (1 << 16) + 3]  # the last one runs in parallel chunks


@pytest.mark.parametrize("shape", SIZES, ids=str)
def test_relu_forward_backward(shape, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    x.reshape(-1)[:3] = [np.nan, 0.0, -0.0][: x.size]
    y = _cnnrs.relu_forward(x)
    np.testing.assert_array_equal(y, ref.relu(x).astype(np.float32))
    dy = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(_cnnrs.relu_backward(dy, y), ref.relu_backward(dy, y).astype(np.float32))


def test_relu_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((4, 9)).astype(np.float32)
    x[0, :4] = [np.nan, np.inf, -np.inf, 0.0]
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = torch.relu(tx)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    ty.backward(torch.from_numpy(dy))
    y = _cnnrs.relu_forward(x)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(_cnnrs.relu_backward(dy, y), tx.grad.numpy())


@pytest.mark.parametrize(
    "shape", [(2, 3), (4, 5, 7), (2, 3, 4, 5), (1, 1), (65, 6, 14, 14), (3000, 40)], ids=str
)
def test_bias_add_in_place(shape, rng):
    y = rng.standard_normal(shape).astype(np.float32)
    bias = rng.standard_normal(shape[1]).astype(np.float32)
    expected = ref.bias_add(y, bias)
    result = _cnnrs.bias_add_(y, bias)
    assert result is None
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)


CE_CASES = [(1, 1), (3, 2), (8, 10), (5, 1000), (700, 100)]  # the last runs in parallel


@pytest.mark.parametrize("n,c", CE_CASES)
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
def test_cross_entropy_matches_reference(n, c, smoothing, rng):
    logits = (rng.standard_normal((n, c)) * 3).astype(np.float32)
    target = rng.integers(0, c, size=n).astype(np.int64)
    target[::3] = -100  # ignored rows
    losses, grad = _cnnrs.cross_entropy(logits, target, label_smoothing=smoothing)
    l_ref, g_ref = ref.cross_entropy(logits, target, smoothing)
    np.testing.assert_allclose(losses, l_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad, g_ref, rtol=1e-5, atol=1e-6)
    losses_only, none = _cnnrs.cross_entropy(logits, target, label_smoothing=smoothing, need_grad=False)
    assert none is None
    np.testing.assert_array_equal(losses_only, losses)


def test_cross_entropy_large_logits_are_stable():
    logits = np.array([[1e4, 0.0, -1e4], [-3e4, -3e4, -3e4 + 5]], np.float32)
    losses, grad = _cnnrs.cross_entropy(logits, np.array([0, 2]))
    l_ref, g_ref = ref.cross_entropy(logits, np.array([0, 2]))
    assert np.isfinite(losses).all() and np.isfinite(grad).all()
    np.testing.assert_allclose(losses, l_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, g_ref, atol=1e-6)


def test_cross_entropy_custom_ignore_index(rng):
    logits = rng.standard_normal((4, 3)).astype(np.float32)
    target = np.array([0, 7, 2, 7])
    losses, grad = _cnnrs.cross_entropy(logits, target, ignore_index=7)
    assert losses[1] == 0 and losses[3] == 0 and not grad[[1, 3]].any()
    np.testing.assert_allclose(losses, ref.cross_entropy(logits, target, 0.0, 7)[0], rtol=1e-5)


def test_cross_entropy_nan_propagates():
    losses, grad = _cnnrs.cross_entropy(np.array([[0.0, np.nan], [1.0, 2.0]], np.float32), np.array([0, 1]))
    assert np.isnan(losses[0]) and np.isnan(grad[0]).all()
    assert np.isfinite(losses[1]) and np.isfinite(grad[1]).all()


def test_cross_entropy_gradient_finite_differences(rng):
    logits = rng.standard_normal((3, 5))
    target = np.array([4, 0, 2])
    weights = rng.standard_normal(3)  # a random linear combination of the per-row losses
    _, grad = _cnnrs.cross_entropy(logits.astype(np.float32), target, label_smoothing=0.2)
    num = ref.numerical_gradient(lambda z: (ref.cross_entropy(z, target, 0.2)[0] * weights).sum(), logits)
    np.testing.assert_allclose(grad * weights[:, None], num, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("smoothing", [0.0, 0.25])
def test_cross_entropy_matches_pytorch(smoothing, rng):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F  # noqa: N812

    logits = (rng.standard_normal((9, 6)) * 2).astype(np.float32)
    target = rng.integers(0, 6, size=9)
    target[[1, 4]] = -100
    tz = torch.from_numpy(logits).requires_grad_(True)
    tl = F.cross_entropy(tz, torch.from_numpy(target), reduction="none", label_smoothing=smoothing)
    tl.sum().backward()
    losses, grad = _cnnrs.cross_entropy(logits, target, label_smoothing=smoothing)
    np.testing.assert_allclose(losses, tl.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, tz.grad.numpy(), rtol=1e-5, atol=1e-6)
