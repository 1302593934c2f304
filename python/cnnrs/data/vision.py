"""Shared base of the image data sets held in memory as uint8 arrays (MNIST, CIFAR-10, ...).

Samples are ``(image, target)``: the image a float32 ``(C, H, W)`` array in
``[0, 1]`` (pixel / 255), the target an int. The whole set is also available
as float32 ``(N, C, H, W)`` through :attr:`ImageArrayDataset.images`, and the
data loader gathers batches straight from the uint8 pixels (one fancy index,
then one conversion pass), so no Python runs per sample.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import numpy as np

from .dataset import Dataset
from .errors import DatasetError
from .transforms import is_batchable


def to_unit_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1]: ``float32(p) / float32(255)``, correctly rounded.

    (A convert-then-divide pass is about 6x faster than a 256-entry lookup table
    gather and gives the same bits.)
    """
    out = pixels.astype(np.float32)
    out /= np.float32(255)
    return out


class ImageArrayDataset(Dataset):
    """In-memory image classification set: uint8 pixels ``(N, C, H, W)`` and int64 targets.

    Subclasses load their files and call :meth:`_set_arrays`; they choose how
    :attr:`data` looks to users (torchvision's layout) through
    :meth:`_pixels_to_data` and :meth:`_data_to_pixels`.
    """

    classes: List[str] = []

    def __init__(self, transform: Optional[Callable] = None, target_transform: Optional[Callable] = None):
        self.transform = transform
        self.target_transform = target_transform
        self._pixels = np.zeros((0, 1, 1, 1), np.uint8)
        self.targets = np.zeros(0, np.int64)
        self._images: Optional[np.ndarray] = None

    # -- storage --------------------------------------------------------------

    def _set_arrays(self, pixels: np.ndarray, targets: np.ndarray, source: str) -> None:
        if pixels.dtype != np.uint8 or pixels.ndim != 4:
            raise DatasetError(
                f"{source}: pixels must be uint8 (N, C, H, W), got {pixels.dtype} {pixels.shape}"
            )
        if targets.ndim != 1 or len(targets) != len(pixels):
            raise DatasetError(
                f"{source}: {len(pixels)} images but {targets.shape} labels; the files do not belong together"
            )
        num_classes = len(self.classes)
        if len(targets) and (targets.min() < 0 or targets.max() >= num_classes):
            raise DatasetError(
                f"{source}: labels must be in [0, {num_classes - 1}], found values in "
                f"[{targets.min()}, {targets.max()}]"
            )
        self._pixels = np.ascontiguousarray(pixels)
        self.targets = targets.astype(np.int64, copy=False)
        self._images = None

    @property
    def data(self) -> np.ndarray:
        """The uint8 pixels in torchvision's layout (see the subclass)."""
        return self._pixels_to_data(self._pixels)

    @data.setter
    def data(self, value: np.ndarray) -> None:
        self._pixels = np.ascontiguousarray(self._data_to_pixels(np.asarray(value, dtype=np.uint8)))
        self._images = None

    def _pixels_to_data(self, pixels: np.ndarray) -> np.ndarray:
        return pixels

    def _data_to_pixels(self, data: np.ndarray) -> np.ndarray:
        return data

    @property
    def images(self) -> np.ndarray:
        """All images as float32 ``(N, C, H, W)`` in ``[0, 1]`` (computed once, before transforms)."""
        if self._images is None:
            self._images = to_unit_float(self._pixels)
        return self._images

    @property
    def class_to_idx(self) -> dict:
        return {name: i for i, name in enumerate(self.classes)}

    # -- Dataset protocol -----------------------------------------------------

    def __len__(self) -> int:
        return len(self._pixels)

    def __getitem__(self, index: int) -> Tuple[np.ndarray, int]:
        image = to_unit_float(self._pixels[index])
        target = int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    @property
    def supports_batch(self) -> bool:
        return is_batchable(self.transform) and is_batchable(self.target_transform)

    def get_batch(self, indices: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        images = to_unit_float(self._pixels[indices])
        targets = self.targets[indices]
        if self.transform is not None:
            images = self.transform(images)
        if self.target_transform is not None:
            targets = self.target_transform(targets)
        return images, targets

    def __repr__(self) -> str:
        lines = [f"Dataset {type(self).__name__}", f"    Number of datapoints: {len(self)}"]
        for name in ("root", "split"):
            if hasattr(self, name):
                lines.append(f"    {name.capitalize()}: {getattr(self, name)}")
        if self.transform is not None:
            lines.append(f"    Transform: {self.transform!r}")
        return "\n".join(lines)
