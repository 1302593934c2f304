"""Image transforms that work on one sample ``(C, H, W)`` or a whole batch ``(N, C, H, W)``.

Data sets already return float32 arrays scaled to ``[0, 1]`` in ``(C, H, W)``
layout (torchvision's ``ToTensor`` is implicit), so a pipeline is typically::

    transforms.Compose([
        transforms.RandomCrop(32, padding=4),
        transforms.RandomHorizontalFlip(),
        transforms.Normalize(transforms.CIFAR10_MEAN, transforms.CIFAR10_STD),
    ])

Batches are transformed in one vectorised numpy pass. A sample is handled as
a batch of one, and random transforms draw their numbers so that a batch
consumes the generator exactly as the same samples transformed one after the
other do: the data loader's fast batch path and its per-sample path give
bit-identical results for the same generator state.

Randomness: ``generator=None`` draws from the cnnrs global generator at each
call (``cnnrs.manual_seed`` makes it repeatable); an int seed or a
``numpy.random.Generator`` gives the transform its own stream.

Normalisation constants (mean and std of the training set's pixels in ``[0, 1]``):

======================  ==========================  ==========================
data set                mean                        std
======================  ==========================  ==========================
MNIST                   (0.1307,)                   (0.3081,)
Fashion-MNIST           (0.2860,)                   (0.3530,)
CIFAR-10                (0.4914, 0.4822, 0.4465)    (0.2470, 0.2435, 0.2616)
======================  ==========================  ==========================

The CIFAR-10 std is the per-channel std over all training pixels; many
tutorials use (0.2023, 0.1994, 0.2010) instead, which is the mean of the
per-image stds. Either works as a normalisation.
"""

from __future__ import annotations

import numbers
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import ArgumentError, ShapeError
from ._rng import GeneratorLike, as_generator, global_generator

MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class Transform:
    """Base class: subclasses implement :meth:`apply_batch` on ``(N, C, H, W)`` arrays.

    ``batchable`` says the transform accepts batches; the data loader takes its
    fast batch path only when every transform of a data set is batchable.
    """

    batchable = True

    def __call__(self, images):
        images = np.asarray(images)
        if images.ndim == 3:
            return self.apply_batch(images[None])[0]
        if images.ndim == 4:
            return self.apply_batch(images)
        raise ShapeError(
            f"{type(self).__name__}: expected one image (C, H, W) or a batch (N, C, H, W), "
            f"got shape {images.shape}"
        )

    def apply_batch(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _rng(self) -> np.random.Generator:
        return self.generator if self.generator is not None else global_generator()


def is_batchable(transform: Optional[Callable]) -> bool:
    """True for ``None`` and for transforms that declare ``batchable = True``."""
    return transform is None or bool(getattr(transform, "batchable", False))


class Compose:
    """Apply transforms in order. Batchable when all of them are."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    @property
    def batchable(self) -> bool:
        return all(is_batchable(t) for t in self.transforms)

    def __call__(self, x):
        for transform in self.transforms:
            x = transform(x)
        return x

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


class Lambda:
    """Wrap a function as a transform.

    Set ``batchable=True`` only if ``fn`` gives the same result on a batch
    ``(N, ...)`` as on each of its samples; otherwise the loader calls it per sample.
    """

    def __init__(self, fn: Callable, batchable: bool = False):
        if not callable(fn):
            raise TypeError(f"Lambda: fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.batchable = batchable

    def __call__(self, x):
        return self.fn(x)

    def __repr__(self) -> str:
        return f"Lambda({getattr(self.fn, '__name__', repr(self.fn))}, batchable={self.batchable})"


class Normalize(Transform):
    """``(x - mean[c]) / std[c]`` per channel, in float32.

    Args:
        mean, std: one value per channel (or a single value for every channel).
        inplace: write into the input array (which must be float32 and writable).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float32))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float32))
        if self.mean.ndim != 1 or self.std.ndim != 1 or len(self.mean) != len(self.std):
            raise ShapeError(
                f"Normalize: mean and std must be sequences of the same length, "
                f"got shapes {self.mean.shape} and {self.std.shape}"
            )
        if np.any(self.std == 0):
            raise ArgumentError(f"Normalize: std must not contain 0, got {self.std.tolist()}")
        self.inplace = inplace

    def apply_batch(self, images: np.ndarray) -> np.ndarray:
        channels = images.shape[1]
        if len(self.mean) not in (1, channels):
            raise ShapeError(
                f"Normalize: {len(self.mean)} mean/std values for images with {channels} channels "
                f"(shape {images.shape[1:]})"
            )
        mean = self.mean.reshape(1, -1, 1, 1)
        std = self.std.reshape(1, -1, 1, 1)
        if self.inplace:
            np.subtract(images, mean, out=images)
            np.divide(images, std, out=images)
            return images
        out = np.subtract(images, mean, dtype=np.float32)
        np.divide(out, std, out=out)
        return out

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


