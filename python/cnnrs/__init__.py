"""cnnrs: small, fast convolutional networks on the CPU.

A Rust core (packed SIMD GEMM, convolution, pooling) under a PyTorch-like
Python API: tensors with autograd, ``nn`` modules, optimisers, data sets and a
trainer.

Example:
    >>> import cnnrs
    >>> x = cnnrs.randn(8, 1, 28, 28)
    >>> conv = cnnrs.nn.Conv2d(1, 6, 5)
    >>> conv(x).shape
    (8, 6, 24, 24)
"""

import importlib

from . import _cnnrs, nn, optim
from ._cnnrs import get_num_threads, set_num_threads
from .autograd import enable_grad, grad, is_grad_enabled, no_grad, set_grad_enabled
from .creation import (
    arange,
    as_tensor,
    empty,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from .errors import ArgumentError, CnnrsError, DTypeError, LayoutError, ShapeError, SizeOverflowError
from .functions import (
    abs,
    allclose,
    argmax,
    argmin,
    cat,
    clamp,
    concatenate,
    equal,
    exp,
    flatten,
    is_tensor,
    log,
    log_softmax,
    matmul,
    max,
    mean,
    min,
    mm,
    permute,
    relu,
    reshape,
    sigmoid,
    softmax,
    sqrt,
    squeeze,
    stack,
    sum,
    tanh,
    transpose,
    unsqueeze,
    where,
)
from .random import get_rng, initial_seed, manual_seed
from .tensor import Tensor, bool_, float32, int64

__version__ = _cnnrs.__version__
float = float32
long = int64

# Submodules written on top of the core, imported on first use so that
# `import cnnrs` stays fast (no tqdm / safetensors / matplotlib at import).
_LAZY_SUBMODULES = {"data", "models", "train", "viz", "bench", "cli", "checkpoint", "utils", "io"}
_LAZY_FUNCTIONS = {"summary": ("summary", "summary")}


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    if name in _LAZY_FUNCTIONS:
        module_name, attr = _LAZY_FUNCTIONS[name]
        value = getattr(importlib.import_module(f".{module_name}", __name__), attr)
        # Importing the submodule bound the module object to this name; the function wins.
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cnnrs' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _LAZY_SUBMODULES | set(_LAZY_FUNCTIONS))


__all__ = [
    "ArgumentError",
    "CnnrsError",
    "DTypeError",
    "LayoutError",
    "ShapeError",
    "SizeOverflowError",
    "Tensor",
    "abs",
    "allclose",
    "arange",
    "argmax",
    "argmin",
    "as_tensor",
    "bool_",
    "cat",
    "clamp",
    "concatenate",
    "empty",
    "enable_grad",
    "equal",
    "exp",
    "eye",
    "flatten",
    "float32",
    "from_numpy",
    "full",
    "full_like",
    "get_num_threads",
    "get_rng",
    "grad",
    "initial_seed",
    "int64",
    "is_grad_enabled",
    "is_tensor",
    "linspace",
    "log",
    "log_softmax",
    "manual_seed",
    "matmul",
    "max",
    "mean",
    "min",
    "mm",
    "nn",
    "no_grad",
    "ones",
    "ones_like",
    "optim",
    "permute",
    "rand",
    "rand_like",
    "randint",
    "randn",
    "randn_like",
    "randperm",
    "relu",
    "reshape",
    "set_grad_enabled",
    "set_num_threads",
    "sigmoid",
    "softmax",
    "sqrt",
    "squeeze",
    "stack",
    "sum",
    "tanh",
    "tensor",
    "transpose",
    "unsqueeze",
    "where",
    "zeros",
    "zeros_like",
]
