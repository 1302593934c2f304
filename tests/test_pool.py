"""max_pool2d / avg_pool2d kernels against tests/reference.py (float64), PyTorch
(where installed) and finite differences."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import reference as ref
from cnnrs import _cnnrs

# (N, C, H, W): odd sizes, 1x1 planes, widths around the 8- and 16-lane boundaries.
SHAPES = [(1, 1, 1, 1), (2, 3, 7, 9), (1, 2, 16, 17), (3, 1, 5, 33), (2, 2, 28, 28), (1, 3, 2, 31)]


def pool_configs(max_kernel=3):
    """(kernel, stride, padding, dilation, ceil_mode), padding <= kernel / 2."""
    for k, s, p, d, ceil in itertools.product(
        range(1, max_kernel + 1), (1, 2, 3), (0, 1), (1, 2), (False, True)
    ):
        if p <= k // 2:
            yield (k, k), (s, s), (p, p), (d, d), ceil
    yield (2, 3), (1, 2), (1, 0), (1, 1), True  # rectangular
    yield (3, 2), (2, 1), (0, 1), (2, 1), False


def fits(shape, k, s, p, d, ceil):
    return all(ref.pool_out_len(shape[2 + a], k[a], p[a], s[a], d[a], ceil) > 0 for a in range(2))


@pytest.mark.parametrize("shape", SHAPES)
def test_max_pool_forward_matches_reference(shape, rng, simd_mode):
    x = rng.standard_normal(shape).astype(np.float32)
    for k, s, p, d, ceil in pool_configs():
        if not fits(shape, k, s, p, d, ceil):
            continue
        y, idx = _cnnrs.max_pool2d_forward(x, k, s, p, d, ceil)
        y_ref, idx_ref = ref.max_pool2d(x, k, s, p, d, ceil)
        assert y.dtype == np.float32 and idx.dtype == np.int32
        np.testing.assert_array_equal(y, y_ref.astype(np.float32), err_msg=f"{k} {s} {p} {d} {ceil}")
        np.testing.assert_array_equal(idx, idx_ref, err_msg=f"{k} {s} {p} {d} {ceil}")


# Output widths with 4-output units (8, 17), 2-output half units (2, 3, 6, 7, 14), both, and
# single columns; plane counts that leave units and half units over at the end of a group.
FAST_PATH_SHAPES = [
    (2, 3, 8, 8),
    (1, 2, 9, 35),
    (1, 1, 2, 2),
    (2, 1, 3, 3),
    (1, 1, 2, 16),
    (3, 5, 4, 4),
    (2, 3, 6, 12),
    (1, 3, 7, 14),
    (1, 1, 4, 6),
    (3, 1, 5, 29),
    (5, 7, 4, 5),
]


@pytest.mark.parametrize("shape", FAST_PATH_SHAPES, ids=str)
@pytest.mark.parametrize("ceil", [False, True])
def test_max_pool_2x2_fast_path(shape, ceil, rng, simd_mode):
    """2x2 stride 2 (the AVX2 path), with ties and NaN placed inside windows."""
    x = rng.integers(-2, 3, size=shape).astype(np.float32)  # many ties
    x.reshape(-1)[rng.integers(0, x.size, size=max(1, x.size // 13))] = np.nan
    y, idx = _cnnrs.max_pool2d_forward(x, (2, 2), (2, 2), ceil_mode=ceil)
    y_ref, idx_ref = ref.max_pool2d(x, (2, 2), (2, 2), ceil_mode=ceil)
    np.testing.assert_array_equal(y, y_ref.astype(np.float32))
    np.testing.assert_array_equal(idx, idx_ref)


@pytest.mark.parametrize("shape", [(2, 3, 9, 40), (1, 2, 1, 17), (3, 1, 5, 16), (1, 1, 2, 31)], ids=str)
def test_max_pool_general_interior_fast_path(shape, rng, simd_mode):
    """Interior outputs of the general path go 8 at a time through all their taps (stride 1, 2):
    ties, NaN, dilation, an overlapping last step, stride-2 loads at the end of the plane."""
    x = rng.integers(-2, 3, size=shape).astype(np.float32)
    x.reshape(-1)[rng.integers(0, x.size, size=max(1, x.size // 11))] = np.nan
    for k, s, p, d, ceil in pool_configs():
        if not fits(shape, k, s, p, d, ceil):
            continue
        y, idx = _cnnrs.max_pool2d_forward(x, k, s, p, d, ceil)
        y_ref, idx_ref = ref.max_pool2d(x, k, s, p, d, ceil)
        np.testing.assert_array_equal(y, y_ref.astype(np.float32), err_msg=f"{k} {s} {p} {d} {ceil}")
        np.testing.assert_array_equal(idx, idx_ref, err_msg=f"{k} {s} {p} {d} {ceil}")


def test_simd_and_fallback_agree_bitwise(rng):
    x = rng.standard_normal((4, 5, 30, 46)).astype(np.float32)
    results = []
    for force in (False, True):
        _cnnrs.set_force_fallback(force)
        results.append(_cnnrs.max_pool2d_forward(x, (2, 2), (2, 2), relu=True))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


# Output widths 1 (no unit), 2-3 (units of 2), 4-7 (units of 4; LeNet's 5), 8+ (units of 8, the last
# one overlapping at 14 and 17 outputs), odd H and W, a ceil_mode column and row.
BACKWARD_FAST_PATH_SHAPES = [*FAST_PATH_SHAPES, (2, 3, 10, 10), (1, 2, 11, 29), (1, 1, 3, 35), (2, 2, 3, 6)]


@pytest.mark.parametrize("shape", BACKWARD_FAST_PATH_SHAPES, ids=str)
@pytest.mark.parametrize("ceil", [False, True])
@pytest.mark.parametrize("relu", [False, True])
def test_max_pool_2x2_backward_fast_path(shape, ceil, relu, rng, simd_mode):
    """2x2 stride 2 backward (the AVX2 path reads each input's one window instead of scattering):
    exact, with ties and NaN in x, NaN and -0.0 in the gradient, argmax -1 from the fused ReLU."""
    x = rng.integers(-2, 3, size=shape).astype(np.float32)
    x.reshape(-1)[rng.integers(0, x.size, size=max(1, x.size // 13))] = np.nan
    y, idx = _cnnrs.max_pool2d_forward(x, (2, 2), (2, 2), ceil_mode=ceil, relu=relu)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dy.reshape(-1)[::7] = -0.0
    dy.reshape(-1)[3::11] = np.nan
    dx = _cnnrs.max_pool2d_backward(dy, idx, shape, (2, 2), (2, 2), ceil_mode=ceil)
    np.testing.assert_array_equal(dx, ref.max_pool2d_backward(dy, idx, shape).astype(np.float32))
    # A zero-filled scatter-add gives 0.0 + -0.0 = +0.0: so must the gather.
    assert not np.signbit(dx[dx == 0]).any()


@pytest.mark.parametrize("shape", [(2, 3, 9, 20), (1, 2, 6, 10), (1, 2, 5, 6)], ids=str)  # units of 8, 4, 2
@pytest.mark.parametrize("ceil", [False, True])
def test_2x2_backward_with_hand_made_indices_scatters_them(shape, ceil, rng, simd_mode):
    """Indices that point outside their own window (in range, so accepted) or twice at one
    input: the gradient still goes where each index says, as a scatter-add would do."""
    x = rng.standard_normal(shape).astype(np.float32)
    y, idx = _cnnrs.max_pool2d_forward(x, (2, 2), (2, 2), ceil_mode=ceil)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    for plane in idx.reshape(-1, *idx.shape[2:])[::2]:
        plane[0, 1] = plane[0, 0]  # two windows name the same input
        plane[-1, -1] = 0  # a window names an input of another window
    dx = _cnnrs.max_pool2d_backward(dy, idx, shape, (2, 2), (2, 2), ceil_mode=ceil)
    np.testing.assert_allclose(dx, ref.max_pool2d_backward(dy, idx, shape), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(3, 40, 28, 28), (5, 70, 10, 10), (4, 300, 4, 4), (2, 64, 9, 11)], ids=str)
def test_2x2_simd_fallback_and_thread_counts_agree_bitwise(shape, rng):
    """Forward (ReLU fused) and backward, many channels, above the parallel threshold."""
    x = (rng.standard_normal(shape) - 0.5).astype(np.float32)
    dy = None
    results = []
    for force, threads in [(False, 1), (False, 2), (False, 3), (True, 1), (True, 3)]:
        _cnnrs.set_force_fallback(force)
        _cnnrs.set_num_threads(threads)
        for ceil in (False, True):
            y, idx = _cnnrs.max_pool2d_forward(x, (2, 2), (2, 2), ceil_mode=ceil, relu=True)
            if dy is None or dy.shape != y.shape:
                dy = np.random.default_rng(7).standard_normal(y.shape).astype(np.float32)
            dx = _cnnrs.max_pool2d_backward(dy, idx, shape, (2, 2), (2, 2), ceil_mode=ceil)
            results.append((ceil, y.view(np.int32), idx, dx.view(np.int32)))
    for ceil in (False, True):
        runs = [r[1:] for r in results if r[0] == ceil]
        for run in runs[1:]:
            for a, b in zip(runs[0], run):
                np.testing.assert_array_equal(a, b)


def test_overlapping_windows_backward_with_relu_accumulates(rng):
    """3x3 stride 2 (windows overlap): the branch-free skip of argmax -1 must not disturb the sums."""
    shape = (2, 3, 9, 12)
    x = (rng.standard_normal(shape) - 0.5).astype(np.float32)
    for stride, pad, ceil in [((2, 2), (1, 1), True), ((1, 1), (0, 0), False), ((2, 1), (1, 0), False)]:
        y, idx = _cnnrs.max_pool2d_forward(x, (3, 3), stride, pad, ceil_mode=ceil, relu=True)
        assert (idx == -1).any() and (idx >= 0).any()
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx = _cnnrs.max_pool2d_backward(dy, idx, shape, (3, 3), stride, pad, ceil_mode=ceil)
        np.testing.assert_allclose(dx, ref.max_pool2d_backward(dy, idx, shape), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_max_pool_backward_matches_reference(shape, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    for k, s, p, d, ceil in pool_configs():
        if not fits(shape, k, s, p, d, ceil):
            continue
        y, idx = _cnnrs.max_pool2d_forward(x, k, s, p, d, ceil)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx = _cnnrs.max_pool2d_backward(dy, idx, shape, k, s, p, d, ceil)
        np.testing.assert_allclose(dx, ref.max_pool2d_backward(dy, idx, shape), rtol=1e-6, atol=1e-6)


def test_max_pool_backward_finite_differences(rng):
    # Distinct values far apart, so a small step never changes the argmax.
    shape = (2, 2, 7, 6)
    x = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float64) * 0.1
    k, s, p = (3, 3), (2, 2), (1, 1)
    y, idx = _cnnrs.max_pool2d_forward(x.astype(np.float32), k, s, p, ceil_mode=True)
    dy = rng.standard_normal(y.shape)
    dx = _cnnrs.max_pool2d_backward(dy.astype(np.float32), idx, shape, k, s, p, ceil_mode=True)
    num = ref.numerical_gradient(
        lambda v: (ref.max_pool2d(v, k, s, p, ceil_mode=True)[0] * dy).sum(), x, 1e-3
    )
    np.testing.assert_allclose(dx, num, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
def test_avg_pool_forward_and_backward_match_reference(shape, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    for (k, s, p, _, ceil), cip, div in itertools.product(pool_configs(), (True, False), (None, 3)):
        if not fits(shape, k, s, p, (1, 1), ceil):
            continue
        args = (k, s, p, ceil, cip, div)
        y = _cnnrs.avg_pool2d_forward(x, *args)
        np.testing.assert_allclose(y, ref.avg_pool2d(x, *args), rtol=1e-5, atol=1e-6, err_msg=str(args))
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx = _cnnrs.avg_pool2d_backward(dy, shape, *args)
        np.testing.assert_allclose(
            dx, ref.avg_pool2d_backward(dy, shape, *args), rtol=1e-5, atol=1e-6, err_msg=str(args)
        )


@pytest.mark.parametrize("cip", [True, False])
def test_avg_pool_backward_finite_differences(cip, rng):
    shape = (1, 2, 6, 7)
    x = rng.standard_normal(shape)
    args = ((3, 2), (2, 2), (1, 1), True, cip, None)
    y = _cnnrs.avg_pool2d_forward(x.astype(np.float32), *args)
    dy = rng.standard_normal(y.shape)
    dx = _cnnrs.avg_pool2d_backward(dy.astype(np.float32), shape, *args)
    num = ref.numerical_gradient(lambda v: (ref.avg_pool2d(v, *args) * dy).sum(), x)
    np.testing.assert_allclose(dx, num, rtol=1e-4, atol=1e-5)


def test_ceil_mode_drops_window_starting_in_padding():
    # W = 5, k = 2, pad = 1, stride = 3: ceil rounds (5 + 2 - 2) / 3 up to 2 steps (3 windows),
    # but the third would start at 6 - 1 = 5, in the right padding, so PyTorch keeps 2.
    x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    y, idx = _cnnrs.max_pool2d_forward(x, (2, 2), (3, 3), (1, 1), ceil_mode=True)
    assert y.shape == (1, 1, 2, 2)
    np.testing.assert_array_equal(idx[0, 0], [[0, 3], [15, 18]])  # values grow: last tap wins
    # Without padding the extra ceil window starts inside the input and is kept.
    y5, idx5 = _cnnrs.max_pool2d_forward(x, (2, 2), (2, 2), ceil_mode=True)
    assert y5.shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(idx5[0, 0, 2], [21, 23, 24])
    avg = _cnnrs.avg_pool2d_forward(x, (2, 2), (2, 2), ceil_mode=True)
    assert avg[0, 0, 2, 2] == 24.0  # a 1x1 window, divided by its clipped size


def test_window_entirely_in_padding_has_no_gradient():
    # k=2, pad=1, dilation=2 on a 1x1 input: the only tap positions are -1 and 1.
    x = np.array([[[[5.0]]]], np.float32)
    y, idx = _cnnrs.max_pool2d_forward(x, (2, 2), (1, 1), (1, 1), (2, 2))
    assert y[0, 0, 0, 0] == -np.inf and idx[0, 0, 0, 0] == -1
    dx = _cnnrs.max_pool2d_backward(np.ones_like(y), idx, x.shape, (2, 2), (1, 1), (1, 1), (2, 2))
    assert dx[0, 0, 0, 0] == 0.0


def test_nan_and_inf_propagate():
    x = np.array([[[[1.0, np.nan, 3.0, -np.inf], [2.0, 0.5, np.inf, 4.0]]]], np.float32)
    y, idx = _cnnrs.max_pool2d_forward(x, (2, 2), (2, 2))
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 1
    assert y[0, 0, 0, 1] == np.inf and idx[0, 0, 0, 1] == 6
    avg = _cnnrs.avg_pool2d_forward(x, (2, 2), (2, 2))
    assert np.isnan(avg[0, 0, 0, 0]) and np.isnan(avg[0, 0, 0, 1])  # inf + -inf = NaN


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 2, 7, 9), (3, 4, 28, 28)])
def test_fused_relu_equals_relu_then_pool(shape, rng, simd_mode):
    x = rng.standard_normal(shape).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    for k, s, p, d, ceil in [((2, 2), (2, 2), (0, 0), (1, 1), False), ((3, 3), (2, 2), (1, 1), (1, 1), True)]:
        y, idx = _cnnrs.max_pool2d_forward(x, k, s, p, d, ceil, relu=True)
        y_ref, idx_ref = ref.max_pool2d(ref.relu(x), k, s, p, d, ceil)
        np.testing.assert_array_equal(y, y_ref.astype(np.float32))
        positive = (y > 0) | np.isnan(y)
        np.testing.assert_array_equal(idx[positive], idx_ref[positive])
        assert (idx[~positive] == -1).all()
        # Gradient of pool(relu(x)): zero where the pooled value is <= 0.
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx = _cnnrs.max_pool2d_backward(dy, idx, shape, k, s, p, d, ceil)
        expected = ref.relu_backward(ref.max_pool2d_backward(dy, idx_ref, shape), x)
        np.testing.assert_allclose(dx, expected, rtol=1e-6, atol=1e-6)


def test_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F  # noqa: N812

    for shape in [(2, 3, 7, 9), (4, 6, 28, 28), (2, 2, 17, 16)]:
        x = rng.standard_normal(shape).astype(np.float32)
        x.reshape(-1)[::37] = np.nan
        tx = torch.from_numpy(x).requires_grad_(True)
        for k, s, p, d, ceil in pool_configs():
            if not fits(shape, k, s, p, d, ceil):
                continue
            y, idx = _cnnrs.max_pool2d_forward(x, k, s, p, d, ceil)
            ty, tidx = F.max_pool2d(tx, k, s, p, d, ceil, return_indices=True)
            np.testing.assert_array_equal(y, ty.detach().numpy())
            has_input = idx >= 0  # PyTorch's index of an all-padding window points outside the plane
            np.testing.assert_array_equal(idx[has_input], tidx.numpy()[has_input])
        for relu in (False, True):
            tx.grad = None
            src = torch.relu(tx) if relu else tx
            ty = F.max_pool2d(src, 2, 2)
            dy = torch.from_numpy(rng.standard_normal(ty.shape).astype(np.float32))
            ty.backward(dy)
            y, idx = _cnnrs.max_pool2d_forward(x, (2, 2), (2, 2), relu=relu)
            dx = _cnnrs.max_pool2d_backward(dy.numpy(), idx, shape, (2, 2), (2, 2))
            np.testing.assert_array_equal(y, ty.detach().numpy())
            np.testing.assert_array_equal(dx, tx.grad.numpy())


def test_avg_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F  # noqa: N812

    x = rng.standard_normal((2, 3, 11, 10)).astype(np.float32)
    for (k, s, p, _, ceil), cip, div in itertools.product(pool_configs(), (True, False), (None, 5)):
        if not fits(x.shape, k, s, p, (1, 1), ceil):
            continue
        y = _cnnrs.avg_pool2d_forward(x, k, s, p, ceil, cip, div)
        ty = F.avg_pool2d(torch.from_numpy(x), k, s, p, ceil, cip, div)
        np.testing.assert_allclose(y, ty.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(64, 64, 4, 4), (32, 16, 10, 10), (8, 8, 28, 28)], ids=str)
def test_parallel_2x2_matches_reference(shape, rng, simd_mode):
    """Batches above the parallel threshold: groups of planes, units across planes."""
    _cnnrs.set_num_threads(2)
    x = rng.standard_normal(shape).astype(np.float32)
    y, idx = _cnnrs.max_pool2d_forward(x, (2, 2), (2, 2), relu=True)
    y_ref, idx_ref = ref.max_pool2d(ref.relu(x), (2, 2), (2, 2))
    np.testing.assert_array_equal(y, y_ref.astype(np.float32))
    positive = y > 0
    np.testing.assert_array_equal(idx[positive], idx_ref[positive])


def test_large_batch_runs_in_parallel_with_same_result(rng):
    x = rng.standard_normal((16, 32, 24, 24)).astype(np.float32)
    dy = rng.standard_normal((16, 32, 12, 12)).astype(np.float32)
    outs = []
    for n in (1, 2):
        _cnnrs.set_num_threads(n)
        y, idx = _cnnrs.max_pool2d_forward(x, (2, 2), (2, 2))
        outs.append(
            (
                y,
                idx,
                _cnnrs.max_pool2d_backward(dy, idx, x.shape, (2, 2), (2, 2)),
                _cnnrs.avg_pool2d_forward(x, (3, 3), (2, 2), (1, 1)),
            )
        )
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(outs[0][0], ref.max_pool2d(x, (2, 2), (2, 2))[0].astype(np.float32))
