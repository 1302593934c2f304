"""CIFAR-10: 32x32 colour images in 10 classes, read from the official python batches.

Layout in the data set's root folder (see :mod:`cnnrs.data.download`)::

    cifar-10-python.tar.gz             the official archive (optional once extracted)
    cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch, batches.meta

The batches are pickles; they are read with a restricted unpickler
(:mod:`cnnrs.data.safe_pickle`) that runs no code from the file. When the
batches are missing but the archive is there, it is extracted (only the
expected members, each written atomically).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from . import download as dl
from .errors import DatasetError
from .safe_pickle import safe_load
from .vision import ImageArrayDataset

_SIDE = 32
_PIXELS_PER_IMAGE = 3 * _SIDE * _SIDE


class CIFAR10(ImageArrayDataset):
    """CIFAR-10 (Krizhevsky, 2009): 50,000 training and 10,000 test 32x32 RGB images.

    Args:
        root: folder holding ``cifar-10-batches-py/`` or the archive; default
            ``$CNNRS_DATA/cifar-10``, else ``~/.cache/cnnrs/cifar-10``.
        train, transform, target_transform, download, mirror: as for :class:`~cnnrs.data.MNIST`;
            the transform sees float32 ``(3, 32, 32)`` images in ``[0, 1]``.

    Attributes: ``data`` uint8 ``(N, 32, 32, 3)`` (HWC, as torchvision),
    ``targets`` int64 ``(N,)``, ``classes`` (from ``batches.meta``),
    ``images`` float32 ``(N, 3, 32, 32)`` in ``[0, 1]``.
    """

    name = "cifar-10"
    official_url = "https://www.cs.toronto.edu/~kriz/"
    archive = ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")
    base_folder = "cifar-10-batches-py"
    train_batches = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
    test_batches = ("test_batch",)
    meta_file = "batches.meta"
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)

    def __init__(
        self,
        root: Optional[dl.PathLike] = None,
        train: bool = True,
        transform: Optional[Callable] = None,
        target_transform: Optional[Callable] = None,
        download: bool = False,
        *,
        mirror: Optional[str] = None,
    ):
        super().__init__(transform, target_transform)
        self.train = train
        self.root, root_source = dl.resolve_root(root, self.name)
        folder = self.root / self.base_folder
        batch_names = self.train_batches if train else self.test_batches
        needed = [folder / name for name in (*batch_names, self.meta_file)]
        archive_path = self.root / self.archive[0]
        if not all(p.is_file() for p in needed):
            if download:
                base_url = dl.resolve_base_url(mirror, self.name, self.official_url)
                dl.download_files(type(self).__name__, self.root, base_url, [self.archive])
            if archive_path.is_file():
                extract_batches(archive_path, folder, self._all_members())
        dl.require_files(
            type(self).__name__,
            needed,
            root_source,
            hint=f" The official archive {archive_path} (extracted automatically) would also do.",
        )
        self.classes = read_meta(folder / self.meta_file)
        pixels, targets = zip(*(read_batch(folder / name) for name in batch_names))
        self._set_arrays(np.concatenate(pixels), np.concatenate(targets), f"{type(self).__name__} ({folder})")

    @classmethod
    def _all_members(cls) -> Tuple[str, ...]:
        return (*cls.train_batches, *cls.test_batches, cls.meta_file)

    @property
    def split(self) -> str:
        return "Train" if self.train else "Test"

    def _pixels_to_data(self, pixels: np.ndarray) -> np.ndarray:
        return pixels.transpose(0, 2, 3, 1)

    def _data_to_pixels(self, data: np.ndarray) -> np.ndarray:
        return data.transpose(0, 3, 1, 2)


def read_batch(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """One batch file -> (uint8 pixels (n, 3, 32, 32), int64 labels (n,))."""
    batch = safe_load(path.read_bytes(), str(path))
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DatasetError(
            f"{path}: not a CIFAR-10 batch (expected a dict with 'data' and 'labels', got {keys})"
        )
    data, labels = batch["data"], batch["labels"]
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != _PIXELS_PER_IMAGE:
        shape = getattr(data, "shape", type(data).__name__)
        raise DatasetError(f"{path}: 'data' must be a uint8 array (n, {_PIXELS_PER_IMAGE}), got {shape}")
    if not isinstance(labels, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in labels
    ):
        raise DatasetError(f"{path}: 'labels' must be a list of ints")
    if len(labels) != len(data):
        raise DatasetError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data.reshape(-1, 3, _SIDE, _SIDE), np.asarray(labels, dtype=np.int64).reshape(-1)


def read_meta(path: Path) -> List[str]:
    """``batches.meta`` -> the 10 class names."""
    meta = safe_load(path.read_bytes(), str(path))
    names = meta.get("label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != 10:
        raise DatasetError(f"{path}: expected a dict with 'label_names', a list of 10 class names")
    names = [n.decode("latin1") if isinstance(n, bytes) else n for n in names]
    if not all(isinstance(n, str) for n in names):
        raise DatasetError(f"{path}: class names must be strings")
    return names


def extract_batches(archive_path: Path, folder: Path, members: Sequence[str]) -> None:
    """Extract ``cifar-10-batches-py/<member>`` for each member into ``folder``, atomically.

    Only those regular-file members are read, so a crafted archive cannot write
    elsewhere (no path traversal, no links).
    """
    folder.mkdir(parents=True, exist_ok=True)
    try:
        tar = tarfile.open(archive_path, "r:gz")
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DatasetError(
            f"{archive_path}: not a readable tar.gz archive ({e}); delete it and download it again"
        ) from e
    with tar:
        for member_name in members:
            content = _read_member(tar, archive_path, f"{folder.name}/{member_name}")
            _write_atomically(folder / member_name, content)


def _read_member(tar: tarfile.TarFile, archive_path: Path, name: str) -> bytes:
    try:
        member = tar.getmember(name)
        if not member.isreg():
            raise DatasetError(f"{archive_path}: member {name} is not a regular file")
        return tar.extractfile(member).read()
    except KeyError:
        raise DatasetError(f"{archive_path}: member {name} is missing; not a CIFAR-10 archive") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DatasetError(
            f"{archive_path}: corrupt or truncated archive ({e}); delete it and download it again"
        ) from e


def _write_atomically(path: Path, content: bytes) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


__all__ = ["CIFAR10", "extract_batches", "read_batch", "read_meta"]
