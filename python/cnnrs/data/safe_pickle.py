"""A restricted unpickler for the CIFAR python batches: no arbitrary code runs.

The official batches are Python 2 pickles of dicts holding strings, ints,
lists and one uint8 numpy array. A normal ``pickle.load`` would import and call
whatever the file names; this loader resolves only the few globals such a file
uses, each to a small stand-in defined here that validates its arguments and
builds the uint8 array itself:

- ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct``
  and ``numpy.ndarray``: an array placeholder filled by its pickled state,
- ``numpy.dtype``: accepted for ``uint8`` only,
- ``_codecs.encode``: how Python 3 writes ``bytes`` in protocol 2 (latin-1 only).

Anything else raises :class:`~cnnrs.data.errors.DatasetError`.
"""

from __future__ import annotations

import io
import math
import pickle
from typing import Any

import numpy as np

from .errors import DatasetError


class _NDArrayType:
    """Stands for ``numpy.ndarray`` inside the pickle; only used as a marker."""


class _DType:
    """Stand-in for ``numpy.dtype(name, align, copy)``: only uint8 is allowed."""

    def __init__(self, name: Any, align: Any = False, copy: Any = True):
        if name not in ("u1", "uint8", "|u1", "B"):
            raise DatasetError(f"unexpected array dtype {name!r} in pickle (CIFAR batches hold uint8)")

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple):
            raise DatasetError("malformed dtype state in pickle")


class _Array:
    """Stand-in for ``_reconstruct(ndarray, shape, typecode)``; ``__setstate__`` builds the array."""

    def __init__(self, subtype: Any, shape: Any = (0,), typecode: Any = b"b"):
        if subtype is not _NDArrayType:
            raise DatasetError("pickle reconstructs something other than a numpy array")
        self.array = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise DatasetError("malformed array state in pickle")
        shape, dtype, fortran, raw = state[-4:]
        if not isinstance(dtype, _DType):
            raise DatasetError("array in pickle has no uint8 dtype")
        if isinstance(raw, str):  # Python 2 str read with encoding="latin1"
            raw = raw.encode("latin1")
        if not isinstance(raw, (bytes, bytearray)) or not isinstance(shape, tuple):
            raise DatasetError("malformed array data in pickle")
        if not all(isinstance(d, int) and d >= 0 for d in shape) or math.prod(shape) != len(raw):
            raise DatasetError(f"array in pickle: shape {shape} does not match its {len(raw)} data bytes")
        self.array = np.frombuffer(raw, dtype=np.uint8).reshape(shape, order="F" if fortran else "C").copy()


def _latin1_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise DatasetError("unexpected _codecs.encode call in pickle")
    return text.encode("latin1")


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _Array,
    ("numpy._core.multiarray", "_reconstruct"): _Array,
    ("numpy", "ndarray"): _NDArrayType,
    ("numpy", "dtype"): _DType,
    ("_codecs", "encode"): _latin1_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DatasetError(
                f"refusing to load global {module}.{name} from a pickle: CIFAR batches contain only "
                f"dicts, lists, strings, ints and uint8 arrays"
            ) from None


def _resolve(value: Any) -> Any:
    """Replace array stand-ins by their numpy arrays and bytes dict keys by str."""
    if isinstance(value, _Array):
        if value.array is None:
            raise DatasetError("array in pickle has no data")
        return value.array
    if isinstance(value, dict):
        return {(k.decode("latin1") if isinstance(k, bytes) else k): _resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    if isinstance(value, (_DType, _NDArrayType)) or value is _NDArrayType:
        raise DatasetError("stray numpy object in pickle")
    return value


def safe_load(data: bytes, source: str) -> Any:
    """Unpickle ``data`` (named ``source`` in errors) with only the stand-ins above allowed."""
    try:
        value = _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except DatasetError as e:
        raise DatasetError(f"{source}: {e}") from None
    except Exception as e:  # truncated or garbled pickles fail in many ways
        raise DatasetError(
            f"{source}: not a readable pickle ({type(e).__name__}: {e}); corrupt or truncated"
        ) from e
    try:
        return _resolve(value)
    except DatasetError as e:
        raise DatasetError(f"{source}: {e}") from None


__all__ = ["safe_load"]
