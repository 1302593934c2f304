"""Autograd Functions of the layers: each forward / backward is one fused kernel call
where a kernel exists (convolution, pooling, cross entropy, GEMM)."""

from __future__ import annotations

import numpy as np

from .. import _cnnrs
from ..autograd import Function
from ..ops import unbroadcast

F32 = np.float32


_F32_DTYPE = np.dtype(np.float32)


def _f32(a: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 array, copying only when needed (what the kernels accept)."""
    # `is` first: the builtin dtype is a singleton, and this runs several times per layer.
    if (a.dtype is _F32_DTYPE or a.dtype == F32) and a.flags.c_contiguous:
        return a
    return np.ascontiguousarray(a, dtype=F32)


class Conv2dFn(Function):
    """Convolution with bias and (optionally) the following ReLU fused into the kernel."""

    def forward(
        self, x, weight, bias=None, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1, relu=False
    ):
        x, weight = _f32(x), _f32(weight)
        if bias is not None:
            bias = _f32(bias)
        out = _cnnrs.conv2d_forward(x, weight, bias, stride, padding, dilation, groups, relu)
        # References only (no copies): the backward kernel reads x and weight for shapes too.
        self.x, self.weight = x, weight
        self.config = stride, padding, dilation, groups
        self.out = out if relu else None  # the ReLU mask for backward
        return out

    def backward(self, g):
        g = _f32(g)
        if self.out is not None:
            g = _cnnrs.relu_backward(g, self.out)
        needs = self.needs_input_grad
        need_bias = len(needs) > 2 and needs[2]
        stride, padding, dilation, groups = self.config
        gx, gw, gb = _cnnrs.conv2d_backward(
            self.x,
            self.weight,
            g,
            stride,
            padding,
            dilation,
            groups,
            need_input=needs[0],
            need_weight=needs[1],
            need_bias=need_bias,
        )
        return (gx, gw, gb)[: len(needs)]


class LinearFn(Function):
    """y = x @ W^T + b (then ReLU) for 2-D x: one GEMM kernel call (no transposed copies)."""

    def forward(self, x, weight, bias=None, relu=False):
        x, weight = _f32(x), _f32(weight)
        needs = self.needs_input_grad
        self.x = x if needs[1] else None
        self.weight = weight if needs[0] else None
        out = _cnnrs.gemm(x, weight, trans_b=True, bias=None if bias is None else _f32(bias), relu=relu)
        self.out = out if relu else None  # the ReLU mask for backward
        return out

    def backward(self, g):
        g = _f32(g)
        if self.out is not None:
            g = _cnnrs.relu_backward(g, self.out)
        needs = self.needs_input_grad
        gx = _cnnrs.gemm(g, self.weight) if needs[0] else None
        gw = _cnnrs.gemm(g, self.x, trans_a=True) if needs[1] else None
        if len(needs) == 2:
            return gx, gw
        gb = g.sum(axis=0) if needs[2] else None
        return gx, gw, gb


class MaxPool2dFn(Function):
    """Max pooling; with relu=True, max_pool(relu(x)) in the same pass (argmax -1 where clamped)."""

    def forward(self, x, kernel_size, stride, padding, dilation, ceil_mode, relu=False):
        x = _f32(x)
        out, argmax = _cnnrs.max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode, relu)
        self.argmax, self.x_shape = argmax, x.shape
        self.config = kernel_size, stride, padding, dilation, ceil_mode
        return out

    def backward(self, g):
        return _cnnrs.max_pool2d_backward(_f32(g), self.argmax, self.x_shape, *self.config)


class AvgPool2dFn(Function):
    def forward(self, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
        x = _f32(x)
        self.x_shape = x.shape
        self.config = kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        return _cnnrs.avg_pool2d_forward(x, *self.config)

    def backward(self, g):
        return _cnnrs.avg_pool2d_backward(_f32(g), self.x_shape, *self.config)


def adaptive_ranges(in_size: int, out_size: int) -> list:
    """torch's adaptive pooling windows: [floor(i*in/out), ceil((i+1)*in/out))."""
    return [((i * in_size) // out_size, -(-((i + 1) * in_size) // out_size)) for i in range(out_size)]


class AdaptiveAvgPool2dFn(Function):
    """General adaptive average pooling (windows of varying size); one slice per output cell."""

    def forward(self, x, output_size):
        oh, ow = output_size
        self.x_shape = x.shape
        self.rows = adaptive_ranges(x.shape[-2], oh)
        self.cols = adaptive_ranges(x.shape[-1], ow)
        out = np.empty(x.shape[:-2] + (oh, ow), dtype=x.dtype)
        for i, (h0, h1) in enumerate(self.rows):
            for j, (w0, w1) in enumerate(self.cols):
                out[..., i, j] = x[..., h0:h1, w0:w1].mean(axis=(-2, -1))
        return out

    def backward(self, g):
        gx = np.zeros(self.x_shape, dtype=g.dtype)
        for i, (h0, h1) in enumerate(self.rows):
            for j, (w0, w1) in enumerate(self.cols):
                area = (h1 - h0) * (w1 - w0)
                gx[..., h0:h1, w0:w1] += (g[..., i, j] / area)[..., None, None]
        return gx


class CrossEntropyFn(Function):
    """Fused log-softmax + NLL: one kernel call gives per-row losses and gradients."""

    def forward(self, logits, target, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        logits = _f32(logits)
        target = (
            target
            if target.dtype == np.int64 and target.flags.c_contiguous
            else np.ascontiguousarray(target, np.int64)
        )
        losses, grads = _cnnrs.cross_entropy(
            logits, target, label_smoothing, ignore_index, need_grad=self.needs_input_grad[0]
        )
        self.grads, self.reduction = grads, reduction
        if reduction == "none":
            return losses
        if reduction == "sum":
            return np.asarray(losses.sum(dtype=F32))
        # mean over the rows that are not ignored (nan when all are, like torch)
        self.count = int(np.count_nonzero(target != ignore_index))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(losses.sum(dtype=F32) / F32(self.count))

    def backward(self, g):
        if self.reduction == "none":
            return self.grads * g[:, None], None
        scale = g / F32(self.count) if self.reduction == "mean" else g
        return self.grads * scale, None


class NLLLossFn(Function):
    def forward(self, logp, target, ignore_index=-100, reduction="mean"):
        n = logp.shape[0]
        valid = target != ignore_index
        safe = np.where(valid, target, 0)
        if np.any(valid & ((safe < 0) | (safe >= logp.shape[1]))):
            raise IndexError(f"nll_loss: target out of bounds for {logp.shape[1]} classes")
        picked = logp[np.arange(n), safe]
        losses = np.where(valid, -picked, 0).astype(logp.dtype)
        self.shape, self.safe, self.valid, self.reduction = logp.shape, safe, valid, reduction
        self.count = int(valid.sum())
        if reduction == "none":
            return losses
        total = losses.sum(dtype=F32)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(total if reduction == "sum" else total / F32(self.count))

    def backward(self, g):
        n = self.shape[0]
        if self.reduction == "none":
            per_row = g
        else:
            per_row = np.full(n, g / F32(self.count) if self.reduction == "mean" else g, dtype=F32)
        gx = np.zeros(self.shape, dtype=F32)
        gx[np.arange(n), self.safe] = -per_row * self.valid
        return gx, None


class MSELossFn(Function):
    def forward(self, a, b, reduction="mean"):
        self.diff = a - b
        self.reduction = reduction
        sq = self.diff * self.diff
        if reduction == "none":
            return sq
        return np.asarray(sq.sum(dtype=F32) if reduction == "sum" else sq.mean(dtype=F32))

    def backward(self, g):
        d = self.diff
        scale = 2 * g if self.reduction != "mean" else 2 * g / F32(d.size)
        grad = (d * scale).astype(F32, copy=False)
        na, nb = self.needs_input_grad
        ga = unbroadcast(grad, self.inputs[0].shape) if na else None
        gb = unbroadcast(-grad, self.inputs[1].shape) if nb else None
        return ga, gb


class BatchNormFn(Function):
    """Batch normalisation over all axes but 1 (channels), from batch statistics or given ones.

    ``mean`` / ``var`` given: evaluation with running statistics. Otherwise the
    batch statistics are used and stored in ``self.batch_mean`` / ``batch_var``
    (biased variance). Forward and backward are one kernel call each: a channel
    at a time, statistics, normalisation and gradient sums in one visit of its
    data, sums in float64. ``relu=True`` applies the following ReLU in the same
    calls (forward and backward), bit-identical to a separate ReLU.
    """

    def forward(self, x, weight=None, bias=None, mean=None, var=None, eps=1e-5, relu=False):
        x = _f32(x)
        self.training = mean is None
        weight = None if weight is None else _f32(weight)
        bias = None if bias is None else _f32(bias)
        if not self.training:
            mean, var = _f32(mean), _f32(var)
        out, batch_mean, batch_var, inv_std = _cnnrs.batch_norm_forward(
            x, weight, bias, mean, var, float(eps), relu
        )
        if self.training:
            self.batch_mean, self.batch_var = batch_mean, batch_var
        self.x, self.mean, self.inv_std, self.weight = x, batch_mean, inv_std, weight
        self.out = out if relu else None  # the ReLU mask for backward
        return out

    def backward(self, g):
        needs = self.needs_input_grad
        gx, grad_weight, grad_bias = _cnnrs.batch_norm_backward(
            _f32(g), self.x, self.mean, self.inv_std, self.weight, self.training, needs[0], self.out
        )
        grads = [gx]
        if len(needs) > 1:
            grads.append(grad_weight if needs[1] else None)
        if len(needs) > 2:
            grads.append(grad_bias if needs[2] else None)
        return tuple(grads) if len(grads) > 1 else gx


class DropoutFn(Function):
    def forward(self, x, p=0.5, rng=None):
        if p >= 1.0:
            self.mask = np.zeros(x.shape, dtype=F32)
        else:
            keep = rng.random(x.shape, dtype=F32) >= F32(p)
            self.mask = keep * F32(1.0 / (1.0 - p))
        return x * self.mask

    def backward(self, g):
        return g * self.mask


class PadFn(Function):
    """Constant padding; pad lists (before, after) per dim from the last dim backwards (torch order)."""

    def forward(self, x, pad=(), value=0.0):
        widths = [(0, 0)] * x.ndim
        for i in range(len(pad) // 2):
            widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
        self.slices = tuple(slice(before, before + n) for (before, _), n in zip(widths, x.shape))
        return np.pad(x, widths, mode="constant", constant_values=value)

    def backward(self, g):
        return g[self.slices]


def conv_output_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int) -> int:
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def pool_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """torch's pooling output size, including the ceil_mode rule that the last window must start inside."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out
