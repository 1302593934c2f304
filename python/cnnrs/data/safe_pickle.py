"""A restricted unpickler for the CIFAR python batches: no arbitrary code runs.

The official batches are Python 2 pickles of dicts holding strings, ints,
lists and one uint8 numpy array. A normal ``pickle.load`` would import and call
whatever the file names; this loader resolves only the few globals such a file
uses, each to a small stand-in defined here that validates its arguments and
builds the uint8 array itself:

- ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct``
  and ``numpy.ndarray``: an array placeholder filled by its pickled state,
- ``numpy.core.multiarray.scalar``: a numpy integer (a label saved as
  ``np.int64``), returned as a Python int,
- ``numpy.dtype``: integer dtypes only (arrays must be uint8),
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


_INTEGER_DTYPES = ("u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8")


class _DType:
    """Stand-in for ``numpy.dtype(name, align, copy)``: integer dtypes only."""

    def __init__(self, name: Any, align: Any = False, copy: Any = True):
        if isinstance(name, bytes):
            name = name.decode("latin1")
        if name not in _INTEGER_DTYPES:
            raise DatasetError(
                f"unexpected dtype {name!r} in pickle (CIFAR batches hold uint8 pixels, int labels)"
            )
        self.name = name
        self.byteorder = "="

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise DatasetError("malformed dtype state in pickle")
        self.byteorder = state[1] if state[1] in "<>" else "="

    def to_numpy(self) -> np.dtype:
        return np.dtype(self.name).newbyteorder(self.byteorder)


def _raw_bytes(raw: Any) -> bytes:
    if isinstance(raw, str):  # Python 2 str read with encoding="latin1"
        raw = raw.encode("latin1")
    if not isinstance(raw, (bytes, bytearray)):
        raise DatasetError("malformed array data in pickle")
    return bytes(raw)


class _Array:
    """Stand-in for ``_reconstruct(ndarray, shape, typecode)``; ``__setstate__`` builds a uint8 array."""

    def __init__(self, subtype: Any, shape: Any = (0,), typecode: Any = b"b"):
        if subtype is not _NDArrayType:
            raise DatasetError("pickle reconstructs something other than a numpy array")
        self.array = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise DatasetError("malformed array state in pickle")
        shape, dtype, fortran, raw = state[-4:]
        if not isinstance(dtype, _DType) or dtype.name != "u1":
            name = getattr(dtype, "name", type(dtype).__name__)
            raise DatasetError(f"array in pickle has dtype {name}, expected uint8 pixels")
        raw = _raw_bytes(raw)
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise DatasetError(f"malformed array shape {shape!r} in pickle")
        if math.prod(shape) != len(raw):
            raise DatasetError(f"array in pickle: shape {shape} does not match its {len(raw)} data bytes")
        self.array = np.frombuffer(raw, dtype=np.uint8).reshape(shape, order="F" if fortran else "C").copy()


def _scalar(dtype: Any, raw: Any = b"") -> int:
    """Stand-in for ``numpy.core.multiarray.scalar``: a numpy integer (e.g. a label) as a Python int."""
    if not isinstance(dtype, _DType):
        raise DatasetError("numpy scalar in pickle without an integer dtype")
    raw = _raw_bytes(raw)
    numpy_dtype = dtype.to_numpy()
    if len(raw) != numpy_dtype.itemsize:
        raise DatasetError(
            f"numpy scalar in pickle has {len(raw)} bytes, {numpy_dtype} needs {numpy_dtype.itemsize}"
        )
    return int(np.frombuffer(raw, dtype=numpy_dtype)[0])


def _latin1_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise DatasetError("unexpected _codecs.encode call in pickle")
    return text.encode("latin1")


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _Array,
    ("numpy._core.multiarray", "_reconstruct"): _Array,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
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
