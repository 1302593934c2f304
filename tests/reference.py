"""Naive float64 numpy references for the kernels of ``cnnrs._cnnrs``.

Written for clarity, not speed: each function follows the textbook (and
PyTorch's) definition directly. Any test may import them. Shapes are NCHW;
conv padding is (top, bottom, left, right) as in ``conv2d_forward``, pooling
padding is (vertical, horizontal) as in PyTorch.
"""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------- convolution


def _conv_out_len(length, pad_lo, pad_hi, k, stride, dilation):
    return (length + pad_lo + pad_hi - dilation * (k - 1) - 1) // stride + 1


def _tap_view(xp, ky, kx, out_h, out_w, stride, dilation):
    """Input pixels that kernel tap (ky, kx) meets for every output: (N, C, out_h, out_w)."""
    y0, x0 = ky * dilation[0], kx * dilation[1]
    return xp[
        :,
        :,
        y0 : y0 + stride[0] * (out_h - 1) + 1 : stride[0],
        x0 : x0 + stride[1] * (out_w - 1) + 1 : stride[1],
    ]


def conv2d(x, weight, bias=None, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """Cross-correlation as torch.nn.functional.conv2d, with 4-sided padding."""
    x, weight = np.asarray(x, np.float64), np.asarray(weight, np.float64)
    n, c_in, h, w = x.shape
    c_out, cig, kh, kw = weight.shape
    cog = c_out // groups
    top, bottom, left, right = padding
    out_h = _conv_out_len(h, top, bottom, kh, stride[0], dilation[0])
    out_w = _conv_out_len(w, left, right, kw, stride[1], dilation[1])
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    y = np.zeros((n, c_out, out_h, out_w))
    for g in range(groups):
        xg = xp[:, g * cig : (g + 1) * cig]
        wg = weight[g * cog : (g + 1) * cog]
        for ky in range(kh):
            for kx in range(kw):
                taps = _tap_view(xg, ky, kx, out_h, out_w, stride, dilation)
                y[:, g * cog : (g + 1) * cog] += np.einsum("nchw,oc->nohw", taps, wg[:, :, ky, kx])
    if bias is not None:
        y += np.asarray(bias, np.float64)[None, :, None, None]
    return y


def conv2d_backward(x, weight, grad_output, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """(grad_input, grad_weight, grad_bias) of :func:`conv2d` for upstream gradient grad_output."""
    x, weight = np.asarray(x, np.float64), np.asarray(weight, np.float64)
    dy = np.asarray(grad_output, np.float64)
    c_out, cig, kh, kw = weight.shape
    cog = c_out // groups
    top, bottom, left, right = padding
    out_h, out_w = dy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(weight)
    for g in range(groups):
        dyg = dy[:, g * cog : (g + 1) * cog]
        wg = weight[g * cog : (g + 1) * cog]
        for ky in range(kh):
            for kx in range(kw):
                taps = _tap_view(xp[:, g * cig : (g + 1) * cig], ky, kx, out_h, out_w, stride, dilation)
                dw[g * cog : (g + 1) * cog, :, ky, kx] = np.einsum("nohw,nchw->oc", dyg, taps)
                dtaps = _tap_view(dxp[:, g * cig : (g + 1) * cig], ky, kx, out_h, out_w, stride, dilation)
                dtaps += np.einsum("nohw,oc->nchw", dyg, wg[:, :, ky, kx])
    h, w = x.shape[2:]
    dx = dxp[:, :, top : top + h, left : left + w]
    return dx, dw, dy.sum(axis=(0, 2, 3))


# ---------------------------------------------------------------- pooling


def pool_out_len(length, k, pad, stride, dilation=1, ceil_mode=False):
    """PyTorch's pooling_output_shape (0 when no window fits)."""
    numer = length + 2 * pad - dilation * (k - 1) - 1 + (stride - 1 if ceil_mode else 0)
    if numer < 0:
        return 0
    out = numer // stride + 1
    if ceil_mode and (out - 1) * stride >= length + pad:
        out -= 1  # the last window must start inside the input or the left padding
    return out


def _window_taps(o, length, k, stride, pad, dilation):
    """Input positions (inside the input) that window `o` covers, in order."""
    start = o * stride - pad
    return [start + j * dilation for j in range(k) if 0 <= start + j * dilation < length]


def max_pool2d(x, kernel_size, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False):
    """(y, argmax) as PyTorch: taps in row-major order, take v if v > best or v is NaN.

    argmax is the flat index in the input plane, -1 for a window with no input
    (where PyTorch's index points outside the plane)."""
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    out_h = pool_out_len(h, kernel_size[0], padding[0], stride[0], dilation[0], ceil_mode)
    out_w = pool_out_len(w, kernel_size[1], padding[1], stride[1], dilation[1], ceil_mode)
    y = np.full((n, c, out_h, out_w), -np.inf)
    idx = np.full((n, c, out_h, out_w), -1, np.int64)
    for oy in range(out_h):
        rows = _window_taps(oy, h, kernel_size[0], stride[0], padding[0], dilation[0])
        for ox in range(out_w):
            cols = _window_taps(ox, w, kernel_size[1], stride[1], padding[1], dilation[1])
            best = np.full((n, c), -np.inf)
            at = np.full((n, c), -1, np.int64)
            for iy in rows:
                for ix in cols:
                    v = x[:, :, iy, ix]
                    take = (v > best) | np.isnan(v) | (at < 0)
                    best = np.where(take, v, best)
                    at = np.where(take, iy * w + ix, at)
            y[:, :, oy, ox], idx[:, :, oy, ox] = best, at
    return y, idx


def max_pool2d_backward(grad_output, argmax, input_shape):
    """Scatter-add of grad_output to the argmax positions (argmax -1: no gradient)."""
    n, c, h, w = input_shape
    dx = np.zeros((n, c, h * w))
    dy = np.asarray(grad_output, np.float64).reshape(n, c, -1)
    am = np.asarray(argmax).reshape(n, c, -1)
    for i in range(n):
        for j in range(c):
            keep = am[i, j] >= 0
            np.add.at(dx[i, j], am[i, j][keep], dy[i, j][keep])
    return dx.reshape(input_shape)


def _avg_windows(shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """For every output (oy, ox): the input row / column slices and the divisor, as PyTorch."""
    h, w = shape[2:]
    out_h = pool_out_len(h, kernel_size[0], padding[0], stride[0], 1, ceil_mode)
    out_w = pool_out_len(w, kernel_size[1], padding[1], stride[1], 1, ceil_mode)
    for oy in range(out_h):
        for ox in range(out_w):
            y0, x0 = oy * stride[0] - padding[0], ox * stride[1] - padding[1]
            y1 = min(y0 + kernel_size[0], h + padding[0])
            x1 = min(x0 + kernel_size[1], w + padding[1])
            pool_size = (y1 - y0) * (x1 - x0)
            y0, x0, y1, x1 = max(y0, 0), max(x0, 0), min(y1, h), min(x1, w)
            if divisor_override:
                divisor = divisor_override
            elif count_include_pad:
                divisor = pool_size
            else:
                divisor = (y1 - y0) * (x1 - x0)
            yield oy, ox, slice(y0, y1), slice(x0, x1), divisor, (out_h, out_w)


def avg_pool2d(
    x, kernel_size, stride, padding=(0, 0), ceil_mode=False, count_include_pad=True, divisor_override=None
):
    x = np.asarray(x, np.float64)
    out = None
    for oy, ox, rows, cols, divisor, out_hw in _avg_windows(
        x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    ):
        if out is None:
            out = np.zeros(x.shape[:2] + out_hw)
        out[:, :, oy, ox] = x[:, :, rows, cols].sum(axis=(2, 3)) / divisor
    return out


def avg_pool2d_backward(
    grad_output,
    input_shape,
    kernel_size,
    stride,
    padding=(0, 0),
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
):
    dy = np.asarray(grad_output, np.float64)
    dx = np.zeros(input_shape)
    for oy, ox, rows, cols, divisor, _ in _avg_windows(
        input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    ):
        dx[:, :, rows, cols] += (dy[:, :, oy, ox] / divisor)[:, :, None, None]
    return dx


# ---------------------------------------------------------------- elementwise and loss


def relu(x):
    x = np.asarray(x, np.float64)
    return np.where(np.isnan(x) | (x > 0), x, 0.0)


def relu_backward(grad_output, output):
    """PyTorch's threshold_backward: zero where output <= 0 (NaN lets the gradient through)."""
    return np.where(np.asarray(output) <= 0, 0.0, np.asarray(grad_output, np.float64))


def bias_add(y, bias):
    y = np.asarray(y, np.float64)
    shape = (1, -1) + (1,) * (y.ndim - 2)
    return y + np.asarray(bias, np.float64).reshape(shape)


def cross_entropy(logits, target, label_smoothing=0.0, ignore_index=-100):
    """(losses (N,), d losses[i] / d logits[i] (N, C)) as F.cross_entropy(reduction='none')."""
    z = np.asarray(logits, np.float64)
    n, c = z.shape
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    target = np.asarray(target)
    keep = target != ignore_index
    safe_t = np.where(keep, target, 0)
    one_hot = np.zeros((n, c))
    one_hot[np.arange(n), safe_t] = 1.0
    smoothed = (1.0 - label_smoothing) * one_hot + label_smoothing / c
    losses = -(smoothed * log_p).sum(axis=1)
    grad = np.exp(log_p) - smoothed
    return np.where(keep, losses, 0.0), np.where(keep[:, None], grad, 0.0)


# ---------------------------------------------------------------- optimisers


def sgd_step(
    param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False
):
    """One torch.optim.SGD step; returns (new_param, new_buf). buf None means the first step."""
    d = -grad if maximize else grad
    if weight_decay != 0:
        d = d + weight_decay * param
    if momentum != 0:
        buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    return param - lr * d, buf


def adam_step(
    param,
    grad,
    m,
    v,
    vmax,
    step,
    lr,
    beta1=0.9,
    beta2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    decoupled_weight_decay=False,
    amsgrad=False,
    maximize=False,
):
    """One torch.optim.Adam / AdamW step; returns (param, m, v, vmax)."""
    g = -grad if maximize else grad
    if weight_decay != 0:
        if decoupled_weight_decay:
            param = param * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * param
    m = m + (g - m) * (1 - beta1)
    v = beta2 * v + (1 - beta2) * g * g
    second = v
    if amsgrad:
        vmax = np.maximum(vmax, v)
        second = vmax
    denom = np.sqrt(second) / np.sqrt(1 - beta2**step) + eps
    return param - lr / (1 - beta1**step) * m / denom, m, v, vmax


# ---------------------------------------------------------------- finite differences


def numerical_gradient(f, x, eps=1e-6):
    """Central differences of the scalar function f at x (float64), element by element."""
    x = np.array(x, np.float64)
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f(x)
        flat[i] = old - eps
        down = f(x)
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad
