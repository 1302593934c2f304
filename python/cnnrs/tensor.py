"""Tensor: a numpy array plus the autograd bookkeeping around it.

Floating-point data is stored as float32, integer data as int64 (class
labels), booleans as bool (results of comparisons). Only float tensors can
require gradients. Ops record themselves through :mod:`cnnrs.ops` Functions.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import autograd, ops
from .autograd import _GradMode, run_backward

float32 = np.dtype(np.float32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)


def _as_storage(data, dtype=None) -> np.ndarray:
    """Convert data to the array a Tensor stores (float32 / int64 / bool)."""
    if isinstance(data, Tensor):
        data = data.data
    array = np.asarray(data, dtype=dtype)
    if dtype is None:
        kind = array.dtype.kind
        if kind == "f" or kind == "c":
            if array.dtype != float32:
                array = array.astype(float32)
        elif kind in "iu":
            if array.dtype != int64:
                array = array.astype(int64)
        elif kind != "b":
            raise TypeError(f"tensor: cannot make a tensor from data of dtype {array.dtype}")
    return array


def _scalar_or_tensor(value, like: np.ndarray) -> Tensor:
    """A Python number becomes a 0-d tensor (like's dtype when like is float); tensors pass through."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, numbers.Number):
        if like.dtype.kind == "f":
            dtype = like.dtype
        elif isinstance(value, float):
            dtype = float32
        else:
            dtype = int64 if like.dtype.kind in "iu" or not isinstance(value, bool) else bool_
        return Tensor._wrap(np.asarray(value, dtype=dtype))
    return Tensor(value)


def _operands(a: Tensor, b, true_divide: bool = False) -> tuple:
    """(a, b) as tensors with torch's type promotion: float32 wins over integers and booleans
    (numpy alone would give float64); true division of integers gives float32."""
    b = _scalar_or_tensor(b, a.data)
    ka, kb = a.data.dtype.kind, b.data.dtype.kind
    if ka == "f" and kb == "f":
        return a, b
    if ka == "f":
        return a, Tensor._wrap(b.data.astype(a.data.dtype))
    if kb == "f":
        return Tensor._wrap(a.data.astype(b.data.dtype)), b
    if true_divide:
        return Tensor._wrap(a.data.astype(float32)), Tensor._wrap(b.data.astype(float32))
    return a, b


def _dims(dims) -> tuple:
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        return tuple(dims[0])
    return tuple(dims)


class Tensor:
    """A multi-dimensional array with reverse-mode automatic differentiation.

    Args:
        data: array-like. Floats are stored as float32, integers as int64.
        requires_grad: record ops on this tensor so that ``backward()`` fills ``.grad``.

    Example:
        >>> x = cnnrs.tensor([1.0, 2.0, 3.0], requires_grad=True)
        >>> (x * x).sum().backward()
        >>> x.grad
        tensor([2., 4., 6.])
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_retains_grad", "__weakref__")
    # Make numpy defer to Tensor's reflected operators (ndarray + Tensor -> Tensor).
    __array_priority__ = 1000

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _as_storage(data, dtype)
        self.grad = None
        self._ctx = None
        self._retains_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, array: np.ndarray) -> Tensor:
        """A leaf tensor over array, without conversion or copy (internal fast path)."""
        t = cls.__new__(cls)
        t.data = array
        t.grad = None
        t.requires_grad = False
        t._ctx = None
        t._retains_grad = False
        return t

    # ------------------------------------------------------------------ properties

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    @property
    def T(self) -> Tensor:
        return self.permute(tuple(range(self.ndim - 1, -1, -1)))

    def size(self, dim: int | None = None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return self.data.size

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def is_floating_point(self) -> bool:
        return self.data.dtype.kind == "f"

    # ------------------------------------------------------------------ conversion

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, no copy). Unlike torch, allowed on tensors that require grad."""
        return self.data

    def __array__(self, dtype=None, copy=None):
        if copy is False and dtype is not None and np.dtype(dtype) != self.data.dtype:
            raise ValueError("Tensor.__array__: a dtype change needs a copy, but copy=False")
        array = self.data if dtype is None else self.data.astype(dtype, copy=False)
        return array.copy() if copy else array

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item(): only one element tensors can be converted, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.data.tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return bool(self.data.reshape(()))

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.data.reshape(()))

    def detach(self) -> Tensor:
        """The same data, cut from the graph (shares memory)."""
        return Tensor._wrap(self.data)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.data.dtype.kind != "f":
            raise RuntimeError(
                f"only Tensors of floating point dtype can require gradients (this one is {self.data.dtype})"
            )
        if self._ctx is not None and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables.")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after backward."""
        if self._ctx is not None:
            self._retains_grad = True

    def clone(self) -> Tensor:
        return ops.Clone.apply(self)

    def contiguous(self) -> Tensor:
        return self if self.data.flags.c_contiguous else ops.Contiguous.apply(self)

    def is_contiguous(self) -> bool:
        return self.data.flags.c_contiguous

    def to(self, *args, **kwargs) -> Tensor:
        """Only dtype changes are meaningful ('cpu' is the only device)."""
        for a in list(args) + list(kwargs.values()):
            if isinstance(a, str) or a is None:
                if a not in (None, "cpu"):
                    raise ValueError(f"to(): cnnrs runs on the CPU only, got device {a!r}")
                continue
            if isinstance(a, Tensor):
                a = a.dtype
            if np.dtype(a) != self.data.dtype:
                return Tensor(self.data.astype(a), requires_grad=False)
        return self

    def cpu(self) -> Tensor:
        return self

    def float(self) -> Tensor:
        return self if self.data.dtype == float32 else Tensor._wrap(self.data.astype(float32))

    def long(self) -> Tensor:
        return self if self.data.dtype == int64 else Tensor._wrap(self.data.astype(int64))

    def int(self) -> Tensor:
        return Tensor._wrap(self.data.astype(np.int32))

    def bool(self) -> Tensor:
        return Tensor._wrap(self.data.astype(bool))

    # ------------------------------------------------------------------ autograd

    def backward(self, gradient=None, retain_graph: bool | None = None, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into the ``.grad`` of every leaf that requires grad.

        ``gradient`` is required unless self holds one element. The graph is
        freed afterwards unless ``retain_graph=True``.
        """
        if create_graph:
            raise NotImplementedError("backward(create_graph=True): higher-order gradients are not supported")
        if not self.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs (shape {self.shape}); "
                    "pass gradient= to backward()"
                )
            grad = np.ones(self.data.shape, dtype=self.data.dtype)
        else:
            grad = _as_storage(gradient).astype(self.data.dtype, copy=False)
            if grad.shape != self.data.shape:
                raise RuntimeError(f"backward: gradient has shape {grad.shape}, expected {self.shape}")
        run_backward(self, grad, bool(retain_graph))

    # ------------------------------------------------------------------ in place (no graph)

    def _check_inplace(self) -> None:
        if _GradMode.enabled and self.requires_grad:
            raise RuntimeError(
                "a leaf Variable that requires grad is being used in an in-place operation "
                "(wrap it in cnnrs.no_grad())"
            )

    def zero_(self) -> Tensor:
        self._check_inplace()
        self.data[...] = 0
        return self

    def fill_(self, value) -> Tensor:
        self._check_inplace()
        self.data[...] = value
        return self

    def copy_(self, src) -> Tensor:
        self._check_inplace()
        self.data[...] = _as_storage(src)
        return self

    def add_(self, other, alpha=1) -> Tensor:
        self._check_inplace()
        other = other.data if isinstance(other, Tensor) else other
        self.data += other * alpha if alpha != 1 else other
        return self

    def sub_(self, other, alpha=1) -> Tensor:
        return self.add_(other, alpha=-alpha)

    def mul_(self, other) -> Tensor:
        self._check_inplace()
        self.data *= other.data if isinstance(other, Tensor) else other
        return self

    def div_(self, other) -> Tensor:
        self._check_inplace()
        self.data /= other.data if isinstance(other, Tensor) else other
        return self

    def clamp_(self, min=None, max=None) -> Tensor:
        self._check_inplace()
        np.clip(self.data, min, max, out=self.data)
        return self

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> Tensor:
        from .random import get_rng

        self._check_inplace()
        self.data[...] = get_rng().uniform(a, b, self.data.shape)
        return self

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> Tensor:
        from .random import get_rng

        self._check_inplace()
        self.data[...] = get_rng().normal(mean, std, self.data.shape)
        return self

    # ------------------------------------------------------------------ arithmetic

    def __add__(self, other):
        return ops.Add.apply(*_operands(self, other))

    def __radd__(self, other):
        return ops.Add.apply(*_operands(self, other)[::-1])

    def __sub__(self, other):
        return ops.Sub.apply(*_operands(self, other))

    def __rsub__(self, other):
        return ops.Sub.apply(*_operands(self, other)[::-1])

    def __mul__(self, other):
        return ops.Mul.apply(*_operands(self, other))

    def __rmul__(self, other):
        return ops.Mul.apply(*_operands(self, other)[::-1])

    def __truediv__(self, other):
        return ops.Div.apply(*_operands(self, other, true_divide=True))

    def __rtruediv__(self, other):
        return ops.Div.apply(*_operands(self, other, true_divide=True)[::-1])

    def __neg__(self):
        return ops.Neg.apply(self)

    def __pos__(self):
        return self

    def __pow__(self, exponent):
        if isinstance(exponent, numbers.Number):
            return ops.PowScalar.apply(self, exponent=exponent)
        return ops.Pow.apply(*_operands(self, exponent))

    def __rpow__(self, base):
        return ops.Pow.apply(*_operands(self, base)[::-1])

    def __matmul__(self, other):
        return ops.MatMul.apply(self, other if isinstance(other, Tensor) else Tensor(other))

    def __rmatmul__(self, other):
        return ops.MatMul.apply(Tensor(other), self)

    def __iadd__(self, other):
        if self.requires_grad and _GradMode.enabled:
            return self + other
        self.data += other.data if isinstance(other, Tensor) else other
        return self

    def __isub__(self, other):
        if self.requires_grad and _GradMode.enabled:
            return self - other
        self.data -= other.data if isinstance(other, Tensor) else other
        return self

    def __imul__(self, other):
        if self.requires_grad and _GradMode.enabled:
            return self * other
        self.data *= other.data if isinstance(other, Tensor) else other
        return self

    def __itruediv__(self, other):
        if self.requires_grad and _GradMode.enabled:
            return self / other
        self.data /= other.data if isinstance(other, Tensor) else other
        return self

    add = __add__
    sub = __sub__
    mul = __mul__
    div = __truediv__
    matmul = __matmul__
    neg = __neg__

    def pow(self, exponent):
        return self.__pow__(exponent)

    def mm(self, other):
        return self.__matmul__(other)

    # ------------------------------------------------------------------ comparisons (no grad)

    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor._wrap(np.asarray(op(self.data, other)))

    def __eq__(self, other):  # type: ignore[override]
        return self._compare(other, np.equal)

    def __ne__(self, other):  # type: ignore[override]
        return self._compare(other, np.not_equal)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__
    # Tensors are dict keys / set members by identity (optimiser state), as in torch.
    __hash__ = object.__hash__

    def __invert__(self):
        return Tensor._wrap(~self.data)

    def __and__(self, other):
        return self._compare(other, np.logical_and if self.data.dtype == bool else np.bitwise_and)

    def __or__(self, other):
        return self._compare(other, np.logical_or if self.data.dtype == bool else np.bitwise_or)

    def equal(self, other) -> bool:
        other = other.data if isinstance(other, Tensor) else np.asarray(other)
        return self.data.shape == other.shape and bool(np.array_equal(self.data, other))

    def allclose(self, other, rtol=1e-5, atol=1e-8) -> bool:
        other = other.data if isinstance(other, Tensor) else other
        return bool(np.allclose(self.data, other, rtol=rtol, atol=atol))

    # ------------------------------------------------------------------ elementwise

    def exp(self):
        return ops.Exp.apply(self)

    def log(self):
        return ops.Log.apply(self)

    def sqrt(self):
        return ops.Sqrt.apply(self)

    def abs(self):
        return ops.Abs.apply(self)

    def clamp(self, min=None, max=None):
        if min is None and max is None:
            raise RuntimeError("clamp: at least one of 'min' or 'max' must not be None")
        return ops.Clamp.apply(self, min=min, max=max)

    clip = clamp

    def square(self):
        return ops.PowScalar.apply(self, exponent=2)

    def norm(self, p=2, dim=None, keepdim: bool = False):
        """The p-norm over all elements (or along dim); p may be 1, 2, any float or inf."""
        if p == float("inf"):
            return self.abs().amax(dim, keepdim)
        if p == 2:
            return (self * self).sum(dim, keepdim).sqrt()
        return (self.abs() ** p).sum(dim, keepdim) ** (1.0 / p)

    def amax(self, dim=None, keepdim: bool = False):
        """Max values only (no indices); ties share the gradient when dim is None."""
        return self.max() if dim is None else self.max(dim, keepdim).values

    def relu(self):
        return ops.Relu.apply(self)

    def sigmoid(self):
        return ops.Sigmoid.apply(self)

    def tanh(self):
        return ops.Tanh.apply(self)

    def softmax(self, dim: int):
        return ops.Softmax.apply(self, dim=dim)

    def log_softmax(self, dim: int):
        return ops.LogSoftmax.apply(self, dim=dim)

    # ------------------------------------------------------------------ reductions

    def sum(self, dim=None, keepdim: bool = False):
        if isinstance(dim, list):
            dim = tuple(dim)
        return ops.Sum.apply(self, dim=dim, keepdim=keepdim)

    def mean(self, dim=None, keepdim: bool = False):
        if self.data.dtype.kind != "f":
            raise RuntimeError(
                f"mean(): could not infer output dtype; input dtype is {self.dtype}, not float"
            )
        if isinstance(dim, list):
            dim = tuple(dim)
        return ops.Mean.apply(self, dim=dim, keepdim=keepdim)

    def var(self, dim=None, keepdim: bool = False, unbiased: bool = True, correction: int | None = None):
        if correction is None:
            correction = 1 if unbiased else 0
        if isinstance(dim, list):
            dim = tuple(dim)
        return ops.Var.apply(self, dim=dim, keepdim=keepdim, correction=correction)

    def std(self, dim=None, keepdim: bool = False, unbiased: bool = True):
        return self.var(dim, keepdim, unbiased).sqrt()

    def _extreme(self, dim, keepdim, smallest):
        if dim is None:
            return ops.MaxReduce.apply(self, smallest=smallest)
        fn = ops.MaxDim()
        values = autograd.Function.run(fn, (self,), {"dim": dim, "keepdim": keepdim, "smallest": smallest})
        return _ValuesIndices(values, Tensor._wrap(fn.indices.astype(int64, copy=False)))

    def max(self, dim=None, keepdim: bool = False):
        """Global max, or (values, indices) along dim, like torch.max."""
        if isinstance(dim, Tensor):
            return Tensor._wrap(np.maximum(self.data, dim.data))
        return self._extreme(dim, keepdim, smallest=False)

    def min(self, dim=None, keepdim: bool = False):
        if isinstance(dim, Tensor):
            return Tensor._wrap(np.minimum(self.data, dim.data))
        return self._extreme(dim, keepdim, smallest=True)

    def argmax(self, dim=None, keepdim: bool = False):
        if dim is None:
            return Tensor._wrap(np.asarray(self.data.argmax(), dtype=int64))
        out = self.data.argmax(axis=dim)
        return Tensor._wrap((np.expand_dims(out, dim) if keepdim else out).astype(int64, copy=False))

    def argmin(self, dim=None, keepdim: bool = False):
        if dim is None:
            return Tensor._wrap(np.asarray(self.data.argmin(), dtype=int64))
        out = self.data.argmin(axis=dim)
        return Tensor._wrap((np.expand_dims(out, dim) if keepdim else out).astype(int64, copy=False))

    # ------------------------------------------------------------------ shapes

    def reshape(self, *shape):
        shape = _dims(shape)
        if shape == self.data.shape:
            return self
        return ops.Reshape.apply(self, shape=shape)

    def view(self, *shape):
        if not self.data.flags.c_contiguous:
            raise RuntimeError(
                "view size is not compatible with input tensor's size and stride; use .reshape(...) instead."
            )
        return self.reshape(*shape)

    def view_as(self, other):
        return self.view(other.shape)

    def reshape_as(self, other):
        return self.reshape(other.shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        shape = self.data.shape
        if not shape:
            return self.reshape(1)
        start = start_dim % len(shape)
        end = end_dim % len(shape)
        if start > end:
            raise ValueError(
                f"flatten() has invalid args: start_dim {start_dim} cannot come after end_dim {end_dim}"
            )
        new_shape = shape[:start] + (int(np.prod(shape[start : end + 1])),) + shape[end + 1 :]
        return self.reshape(new_shape)

    def permute(self, *dims):
        dims = tuple(d % self.ndim for d in _dims(dims))
        if sorted(dims) != list(range(self.ndim)):
            raise RuntimeError(f"permute: dims {dims} are not a permutation of {self.ndim} dimensions")
        return ops.Permute.apply(self, dims=dims)

    def transpose(self, dim0: int, dim1: int):
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return ops.Permute.apply(self, dims=tuple(dims))

    def t(self):
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
        return self.T

    def unsqueeze(self, dim: int):
        if dim < 0:
            dim += self.ndim + 1
        shape = self.data.shape
        return self.reshape(shape[:dim] + (1,) + shape[dim:])

    def squeeze(self, dim=None):
        shape = self.data.shape
        if dim is None:
            new_shape = tuple(n for n in shape if n != 1)
        else:
            dims = {d % len(shape) for d in (dim if isinstance(dim, tuple) else (dim,))} if shape else set()
            new_shape = tuple(n for i, n in enumerate(shape) if not (i in dims and n == 1))
        return self.reshape(new_shape)

    def expand(self, *shape):
        shape = _dims(shape)
        shape = tuple(
            s if n == -1 else n for n, s in zip(shape, (None,) * (len(shape) - self.ndim) + self.shape)
        )
        return ops.Expand.apply(self, shape=shape)

    def expand_as(self, other):
        return self.expand(other.shape)

    def __getitem__(self, index):
        index = _index_arrays(index)
        if not self.requires_grad or not _GradMode.enabled:
            return Tensor._wrap(self.data[index])
        return ops.GetItem.apply(self, index=index)

    def __setitem__(self, index, value):
        self._check_inplace()
        self.data[_index_arrays(index)] = value.data if isinstance(value, Tensor) else value

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(", precision=4)
        extras = []
        if self.data.dtype not in (float32, int64) or (self.data.dtype == int64 and self.data.size == 0):
            extras.append(f"dtype={self.data.dtype}")
        if self._ctx is not None:
            extras.append(f"grad_fn=<{self._ctx.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"


def _index_arrays(index):
    """Replace Tensor indices by their arrays so numpy indexing understands them."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


class _ValuesIndices(tuple):
    """(values, indices) returned by max/min along a dim, with torch's attribute names."""

    __slots__ = ()

    def __new__(cls, values, indices):
        return super().__new__(cls, (values, indices))

    @property
    def values(self):
        return self[0]

    @property
    def indices(self):
        return self[1]


autograd.Tensor = Tensor
