"""Tensor constructors, named as in torch: tensor, from_numpy, zeros, randn, arange, ..."""

from __future__ import annotations

import numpy as np

from .random import get_rng
from .tensor import Tensor, _as_storage, _dims


def tensor(data, dtype=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of data (floats -> float32, integers -> int64)."""
    array = _as_storage(data, dtype)
    if isinstance(data, np.ndarray) and np.shares_memory(array, data):
        array = array.copy()
    elif isinstance(data, Tensor) and array is data.data:
        array = array.copy()
    return Tensor(array, requires_grad=requires_grad)


def as_tensor(data, dtype=None) -> Tensor:
    """Like :func:`tensor` but without a copy when data already has a storage dtype."""
    if isinstance(data, Tensor) and (dtype is None or np.dtype(dtype) == data.dtype):
        return data
    return Tensor(_as_storage(data, dtype))


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with array (float32, int64 or bool; other dtypes are converted)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray, got {type(array).__name__}")
    if array.dtype in (np.float32, np.int64, np.bool_):
        return Tensor._wrap(array)
    return Tensor(array)


def _shape(size) -> tuple:
    return tuple(int(s) for s in _dims(size))


def zeros(*size, dtype=np.float32, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros(_shape(size), dtype=dtype), requires_grad=requires_grad)


def ones(*size, dtype=np.float32, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones(_shape(size), dtype=dtype), requires_grad=requires_grad)


def empty(*size, dtype=np.float32, requires_grad: bool = False) -> Tensor:
    return Tensor(np.empty(_shape(size), dtype=dtype), requires_grad=requires_grad)


def full(size, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    if dtype is None:
        dtype = np.int64 if isinstance(fill_value, (int, np.integer)) else np.float32
    return Tensor(np.full(_shape((size,)), fill_value, dtype=dtype), requires_grad=requires_grad)


def zeros_like(t, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros_like(np.asarray(t), dtype=dtype), requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones_like(np.asarray(t), dtype=dtype), requires_grad=requires_grad)


def full_like(t, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.full_like(np.asarray(t), fill_value, dtype=dtype), requires_grad=requires_grad)


def randn(*size, requires_grad: bool = False, generator: np.random.Generator | None = None) -> Tensor:
    """Standard normal samples from the global generator (see :func:`cnnrs.manual_seed`)."""
    rng = generator or get_rng()
    return Tensor(rng.standard_normal(_shape(size), dtype=np.float32), requires_grad=requires_grad)


def rand(*size, requires_grad: bool = False, generator: np.random.Generator | None = None) -> Tensor:
    """Uniform samples in [0, 1) from the global generator."""
    rng = generator or get_rng()
    return Tensor(rng.random(_shape(size), dtype=np.float32), requires_grad=requires_grad)


def randn_like(t, requires_grad: bool = False) -> Tensor:
    return randn(*np.shape(np.asarray(t)), requires_grad=requires_grad)


def rand_like(t, requires_grad: bool = False) -> Tensor:
    return rand(*np.shape(np.asarray(t)), requires_grad=requires_grad)


def randint(low, high=None, size=(), generator: np.random.Generator | None = None) -> Tensor:
    if high is None:
        low, high = 0, low
    rng = generator or get_rng()
    return Tensor(rng.integers(low, high, size=_shape((size,)), dtype=np.int64))


def randperm(n: int, generator: np.random.Generator | None = None) -> Tensor:
    rng = generator or get_rng()
    return Tensor(rng.permutation(n).astype(np.int64))


def arange(start, end=None, step=1, dtype=None, requires_grad: bool = False) -> Tensor:
    """Like torch.arange: int64 when start, end and step are all ints, else float32."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if ints else np.float32
    return Tensor(np.arange(start, end, step, dtype=dtype), requires_grad=requires_grad)


def linspace(start, end, steps: int, requires_grad: bool = False) -> Tensor:
    return Tensor(np.linspace(start, end, steps, dtype=np.float32), requires_grad=requires_grad)


def eye(n: int, m: int | None = None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.eye(n, m, dtype=np.float32), requires_grad=requires_grad)


__all__ = [
    "arange",
    "as_tensor",
    "empty",
    "eye",
    "from_numpy",
    "full",
    "full_like",
    "linspace",
    "ones",
    "ones_like",
    "rand",
    "rand_like",
    "randint",
    "randn",
    "randn_like",
    "randperm",
    "tensor",
    "zeros",
    "zeros_like",
]
