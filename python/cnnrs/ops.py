"""Differentiable tensor ops: elementwise, reductions, shapes, matmul, indexing.

Each class is one op; ``forward`` works on numpy arrays and saves only what
``backward`` uses. Layer ops (convolution, pooling, losses, ...) live in
``cnnrs.nn._functions``.
"""

from __future__ import annotations

import numpy as np

from . import _cnnrs
from .autograd import Function
from .errors import ShapeError

F32 = np.float32


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum grad over the axes that broadcasting added or stretched to reach ``shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def contiguous(a: np.ndarray) -> np.ndarray:
    """a itself if it is C-contiguous (what the kernels need), else a compact copy."""
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


# --------------------------------------------------------------------------- binary


class Add(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, g):
        sa, sb = self.shapes
        na, nb = self.needs_input_grad
        return (unbroadcast(g, sa) if na else None, unbroadcast(g, sb) if nb else None)


class Sub(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, g):
        sa, sb = self.shapes
        na, nb = self.needs_input_grad
        return (unbroadcast(g, sa) if na else None, unbroadcast(-g, sb) if nb else None)


class Mul(Function):
    def forward(self, a, b):
        na, nb = self.needs_input_grad
        self.a = a if nb else None
        self.b = b if na else None
        self.shapes = a.shape, b.shape
        return a * b

    def backward(self, g):
        sa, sb = self.shapes
        na, nb = self.needs_input_grad
        return (unbroadcast(g * self.b, sa) if na else None, unbroadcast(g * self.a, sb) if nb else None)


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        a, b = self.a, self.b
        na, nb = self.needs_input_grad
        ga = unbroadcast(g / b, a.shape) if na else None
        gb = unbroadcast(-g * a / (b * b), b.shape) if nb else None
        return ga, gb


