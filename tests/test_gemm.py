"""cnnrs._cnnrs.gemm against a float64 numpy reference: odd shapes, edge tiles, transposes,
alpha/beta/out, NaN/inf, the portable fallback and thread-count independence."""

import numpy as np
import pytest

from cnnrs import _cnnrs
from cnnrs.errors import ArgumentError, DTypeError, LayoutError, ShapeError

# Around the micro-kernel tile (6 x 16), the cache blocks (MC=96, KC=512), the direct
# (unpacked) path for small or thin products and the packed path.
SHAPES = [
    (1, 1, 1),
    (1, 50, 7),
    (50, 1, 7),
    (1, 1, 300),
    (5, 3, 1),
    (6, 16, 8),
    (7, 17, 9),
    (5, 15, 255),
    (13, 33, 257),
    (37, 61, 513),
    (30, 40, 1030),
    (145, 20, 31),
    (150, 200, 300),
    (289, 47, 19),
    (3, 4100, 2),
    (2, 3000, 700),
    (1600, 70, 40),
]


@pytest.fixture(autouse=True)
def restore_global_settings():
    threads, fallback = _cnnrs.get_num_threads(), _cnnrs.get_force_fallback()
    yield
    _cnnrs.set_num_threads(threads)
    _cnnrs.set_force_fallback(fallback)


def _operands(m, n, k, trans_a, trans_b, seed=0):
    rng = np.random.default_rng(seed + 1000 * m + 10 * n + k)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    return a, b


def _reference(a, b, trans_a, trans_b):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64.T if trans_a else a64) @ (b64.T if trans_b else b64)


def _assert_close(got, want, k):
    # float32 accumulation over k terms of unit-variance products.
    tol = 1e-5 * max(1.0, np.sqrt(k)) * 4
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, np.sqrt(k)))


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_matches_float64_reference(m, n, k, trans_a, trans_b):
    a, b = _operands(m, n, k, trans_a, trans_b)
    got = _cnnrs.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    assert got.shape == (m, n) and got.dtype == np.float32
    _assert_close(got, _reference(a, b, trans_a, trans_b), k)


@pytest.mark.parametrize("m,n,k", [(7, 9, 5), (150, 37, 300)])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, -2.0), (-1.5, 0.0), (2.0, 0.25)])
def test_alpha_beta_out(m, n, k, alpha, beta):
    a, b = _operands(m, n, k, False, True)
    c0 = np.random.default_rng(1).standard_normal((m, n)).astype(np.float32)
    out = c0.copy()
    ret = _cnnrs.gemm(a, b, trans_b=True, alpha=alpha, beta=beta, out=out)
    want = alpha * _reference(a, b, False, True) + beta * c0.astype(np.float64)
    _assert_close(out, want, k)
    np.testing.assert_array_equal(ret, out)


@pytest.mark.parametrize("m,n,k", [(7, 9, 5), (64, 120, 400), (1, 84, 120)])
@pytest.mark.parametrize("relu", [False, True])
def test_column_bias_and_relu(m, n, k, relu):
    """bias and relu: the product plus bias[j] in every row, then max(., 0); the product itself
    bit for bit as without them (the epilogue runs after it)."""
    a, b = _operands(m, n, k, False, True)
    bias = np.random.default_rng(2).standard_normal(n).astype(np.float32)
    got = _cnnrs.gemm(a, b, trans_b=True, bias=bias, relu=relu)
    plain = _cnnrs.gemm(a, b, trans_b=True) + bias
    np.testing.assert_array_equal(got, np.maximum(plain, 0) if relu else plain)
    want = _reference(a, b, False, True) + bias
    _assert_close(got, np.maximum(want, 0) if relu else want, k)
    out = np.ones((m, n), np.float32)
    _cnnrs.gemm(a, b, trans_b=True, beta=1.0, out=out, bias=bias, relu=relu)
    _assert_close(out, np.maximum(want + 1, 0) if relu else want + 1, k)


def test_beta_zero_ignores_nan_in_out():
    a, b = _operands(8, 20, 6, False, False)
    out = np.full((8, 20), np.nan, dtype=np.float32)
    _cnnrs.gemm(a, b, beta=0.0, out=out)
    _assert_close(out, _reference(a, b, False, False), 6)


