"""conv2d forward and backward against a naive float64 numpy reference.

The reference is checked on its own (adjoint identities, finite differences);
the float32 kernels are checked against it over many shapes, against PyTorch
where installed, across thread counts (bitwise) and against the portable path.
"""

import itertools

import numpy as np
import pytest

from cnnrs import _cnnrs
from cnnrs.errors import ArgumentError, DTypeError, LayoutError, ShapeError

# ---------------------------------------------------------------- reference


def out_len(n, pad_lo, pad_hi, k, s, d):
    return (n + pad_lo + pad_hi - d * (k - 1) - 1) // s + 1


def taps(x, w_shape, stride, padding, dilation):
    """Yields (ky, kx, window): the padded input each kernel tap sees, (N, C, H_out, W_out)."""
    _, _, kh, kw = w_shape
    (pt, pb, pl, pr), (sy, sx), (dy, dx) = padding, stride, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    ho = out_len(x.shape[2], pt, pb, kh, sy, dy)
    wo = out_len(x.shape[3], pl, pr, kw, sx, dx)
    for ky, kx in itertools.product(range(kh), range(kw)):
        y0, x0 = ky * dy, kx * dx
        yield ky, kx, (slice(y0, y0 + sy * (ho - 1) + 1, sy), slice(x0, x0 + sx * (wo - 1) + 1, sx)), xp


def ref_forward(x, w, b, stride, padding, dilation, groups):
    x, w = x.astype(np.float64), w.astype(np.float64)
    o, cig = w.shape[:2]
    og = o // groups
    y = None
    for ky, kx, (rows, cols), xp in taps(x, w.shape, stride, padding, dilation):
        win = xp[:, :, rows, cols]
        if y is None:
            y = np.zeros((x.shape[0], o) + win.shape[2:])
        for g in range(groups):
            y[:, g * og : (g + 1) * og] += np.einsum(
                "nchw,oc->nohw", win[:, g * cig : (g + 1) * cig], w[g * og : (g + 1) * og, :, ky, kx]
            )
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]
    return y


def ref_backward(x, w, dy, stride, padding, dilation, groups):
    """(dx, dw, db) of the loss <conv(x, w) + b, dy>, in float64."""
    x, w, dy = x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64)
    o, cig = w.shape[:2]
    og = o // groups
    pt, pb, pl, pr = padding
    dxp = None
    dw = np.zeros_like(w)
    for ky, kx, (rows, cols), xp in taps(x, w.shape, stride, padding, dilation):
        if dxp is None:
            dxp = np.zeros_like(xp)
        win = xp[:, :, rows, cols]
        for g in range(groups):
            gi, go = slice(g * cig, (g + 1) * cig), slice(g * og, (g + 1) * og)
            dxp[:, gi, rows, cols] += np.einsum("nohw,oc->nchw", dy[:, go], w[go, :, ky, kx])
            dw[go, :, ky, kx] = np.einsum("nohw,nchw->oc", dy[:, go], win[:, gi])
    h, wd = x.shape[2:]
    dx = dxp[:, :, pt : pt + h, pl : pl + wd]
    return dx, dw, dy.sum(axis=(0, 2, 3))


# ---------------------------------------------------------------- cases