def _pair(value: Union[int, Sequence[int]], name: str, owner: str) -> Tuple[int, int]:
    if isinstance(value, numbers.Integral):
        return int(value), int(value)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, numbers.Integral) for v in value)
    ):
        return int(value[0]), int(value[1])
    raise ArgumentError(f"{owner}: {name} must be an int or a pair of ints, got {value!r}")


_PAD_MODES = {"constant": "constant", "edge": "edge", "reflect": "reflect", "symmetric": "symmetric"}


class RandomCrop(Transform):
    """Crop a random ``size`` window, after optional padding (torchvision's arguments).

    Args:
        size: int or ``(h, w)``.
        padding: None, an int (all sides), ``(left/right, top/bottom)`` or
            ``(left, top, right, bottom)``.
        fill: value of the padding when ``padding_mode="constant"``.
        padding_mode: ``"constant"``, ``"edge"``, ``"reflect"`` or ``"symmetric"``.
        generator: None (cnnrs global generator), an int seed or a numpy Generator.

    Each image draws two uniform numbers (row offset, column offset) from the generator.
    """

    def __init__(
        self,
        size: Union[int, Sequence[int]],
        padding: Union[None, int, Sequence[int]] = None,
        fill: float = 0.0,
        padding_mode: str = "constant",
        generator: GeneratorLike = None,
    ):
        self.size = _pair(size, "size", "RandomCrop")
        if min(self.size) <= 0:
            raise ArgumentError(f"RandomCrop: size must be positive, got {self.size}")
        self.padding = self._padding(padding)
        if padding_mode not in _PAD_MODES:
            raise ArgumentError(
                f"RandomCrop: padding_mode must be one of {sorted(_PAD_MODES)}, got {padding_mode!r}"
            )
        self.fill = fill
        self.padding_mode = padding_mode
        self.generator = as_generator(generator, "RandomCrop")

    @staticmethod
    def _padding(padding) -> Tuple[int, int, int, int]:
        """(left, top, right, bottom)."""
        if padding is None:
            return (0, 0, 0, 0)
        if isinstance(padding, numbers.Integral):
            p = (int(padding),) * 4
        elif isinstance(padding, (tuple, list)) and len(padding) == 2:
            p = (int(padding[0]), int(padding[1])) * 2
        elif isinstance(padding, (tuple, list)) and len(padding) == 4:
            p = tuple(int(v) for v in padding)
        else:
            raise ArgumentError(f"RandomCrop: padding must be an int, a pair or a 4-tuple, got {padding!r}")
        if min(p) < 0:
            raise ArgumentError(f"RandomCrop: padding must be non-negative, got {padding!r}")
        return p

    def _pad(self, images: np.ndarray) -> np.ndarray:
        left, top, right, bottom = self.padding
        n, c, h, w = images.shape
        if self.padding_mode == "constant":
            # Filling a new array and copying the interior is several times faster than np.pad.
            padded = np.full((n, c, top + h + bottom, left + w + right), self.fill, dtype=images.dtype)
            padded[:, :, top : top + h, left : left + w] = images
            return padded
        widths = ((0, 0), (0, 0), (top, bottom), (left, right))
        return np.pad(images, widths, mode=_PAD_MODES[self.padding_mode])

    def apply_batch(self, images: np.ndarray) -> np.ndarray:
        if any(self.padding):
            images = self._pad(images)
        n, _, height, width = images.shape
        crop_h, crop_w = self.size
        if crop_h > height or crop_w > width:
            raise ShapeError(
                f"RandomCrop: crop size {self.size} is larger than the (padded) image {(height, width)}"
            )
        # One (row, col) pair of uniforms per image, in image order: a batch draws
        # exactly what the same images would draw one at a time.
        uniforms = self._rng().random((n, 2))
        spans = np.array([height - crop_h + 1, width - crop_w + 1])
        offsets = np.minimum((uniforms * spans).astype(np.int64), spans - 1)
        windows = np.lib.stride_tricks.sliding_window_view(images, (crop_h, crop_w), axis=(2, 3))
        # windows: (N, C, H', W', h, w); pick window (oy, ox) of each image -> (N, C, h, w).
        return np.ascontiguousarray(windows[np.arange(n), :, offsets[:, 0], offsets[:, 1]])

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding}, padding_mode={self.padding_mode!r})"


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p`` (one uniform draw per image)."""

    def __init__(self, p: float = 0.5, generator: GeneratorLike = None):
        if not 0.0 <= p <= 1.0:
            raise ArgumentError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = p
        self.generator = as_generator(generator, "RandomHorizontalFlip")

    def apply_batch(self, images: np.ndarray) -> np.ndarray:
        flip = self._rng().random(images.shape[0]) < self.p
        out = np.array(images, copy=True)
        out[flip] = images[flip, ..., ::-1]
        return out

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "MNIST_MEAN",
    "MNIST_STD",
    "Compose",
    "Lambda",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "Transform",
    "is_batchable",
]