def test_alpha_zero_scales_out_only():
    a, b = _operands(4, 5, 3, False, False)
    a[0, 0] = np.nan
    out = np.full((4, 5), 2.0, dtype=np.float32)
    _cnnrs.gemm(a, b, alpha=0.0, beta=0.5, out=out)
    np.testing.assert_array_equal(out, np.ones((4, 5), dtype=np.float32))


def test_empty_k_gives_zeros():
    got = _cnnrs.gemm(np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32))
    np.testing.assert_array_equal(got, np.zeros((3, 4), np.float32))


@pytest.mark.parametrize("m,n,k", [(7, 19, 5), (150, 40, 300)])
def test_nan_and_inf_propagate(m, n, k):
    a, b = _operands(m, n, k, False, False)
    a[2, 1] = np.nan
    b[3, 5] = np.inf
    b[4, 6] = -np.inf
    got = _cnnrs.gemm(a, b)
    with np.errstate(invalid="ignore"):
        want = _reference(a, b, False, False)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    _assert_close(got[finite], want[finite], k)


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("m,n,k", [(13, 33, 257), (150, 200, 300), (1, 70, 9)])
def test_portable_fallback_agrees(m, n, k, trans_a, trans_b):
    a, b = _operands(m, n, k, trans_a, trans_b)
    _cnnrs.set_force_fallback(False)
    fast = _cnnrs.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    _cnnrs.set_force_fallback(True)
    assert _cnnrs.simd_path() == "portable"
    portable = _cnnrs.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    want = _reference(a, b, trans_a, trans_b)
    _assert_close(portable, want, k)
    _assert_close(fast, want, k)
    np.testing.assert_allclose(portable, fast, rtol=1e-5, atol=1e-5 * np.sqrt(k))


@pytest.mark.parametrize("force_fallback", [False, True])
@pytest.mark.parametrize(
    "m,n,k",
    [
        (300, 290, 530),
        (1600, 100, 600),
        (7, 5000, 40),
        (1000, 9, 70),
        (3, 5000, 200),
        (97, 203, 131),  # small enough for one task per thread over its own columns
        (128, 128, 128),
    ],
)
def test_bitwise_identical_for_any_thread_count(m, n, k, force_fallback):
    _cnnrs.set_force_fallback(force_fallback)
    a, b = _operands(m, n, k, False, True)
    results = []
    for threads in (1, 2, 3):
        _cnnrs.set_num_threads(threads)
        results.append(_cnnrs.gemm(a, b, trans_b=True))
    for r in results[1:]:
        np.testing.assert_array_equal(r.view(np.uint32), results[0].view(np.uint32))


@pytest.mark.parametrize("m,n,k", [(97, 203, 131), (61, 250, 700)])
def test_accumulating_product_split_by_columns(m, n, k):
    """alpha and beta on the path that gives each thread whole columns (last strip partial)."""
    a, b = _operands(m, n, k, False, False)
    c0 = np.random.default_rng(5).standard_normal((m, n)).astype(np.float32)
    want = 0.5 * _reference(a, b, False, False) + 2.0 * c0.astype(np.float64)
    results = []
    for threads in (1, 2, 3):
        _cnnrs.set_num_threads(threads)
        out = c0.copy()
        _cnnrs.gemm(a, b, alpha=0.5, beta=2.0, out=out)
        results.append(out)
    _assert_close(results[0], want, k)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_errors_name_op_and_shapes():
    a = np.zeros((3, 4), np.float32)
    with pytest.raises(ShapeError, match=r"gemm.*inner dimensions"):
        _cnnrs.gemm(a, np.zeros((5, 2), np.float32))
    with pytest.raises(ShapeError, match="out"):
        _cnnrs.gemm(a, np.zeros((4, 2), np.float32), out=np.zeros((3, 3), np.float32))
    with pytest.raises(ArgumentError, match="beta"):
        _cnnrs.gemm(a, np.zeros((4, 2), np.float32), beta=1.0)
    with pytest.raises(DTypeError, match="float32"):
        _cnnrs.gemm(a.astype(np.float64), np.zeros((4, 2), np.float32))
    with pytest.raises(LayoutError, match="contiguous"):
        _cnnrs.gemm(np.zeros((4, 3), np.float32).T, np.zeros((4, 2), np.float32))