class Case:
    def __init__(self, n, c_in, hw, c_out, k, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1):
        self.n, self.c_in, self.hw, self.c_out, self.k = n, c_in, hw, c_out, k
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def kwargs(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    def arrays(self, seed):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((self.n, self.c_in) + self.hw).astype(np.float32)
        w = rng.standard_normal((self.c_out, self.c_in // self.groups) + self.k).astype(np.float32)
        b = rng.standard_normal(self.c_out).astype(np.float32)
        return x, w, b

    def out_shape(self):
        (pt, pb, pl, pr), (sy, sx), (dy, dx) = self.padding, self.stride, self.dilation
        ho = out_len(self.hw[0], pt, pb, self.k[0], sy, dy)
        wo = out_len(self.hw[1], pl, pr, self.k[1], sx, dx)
        return (self.n, self.c_out, ho, wo)

    def __repr__(self):
        return (
            f"Case(n={self.n}, c_in={self.c_in}, hw={self.hw}, c_out={self.c_out}, k={self.k}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, groups={self.groups})"
        )


EDGE_CASES = [
    Case(1, 1, (1, 1), 1, (1, 1)),  # everything 1
    Case(2, 3, (5, 5), 4, (5, 5)),  # kernel == input: 1x1 output
    Case(3, 1, (28, 28), 6, (5, 5), padding=(2, 2, 2, 2)),  # LeNet conv1, odd batch
    Case(2, 6, (14, 14), 16, (5, 5)),  # LeNet conv2
    Case(2, 8, (9, 7), 5, (1, 1)),  # pointwise: a plain GEMM on x
    Case(2, 8, (9, 7), 6, (1, 1), groups=2),  # grouped pointwise
    Case(2, 4, (9, 7), 6, (1, 1), stride=(2, 3)),  # 1x1 with stride: not pointwise
    Case(1, 4, (6, 6), 4, (1, 1), padding=(1, 0, 0, 2)),  # 1x1 with padding
    Case(3, 6, (8, 9), 6, (3, 3), padding=(1, 1, 1, 1), groups=6),  # depthwise
    Case(2, 4, (8, 9), 8, (3, 3), padding=(1, 1, 1, 1), groups=4),  # depthwise, multiplier 2
    Case(2, 3, (7, 10), 5, (3, 2), stride=(2, 3), padding=(0, 2, 3, 1), dilation=(2, 1)),
    Case(1, 2, (3, 3), 3, (3, 3), padding=(4, 4, 4, 4)),  # padding wider than input and kernel
    Case(2, 2, (1, 9), 3, (1, 3), stride=(1, 4), padding=(0, 0, 1, 0)),  # one-row images
    Case(1, 2, (11, 1), 2, (4, 1), stride=(3, 1), dilation=(2, 1)),  # one-column images
    Case(5, 4, (6, 5), 3, (2, 2), stride=(5, 5), padding=(0, 1, 1, 0)),  # stride beyond the kernel
    Case(2, 36, (8, 8), 16, (3, 3), padding=(1, 1, 1, 1)),  # short reductions, several images per GEMM
    Case(2, 64, (17, 19), 8, (3, 3), padding=(1, 1, 1, 1)),  # grad input in pixel tiles, last one partial
    Case(1, 128, (21, 23), 4, (3, 3), stride=(2, 1), padding=(1, 1, 1, 1)),  # tiles across output rows
    # Stride 1, "same"-like padding, more than 32 channels (the GEMM path): grad input is
    # computed as a forward conv of dy with flipped kernels.
    Case(2, 36, (7, 6), 34, (4, 2), padding=(2, 1, 0, 1)),  # even kernel, asymmetric 'same' padding
    Case(3, 68, (5, 9), 66, (3, 3), padding=(1, 1, 1, 1), groups=2),  # grouped
    Case(2, 33, (23, 25), 34, (3, 3), padding=(1, 1, 1, 1)),  # large planes, one image per GEMM
    Case(2, 40, (6, 6), 36, (3, 3), padding=(2, 0, 1, 1)),  # pads k-1 and 0 on opposite sides
    # Stride 1 with at most 32 channels per group takes the direct (no im2col) path:
    Case(2, 3, (5, 17), 7, (2, 4), padding=(0, 3, 2, 1)),  # output rows of 17: one float past 2 vectors
    Case(1, 7, (9, 33), 16, (5, 3), padding=(4, 4, 0, 0)),  # 31 columns, rows of only padding
    Case(3, 5, (4, 1), 9, (1, 2), padding=(0, 0, 1, 0)),  # one output column
    Case(2, 16, (7, 8), 16, (4, 5), padding=(3, 0, 1, 3), groups=2),  # even kernel, 'same'-style padding
    # 16 output channels per group on planes too large for the shifted layout: the grad
    # weight takes the channel kernel from the padded planes.
    Case(2, 16, (32, 32), 16, (3, 3), padding=(1, 1, 1, 1)),
    Case(3, 10, (21, 19), 32, (3, 3), padding=(1, 2, 0, 1), groups=2),
] + [
    # 3x3, stride 1, ungrouped, 64+ channels: the Winograd F(2x2, 3x3) path (forward, and grad
    # input as a forward conv of dy); odd output sizes leave partial 2x2 tiles.
    Case(3, 64, (7, 5), 64, (3, 3), padding=(1, 1, 1, 1)),
    Case(2, 65, (8, 8), 70, (3, 3), padding=(1, 1, 1, 1)),  # channels not multiples of 8
    Case(1, 64, (1, 1), 64, (3, 3), padding=(1, 1, 1, 1)),  # one pixel: one partial tile
    Case(5, 64, (6, 9), 80, (3, 3), padding=(0, 2, 1, 0)),  # asymmetric padding
    Case(2, 64, (5, 6), 64, (3, 3)),  # no padding (grad input: a forward conv with padding 2)
    Case(40, 64, (4, 4), 64, (3, 3), padding=(1, 1, 1, 1)),  # many images per block
    Case(2, 64, (2, 11), 96, (3, 3), padding=(2, 1, 0, 2)),  # padding 2, rows of tiles over padding
]


def random_cases(count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        groups = int(rng.choice([1, 1, 1, 2, 3]))
        c_in = groups * int(rng.integers(1, 5))
        c_out = groups * int(rng.integers(1, 5))
        k = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        hw = (int(rng.integers(1, 12)), int(rng.integers(1, 12)))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        padding = tuple(int(v) for v in rng.integers(0, 4, size=4))
        case = Case(int(rng.integers(1, 6)), c_in, hw, c_out, k, stride, padding, dilation, groups)
        if min(case.out_shape()[2:]) >= 1:
            cases.append(case)
    return cases


CASES = EDGE_CASES + random_cases(70, seed=1234)


def assert_close(got, want, reduction_len, what):
    """float32 result vs float64 reference: the bound grows with the summed terms."""
    assert got.dtype == np.float32 and got.shape == want.shape, what
    atol = 1e-6 * (reduction_len + 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=atol, err_msg=what)


def run_all(case, seed, relu=False, with_bias=True):
    x, w, b = case.arrays(seed)
    y = _cnnrs.conv2d_forward(x, w, b if with_bias else None, relu=relu, **case.kwargs())
    dy = np.random.default_rng(seed + 1).standard_normal(y.shape).astype(np.float32)
    grads = _cnnrs.conv2d_backward(x, w, dy, **case.kwargs())
    return (x, w, b, dy), y, grads


# ---------------------------------------------------------------- the reference itself


@pytest.mark.parametrize("case", CASES[::4], ids=repr)
def test_reference_backward_is_the_adjoint_of_forward(case):
    x, w, _ = (a.astype(np.float64) for a in case.arrays(0))
    dy = np.random.default_rng(9).standard_normal(case.out_shape())
    dx, dw, db = ref_backward(x, w, dy, **case.kwargs())
    y = ref_forward(x, w, None, **case.kwargs())
    # <conv(x, w), dy> is linear in x and in w: equal to <x, dx> and to <w, dw>.
    assert np.isclose(np.vdot(y, dy), np.vdot(x, dx), rtol=1e-10)
    assert np.isclose(np.vdot(y, dy), np.vdot(w, dw), rtol=1e-10)
    ones = np.ones(case.c_out)
    assert np.isclose(np.vdot(ref_forward(x, w, ones, **case.kwargs()) - y, dy), db.sum(), rtol=1e-10)


@pytest.mark.parametrize(
    "case",
    [
        Case(2, 2, (4, 5), 3, (2, 3), stride=(2, 1), padding=(1, 0, 2, 1), dilation=(1, 2)),
        Case(1, 4, (3, 3), 4, (3, 3), padding=(1, 1, 1, 1), groups=2),
        Case(3, 1, (2, 2), 2, (1, 1)),
        Case(2, 2, (6, 7), 3, (5, 3), padding=(2, 1, 0, 2)),  # direct path, asymmetric padding
    ],
    ids=repr,
)
def test_kernel_gradients_match_finite_differences(case):
    """The float32 kernel's gradients against central differences of the float64 loss."""
    x, w, b = case.arrays(5)
    dy = np.random.default_rng(6).standard_normal(case.out_shape()).astype(np.float32)
    dx, dw, db = _cnnrs.conv2d_backward(x, w, dy, **case.kwargs())

    def loss(x_, w_, b_):
        return np.vdot(ref_forward(x_, w_, b_, **case.kwargs()), dy.astype(np.float64))

    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    eps = 1e-3
    for arr, grad, which in ((x64, dx, 0), (w64, dw, 1), (b64, db, 2)):
        for idx in np.ndindex(arr.shape):
            args = [x64, w64, b64]
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += eps
            minus[idx] -= eps
            args[which] = plus
            f_plus = loss(*args)
            args[which] = minus
            fd = (f_plus - loss(*args)) / (2 * eps)
            assert abs(grad[idx] - fd) <= 1e-4 * (1 + abs(fd)), (which, idx, grad[idx], fd)


# ---------------------------------------------------------------- kernels vs reference


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_forward_and_backward_match_reference(case):
    (x, w, b, dy), y, (dx, dw, db) = run_all(case, seed=7)
    k_len = case.c_in // case.groups * case.k[0] * case.k[1]
    assert_close(y, ref_forward(x, w, b, **case.kwargs()), k_len, "forward")
    rdx, rdw, rdb = ref_backward(x, w, dy, **case.kwargs())
    n_pix = case.n * case.out_shape()[2] * case.out_shape()[3]
    assert_close(dx, rdx, case.c_out // case.groups * case.k[0] * case.k[1] * 2, "grad input")
    assert_close(dw, rdw, n_pix, "grad weight")
    assert_close(db, rdb, n_pix, "grad bias")


@pytest.mark.parametrize("case", EDGE_CASES[:6], ids=repr)
def test_forward_relu_and_no_bias(case):
    x, w, b = case.arrays(3)
    y = _cnnrs.conv2d_forward(x, w, b, relu=True, **case.kwargs())
    k_len = case.c_in // case.groups * case.k[0] * case.k[1]
    assert_close(y, np.maximum(ref_forward(x, w, b, **case.kwargs()), 0), k_len, "relu")
    assert (y >= 0).all()
    y0 = _cnnrs.conv2d_forward(x, w, **case.kwargs())
    assert_close(y0, ref_forward(x, w, None, **case.kwargs()), k_len, "no bias")


def test_backward_returns_only_what_is_asked():
    case = EDGE_CASES[3]
    x, w, _ = case.arrays(0)
    dy = np.ones(case.out_shape(), np.float32)
    dx, dw, db = _cnnrs.conv2d_backward(x, w, dy, need_input=False, need_weight=False, **case.kwargs())
    assert dx is None and dw is None
    _, _, db_full = _cnnrs.conv2d_backward(x, w, dy, **case.kwargs())
    # The bias-only path sums in the same order as the fused one.
    np.testing.assert_array_equal(db, db_full)
    dx, dw, db = _cnnrs.conv2d_backward(x, w, dy, need_input=False, need_bias=False, **case.kwargs())
    assert dx is None and db is None and dw.shape == w.shape


# ---------------------------------------------------------------- threads and SIMD paths

BIG_CASES = [
    Case(9, 16, (16, 16), 40, (3, 3), padding=(1, 1, 1, 1)),  # GEMM path, parallel over images
    Case(9, 16, (16, 16), 32, (3, 3), padding=(1, 1, 1, 1)),  # direct path, parallel over images
    Case(1, 40, (20, 20), 24, (3, 3), padding=(1, 1, 1, 1)),  # batch 1: parallel inside the GEMM
    Case(2, 8, (12, 12), 8, (3, 3), stride=(2, 2), padding=(1, 0, 1, 0), groups=2),
    Case(64, 6, (14, 14), 16, (5, 5)),  # LeNet conv2, batch 64
    Case(64, 1, (28, 28), 6, (5, 5), padding=(2, 2, 2, 2)),  # LeNet conv1, batch 64 (direct path)
    Case(11, 6, (13, 9), 12, (3, 4), padding=(1, 2, 0, 3), groups=3),  # direct path, grouped
    Case(3, 64, (8, 8), 64, (1, 1)),  # pointwise
    Case(9, 16, (32, 32), 16, (3, 3), padding=(1, 1, 1, 1)),  # channel grad weight, padded layout
    # Winograd: one block on the pool (transforms and the 16 GEMMs split), several blocks
    # one per thread, and a grad weight reduced over several blocks.
    Case(9, 64, (8, 8), 64, (3, 3), padding=(1, 1, 1, 1)),
    Case(40, 64, (6, 6), 72, (3, 3), padding=(1, 1, 1, 1)),
    Case(3, 64, (34, 34), 64, (3, 3), padding=(1, 1, 1, 1)),
]


@pytest.fixture
def restore_runtime():
    threads, fallback, winograd = _cnnrs.get_num_threads(), _cnnrs.get_force_fallback(), _cnnrs.get_winograd()
    yield
    _cnnrs.set_num_threads(threads)
    _cnnrs.set_force_fallback(fallback)
    _cnnrs.set_winograd(winograd)


@pytest.mark.parametrize("case", BIG_CASES, ids=repr)
def test_bitwise_identical_for_any_thread_count(case, restore_runtime):
    results = []
    # 8: more threads than the grad weight's batch chunks (nested parallel steps).
    for threads in (1, 2, 3, 8):
        _cnnrs.set_num_threads(threads)
        _, y, grads = run_all(case, seed=11, relu=True)
        results.append((y,) + grads)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", BIG_CASES + EDGE_CASES[::3], ids=repr)
def test_portable_path_agrees(case, restore_runtime):
    _cnnrs.set_force_fallback(False)
    _, y, grads = run_all(case, seed=13)
    _cnnrs.set_force_fallback(True)
    _, y_fb, grads_fb = run_all(case, seed=13)
    for a, b in zip((y,) + grads, (y_fb,) + grads_fb):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())


# ---------------------------------------------------------------- Winograd

# The cases above that take the Winograd path: all three passes from 64 channels in and out,
# the grad weight alone from 16 in and 32 out (the other passes then take the direct path
# up to 32 channels, else the im2col GEMM).
WINOGRAD_CASES = [
    c
    for c in EDGE_CASES + BIG_CASES
    if c.c_in >= 16 and c.c_out >= 32 and c.k == (3, 3) and c.stride == c.dilation == (1, 1) and c.groups == 1
]


def test_winograd_cases_exist():
    """Else the Winograd tests prove nothing."""
    assert len([c for c in WINOGRAD_CASES if min(c.c_in, c.c_out) >= 64]) >= 8
    assert len([c for c in WINOGRAD_CASES if min(c.c_in, c.c_out) < 64]) >= 3


@pytest.mark.parametrize("case", WINOGRAD_CASES, ids=repr)
def test_winograd_agrees_with_the_gemm_path(case, restore_runtime):
    _cnnrs.set_winograd(True)
    _, y, grads = run_all(case, seed=19, relu=True)
    _cnnrs.set_winograd(False)
    _, y_gemm, grads_gemm = run_all(case, seed=19, relu=True)
    for a, b in zip((y,) + grads, (y_gemm,) + grads_gemm):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())
    # ... and the switch really switched: Winograd rounds differently from im2col.
    assert any(not np.array_equal(a, b) for a, b in zip((y,) + grads, (y_gemm,) + grads_gemm))


@pytest.mark.parametrize("case", WINOGRAD_CASES[:4], ids=repr)
def test_winograd_gradients_match_directional_differences(case, restore_runtime):
    """Each gradient against a central difference of the float64 loss along a random direction
    (the per-element differences of the small cases above would take minutes at 64 channels)."""
    _cnnrs.set_winograd(True)
    x, w, b = case.arrays(23)
    dy = np.random.default_rng(24).standard_normal(case.out_shape())
    grads = _cnnrs.conv2d_backward(x, w, dy.astype(np.float32), **case.kwargs())

    def loss(x_, w_, b_):
        return np.vdot(ref_forward(x_, w_, b_, **case.kwargs()), dy)

    args = [a.astype(np.float64) for a in (x, w, b)]
    rng = np.random.default_rng(25)
    for which, grad in enumerate(grads):
        direction = rng.standard_normal(args[which].shape)
        plus, minus = list(args), list(args)
        plus[which] = args[which] + 1e-3 * direction
        minus[which] = args[which] - 1e-3 * direction
        fd = (loss(*plus) - loss(*minus)) / 2e-3
        assert abs(np.vdot(grad, direction) - fd) <= 1e-4 * (1 + abs(fd)), (which, fd)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_winograd_propagates_non_finite_only_to_its_window(bad, restore_runtime):
    """A NaN or inf input makes exactly the outputs whose 3x3 window holds it non-finite, as in
    direct convolution (the 4x4 input tile is shared by 4 outputs, but B^T keeps its rows and
    columns apart). An inf may come out as NaN there (documented in README.md)."""
    _cnnrs.set_winograd(True)
    case = Case(1, 64, (6, 6), 64, (3, 3), padding=(1, 1, 1, 1))
    x, w, b = case.arrays(29)
    x[0, 5, 3, 3] = bad
    y = _cnnrs.conv2d_forward(x, w, b, **case.kwargs())
    expected = np.zeros((6, 6), bool)
    expected[2:5, 2:5] = True
    np.testing.assert_array_equal(~np.isfinite(y[0]).all(axis=0), expected)
    np.testing.assert_array_equal(~np.isfinite(y[0]).any(axis=0), expected)


# ---------------------------------------------------------------- PyTorch


@pytest.mark.parametrize("case", EDGE_CASES + BIG_CASES[:2], ids=repr)
def test_matches_pytorch(case):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    (x, w, b, dy), y, (dx, dw, db) = run_all(case, seed=17)
    tx, tw, tb = (torch.from_numpy(a.astype(np.float64)).requires_grad_() for a in (x, w, b))
    pt, pb, pl, pr = case.padding
    ty = F.conv2d(
        F.pad(tx, (pl, pr, pt, pb)), tw, tb, stride=case.stride, dilation=case.dilation, groups=case.groups
    )
    ty.backward(torch.from_numpy(dy.astype(np.float64)))
    k_len = case.c_in // case.groups * case.k[0] * case.k[1]
    n_pix = case.n * y.shape[2] * y.shape[3]
    assert_close(y, ty.detach().numpy(), k_len, "forward")
    assert_close(dx, tx.grad.numpy(), 2 * case.c_out * case.k[0] * case.k[1], "grad input")
    assert_close(dw, tw.grad.numpy(), n_pix, "grad weight")
    assert_close(db, tb.grad.numpy(), n_pix, "grad bias")


# ---------------------------------------------------------------- errors


def test_bad_arguments_raise_clear_errors():
    x = np.zeros((2, 4, 8, 8), np.float32)
    w = np.zeros((6, 2, 3, 3), np.float32)
    with pytest.raises(ShapeError, match="groups"):
        _cnnrs.conv2d_forward(x, w)
    with pytest.raises(ShapeError, match="larger than the padded input"):
        _cnnrs.conv2d_forward(x, np.zeros((6, 4, 9, 9), np.float32))
    with pytest.raises(ArgumentError, match="stride"):
        _cnnrs.conv2d_forward(x, w, stride=(0, 1), groups=2)
    with pytest.raises(ShapeError, match="bias"):
        _cnnrs.conv2d_forward(x, w, np.zeros(5, np.float32), groups=2)
    with pytest.raises(DTypeError, match="float32"):
        _cnnrs.conv2d_forward(x.astype(np.float64), w, groups=2)
    with pytest.raises(LayoutError, match="C-contiguous"):
        _cnnrs.conv2d_forward(x[:, :, :, ::2], w, groups=2)
    with pytest.raises(ShapeError, match="grad_output"):
        _cnnrs.conv2d_backward(x, w, np.zeros((2, 6, 5, 5), np.float32), groups=2)
