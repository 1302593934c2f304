"""MNIST and Fashion-MNIST: 28x28 grayscale images in 10 classes, read from the IDX gzip files.

Files (in the data set's root folder, see :mod:`cnnrs.data.download` for how
the root is found): ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np

from . import download as dl
from .errors import DatasetError
from .idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from .vision import ImageArrayDataset


class MNIST(ImageArrayDataset):
    """The MNIST handwritten digits: 60,000 training and 10,000 test images.

    Args:
        root: folder holding the four ``.gz`` files; default ``$CNNRS_DATA/mnist``,
            else ``~/.cache/cnnrs/mnist``.
        train: the training set (True) or the test set (False).
        transform: applied to each float32 ``(1, 28, 28)`` image in ``[0, 1]``
            (and to whole batches by the loader when it is batchable).
        target_transform: applied to each int label.
        download: fetch missing or damaged files (md5-checked, atomic).
        mirror: folder URL to download from instead of the official one
            (``$CNNRS_DATA_MIRROR/<name>/`` when that is set).

    Attributes: ``data`` uint8 ``(N, 28, 28)``, ``targets`` int64 ``(N,)``,
    ``classes``, ``images`` float32 ``(N, 1, 28, 28)`` in ``[0, 1]``.

    Raises :class:`~cnnrs.data.errors.DatasetNotFoundError` when files are
    missing and ``download`` is False, :class:`~cnnrs.data.errors.DatasetError`
    when a file is corrupt, :class:`~cnnrs.data.errors.DownloadError` when a
    download fails.
    """

    name = "mnist"
    official_url = "https://ossci-datasets.s3.amazonaws.com/mnist/"
    # (filename, md5) of images then labels, as published by the authors.
    train_files: Tuple[Tuple[str, str], Tuple[str, str]] = (
        ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    )
    test_files: Tuple[Tuple[str, str], Tuple[str, str]] = (
        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    )
    classes: List[str] = [
        "0 - zero",
        "1 - one",
        "2 - two",
        "3 - three",
        "4 - four",
        "5 - five",
        "6 - six",
        "7 - seven",
        "8 - eight",
        "9 - nine",
    ]
    mean = (0.1307,)
    std = (0.3081,)
    image_size = (28, 28)

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
        resources = self.train_files if train else self.test_files
        if download:
            base_url = dl.resolve_base_url(mirror, self.name, self.official_url)
            dl.download_files(type(self).__name__, self.root, base_url, resources)
        images_path, labels_path = (self.root / filename for filename, _ in resources)
        dl.require_files(type(self).__name__, (images_path, labels_path), root_source)
        pixels, targets = self._read(images_path, labels_path)
        self._set_arrays(pixels, targets, f"{type(self).__name__} ({self.root})")

    @property
    def split(self) -> str:
        return "Train" if self.train else "Test"

    def _read(self, images_path: Path, labels_path: Path) -> Tuple[np.ndarray, np.ndarray]:
        images = read_idx(images_path, IMAGES_MAGIC)
        labels = read_idx(labels_path, LABELS_MAGIC)
        if images.shape[1:] != self.image_size:
            raise DatasetError(
                f"{images_path}: images are {images.shape[1:]}, expected {self.image_size} "
                f"for {type(self).__name__}"
            )
        if len(images) != len(labels):
            raise DatasetError(
                f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels; "
                f"the files do not belong together"
            )
        return images[:, None], labels

    def _pixels_to_data(self, pixels: np.ndarray) -> np.ndarray:
        return pixels[:, 0]

    def _data_to_pixels(self, data: np.ndarray) -> np.ndarray:
        return data[:, None]


class FashionMNIST(MNIST):
    """Fashion-MNIST (Zalando Research): 28x28 grayscale clothing images, same layout as :class:`MNIST`.

    Same arguments and attributes as :class:`MNIST`; default root
    ``$CNNRS_DATA/fashion-mnist``, else ``~/.cache/cnnrs/fashion-mnist``.
    """

    name = "fashion-mnist"
    official_url = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    train_files = (
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
    )
    test_files = (
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    )
    classes = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]
    mean = (0.2860,)
    std = (0.3530,)


__all__ = ["MNIST", "FashionMNIST"]
