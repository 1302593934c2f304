"""Map-style data sets: :class:`Dataset`, :class:`TensorDataset`, :class:`Subset`, :func:`random_split`.

Batch protocol (what makes :class:`~cnnrs.data.DataLoader` fast): a data set
whose samples live in arrays may define ``supports_batch`` (true when every
transform can run on a batch) and ``get_batch(indices)``, which returns the
whole batch as a tuple of stacked numpy arrays gathered with one fancy index.
The loader uses it instead of ``len(indices)`` calls to ``__getitem__``; both
must give the same values.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, List, Sequence, Tuple, Union

import numpy as np

from ..errors import ArgumentError, ShapeError
from ._rng import GeneratorLike, as_generator, global_generator


class Dataset:
    """A map-style data set: subclasses define ``__getitem__(index)`` and ``__len__()``."""

    supports_batch = False

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def get_batch(self, indices: np.ndarray) -> Tuple[np.ndarray, ...]:
        raise NotImplementedError(f"{type(self).__name__} has no batch path (supports_batch is False)")


def _tensor_type():
    """cnnrs.Tensor, imported late so that cnnrs.data does not depend on import order."""
    from ..tensor import Tensor

    return Tensor


def _as_array(value: Any) -> Tuple[np.ndarray, bool]:
    """(numpy array, whether the input was a cnnrs.Tensor)."""
    if isinstance(value, _tensor_type()):
        return value.numpy(), True
    return np.asarray(value), False


class TensorDataset(Dataset):
    """Samples are rows of the given arrays: ``ds[i] == (a[i], b[i], ...)``.

    Accepts cnnrs Tensors or anything numpy can turn into an array; all must
    have the same first dimension. Rows of Tensors come back as Tensors, rows
    of arrays as numpy arrays (or numpy scalars for 1-D arrays).
    """

    supports_batch = True

    def __init__(self, *tensors: Any):
        if not tensors:
            raise ArgumentError("TensorDataset: give at least one tensor or array")
        converted = [_as_array(t) for t in tensors]
        self.arrays: List[np.ndarray] = [a for a, _ in converted]
        self._was_tensor = [was for _, was in converted]
        shapes = [a.shape for a in self.arrays]
        if any(len(s) == 0 for s in shapes):
            raise ShapeError(
                f"TensorDataset: every tensor needs a first (sample) dimension, got shapes {shapes}"
            )
        if len({s[0] for s in shapes}) != 1:
            raise ShapeError(
                f"TensorDataset: size mismatch between tensors: first dimensions of shapes {shapes}"
            )

    @property
    def tensors(self) -> Tuple[np.ndarray, ...]:
        return tuple(self.arrays)

    def __getitem__(self, index: int):
        rows = tuple(a[index] for a in self.arrays)
        if any(self._was_tensor):
            Tensor = _tensor_type()
            rows = tuple(Tensor(np.asarray(r)) if was else r for r, was in zip(rows, self._was_tensor))
        return rows

    def __len__(self) -> int:
        return self.arrays[0].shape[0]

    def get_batch(self, indices: np.ndarray) -> Tuple[np.ndarray, ...]:
        return tuple(a[indices] for a in self.arrays)


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)

    @property
    def supports_batch(self) -> bool:
        return bool(getattr(self.dataset, "supports_batch", False))

    def __getitem__(self, index: int):
        return self.dataset[int(self.indices[index])]

    def __len__(self) -> int:
        return len(self.indices)

    def get_batch(self, indices: np.ndarray) -> Tuple[np.ndarray, ...]:
        return self.dataset.get_batch(self.indices[indices])


def random_split(
    dataset: Dataset, lengths: Sequence[Union[int, float]], generator: GeneratorLike = None
) -> List[Subset]:
    """Split ``dataset`` into non-overlapping random :class:`Subset` s of the given lengths.

    ``lengths`` are counts summing to ``len(dataset)``, or fractions summing to
    1 (the remainder of the floors goes one by one to the first subsets, as
    PyTorch does). ``generator``: None (cnnrs global generator), an int seed
    or a numpy Generator.
    """
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(x, float) for x in lengths) and math.isclose(sum(lengths), 1.0):
        if any(x < 0 for x in lengths):
            raise ArgumentError(f"random_split: fractions must be non-negative, got {lengths}")
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if not all(isinstance(x, numbers.Integral) and x >= 0 for x in lengths) or sum(lengths) != n:
        raise ArgumentError(
            f"random_split: lengths must be non-negative ints summing to the data set's length {n} "
            f"(or fractions summing to 1), got {lengths}"
        )
    rng = as_generator(generator, "random_split") or global_generator()
    order = rng.permutation(n)
    bounds = np.cumsum([0, *lengths])
    return [Subset(dataset, order[start:stop]) for start, stop in zip(bounds[:-1], bounds[1:])]


__all__ = ["Dataset", "Subset", "TensorDataset", "random_split"]
