"""cnnrs: small, fast convolutional networks on the CPU.

A Rust core (packed SIMD GEMM, convolution, pooling) under a PyTorch-like
Python API: tensors with autograd, ``nn`` modules, optimisers, data sets and a
trainer.
"""

from . import _cnnrs
from ._cnnrs import get_num_threads, set_num_threads
from .errors import ArgumentError, CnnrsError, DTypeError, LayoutError, ShapeError, SizeOverflowError

__version__ = _cnnrs.__version__

__all__ = [
    "ArgumentError",
    "CnnrsError",
    "DTypeError",
    "LayoutError",
    "ShapeError",
    "SizeOverflowError",
    "get_num_threads",
    "set_num_threads",
]
