"""Reader for IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or raw.

IDX layout: a big-endian header ``0x00 0x00 <type code> <ndim>``, then ``ndim``
big-endian uint32 sizes, then the values in row-major order. MNIST images are
type 0x08 (uint8) with 3 dimensions (magic 2051), labels type 0x08 with 1
dimension (magic 2049).

Every inconsistency (bad gzip stream, truncated data, wrong magic, a size
that does not match the byte count) raises :class:`~cnnrs.data.errors.DatasetError`.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .errors import DatasetError

IMAGES_MAGIC = 0x00000803  # 2051: uint8, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 0x00000801  # 2049: uint8, 1 dimension (count)

# IDX type code -> numpy dtype (multi-byte types are big-endian on disk).
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: Union[str, Path], expected_magic: Optional[int] = None) -> np.ndarray:
    """Read an IDX file (gzip-compressed when it starts with the gzip magic) into a numpy array.

    ``expected_magic`` (e.g. :data:`IMAGES_MAGIC`) is checked when given. The
    result is a writable, native-endian array that owns its memory.
    """
    raw = Path(path).read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise DatasetError(
                f"{path}: corrupt or truncated gzip file ({e}); delete it and download or copy it again"
            ) from e
    return parse_idx(raw, str(path), expected_magic)


def parse_idx(raw: bytes, source: str = "<bytes>", expected_magic: Optional[int] = None) -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file; ``source`` names it in error messages."""
    if len(raw) < 4:
        raise DatasetError(f"{source}: {len(raw)} bytes, too short for an IDX header (4 bytes at least)")
    (magic,) = struct.unpack(">I", raw[:4])
    code, ndim = raw[2], raw[3]
    if expected_magic is not None and magic != expected_magic:
        raise DatasetError(
            f"{source}: IDX magic is {magic} ({magic:#010x}), expected {expected_magic} "
            f"({expected_magic:#010x}); this is not the expected kind of IDX file"
        )
    if raw[0] != 0 or raw[1] != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise DatasetError(f"{source}: bad IDX magic {magic:#010x}; not an IDX file")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(
            f"{source}: truncated IDX header ({len(raw)} bytes, {ndim} dimensions need {header})"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[code]
    expected = header + math.prod(dims) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DatasetError(
            f"{source}: IDX data {what}: header says shape {dims} ({expected} bytes in all) "
            f"but the file has {len(raw)} bytes"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)


__all__ = ["IMAGES_MAGIC", "LABELS_MAGIC", "parse_idx", "read_idx"]
