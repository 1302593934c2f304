"""Top-level tensor functions with torch's names (cnnrs.cat, cnnrs.relu, cnnrs.max, ...)."""

from __future__ import annotations

from . import ops
from .tensor import Tensor, _as_storage


def _t(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def cat(tensors, dim: int = 0) -> Tensor:
    return ops.Cat.apply(*[_t(t) for t in tensors], dim=dim)


concatenate = cat


def stack(tensors, dim: int = 0) -> Tensor:
    return ops.Stack.apply(*[_t(t) for t in tensors], dim=dim)


def where(condition, input, other) -> Tensor:
    cond = _as_storage(condition).astype(bool, copy=False)
    a, b = _t(input), _t(other)
    return ops.Where.apply(a, b, cond=cond)


def matmul(input, other) -> Tensor:
    return _t(input) @ _t(other)


mm = matmul


def exp(x) -> Tensor:
    return _t(x).exp()


def log(x) -> Tensor:
    return _t(x).log()


def sqrt(x) -> Tensor:
    return _t(x).sqrt()


def abs(x) -> Tensor:
    return _t(x).abs()


def clamp(x, min=None, max=None) -> Tensor:
    return _t(x).clamp(min, max)


def relu(x) -> Tensor:
    return _t(x).relu()


def sigmoid(x) -> Tensor:
    return _t(x).sigmoid()


def tanh(x) -> Tensor:
    return _t(x).tanh()


def softmax(x, dim: int) -> Tensor:
    return _t(x).softmax(dim)


def log_softmax(x, dim: int) -> Tensor:
    return _t(x).log_softmax(dim)


def sum(x, dim=None, keepdim: bool = False) -> Tensor:
    return _t(x).sum(dim, keepdim)


def mean(x, dim=None, keepdim: bool = False) -> Tensor:
    return _t(x).mean(dim, keepdim)


def max(x, dim=None, keepdim: bool = False):
    return _t(x).max(dim, keepdim)


def min(x, dim=None, keepdim: bool = False):
    return _t(x).min(dim, keepdim)


def argmax(x, dim=None, keepdim: bool = False) -> Tensor:
    return _t(x).argmax(dim, keepdim)


def argmin(x, dim=None, keepdim: bool = False) -> Tensor:
    return _t(x).argmin(dim, keepdim)


def flatten(x, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return _t(x).flatten(start_dim, end_dim)


def reshape(x, shape) -> Tensor:
    return _t(x).reshape(shape)


def transpose(x, dim0: int, dim1: int) -> Tensor:
    return _t(x).transpose(dim0, dim1)


def permute(x, dims) -> Tensor:
    return _t(x).permute(dims)


def unsqueeze(x, dim: int) -> Tensor:
    return _t(x).unsqueeze(dim)


def squeeze(x, dim=None) -> Tensor:
    return _t(x).squeeze(dim)


def equal(a, b) -> bool:
    return _t(a).equal(b)


def allclose(a, b, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    return _t(a).allclose(b, rtol=rtol, atol=atol)


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)