class Pow(Function):
    """a ** b with both operands tensors (b may be a broadcast scalar)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a**b
        return self.out

    def backward(self, g):
        a, b, out = self.a, self.b, self.out
        na, nb = self.needs_input_grad
        ga = unbroadcast(g * b * a ** (b - 1), a.shape) if na else None
        gb = None
        if nb:
            with np.errstate(divide="ignore", invalid="ignore"):
                log_a = np.where(a > 0, np.log(np.where(a > 0, a, 1)), 0).astype(a.dtype)
            gb = unbroadcast(g * out * log_a, b.shape)
        return ga, gb


class PowScalar(Function):
    def forward(self, a, exponent: float):
        self.a, self.exponent = a, exponent
        return a**exponent if exponent != 2 else a * a

    def backward(self, g):
        e = self.exponent
        if e == 2:
            return g * (2 * self.a)
        return g * (e * self.a ** (e - 1))


def _gemm_operand(a: np.ndarray):
    """(array, transposed) such that gemm sees a C-contiguous array: a transpose view costs no copy."""
    if a.flags.c_contiguous:
        return a, False
    if a.flags.f_contiguous:
        return a.T, True
    return np.ascontiguousarray(a), False


def _mm(a: np.ndarray, b: np.ndarray, trans_a: bool = False, trans_b: bool = False) -> np.ndarray:
    """op(a) @ op(b) for 2-D float32 arrays through the packed gemm kernel."""
    a, ta = _gemm_operand(a)
    b, tb = _gemm_operand(b)
    return _cnnrs.gemm(a, b, trans_a=ta != trans_a, trans_b=tb != trans_b)


class MatMul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        if a.ndim == 0 or b.ndim == 0 or a.shape[-1] != b.shape[0 if b.ndim == 1 else -2]:
            raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied")
        if a.ndim == 2 and b.ndim == 2 and a.dtype == F32 and b.dtype == F32:
            return _mm(a, b)
        return np.matmul(a, b)

    def backward(self, g):
        a, b = self.a, self.b
        na, nb = self.needs_input_grad
        if a.ndim == 2 and b.ndim == 2 and a.dtype == F32:
            g = contiguous(g)
            return (_mm(g, b, trans_b=True) if na else None, _mm(a, g, trans_a=True) if nb else None)
        # General case (1-D or batched): promote vectors to matrices, then undo.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g.reshape(np.matmul(a2[..., :1, :], b2[..., :, :1]).shape[:-2] + (a2.shape[-2], b2.shape[-1]))
        ga = gb = None
        if na:
            ga = unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if nb:
            gb = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
        return ga, gb


# --------------------------------------------------------------------------- unary


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class Exp(Function):
    def forward(self, a):
        self.out = np.exp(a)
        return self.out

    def backward(self, g):
        return g * self.out


class Log(Function):
    def forward(self, a):
        self.a = a
        return np.log(a)

    def backward(self, g):
        return g / self.a


class Sqrt(Function):
    def forward(self, a):
        self.out = np.sqrt(a)
        return self.out

    def backward(self, g):
        return g / (2 * self.out)


class Abs(Function):
    def forward(self, a):
        self.a = a
        return np.abs(a)

    def backward(self, g):
        return g * np.sign(self.a)


class Clamp(Function):
    def forward(self, a, min=None, max=None):
        out = np.clip(a, min, max)
        # Gradient flows where the input was inside [min, max] (torch's convention at the bounds).
        mask = np.ones(a.shape, dtype=bool)
        if min is not None:
            mask &= a >= min
        if max is not None:
            mask &= a <= max
        self.mask = mask
        return out

    def backward(self, g):
        return g * self.mask


class Relu(Function):
    def forward(self, a):
        if a.dtype != F32:
            self.out = np.maximum(a, 0)
            return self.out
        self.out = _cnnrs.relu_forward(contiguous(a))
        return self.out

    def backward(self, g):
        return _cnnrs.relu_backward(contiguous(g).astype(F32, copy=False), self.out)


class LeakyRelu(Function):
    def forward(self, a, negative_slope=0.01):
        self.positive = a > 0
        self.slope = negative_slope
        return np.where(self.positive, a, a * F32(negative_slope))

    def backward(self, g):
        return np.where(self.positive, g, g * F32(self.slope))


class Sigmoid(Function):
    def forward(self, a):
        # exp of -|a| never overflows.
        e = np.exp(-np.abs(a))
        self.out = np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)
        return self.out

    def backward(self, g):
        s = self.out
        return g * s * (1 - s)


class Tanh(Function):
    def forward(self, a):
        self.out = np.tanh(a)
        return self.out

    def backward(self, g):
        return g * (1 - self.out * self.out)


class Softmax(Function):
    def forward(self, a, dim: int):
        shifted = a - a.max(axis=dim, keepdims=True)
        e = np.exp(shifted)
        e /= e.sum(axis=dim, keepdims=True)
        self.out, self.dim = e, dim
        return e

    def backward(self, g):
        s = self.out
        return s * (g - (g * s).sum(axis=self.dim, keepdims=True))


class LogSoftmax(Function):
    def forward(self, a, dim: int):
        shifted = a - a.max(axis=dim, keepdims=True)
        out = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))
        self.out, self.dim = out, dim
        return out

    def backward(self, g):
        return g - np.exp(self.out) * g.sum(axis=self.dim, keepdims=True)


# --------------------------------------------------------------------------- reductions


class Sum(Function):
    def forward(self, a, dim=None, keepdim=False):
        self.shape, self.dim, self.keepdim = a.shape, dim, keepdim
        return np.asarray(a.sum(axis=dim, keepdims=keepdim))

    def backward(self, g):
        if self.dim is None:
            return np.full(self.shape, g, dtype=g.dtype)
        if not self.keepdim:
            g = np.expand_dims(g, self.dim)
        return np.broadcast_to(g, self.shape)


class Mean(Function):
    def forward(self, a, dim=None, keepdim=False):
        self.shape, self.dim, self.keepdim = a.shape, dim, keepdim
        out = np.asarray(a.mean(axis=dim, keepdims=keepdim))
        self.count = a.size // max(out.size, 1) if a.size else 0
        return out.astype(a.dtype, copy=False)

    def backward(self, g):
        g = g / g.dtype.type(self.count)
        if self.dim is None:
            return np.full(self.shape, g, dtype=g.dtype)
        if not self.keepdim:
            g = np.expand_dims(g, self.dim)
        return np.broadcast_to(g, self.shape)


class Var(Function):
    def forward(self, a, dim=None, keepdim=False, correction=1):
        self.a, self.dim = a, dim
        self.mean = a.mean(axis=dim, keepdims=True)
        out = np.asarray(a.var(axis=dim, keepdims=keepdim, ddof=correction)).astype(a.dtype, copy=False)
        self.denominator = a.size // max(self.mean.size, 1) - correction
        self.keepdim = keepdim
        return out

    def backward(self, g):
        if self.dim is not None and not self.keepdim:
            g = np.expand_dims(g, self.dim)
        return g * (2 / self.denominator) * (self.a - self.mean)


class MaxReduce(Function):
    """Max (or min) over all elements: ties share the gradient evenly, like torch."""

    def forward(self, a, smallest=False):
        out = np.asarray(a.min() if smallest else a.max())
        self.mask = a == out
        return out

    def backward(self, g):
        mask = self.mask
        return (mask * (g / mask.sum())).astype(g.dtype, copy=False)


class MaxDim(Function):
    """Max (or min) along one dim: the gradient goes to the index reported."""

    def forward(self, a, dim, keepdim=False, smallest=False):
        idx = np.expand_dims((a.argmin if smallest else a.argmax)(axis=dim), dim)
        values = np.take_along_axis(a, idx, axis=dim)
        self.shape, self.dim, self.idx = a.shape, dim, idx
        self.indices = idx if keepdim else np.squeeze(idx, dim)
        self.keepdim = keepdim
        return values if keepdim else np.squeeze(values, dim)

    def backward(self, g):
        if not self.keepdim:
            g = np.expand_dims(g, self.dim)
        out = np.zeros(self.shape, dtype=g.dtype)
        np.put_along_axis(out, self.idx, g, axis=self.dim)
        return out


# --------------------------------------------------------------------------- shapes


class Reshape(Function):
    def forward(self, a, shape):
        self.shape = a.shape
        return a.reshape(shape)

    def backward(self, g):
        return g.reshape(self.shape)


class Permute(Function):
    def forward(self, a, dims):
        self.inverse = tuple(np.argsort(dims))
        return a.transpose(dims)

    def backward(self, g):
        return g.transpose(self.inverse)


class Expand(Function):
    def forward(self, a, shape):
        self.shape = a.shape
        return np.broadcast_to(a, shape)

    def backward(self, g):
        return unbroadcast(g, self.shape)


class Contiguous(Function):
    def forward(self, a):
        return np.ascontiguousarray(a)

    def backward(self, g):
        return g


class Clone(Function):
    def forward(self, a):
        return a.copy()

    def backward(self, g):
        return g


def _has_advanced_index(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (np.ndarray, list)) for p in parts)


class GetItem(Function):
    def forward(self, a, index):
        self.shape, self.dtype, self.index = a.shape, a.dtype, index
        return a[index]

    def backward(self, g):
        out = np.zeros(self.shape, dtype=g.dtype)
        if _has_advanced_index(self.index):
            np.add.at(out, self.index, g)  # repeated indices add up
        else:
            out[self.index] = g
        return out


class Cat(Function):
    def forward(self, *arrays, dim=0):
        self.dim = dim
        self.bounds = np.cumsum([a.shape[dim] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=dim)

    def backward(self, g):
        parts = np.split(g, self.bounds, axis=self.dim)
        return tuple(p if need else None for p, need in zip(parts, self.needs_input_grad))


class Stack(Function):
    def forward(self, *arrays, dim=0):
        self.dim = dim
        return np.stack(arrays, axis=dim)

    def backward(self, g):
        parts = [np.take(g, i, axis=self.dim) for i in range(g.shape[self.dim])]
        return tuple(p if need else None for p, need in zip(parts, self.needs_input_grad))


class Where(Function):
    """where(cond, a, b); cond is a plain boolean array (no gradient)."""

    def forward(self, a, b, cond=None):
        self.cond = cond
        self.shapes = a.shape, b.shape
        return np.where(cond, a, b)

    def backward(self, g):
        na, nb = self.needs_input_grad
        sa, sb = self.shapes
        zero = g.dtype.type(0)
        ga = unbroadcast(np.where(self.cond, g, zero), sa) if na else None
        gb = unbroadcast(np.where(self.cond, zero, g), sb) if nb else None
        return ga, gb
