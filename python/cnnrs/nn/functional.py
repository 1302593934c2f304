"""Functional forms of the layers (``cnnrs.nn.functional``, imported as ``F``), torch's signatures."""

from __future__ import annotations

import numpy as np

from .. import ops
from ..errors import ShapeError
from ..random import get_rng
from ..tensor import Tensor
from . import _functions as fn


def _pair(value, name: str = "argument") -> tuple:
    if isinstance(value, (tuple, list)):
        if len(value) == 1:
            return (int(value[0]),) * 2
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def conv_padding(padding, kernel_size: tuple, dilation: tuple, op: str = "conv2d") -> tuple:
    """padding as given to torch (int, pair, 'same', 'valid') -> (top, bottom, left, right).

    'same' puts the odd pixel of an even total padding at the bottom / right, like torch.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            th = dilation[0] * (kernel_size[0] - 1)
            tw = dilation[1] * (kernel_size[1] - 1)
            return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        raise ValueError(f"{op}: invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
    ph, pw = _pair(padding, f"{op}: padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"{op}: negative padding {padding!r} is not supported")
    return (ph, ph, pw, pw)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """2-D convolution (cross-correlation) of input (N, C_in, H, W) with weight (C_out, C_in/groups, kH, kW).

    padding: int, pair, 'valid' or 'same'. Output size as :class:`cnnrs.nn.Conv2d`.
    """
    return _conv2d(input, weight, bias, stride, padding, dilation, groups, relu=False)


def _conv2d(input, weight, bias, stride, padding, dilation, groups, relu: bool) -> Tensor:
    stride, dilation = _pair(stride, "conv2d: stride"), _pair(dilation, "conv2d: dilation")
    if isinstance(padding, str) and padding == "same" and stride != (1, 1):
        raise ValueError("conv2d: padding='same' is not supported for strided convolutions")
    pad4 = conv_padding(padding, weight.shape[2:], dilation)
    options = {"stride": stride, "padding": pad4, "dilation": dilation, "groups": groups, "relu": relu}
    input = _tensor(input)
    if input.ndim == 3:  # unbatched (C, H, W), as torch accepts
        return _conv2d(input.unsqueeze(0), weight, bias, stride, padding, dilation, groups, relu).squeeze(0)
    if bias is None:
        return fn.Conv2dFn.apply(input, weight, **options)
    return fn.Conv2dFn.apply(input, weight, bias, **options)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """1-D convolution of input (N, C_in, L) with weight (C_out, C_in/groups, k), as a conv2d of height 1."""

    def first(v) -> int:
        return int(v[0] if isinstance(v, (tuple, list)) else v)

    stride, dilation = (1, first(stride)), (1, first(dilation))
    if isinstance(padding, str) and padding == "same" and stride != (1, 1):
        raise ValueError("conv1d: padding='same' is not supported for strided convolutions")
    pad = padding if isinstance(padding, str) else (0, first(padding))
    pad4 = conv_padding(pad, (1, weight.shape[-1]), dilation, "conv1d")
    options = {"stride": stride, "padding": pad4, "dilation": dilation, "groups": groups, "relu": False}
    x4, w4 = _tensor(input).unsqueeze(2), weight.unsqueeze(2)
    args = (x4, w4) if bias is None else (x4, w4, bias)
    return fn.Conv2dFn.apply(*args, **options).squeeze(2)


def linear(input, weight, bias=None) -> Tensor:
    """y = input @ weight^T + bias, for input (*, in_features) and weight (out_features, in_features)."""
    return _linear(input, weight, bias, relu=False)


def _linear(input, weight, bias, relu: bool) -> Tensor:
    input = _tensor(input)
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ShapeError(
            f"linear: input of shape {tuple(input.shape)} does not end in in_features = {weight.shape[1]} "
            f"(weight shape {tuple(weight.shape)})"
        )
    flat = input if input.ndim == 2 else input.reshape(-1, input.shape[-1])
    args = (flat, weight) if bias is None else (flat, weight, bias)
    out = fn.LinearFn.apply(*args, relu=relu)
    return out if input.ndim == 2 else out.reshape(input.shape[:-1] + (weight.shape[0],))


def _pool_args(kernel_size, stride, padding, dilation, op: str):
    kernel = _pair(kernel_size, f"{op}: kernel_size")
    stride = (
        kernel
        if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
        else _pair(stride)
    )
    return kernel, stride, _pair(padding, f"{op}: padding"), _pair(dilation, f"{op}: dilation")


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """2-D max pooling; with return_indices also the flat index (h * W + w) of each max in its plane."""
    return _max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, relu=False)


def _max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, relu: bool):
    kernel, stride, padding, dilation = _pool_args(kernel_size, stride, padding, dilation, "max_pool2d")
    options = {
        "kernel_size": kernel,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "ceil_mode": ceil_mode,
        "relu": relu,
    }
    input = _tensor(input)
    if input.ndim == 3:  # unbatched (C, H, W)
        out = _max_pool2d(
            input.unsqueeze(0), kernel_size, stride, padding, dilation, ceil_mode, return_indices, relu
        )
        return (out[0].squeeze(0), out[1].squeeze(0)) if return_indices else out.squeeze(0)
    if not return_indices:
        return fn.MaxPool2dFn.apply(input, **options)
    f = fn.MaxPool2dFn()
    out = fn.Function.run(f, (input,), options)
    return out, Tensor._wrap(f.argmax.astype(np.int64))


def avg_pool2d(
    input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None
) -> Tensor:
    kernel, stride, padding, _ = _pool_args(kernel_size, stride, padding, 1, "avg_pool2d")
    input = _tensor(input)
    if input.ndim == 3:  # unbatched (C, H, W)
        return avg_pool2d(
            input.unsqueeze(0), kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
        ).squeeze(0)
    return fn.AvgPool2dFn.apply(
        _tensor(input),
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
        divisor_override=divisor_override,
    )


def adaptive_avg_pool2d(input, output_size) -> Tensor:
    """Average pooling to a fixed output size (None keeps that input size), torch's window formula."""
    input = _tensor(input)
    h, w = input.shape[-2:]
    if isinstance(output_size, (tuple, list)):
        oh, ow = (
            (h if output_size[0] is None else output_size[0]),
            (w if output_size[1] is None else output_size[1]),
        )
    else:
        oh = ow = output_size
    if (oh, ow) == (h, w):
        return input
    if input.ndim == 4 and h % oh == 0 and w % ow == 0:
        kernel = (h // oh, w // ow)
        return fn.AvgPool2dFn.apply(
            input,
            kernel_size=kernel,
            stride=kernel,
            padding=(0, 0),
            ceil_mode=False,
            count_include_pad=True,
            divisor_override=None,
        )
    return fn.AdaptiveAvgPool2dFn.apply(input, output_size=(oh, ow))


def relu(input, inplace: bool = False) -> Tensor:
    return ops.Relu.apply(_tensor(input))


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return ops.LeakyRelu.apply(_tensor(input), negative_slope=negative_slope)


def sigmoid(input) -> Tensor:
    return ops.Sigmoid.apply(_tensor(input))


def tanh(input) -> Tensor:
    return ops.Tanh.apply(_tensor(input))


def softmax(input, dim: int | None = None) -> Tensor:
    input = _tensor(input)
    return ops.Softmax.apply(input, dim=_default_softmax_dim(input, dim))


def log_softmax(input, dim: int | None = None) -> Tensor:
    input = _tensor(input)
    return ops.LogSoftmax.apply(input, dim=_default_softmax_dim(input, dim))


def _default_softmax_dim(input: Tensor, dim):
    # torch's legacy rule when dim is omitted: dim 0 for 0-, 1- and 3-D inputs, else 1.
    if dim is None:
        return 0 if input.ndim in (0, 1, 3) else 1
    return dim


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability p and scale the rest by 1 / (1 - p) (training only)."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    input = _tensor(input)
    if not training or p == 0.0:
        return input
    return fn.DropoutFn.apply(input, p=p, rng=get_rng())


def batch_norm(
    input,
    running_mean,
    running_var,
    weight=None,
    bias=None,
    training: bool = False,
    momentum: float | None = 0.1,
    eps: float = 1e-5,
    *,
    relu: bool = False,
) -> Tensor:
    """Normalise over all dims but 1. In training, updates running_mean / running_var in place
    (unbiased variance, like torch) when they are given. ``relu=True``: relu of the result, in
    the same kernel call (bit-identical to a separate ReLU)."""
    input = _tensor(input)
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected at least 2-D input (N, C, ...), got shape {input.shape}")
    params = [t for t in (weight, bias) if t is not None]
    if weight is None and bias is not None:
        raise ValueError("batch_norm: bias without weight is not supported")
    if training:
        count = input.numel() // input.shape[1]
        if count <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {input.shape}"
            )
        f = fn.BatchNormFn()
        out = fn.Function.run(f, (input, *params), {"eps": eps, "relu": relu})
        if running_mean is not None and momentum is not None:
            m = np.float32(momentum)
            running_mean.data *= 1 - m
            running_mean.data += m * f.batch_mean
            running_var.data *= 1 - m
            running_var.data += m * f.batch_var * np.float32(count / (count - 1))
        return out
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm: running_mean and running_var are required when training=False")
    return fn.BatchNormFn.apply(
        input, *params, mean=running_mean.data, var=running_var.data, eps=eps, relu=relu
    )


def _check_reduction(reduction: str, op: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _class_last(input: Tensor, target: Tensor):
    """(N, C, d1, ...) logits and (N, d1, ...) targets -> (N*d1*..., C) and (N*d1*...)."""
    dims = (0,) + tuple(range(2, input.ndim)) + (1,)
    return input.permute(dims).reshape(-1, input.shape[1]), target.reshape(-1)


def cross_entropy(
    input,
    target,
    weight=None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Log-softmax + negative log-likelihood in one fused kernel, for class-index targets."""
    if weight is not None:
        raise NotImplementedError("cross_entropy: per-class weight is not supported by cnnrs")
    if size_average is not None or reduce is not None:
        raise NotImplementedError("cross_entropy: size_average / reduce are deprecated; use reduction=")
    _check_reduction(reduction, "cross_entropy")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    input, target = _tensor(input), _tensor(target)
    if target.dtype.kind == "f":
        raise NotImplementedError(
            "cross_entropy: class-probability targets are not supported; pass class indices"
        )
    if input.ndim == 1:
        input, target = input.unsqueeze(0), target.reshape(1)
        out = fn.CrossEntropyFn.apply(
            input, target, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing
        )
        return out.reshape(()) if reduction == "none" else out
    if input.ndim > 2:
        spatial = (input.shape[0],) + input.shape[2:]
        flat_in, flat_t = _class_last(input, target)
        out = fn.CrossEntropyFn.apply(
            flat_in, flat_t, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing
        )
        return out.reshape(spatial) if reduction == "none" else out
    return fn.CrossEntropyFn.apply(
        input, target, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing
    )


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """Negative log-likelihood of log-probabilities input (N, C) for class indices target (N)."""
    if weight is not None:
        raise NotImplementedError("nll_loss: per-class weight is not supported by cnnrs")
    _check_reduction(reduction, "nll_loss")
    input, target = _tensor(input), _tensor(target)
    if input.ndim > 2:
        spatial = (input.shape[0],) + input.shape[2:]
        flat_in, flat_t = _class_last(input, target)
        out = fn.NLLLossFn.apply(flat_in, flat_t, ignore_index=ignore_index, reduction=reduction)
        return out.reshape(spatial) if reduction == "none" else out
    return fn.NLLLossFn.apply(input, target, ignore_index=ignore_index, reduction=reduction)


def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    _check_reduction(reduction, "mse_loss")
    input, target = _tensor(input), _tensor(target)
    if target.dtype != input.dtype:
        target = Tensor._wrap(target.data.astype(input.dtype))
    return fn.MSELossFn.apply(input, target, reduction=reduction)


def flatten(input, start_dim: int = 1, end_dim: int = -1) -> Tensor:
    return _tensor(input).flatten(start_dim, end_dim)


def pad(input, pad, mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad the last len(pad) // 2 dims: pad = (left, right, top, bottom, ...) as in torch."""
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not supported; only 'constant'")
    if len(pad) % 2:
        raise ValueError(f"pad: padding length must be even, got {len(pad)}")
    if any(p < 0 for p in pad):
        raise NotImplementedError("pad: negative padding (cropping) is not supported")
    input = _tensor(input)
    if len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: padding of length {len(pad)} is too long for a {input.ndim}-D input")
    return fn.PadFn.apply(input, pad=tuple(int(p) for p in pad), value=value)


def one_hot(tensor, num_classes: int = -1) -> Tensor:
    t = _tensor(tensor)
    n = int(t.data.max()) + 1 if num_classes < 0 else num_classes
    return Tensor._wrap(np.eye(n, dtype=np.int64)[t.data])
