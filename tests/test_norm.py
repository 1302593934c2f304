"""The batch-norm kernels against float64 numpy references (the module-level tests in
test_nn_functional.py check gradients by finite differences, test_vs_torch.py against torch)."""

import numpy as np
import pytest

from cnnrs import _cnnrs as c

SHAPES = [(2, 3), (64, 7), (5, 4, 9), (3, 2, 5, 7), (4, 16, 8, 8), (1, 3, 1, 33)]


def _inputs(shape, seed, offset=0.0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 0.7 + offset).astype(np.float32)
    ch = shape[1]
    w = rng.uniform(0.5, 1.5, ch).astype(np.float32)
    b = rng.standard_normal(ch).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    return x, w, b, g


def _axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _bshape(x):
    return (1, -1) + (1,) * (x.ndim - 2)


def _reference_forward(x, w, b, eps=1e-5):
    x64 = x.astype(np.float64)
    mean, var = x64.mean(axis=_axes(x)), x64.var(axis=_axes(x))
    xhat = (x64 - mean.reshape(_bshape(x))) / np.sqrt(var + eps).reshape(_bshape(x))
    return xhat * w.reshape(_bshape(x)) + b.reshape(_bshape(x)), mean, var, xhat


def _reference_backward(g, xhat, var, w, eps=1e-5):
    """The training gradient of sum(g * y) in float64."""
    g64, axes, bs = g.astype(np.float64), _axes(g), _bshape(g)
    m = g.size // g.shape[1]
    sum_g, sum_gx = g64.sum(axis=axes), (g64 * xhat).sum(axis=axes)
    scale = (w / np.sqrt(var + eps)).reshape(bs)
    gx = scale * (g64 - sum_g.reshape(bs) / m - xhat * sum_gx.reshape(bs) / m)
    return gx, sum_gx, sum_g


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("offset", [0.0, 300.0], ids=["centred", "large-mean"])
def test_training_forward_and_backward_match_float64(shape, offset):
    x, w, b, g = _inputs(shape, seed=len(shape), offset=offset)
    y, mean, var, inv_std = c.batch_norm_forward(x, w, b)
    ry, rmean, rvar, xhat = _reference_forward(x, w, b)
    np.testing.assert_allclose(mean, rmean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(var, rvar, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(inv_std, 1 / np.sqrt(rvar + 1e-5), rtol=1e-5)
    # A large mean leaves float32 x with about 5e-5 of its std as rounding: y carries it.
    np.testing.assert_allclose(y, ry, rtol=1e-4, atol=1e-4 if offset == 0 else 2e-3)
    gx, gw, gb = c.batch_norm_backward(g, x, mean, inv_std, w)
    rgx, rgw, rgb = _reference_backward(g, xhat, rvar, w)
    np.testing.assert_allclose(gb, rgb, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(gw, rgw, rtol=1e-4, atol=1e-3 if offset == 0 else 1e-2)
    np.testing.assert_allclose(gx, rgx, rtol=1e-3, atol=1e-4 if offset == 0 else 2e-3)


def test_evaluation_uses_the_given_statistics():
    x, w, b, g = _inputs((4, 3, 5, 5), seed=1)
    mean = np.array([0.1, -0.2, 0.3], np.float32)
    var = np.array([0.5, 1.5, 2.0], np.float32)
    y, m_out, v_out, inv_std = c.batch_norm_forward(x, w, b, mean, var, eps=1e-3)
    np.testing.assert_array_equal(m_out, mean)
    np.testing.assert_array_equal(v_out, var)
    bs = (1, -1, 1, 1)
    ref = (x - mean.reshape(bs)) / np.sqrt(var.astype(np.float64) + 1e-3).reshape(bs) * w.reshape(
        bs
    ) + b.reshape(bs)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    gx, gw, gb = c.batch_norm_backward(g, x, mean, inv_std, w, training=False)
    xhat = (x - mean.reshape(bs)) * inv_std.reshape(bs)
    np.testing.assert_allclose(gx, g * (w * inv_std).reshape(bs), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gw, (g * xhat).sum(axis=(0, 2, 3)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gb, g.sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-4)


def test_without_affine_parameters_and_without_input_gradient():
    x, _, _, g = _inputs((6, 4, 3), seed=2)
    y, mean, var, inv_std = c.batch_norm_forward(x)
    ref, _, rvar, xhat = _reference_forward(x, np.ones(4), np.zeros(4))
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)
    gx, gw, gb = c.batch_norm_backward(g, x, mean, inv_std, need_input=False)
    assert gx is None
    _, rgw, rgb = _reference_backward(g, xhat, rvar, np.ones(4))
    np.testing.assert_allclose(gw, rgw, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gb, rgb, rtol=1e-5, atol=1e-4)


def test_nan_stays_in_its_channel():
    x, w, b, _ = _inputs((3, 2, 4), seed=3)
    x[1, 0, 2] = np.nan
    y, mean, var, _ = c.batch_norm_forward(x, w, b)
    assert np.isnan(y[:, 0]).all() and np.isnan(mean[0]) and np.isnan(var[0])
    assert np.isfinite(y[:, 1]).all() and np.isfinite(mean[1])


def test_constant_channel_normalises_to_the_bias():
    x = np.full((4, 2, 3), 7.25, np.float32)
    w, b = np.array([2.0, 3.0], np.float32), np.array([0.5, -1.0], np.float32)
    y, mean, var, _ = c.batch_norm_forward(x, w, b)
    np.testing.assert_array_equal(var, [0.0, 0.0])
    np.testing.assert_array_equal(y[:, 0], 0.5)
    np.testing.assert_array_equal(y[:, 1], -1.0)


@pytest.mark.parametrize("shape", [(64, 16, 8, 8), (5, 3, 37), (7, 300)], ids=str)
def test_simd_and_fallback_give_the_same_bits(shape):
    x, w, b, g = _inputs(shape, seed=4, offset=3.0)
    results = {}
    for fallback in (False, True):
        c.set_force_fallback(fallback)
        try:
            y, mean, var, inv_std = c.batch_norm_forward(x, w, b)
            results[fallback] = (y, mean, var, *c.batch_norm_backward(g, x, mean, inv_std, w))
        finally:
            c.set_force_fallback(False)
    for simd, portable in zip(results[False], results[True]):
        np.testing.assert_array_equal(simd, portable)


@pytest.mark.parametrize("shape", [(4, 16, 8, 8), (64, 7), (3, 5, 9)], ids=str)
@pytest.mark.parametrize("training", [True, False], ids=["batch-stats", "given-stats"])
def test_fused_relu_gives_the_bits_of_a_separate_relu(shape, training):
    """relu=True / relu_output: the same bits as batch norm, then the ReLU kernels (forward and
    backward), NaN included."""
    x, w, b, g = _inputs(shape, seed=5)
    x.flat[3] = np.nan
    stats = () if training else (np.zeros(shape[1], np.float32) + 0.1, np.ones(shape[1], np.float32))
    y, mean, var, inv_std = c.batch_norm_forward(x, w, b, *stats)
    fused, *fused_stats = c.batch_norm_forward(x, w, b, *stats, relu=True)
    np.testing.assert_array_equal(fused, c.relu_forward(y))
    for a, b_ in zip(fused_stats, (mean, var, inv_std)):
        np.testing.assert_array_equal(a, b_)
    assert (fused == 0).any() and np.isnan(fused).any()
    plain = c.batch_norm_backward(c.relu_backward(g, fused), x, mean, inv_std, w, training)
    got = c.batch_norm_backward(g, x, mean, inv_std, w, training, relu_output=fused)
    for a, b_ in zip(got, plain):
        np.testing.assert_array_equal(a, b_)


def test_relu_output_of_another_shape_is_refused():
    x, w, b, g = _inputs((2, 3, 4), seed=6)
    y, mean, var, inv_std = c.batch_norm_forward(x, w, b, relu=True)
    with pytest.raises(
        ValueError, match=r"batch_norm_backward.*relu_output.*\(2, 3, 3\)|relu_output.*\[2, 3, 3\]"
    ):
        c.batch_norm_backward(g, x, mean, inv_std, w, relu_output=y[..., :3].copy())
