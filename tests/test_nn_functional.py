"""cnnrs.nn.functional against float64 numpy references: forward and finite-difference gradients."""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import cnnrs
import cnnrs.nn.functional as F
from gradcheck import check


def windows(x, kernel, stride, dilation):
    """(N, C, H, W) -> (N, C, H_out, W_out, kH, kW) views of the pooling / convolution windows."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    span = sliding_window_view(x, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    return span[:, :, ::sh, ::sw, ::dh, ::dw]


def conv2d_ref(x, w, b=None, stride=(1, 1), pad=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    x = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[1]), (pad[2], pad[3])))
    cin_g, cout_g = x.shape[1] // groups, w.shape[0] // groups
    outs = []
    for g in range(groups):
        win = windows(x[:, g * cin_g : (g + 1) * cin_g], w.shape[2:], stride, dilation)
        outs.append(np.einsum("nchwij,ocij->nohw", win, w[g * cout_g : (g + 1) * cout_g]))
    y = np.concatenate(outs, axis=1)
    return y if b is None else y + b[None, :, None, None]


@pytest.mark.parametrize(
    "xs,ws,stride,padding,dilation,groups",
    [
        ((2, 3, 7, 6), (4, 3, 3, 3), 1, 0, 1, 1),
        ((1, 2, 8, 7), (3, 2, 3, 2), 2, 1, 1, 1),
        ((1, 4, 7, 7), (4, 2, 3, 3), 1, (1, 2), 2, 2),
        ((2, 1, 6, 6), (2, 1, 4, 4), 1, "same", 1, 1),
        ((2, 1, 6, 5), (2, 1, 2, 3), 1, "valid", 1, 1),
    ],
)
def test_conv2d(xs, ws, stride, padding, dilation, groups):
    pad4 = F.conv_padding(padding, ws[2:], F._pair(dilation))
    s, d = F._pair(stride), F._pair(dilation)
    check(
        [xs, ws, (ws[0],)],
        lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups),
        lambda x, w, b: conv2d_ref(x, w, b, s, pad4, d, groups),
        atol=1e-4,
        grad_atol=2e-3,
    )


def test_conv2d_same_even_kernel_pads_bottom_right():
    assert F.conv_padding("same", (4, 2), (1, 1)) == (1, 2, 0, 1)
    assert F.conv_padding("same", (3, 3), (2, 2)) == (2, 2, 2, 2)


def test_conv2d_fused_relu_equals_unfused():
    cnnrs.manual_seed(1)
    conv = cnnrs.nn.Conv2d(3, 5, 3, padding=1)
    x = cnnrs.randn(2, 3, 9, 9, requires_grad=True)
    fused = conv.forward_relu(x)
    plain = conv(x).relu()
    np.testing.assert_array_equal(fused.numpy(), plain.numpy())
    g = cnnrs.randn(*fused.shape)
    fused.backward(g)
    grads = [x.grad.numpy().copy(), conv.weight.grad.numpy().copy(), conv.bias.grad.numpy().copy()]
    x.grad = None
    conv.zero_grad()
    plain.backward(g)
    for a, b in zip(grads, [x.grad, conv.weight.grad, conv.bias.grad]):
        np.testing.assert_array_equal(a, b.numpy())


@pytest.mark.parametrize("shape,bias", [((6, 7), True), ((2, 3, 7), True), ((6, 7), False)])
def test_linear_fused_relu_equals_unfused(shape, bias):
    """Linear.forward_relu (bias and ReLU inside the GEMM call) gives the same bits as Linear then
    ReLU, forward and backward; NaN stays NaN and -0.0 becomes 0.0 as in the ReLU kernel."""
    cnnrs.manual_seed(2)
    lin = cnnrs.nn.Linear(7, 5, bias=bias)
    data = cnnrs.randn(*shape).numpy()
    data[0, ..., 0] = np.nan
    x = cnnrs.tensor(data, requires_grad=True)
    fused = lin.forward_relu(x)
    plain = lin(x).relu()
    np.testing.assert_array_equal(fused.numpy(), plain.numpy())
    assert np.isnan(fused.numpy()).any() and (fused.numpy() == 0).any()
    assert not np.signbit(fused.numpy()[fused.numpy() == 0]).any()
    g = cnnrs.randn(*fused.shape)
    fused.backward(g)
    params = [lin.weight] + ([lin.bias] if bias else [])
    grads = [t.grad.numpy().copy() for t in [x] + params]
    x.grad = None
    lin.zero_grad()
    plain.backward(g)
    for a, t in zip(grads, [x] + params):
        np.testing.assert_array_equal(a, t.grad.numpy())


@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_fused_relu_equals_unfused(train):
    """BatchNorm2d.forward_relu gives the bits of BatchNorm2d then ReLU: output, gradients and
    running statistics, in training and in evaluation."""
    cnnrs.manual_seed(4)
    fused_bn, plain_bn = cnnrs.nn.BatchNorm2d(3), cnnrs.nn.BatchNorm2d(3)
    for bn in (fused_bn, plain_bn):
        bn.weight.data[:] = [0.5, 1.0, 2.0]
        bn.bias.data[:] = [0.1, -0.2, 0.0]
        bn.train(train)
    data = cnnrs.randn(4, 3, 5, 5).numpy()
    x1, x2 = cnnrs.tensor(data, requires_grad=True), cnnrs.tensor(data, requires_grad=True)
    fused = fused_bn.forward_relu(x1)
    plain = plain_bn(x2).relu()
    np.testing.assert_array_equal(fused.numpy(), plain.numpy())
    g = cnnrs.randn(*fused.shape)
    fused.backward(g)
    plain.backward(g)
    pairs = [(x1, x2), (fused_bn.weight, plain_bn.weight), (fused_bn.bias, plain_bn.bias)]
    for a, b in pairs:
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
    np.testing.assert_array_equal(fused_bn.running_mean.numpy(), plain_bn.running_mean.numpy())
    np.testing.assert_array_equal(fused_bn.running_var.numpy(), plain_bn.running_var.numpy())


def test_sequential_fuses_batchnorm_relu_but_leaves_relu_pool_to_the_pool():
    cnnrs.manual_seed(5)
    nn = cnnrs.nn
    seq = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2)
    )
    x = cnnrs.randn(2, 1, 8, 8)
    expected = x
    for m in seq:
        expected = m(expected)
    got = seq(x)
    np.testing.assert_array_equal(got.numpy(), expected.numpy())
    calls = []
    original = cnnrs.nn.BatchNorm2d.forward_relu
    cnnrs.nn.BatchNorm2d.forward_relu = lambda self, i: calls.append(self) or original(self, i)
    try:
        seq(x)
    finally:
        cnnrs.nn.BatchNorm2d.forward_relu = original
    assert calls == [seq[1]]  # seq[3]'s ReLU went into the max pool


def test_sequential_fuses_linear_relu_unless_hooked():
    cnnrs.manual_seed(3)
    seq = cnnrs.nn.Sequential(cnnrs.nn.Linear(4, 6), cnnrs.nn.ReLU(), cnnrs.nn.Linear(6, 2))
    x = cnnrs.randn(3, 4)
    expected = seq[2](seq[1](seq[0](x))).numpy()
    np.testing.assert_array_equal(seq(x).numpy(), expected)
    seen = []
    seq[0].register_forward_hook(lambda m, i, o: seen.append(o.numpy().copy()))
    np.testing.assert_array_equal(seq(x).numpy(), expected)
    assert seen and seen[0].min() < 0  # the hook saw the pre-ReLU output: not fused


def test_conv1d():
    def ref(x, w, b):
        return conv2d_ref(x[:, :, None], w[:, :, None], b, (1, 2), (0, 0, 1, 1))[:, :, 0]

    check(
        [(2, 3, 11), (4, 3, 3), (4,)], lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1), ref, atol=1e-4
    )


def test_linear():
    check([(5, 7), (3, 7), (3,)], F.linear, lambda x, w, b: x @ w.T + b)
    check([(2, 4, 7), (3, 7)], F.linear, lambda x, w: x @ w.T)


def maxpool_ref(x, kernel, stride, pad, dilation=(1, 1)):
    x = np.pad(x, ((0, 0), (0, 0), (pad[0],) * 2, (pad[1],) * 2), constant_values=-np.inf)
    return windows(x, kernel, stride, dilation).max(axis=(-2, -1))


@pytest.mark.parametrize(
    "shape,kernel,stride,padding,dilation",
    [((2, 3, 8, 8), 2, None, 0, 1), ((1, 2, 7, 9), 3, 2, 1, 1), ((1, 2, 9, 9), (2, 3), (1, 2), 0, 2)],
)
def test_max_pool2d(shape, kernel, stride, padding, dilation):
    k, p, d = F._pair(kernel), F._pair(padding), F._pair(dilation)
    s = k if stride is None else F._pair(stride)
    check(
        [shape],
        lambda x: F.max_pool2d(x, kernel, stride, padding, dilation),
        lambda x: maxpool_ref(x, k, s, p, d),
        grad_atol=1e-3,
    )


def test_max_pool2d_return_indices_are_flat_plane_indices():
    x = cnnrs.tensor(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(y.numpy().ravel(), [5, 7, 13, 15])
    np.testing.assert_array_equal(idx.numpy().ravel(), [5, 7, 13, 15])
    assert idx.dtype == np.int64


def test_avg_pool2d():
    def ref(x):
        return windows(x, (2, 2), (2, 2), (1, 1)).mean(axis=(-2, -1))

    check([(2, 3, 6, 8)], lambda x: F.avg_pool2d(x, 2), ref)

    def ref_pad(x):  # count_include_pad=True: zeros count in the divisor
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        return windows(xp, (3, 3), (2, 2), (1, 1)).mean(axis=(-2, -1))

    check([(1, 2, 7, 7)], lambda x: F.avg_pool2d(x, 3, 2, 1), ref_pad)


def test_adaptive_avg_pool2d_divisible_and_general():
    check(
        [(2, 3, 8, 6)],
        lambda x: F.adaptive_avg_pool2d(x, (4, 3)),
        lambda x: windows(x, (2, 2), (2, 2), (1, 1)).mean(axis=(-2, -1)),
    )

    def ref(x, out=(3, 2)):
        h, w = x.shape[-2:]
        y = np.empty(x.shape[:2] + out)
        for i in range(out[0]):
            for j in range(out[1]):
                h0, h1 = (i * h) // out[0], -(-((i + 1) * h) // out[0])
                w0, w1 = (j * w) // out[1], -(-((j + 1) * w) // out[1])
                y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(-2, -1))
        return y

    check([(2, 2, 7, 5)], lambda x: F.adaptive_avg_pool2d(x, (3, 2)), ref)


def log_softmax_ref(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def cross_entropy_ref(z, t, smoothing=0.0, ignore_index=-100, reduction="mean"):
    logp = log_softmax_ref(z)
    c = z.shape[1]
    valid = t != ignore_index
    safe = np.where(valid, t, 0)
    nll = -logp[np.arange(len(t)), safe]
    losses = (1 - smoothing) * nll - smoothing * logp.mean(axis=1)
    losses = np.where(valid, losses, 0.0)
    del c
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.sum() / valid.sum()


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy(smoothing, reduction):
    t = np.array([0, 3, -100, 2, 1, 3])
    check(
        [(6, 4)],
        lambda z: F.cross_entropy(z, cnnrs.tensor(t), label_smoothing=smoothing, reduction=reduction),
        lambda z: cross_entropy_ref(z, t, smoothing, reduction=reduction),
        low=-3,
        high=3,
    )


def test_cross_entropy_spatial_and_nll():
    t = np.array([[0, 2], [1, 1]])

    def ref(z):  # (N, C, L) logits, (N, L) targets
        return cross_entropy_ref(z.transpose(0, 2, 1).reshape(-1, 3), t.reshape(-1))

    check([(2, 3, 2)], lambda z: F.cross_entropy(z, cnnrs.tensor(t)), ref)
    t1 = np.array([1, 0, 2, -100])
    check(
        [(4, 3)],
        lambda z: F.nll_loss(z, cnnrs.tensor(t1)),
        lambda z: -z[np.arange(3), t1[:3]].sum() / 3,
    )


def test_cross_entropy_rejects_unsupported_arguments():
    z, t = cnnrs.randn(2, 3), cnnrs.tensor([0, 1])
    with pytest.raises(NotImplementedError, match="weight"):
        F.cross_entropy(z, t, weight=cnnrs.ones(3))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(z, t, reduction="avg")


def test_mse_loss():
    check([(3, 4), (3, 4)], F.mse_loss, lambda a, b: ((a - b) ** 2).mean())
    check([(3, 4), (4,)], lambda a, b: F.mse_loss(a, b, reduction="sum"), lambda a, b: ((a - b) ** 2).sum())


def test_batch_norm_training_and_eval():
    def ref_train(x, w, b):
        mean = x.mean(axis=(0, 2, 3), keepdims=True)
        var = x.var(axis=(0, 2, 3), keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-5) * w[None, :, None, None] + b[None, :, None, None]

    check(
        [(4, 3, 3, 2), (3,), (3,)],
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        ref_train,
        atol=1e-4,
        grad_atol=2e-3,
    )
    rm, rv = np.array([0.1, -0.2, 0.3]), np.array([0.5, 1.5, 2.0])

    def ref_eval(x, w, b):
        return (x - rm[None, :, None]) / np.sqrt(rv[None, :, None] + 1e-5) * w[None, :, None] + b[
            None, :, None
        ]

    check(
        [(5, 3, 4), (3,), (3,)],
        lambda x, w, b: F.batch_norm(x, cnnrs.tensor(rm), cnnrs.tensor(rv), w, b, training=False),
        ref_eval,
    )


def test_pad():
    check([(2, 3, 4)], lambda x: F.pad(x, (1, 2)), lambda x: np.pad(x, ((0, 0), (0, 0), (1, 2))))
    check([(2, 3, 4)], lambda x: F.pad(x, (0, 1, 2, 0)), lambda x: np.pad(x, ((0, 0), (2, 0), (0, 1))))


def test_dropout_scales_and_masks():
    cnnrs.manual_seed(0)
    x = cnnrs.ones(200, 500, requires_grad=True)
    y = F.dropout(x, 0.3, training=True)
    values = np.unique(y.numpy())
    np.testing.assert_allclose(values, [0.0, 1 / 0.7], rtol=1e-6)
    assert abs((y.numpy() == 0).mean() - 0.3) < 0.01
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())  # gradient = mask / (1 - p)
    assert F.dropout(x, 0.3, training=False) is x
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(x, 1.5)


@pytest.mark.parametrize(
    "layers",
    [
        lambda: [cnnrs.nn.Conv2d(2, 4, 3), cnnrs.nn.ReLU(), cnnrs.nn.MaxPool2d(2)],
        lambda: [
            cnnrs.nn.Conv2d(2, 4, 3, padding=1),
            cnnrs.nn.ReLU(),
            cnnrs.nn.Conv2d(4, 3, 3),
            cnnrs.nn.ReLU(),
        ],
        lambda: [
            cnnrs.nn.BatchNorm2d(2),
            cnnrs.nn.ReLU(),
            cnnrs.nn.MaxPool2d(3, 2, padding=1, ceil_mode=True),
        ],
    ],
)
def test_sequential_fusion_is_bit_identical_to_layer_by_layer(layers):
    cnnrs.manual_seed(4)
    seq = cnnrs.nn.Sequential(*layers())
    x = cnnrs.randn(3, 2, 9, 9, requires_grad=True)
    fused = seq(x)
    g = cnnrs.randn(*fused.shape)
    fused.backward(g)
    grads = [x.grad.numpy().copy()] + [p.grad.numpy().copy() for p in seq.parameters()]
    x.grad = None
    seq.zero_grad()
    plain = x
    for module in seq:  # calling each module on its own never fuses
        plain = module(plain)
    np.testing.assert_array_equal(fused.numpy(), plain.numpy())
    plain.backward(g)
    for a, b in zip(grads, [x.grad] + [p.grad for p in seq.parameters()]):
        np.testing.assert_array_equal(a, b.numpy())
