"""Every function of cnnrs._cnnrs refuses bad input with a cnnrs.errors class
(a ValueError or TypeError subclass) whose message names the op and the argument.

Array arguments are checked systematically from one valid call per function
(wrong dtype, wrong ndim, non-contiguous, read-only where written in place);
scalar arguments and shape mismatches are listed case by case.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnrs import _cnnrs as c
from cnnrs import errors as E  # noqa: N812


def f32(*shape):
    return np.ones(shape, np.float32)


def i64(*shape):
    return np.zeros(shape, np.int64)


def i32(*shape):
    return np.zeros(shape, np.int32)


# name, {argument: array}, call taking those arrays, op name in messages,
# {argument: name in messages}, arguments of fixed ndim, arguments written in place.
SPECS = {
    "gemm": (
        dict(a=f32(3, 4), b=f32(4, 5), out=f32(3, 5), bias=f32(5)),
        lambda a, b, out, bias: c.gemm(a, b, out=out, bias=bias, relu=True),
        "gemm",
        {},
        {"a", "b", "out", "bias"},
        {"out"},
    ),
    "conv2d_forward": (
        dict(x=f32(2, 3, 6, 6), weight=f32(4, 3, 3, 3), bias=f32(4)),
        lambda x, weight, bias: c.conv2d_forward(x, weight, bias),
        "conv2d",
        {"x": "input"},
        {"x", "weight", "bias"},
        set(),
    ),
    "conv2d_backward": (
        dict(x=f32(2, 3, 6, 6), weight=f32(4, 3, 3, 3), grad_output=f32(2, 4, 4, 4)),
        lambda x, weight, grad_output: c.conv2d_backward(x, weight, grad_output),
        "conv2d_backward",
        {"x": "input"},
        {"x", "weight", "grad_output"},
        set(),
    ),
    "max_pool2d_forward": (
        dict(x=f32(2, 3, 6, 6)),
        lambda x: c.max_pool2d_forward(x, (2, 2), (2, 2)),
        "max_pool2d",
        {"x": "input"},
        {"x"},
        set(),
    ),
    "max_pool2d_backward": (
        dict(grad_output=f32(2, 3, 3, 3), argmax=i32(2, 3, 3, 3)),
        lambda grad_output, argmax: c.max_pool2d_backward(grad_output, argmax, (2, 3, 6, 6), (2, 2), (2, 2)),
        "max_pool2d_backward",
        {},
        {"grad_output", "argmax"},
        set(),
    ),
    "avg_pool2d_forward": (
        dict(x=f32(2, 3, 6, 6)),
        lambda x: c.avg_pool2d_forward(x, (2, 2), (2, 2)),
        "avg_pool2d",
        {"x": "input"},
        {"x"},
        set(),
    ),
    "avg_pool2d_backward": (
        dict(grad_output=f32(2, 3, 3, 3)),
        lambda grad_output: c.avg_pool2d_backward(grad_output, (2, 3, 6, 6), (2, 2), (2, 2)),
        "avg_pool2d_backward",
        {},
        {"grad_output"},
        set(),
    ),
    "relu_forward": (dict(x=f32(2, 3)), lambda x: c.relu_forward(x), "relu", {"x": "input"}, set(), set()),
    "relu_backward": (
        dict(grad_output=f32(2, 3), output=f32(2, 3)),
        lambda grad_output, output: c.relu_backward(grad_output, output),
        "relu_backward",
        {},
        set(),
        set(),
    ),
    "bias_add_": (
        dict(y=f32(2, 3, 4), bias=f32(3)),
        lambda y, bias: c.bias_add_(y, bias),
        "bias_add_",
        {"y": "input"},
        {"bias"},
        {"y"},
    ),
    "cross_entropy": (
        dict(logits=f32(4, 3), target=i64(4)),
        lambda logits, target: c.cross_entropy(logits, target),
        "cross_entropy",
        {"logits": "input"},
        {"logits", "target"},
        set(),
    ),
    "batch_norm_forward": (
        dict(x=f32(2, 3, 4, 4), weight=f32(3), bias=f32(3), mean=f32(3), var=np.ones(3, np.float32)),
        lambda x, weight, bias, mean, var: c.batch_norm_forward(x, weight, bias, mean, var),
        "batch_norm_forward",
        {},
        {"weight", "bias", "mean", "var"},
        set(),
    ),
    "batch_norm_backward": (
        dict(
            grad_output=f32(2, 3, 4, 4),
            x=f32(2, 3, 4, 4),
            mean=f32(3),
            inv_std=f32(3),
            weight=f32(3),
            relu_output=f32(2, 3, 4, 4),
        ),
        lambda grad_output, x, mean, inv_std, weight, relu_output: c.batch_norm_backward(
            grad_output, x, mean, inv_std, weight, relu_output=relu_output
        ),
        "batch_norm_backward",
        {},
        {"mean", "inv_std", "weight"},
        set(),
    ),
    "sgd_step": (
        dict(params=f32(5), grads=f32(5), momentum_buffers=f32(5)),
        lambda params, grads, momentum_buffers: c.sgd_step(
            [params], [grads], [momentum_buffers], 0.1, momentum=0.9
        ),
        "sgd_step",
        {"params": "params[0]", "grads": "grads[0]", "momentum_buffers": "momentum_buffers[0]"},
        set(),
        {"params", "momentum_buffers"},
    ),
    "adam_step": (
        dict(params=f32(5), grads=f32(5), exp_avgs=f32(5), exp_avg_sqs=f32(5), max_exp_avg_sqs=f32(5)),
        lambda params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs: c.adam_step(
            [params], [grads], [exp_avgs], [exp_avg_sqs], [max_exp_avg_sqs], 1, 0.1, amsgrad=True
        ),
        "adam_step",
        {k: f"{k}[0]" for k in ("params", "grads", "exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs")},
        set(),
        {"params", "exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs"},
    ),
}

# Functions with no argument that could be bad.
NO_BAD_INPUT = {"get_num_threads", "get_force_fallback", "get_winograd", "simd_path"}


def check(error, call, *words):
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, E.CnnrsError)
    assert isinstance(info.value, (ValueError, TypeError))
    for w in words:
        assert w in str(info.value), f"{w!r} not in {str(info.value)!r}"
    return info.value


def array_mutations():
    for fn, (arrays, _, _, _, fixed_ndim, inout) in SPECS.items():
        for arg in arrays:
            yield pytest.param(fn, arg, "dtype", id=f"{fn}-{arg}-dtype")
            yield pytest.param(fn, arg, "noncontiguous", id=f"{fn}-{arg}-noncontiguous")
            yield pytest.param(fn, arg, "list", id=f"{fn}-{arg}-list")
            if arg in fixed_ndim:
                yield pytest.param(fn, arg, "ndim", id=f"{fn}-{arg}-ndim")
            if arg in inout:
                yield pytest.param(fn, arg, "readonly", id=f"{fn}-{arg}-readonly")


def test_every_valid_call_works():
    """The calls that the mutations start from are valid (else the tests below prove nothing)."""
    for arrays, call, *_ in SPECS.values():
        call(**{k: v.copy() for k, v in arrays.items()})


def test_every_function_is_covered():
    public = {n for n in dir(c) if callable(getattr(c, n)) and not n.startswith("_")}
    assert public - set(SPECS) - NO_BAD_INPUT == {"set_num_threads", "set_force_fallback", "set_winograd"}
    for name in NO_BAD_INPUT:
        with pytest.raises(TypeError):
            getattr(c, name)(1)


@pytest.mark.parametrize("fn,arg,kind", list(array_mutations()))
def test_bad_array_argument(fn, arg, kind):
    arrays, call, op, names, _, _ = SPECS[fn]
    arrays = {k: v.copy() for k, v in arrays.items()}
    good = arrays[arg]
    name = names.get(arg, arg)
    if kind == "dtype":
        arrays[arg] = good.astype(np.float64 if good.dtype != np.float64 else np.float32)
        error, words = E.DTypeError, (op, f"`{name}`", "dtype", str(good.dtype))
    elif kind == "list":
        arrays[arg] = good.tolist()
        error, words = E.DTypeError, (op, f"`{name}`", "numpy.ndarray")
    elif kind == "noncontiguous":
        wide = np.repeat(good, 2, axis=-1)
        arrays[arg] = wide[..., ::2]
        assert arrays[arg].shape == good.shape and not arrays[arg].flags.c_contiguous
        error, words = E.LayoutError, (op, f"`{name}`", "C-contiguous")
    elif kind == "ndim":
        arrays[arg] = good[None]
        error, words = E.ShapeError, (op, f"`{name}`", "dimensions", str(list(arrays[arg].shape)))
    else:
        good.setflags(write=False)
        error, words = E.LayoutError, (op, f"`{name}`", "read-only")
    check(error, lambda: call(**arrays), *words)


X = f32(2, 3, 8, 8)
W = f32(4, 3, 3, 3)
DY = f32(2, 3, 4, 4)
ARGMAX = i32(2, 3, 4, 4)
POOL_SHAPE = (2, 3, 8, 8)
A5 = f32(5)

CASES = [
    # gemm
    (
        "gemm inner mismatch",
        E.ShapeError,
        lambda: c.gemm(f32(3, 4), f32(5, 2)),
        ["gemm", "inner", "[3, 4]", "[5, 2]"],
    ),
    (
        "gemm out shape",
        E.ShapeError,
        lambda: c.gemm(f32(3, 4), f32(4, 2), out=f32(2, 3)),
        ["gemm", "`out`", "(3, 2)"],
    ),
    (
        "gemm bias length",
        E.ShapeError,
        lambda: c.gemm(f32(3, 4), f32(4, 5), bias=f32(4)),
        ["gemm", "bias", "[4]", "5 columns"],
    ),
    (
        "gemm beta without out",
        E.ArgumentError,
        lambda: c.gemm(f32(2, 2), f32(2, 2), beta=1.0),
        ["gemm", "beta"],
    ),
    (
        "gemm out aliases a",
        E.LayoutError,
        lambda: (lambda a: c.gemm(a, f32(2, 2), out=a))(f32(2, 2)),
        ["gemm", "`out`", "borrowed"],
    ),
    # conv2d
    (
        "conv channels",
        E.ShapeError,
        lambda: c.conv2d_forward(f32(2, 5, 8, 8), W),
        ["conv2d", "5", "[4, 3, 3, 3]"],
    ),
    (
        "conv groups",
        E.ShapeError,
        lambda: c.conv2d_forward(f32(2, 6, 8, 8), f32(4, 3, 3, 3), groups=4),
        ["conv2d", "groups=4"],
    ),
    ("conv huge groups", E.ShapeError, lambda: c.conv2d_forward(X, W, groups=2**62), ["conv2d", "groups"]),
    ("conv zero groups", E.ArgumentError, lambda: c.conv2d_forward(X, W, groups=0), ["conv2d", "groups"]),
    (
        "conv zero stride",
        E.ArgumentError,
        lambda: c.conv2d_forward(X, W, stride=(0, 1)),
        ["conv2d", "stride"],
    ),
    (
        "conv negative stride",
        E.ArgumentError,
        lambda: c.conv2d_forward(X, W, stride=(1, -2)),
        ["conv2d", "stride"],
    ),
    (
        "conv negative padding",
        E.ArgumentError,
        lambda: c.conv2d_forward(X, W, padding=(0, -1, 0, 0)),
        ["conv2d", "padding"],
    ),
    (
        "conv zero dilation",
        E.ArgumentError,
        lambda: c.conv2d_forward(X, W, dilation=(0, 1)),
        ["conv2d", "dilation"],
    ),
    (
        "conv kernel too large",
        E.ShapeError,
        lambda: c.conv2d_forward(f32(1, 3, 2, 8), W),
        ["conv2d", "larger"],
    ),
    (
        "conv huge dilation",
        E.ShapeError,
        lambda: c.conv2d_forward(X, W, dilation=(2**62, 1)),
        ["conv2d", "larger"],
    ),
    (
        "conv empty batch",
        E.ArgumentError,
        lambda: c.conv2d_forward(f32(0, 3, 8, 8), W),
        ["conv2d", "empty batch"],
    ),
    ("conv empty weight", E.ShapeError, lambda: c.conv2d_forward(X, f32(0, 3, 3, 3)), ["conv2d", "weight"]),
    ("conv bias size", E.ShapeError, lambda: c.conv2d_forward(X, W, f32(5)), ["conv2d", "bias", "[5]"]),
    (
        "conv overflowing padding",
        E.SizeOverflowError,
        lambda: c.conv2d_forward(X, W, padding=(2**62, 2**62, 0, 0)),
        ["conv2d", "overflow"],
    ),
    (
        "conv backward grad shape",
        E.ShapeError,
        lambda: c.conv2d_backward(X, W, f32(2, 4, 5, 5)),
        ["conv2d_backward", "grad_output", "[2, 4, 6, 6]"],
    ),
    (
        "conv backward channels",
        E.ShapeError,
        lambda: c.conv2d_backward(f32(2, 2, 8, 8), W, f32(2, 4, 6, 6)),
        ["conv2d_backward"],
    ),
    (
        "conv backward empty batch",
        E.ArgumentError,
        lambda: c.conv2d_backward(f32(0, 3, 8, 8), W, f32(0, 4, 6, 6)),
        ["conv2d_backward", "empty batch"],
    ),
    # max / avg pool forward
    (
        "max zero stride",
        E.ArgumentError,
        lambda: c.max_pool2d_forward(X, (2, 2), (0, 2)),
        ["max_pool2d", "stride"],
    ),
    (
        "max negative stride",
        E.ArgumentError,
        lambda: c.max_pool2d_forward(X, (2, 2), (-1, 2)),
        ["max_pool2d", "stride"],
    ),
    (
        "max zero kernel",
        E.ArgumentError,
        lambda: c.max_pool2d_forward(X, (0, 2), (2, 2)),
        ["max_pool2d", "kernel_size"],
    ),
    (
        "max negative padding",
        E.ArgumentError,
        lambda: c.max_pool2d_forward(X, (2, 2), (2, 2), (-1, 0)),
        ["max_pool2d", "padding"],
    ),
    (
        "max padding over half kernel",
        E.ArgumentError,
        lambda: c.max_pool2d_forward(X, (2, 2), (2, 2), (2, 0)),
        ["max_pool2d", "padding", "half"],
    ),
    (
        "max zero dilation",
        E.ArgumentError,
        lambda: c.max_pool2d_forward(X, (2, 2), (2, 2), dilation=(1, 0)),
        ["max_pool2d", "dilation"],
    ),
    (
        "max kernel too large",
        E.ShapeError,
        lambda: c.max_pool2d_forward(f32(1, 1, 3, 3), (4, 4), (1, 1)),
        ["max_pool2d", "larger"],
    ),
    (
        "max dilated kernel too large",
        E.ShapeError,
        lambda: c.max_pool2d_forward(X, (2, 2), (1, 1), dilation=(8, 1)),
        ["max_pool2d", "larger"],
    ),
    (
        "max empty batch",
        E.ArgumentError,
        lambda: c.max_pool2d_forward(f32(0, 3, 8, 8), (2, 2), (2, 2)),
        ["max_pool2d", "empty batch"],
    ),
    (
        "max empty plane",
        E.ShapeError,
        lambda: c.max_pool2d_forward(f32(1, 3, 0, 8), (2, 2), (2, 2)),
        ["max_pool2d", "zero-sized"],
    ),
    (
        "avg padding over half kernel",
        E.ArgumentError,
        lambda: c.avg_pool2d_forward(X, (3, 3), (1, 1), (0, 2)),
        ["avg_pool2d", "padding"],
    ),
    (
        "avg zero divisor",
        E.ArgumentError,
        lambda: c.avg_pool2d_forward(X, (2, 2), (2, 2), divisor_override=0),
        ["avg_pool2d", "divisor_override"],
    ),
    (
        "avg negative divisor",
        E.ArgumentError,
        lambda: c.avg_pool2d_forward(X, (2, 2), (2, 2), divisor_override=-3),
        ["avg_pool2d", "divisor_override"],
    ),
    (
        "avg empty batch",
        E.ArgumentError,
        lambda: c.avg_pool2d_forward(f32(0, 3, 8, 8), (2, 2), (2, 2)),
        ["avg_pool2d", "empty batch"],
    ),
    (
        "avg kernel too large",
        E.ShapeError,
        lambda: c.avg_pool2d_forward(f32(1, 1, 3, 3), (5, 5), (1, 1)),
        ["avg_pool2d", "larger"],
    ),
    # max / avg pool backward
    (
        "max backward grad shape",
        E.ShapeError,
        lambda: c.max_pool2d_backward(f32(2, 3, 3, 4), i32(2, 3, 3, 4), POOL_SHAPE, (2, 2), (2, 2)),
        ["max_pool2d_backward", "grad_output", "[2, 3, 4, 4]"],
    ),
    (
        "max backward argmax shape",
        E.ShapeError,
        lambda: c.max_pool2d_backward(DY, i32(2, 3, 4, 3), POOL_SHAPE, (2, 2), (2, 2)),
        ["max_pool2d_backward", "argmax"],
    ),
    (
        "max backward argmax too large",
        E.ArgumentError,
        lambda: c.max_pool2d_backward(DY, ARGMAX + 64, POOL_SHAPE, (2, 2), (2, 2)),
        ["max_pool2d_backward", "argmax", "64"],
    ),
    (
        "max backward argmax negative",
        E.ArgumentError,
        lambda: c.max_pool2d_backward(DY, ARGMAX - 2, POOL_SHAPE, (2, 2), (2, 2)),
        ["max_pool2d_backward", "argmax", "-2"],
    ),
    (
        "max backward input_shape length",
        E.ShapeError,
        lambda: c.max_pool2d_backward(DY, ARGMAX, (2, 3, 8), (2, 2), (2, 2)),
        ["max_pool2d_backward", "input_shape"],
    ),
    (
        "max backward negative input_shape",
        E.ArgumentError,
        lambda: c.max_pool2d_backward(DY, ARGMAX, (2, -3, 8, 8), (2, 2), (2, 2)),
        ["max_pool2d_backward", "input_shape"],
    ),
    (
        "max backward empty batch",
        E.ArgumentError,
        lambda: c.max_pool2d_backward(f32(0, 3, 4, 4), i32(0, 3, 4, 4), (0, 3, 8, 8), (2, 2), (2, 2)),
        ["max_pool2d_backward", "empty batch"],
    ),
    (
        "max backward overflowing input_shape",
        E.SizeOverflowError,
        lambda: c.max_pool2d_backward(
            f32(2, 3, 1, 1), i32(2, 3, 1, 1), (2, 3, 2**40, 2**40), (1, 1), (2**41, 2**41)
        ),
        ["max_pool2d_backward", "overflow"],
    ),
    (
        "max backward plane too large for int32",
        E.SizeOverflowError,
        lambda: c.max_pool2d_backward(
            f32(1, 1, 1, 1), i32(1, 1, 1, 1), (1, 1, 2**16, 2**16), (1, 1), (2**17, 2**17)
        ),
        ["max_pool2d_backward", "int32"],
    ),
    (
        "max backward zero stride",
        E.ArgumentError,
        lambda: c.max_pool2d_backward(DY, ARGMAX, POOL_SHAPE, (2, 2), (0, 2)),
        ["max_pool2d_backward", "stride"],
    ),
    (
        "avg backward grad shape",
        E.ShapeError,
        lambda: c.avg_pool2d_backward(f32(2, 3, 4, 5), POOL_SHAPE, (2, 2), (2, 2)),
        ["avg_pool2d_backward", "grad_output"],
    ),
    (
        "avg backward overflowing input_shape",
        E.SizeOverflowError,
        lambda: c.avg_pool2d_backward(f32(2, 3, 1, 1), (2**62, 3, 1, 2**20), (1, 1), (2**21, 2**21)),
        ["avg_pool2d_backward", "overflow"],
    ),
    (
        "avg backward negative padding",
        E.ArgumentError,
        lambda: c.avg_pool2d_backward(DY, POOL_SHAPE, (2, 2), (2, 2), (0, -1)),
        ["avg_pool2d_backward", "padding"],
    ),
    # elementwise and loss
    (
        "relu_backward shapes",
        E.ShapeError,
        lambda: c.relu_backward(f32(2, 3), f32(3, 2)),
        ["relu_backward", "[2, 3]", "[3, 2]"],
    ),
    (
        "bias_add_ channels",
        E.ShapeError,
        lambda: c.bias_add_(f32(2, 3, 4), f32(4)),
        ["bias_add_", "[2, 3, 4]"],
    ),
    ("bias_add_ 1-d input", E.ShapeError, lambda: c.bias_add_(f32(3), f32(3)), ["bias_add_", "(N, C, ...)"]),
    (
        "bias_add_ input aliases bias",
        E.LayoutError,
        lambda: (lambda a: c.bias_add_(a, a[0]))(f32(3, 3)),
        ["bias_add_", "borrowed"],
    ),
    (
        "cross_entropy target too large",
        E.ArgumentError,
        lambda: c.cross_entropy(f32(3, 4), np.array([0, 4, 1])),
        ["cross_entropy", "target[1] = 4", "4 classes"],
    ),
    (
        "cross_entropy negative target",
        E.ArgumentError,
        lambda: c.cross_entropy(f32(3, 4), np.array([0, 1, -1])),
        ["cross_entropy", "target[2] = -1"],
    ),
    (
        "cross_entropy target length",
        E.ShapeError,
        lambda: c.cross_entropy(f32(3, 4), i64(2)),
        ["cross_entropy", "(3, 4)".replace("(", "[").replace(")", "]")],
    ),
    (
        "cross_entropy empty batch",
        E.ShapeError,
        lambda: c.cross_entropy(f32(0, 4), i64(0)),
        ["cross_entropy", "N"],
    ),
    (
        "cross_entropy zero classes",
        E.ShapeError,
        lambda: c.cross_entropy(f32(2, 0), i64(2)),
        ["cross_entropy", "C > 0"],
    ),
    (
        "cross_entropy smoothing",
        E.ArgumentError,
        lambda: c.cross_entropy(f32(2, 3), i64(2), label_smoothing=1.5),
        ["cross_entropy", "label_smoothing"],
    ),
    (
        "cross_entropy smoothing NaN",
        E.ArgumentError,
        lambda: c.cross_entropy(f32(2, 3), i64(2), label_smoothing=float("nan")),
        ["cross_entropy", "label_smoothing"],
    ),
    (
        "cross_entropy int32 target",
        E.DTypeError,
        lambda: c.cross_entropy(f32(2, 3), i32(2)),
        ["cross_entropy", "`target`", "int64"],
    ),
    # optimisers
    (
        "sgd fewer grads",
        E.ShapeError,
        lambda: c.sgd_step([f32(5)], [], None, 0.1),
        ["sgd_step", "grads", "1"],
    ),
    (
        "sgd more grads",
        E.ShapeError,
        lambda: c.sgd_step([f32(5)], [A5, A5], None, 0.1),
        ["sgd_step", "grads"],
    ),
    (
        "sgd grad shape",
        E.ShapeError,
        lambda: c.sgd_step([f32(5)], [f32(4)], None, 0.1),
        ["sgd_step", "grads[0]"],
    ),
    (
        "sgd buffer count",
        E.ShapeError,
        lambda: c.sgd_step([f32(5)], [A5], [], 0.1, momentum=0.9),
        ["sgd_step", "momentum_buffers"],
    ),
    (
        "sgd buffer shape",
        E.ShapeError,
        lambda: c.sgd_step([f32(5)], [A5], [f32(1, 5)], 0.1, momentum=0.9),
        ["sgd_step", "momentum_buffers[0]"],
    ),
    (
        "sgd momentum without buffers",
        E.ArgumentError,
        lambda: c.sgd_step([f32(5)], [A5], None, 0.1, momentum=0.9),
        ["sgd_step", "momentum_buffers"],
    ),
    (
        "sgd same param twice",
        E.LayoutError,
        lambda: (lambda p: c.sgd_step([p, p], [A5, A5], None, 0.1))(f32(5)),
        ["sgd_step", "params[1]"],
    ),
    (
        "sgd grad is the param",
        E.LayoutError,
        lambda: (lambda p: c.sgd_step([p], [p], None, 0.1))(f32(5)),
        ["sgd_step", "grads[0]"],
    ),
    (
        "adam zero step",
        E.ArgumentError,
        lambda: c.adam_step([f32(5)], [A5], [f32(5)], [f32(5)], None, 0, 0.1),
        ["adam_step", "step"],
    ),
    (
        "adam exp_avgs count",
        E.ShapeError,
        lambda: c.adam_step([f32(5)], [A5], [], [f32(5)], None, 1, 0.1),
        ["adam_step", "exp_avgs"],
    ),
    (
        "adam exp_avg_sqs shape",
        E.ShapeError,
        lambda: c.adam_step([f32(5)], [A5], [f32(5)], [f32(6)], None, 1, 0.1),
        ["adam_step", "exp_avg_sqs[0]"],
    ),
    (
        "adam amsgrad without max",
        E.ArgumentError,
        lambda: c.adam_step([f32(5)], [A5], [f32(5)], [f32(5)], None, 1, 0.1, amsgrad=True),
        ["adam_step", "max_exp_avg_sqs"],
    ),
    (
        "adam max count",
        E.ShapeError,
        lambda: c.adam_step([f32(5)], [A5], [f32(5)], [f32(5)], [f32(5), f32(5)], 1, 0.1, amsgrad=True),
        ["adam_step", "max_exp_avg_sqs"],
    ),
    (
        "adam state aliases param",
        E.LayoutError,
        lambda: (lambda p: c.adam_step([p], [A5], [p], [f32(5)], None, 1, 0.1))(f32(5)),
        ["adam_step", "exp_avgs[0]"],
    ),
    # batch norm
    (
        "batch norm 1-d input",
        E.ShapeError,
        lambda: c.batch_norm_forward(f32(5)),
        ["batch_norm_forward", "at least 2 dimensions", "[5]"],
    ),
    (
        "batch norm weight length",
        E.ShapeError,
        lambda: c.batch_norm_forward(f32(2, 3, 4), f32(4)),
        ["batch_norm_forward", "weight", "[4]", "[2, 3, 4]", "3 channels"],
    ),
    (
        "batch norm mean without var",
        E.ArgumentError,
        lambda: c.batch_norm_forward(f32(2, 3), mean=f32(3)),
        ["batch_norm_forward", "mean and var"],
    ),
    (
        "batch norm statistics of an empty batch",
        E.ShapeError,
        lambda: c.batch_norm_forward(f32(0, 3)),
        ["batch_norm_forward", "one value per channel", "[0, 3]"],
    ),
    (
        "batch norm negative eps",
        E.ArgumentError,
        lambda: c.batch_norm_forward(f32(2, 3), eps=-1.0),
        ["batch_norm_forward", "eps", "-1"],
    ),
    (
        "batch norm nan eps",
        E.ArgumentError,
        lambda: c.batch_norm_forward(f32(2, 3), eps=float("nan")),
        ["batch_norm_forward", "eps", "NaN"],
    ),
    (
        "batch norm backward shapes differ",
        E.ShapeError,
        lambda: c.batch_norm_backward(f32(2, 3, 4), f32(2, 3, 5), f32(3), f32(3)),
        ["batch_norm_backward", "grad_output", "[2, 3, 4]", "[2, 3, 5]"],
    ),
    (
        "batch norm backward inv_std length",
        E.ShapeError,
        lambda: c.batch_norm_backward(f32(2, 3, 4), f32(2, 3, 4), f32(3), f32(2)),
        ["batch_norm_backward", "inv_std", "[2]", "3 channels"],
    ),
    # runtime
    ("zero threads", E.ArgumentError, lambda: c.set_num_threads(0), ["set_num_threads", "0"]),
    ("negative threads", E.ArgumentError, lambda: c.set_num_threads(-3), ["set_num_threads", "-3"]),
    (
        "absurd thread count",
        E.ArgumentError,
        lambda: c.set_num_threads(100_000),
        ["set_num_threads", "100000"],
    ),
]


@pytest.mark.parametrize("error,call,words", [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_bad_argument(error, call, words):
    check(error, call, *words)


def test_python_level_type_errors_name_the_argument():
    """Wrong Python types for scalar / tuple arguments are PyO3's TypeError / ValueError /
    OverflowError, with a note naming the argument (shown in the traceback)."""
    for call, arg, error in [
        (lambda: c.max_pool2d_forward(X, 2, (2, 2)), "kernel_size", TypeError),
        (lambda: c.max_pool2d_forward(X, (2, 2, 2), (2, 2)), "kernel_size", ValueError),
        (lambda: c.conv2d_forward(X, W, stride=1), "stride", TypeError),
        (lambda: c.sgd_step([A5.copy()], [A5], None, "0.1"), "lr", TypeError),
        (lambda: c.cross_entropy(f32(2, 3), i64(2), ignore_index=2**70), "ignore_index", OverflowError),
        (lambda: c.set_num_threads(2**70), "n", OverflowError),
    ]:
        with pytest.raises(error) as info:
            call()
        assert any(arg in note for note in getattr(info.value, "__notes__", [])), info.value


def test_failed_allocation_is_an_exception_not_a_panic():
    # 64 planes of 2**31 - 1 floats: 32 TiB, more than any machine here can map.
    with pytest.raises(MemoryError):
        c.avg_pool2d_backward(f32(8, 8, 1, 1), (8, 8, 1, 2**31 - 1), (1, 1), (2**31, 2**31))
    with pytest.raises(MemoryError):
        c.max_pool2d_backward(f32(8, 8, 1, 1), i32(8, 8, 1, 1), (8, 8, 1, 2**31 - 1), (1, 1), (2**31, 2**31))


def test_conv_output_too_large_to_allocate():
    # Padding 2**40 rows: an output of 192 TiB, beyond the address space.
    with pytest.raises(MemoryError):
        c.conv2d_forward(X, W, padding=(2**40, 0, 0, 0))


def test_gemm_output_too_large_to_allocate():
    # (2**24 x 0) @ (0 x 2**24): empty inputs, a 1 PiB output.
    with pytest.raises(MemoryError):
        c.gemm(f32(2**24, 0), f32(0, 2**24))


def test_nothing_is_written_when_arguments_are_bad():
    p, g = np.ones(5, np.float32), np.ones(5, np.float32)
    with pytest.raises(E.ShapeError):
        c.sgd_step([p, np.ones(3, np.float32)], [g, np.ones(4, np.float32)], None, 0.1)
    assert (p == 1).all()
