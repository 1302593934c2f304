"""DataLoader: batches of cnnrs Tensors from a map-style data set.

Two paths, same values:

- batch path: when the data set has ``supports_batch`` (arrays in memory and
  only batchable transforms: :class:`TensorDataset`, :class:`MNIST`,
  :class:`FashionMNIST`, :class:`CIFAR10`, :class:`Subset` of those) and no
  ``collate_fn`` is given, each batch is gathered with one fancy index
  (``dataset.get_batch(indices)``) and transformed in one vectorised call;
- per-sample path: otherwise ``dataset[i]`` for each index, then ``collate_fn``
  (default :func:`default_collate`).

Shuffling and resuming: the order of an epoch is ``generator.permutation(n)``
drawn when iteration starts. ``loader.generator`` is that
:class:`numpy.random.Generator` (its ``bit_generator.state`` is plain data).
:meth:`DataLoader.state_dict` gives the generator state at the start of the
current epoch and the number of batches already yielded; after
:meth:`DataLoader.load_state_dict` the next iteration replays that epoch's
order and skips those batches, so a resumed run sees exactly the batches it
would have seen. (Random transforms draw from their own generators: save those,
e.g. the cnnrs global one, separately.)
"""

from __future__ import annotations

import copy
import numbers
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np

from ..errors import ArgumentError
from ..tensor import Tensor
from ._rng import GeneratorLike, as_generator, spawn_from_global


def to_tensor(array: Any) -> Tensor:
    """A batch array as a Tensor: floats -> float32, integers -> int64, C-contiguous."""
    return Tensor(np.ascontiguousarray(array))


def default_collate(samples: Sequence[Any]) -> Any:
    """Stack a list of samples into a batch, like PyTorch's ``default_collate``.

    Arrays, Tensors and numbers are stacked along a new first dimension into a
    Tensor (floats -> float32, ints -> int64); tuples/lists give a list of
    collated fields, dicts a dict; strings stay a list.
    """
    first = samples[0]
    if isinstance(first, Tensor):
        return to_tensor(np.stack([s.numpy() for s in samples]))
    if isinstance(first, (np.ndarray, numbers.Number, np.generic)) and not isinstance(first, (str, bytes)):
        return to_tensor(np.stack([np.asarray(s) for s in samples]))
    if isinstance(first, dict):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in samples):
            raise ArgumentError("default_collate: samples in a batch have different numbers of fields")
        return [default_collate([s[i] for s in samples]) for i in range(len(first))]
    if isinstance(first, (str, bytes)):
        return list(samples)
    raise TypeError(f"default_collate: cannot batch samples of type {type(first).__name__}")


class DataLoader:
    """Iterate over a data set in batches of cnnrs Tensors.

    Args:
        dataset: a map-style data set (``__getitem__`` and ``__len__``).
        batch_size: samples per batch.
        shuffle: a new random order every epoch.
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        generator: shuffling randomness: an int seed, a numpy Generator, or
            None: a Generator seeded from the cnnrs global generator the first
            time one is needed (so ``cnnrs.manual_seed`` before the first epoch
            makes the order repeatable).
        collate_fn: turns a list of samples into a batch (forces the per-sample path).

    Yields what the data set's samples are made of, batched: for image data
    sets a list ``[images, labels]`` of a float32 ``(N, C, H, W)`` Tensor and
    an int64 ``(N,)`` Tensor.

    Example:
        >>> loader = DataLoader(MNIST(train=True), batch_size=64, shuffle=True, generator=0)
        >>> for images, labels in loader: ...
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: GeneratorLike = None,
        collate_fn: Optional[Callable[[List[Any]], Any]] = None,
    ):
        if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size < 1:
            raise ArgumentError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
            raise TypeError(
                f"DataLoader: dataset must define __getitem__ and __len__, got {type(dataset).__name__}"
            )
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn if collate_fn is not None else default_collate
        self._custom_collate = collate_fn is not None
        self._generator = as_generator(generator, "DataLoader")
        self._epoch_start_state: Optional[Dict[str, Any]] = None
        self._batches_done = 0
        self._resume: Optional[Dict[str, Any]] = None

    @property
    def generator(self) -> np.random.Generator:
        """The numpy Generator that draws each epoch's order (created on first use if none was given)."""
        if self._generator is None:
            self._generator = spawn_from_global()
        return self._generator

    def _restore_generator(self, state: Dict[str, Any]) -> None:
        if self._generator is None:
            # Build the generator from the saved state alone: spawning one from the global
            # generator would consume a draw there and shift a resumed run's other randomness.
            bit_generator = getattr(np.random, state.get("bit_generator", "PCG64"), None)
            if not (isinstance(bit_generator, type) and issubclass(bit_generator, np.random.BitGenerator)):
                raise ArgumentError(
                    f"DataLoader: unknown bit generator in saved state: {state.get('bit_generator')!r}"
                )
            self._generator = np.random.Generator(bit_generator())
        self._generator.bit_generator.state = state

    @property
    def uses_batch_path(self) -> bool:
        """True when batches are gathered with one fancy index instead of per-sample calls."""
        return not self._custom_collate and bool(getattr(self.dataset, "supports_batch", False))

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        n = len(self.dataset)
        skip = 0
        if self._resume is not None:
            state, skip = self._resume["generator_state"], self._resume["batches_done"]
            self._resume = None
            if state is not None:
                self._restore_generator(state)
        if self.shuffle:
            self._epoch_start_state = copy.deepcopy(self.generator.bit_generator.state)
            order = self.generator.permutation(n)
        else:
            self._epoch_start_state = None
            order = np.arange(n)
        batch_path = self.uses_batch_path
        for b in range(skip, len(self)):
            indices = order[b * self.batch_size : (b + 1) * self.batch_size]
            self._batches_done = b + 1
            yield self._fetch(indices, batch_path)
        self._epoch_start_state = None
        self._batches_done = 0

    def _fetch(self, indices: np.ndarray, batch_path: bool) -> Any:
        if batch_path:
            return [to_tensor(a) for a in self.dataset.get_batch(indices)]
        return self.collate_fn([self.dataset[int(i)] for i in indices])

    def state_dict(self) -> Dict[str, Any]:
        """Where the loader is: ``{"generator_state", "batches_done"}`` (plain, picklable data).

        Mid-epoch: the generator state from before this epoch's order was drawn
        and the number of batches yielded so far. Between epochs: the current
        state and 0. ``generator_state`` is None when ``shuffle`` is False or
        before a loader without a given generator has drawn its first order.
        """
        if self._epoch_start_state is not None or (not self.shuffle and self._batches_done):
            state, done = self._epoch_start_state, self._batches_done
        else:
            # No generator yet (None given, never iterated): None, so the next epoch seeds one
            # from the global generator exactly as an uninterrupted run would.
            has_state = self.shuffle and self._generator is not None
            state, done = (self._generator.bit_generator.state if has_state else None), 0
        return {"generator_state": copy.deepcopy(state), "batches_done": int(done)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Make the next iteration resume from ``state`` (see :meth:`state_dict`)."""
        done = state.get("batches_done", 0)
        if not isinstance(done, numbers.Integral) or not 0 <= done <= len(self):
            raise ArgumentError(
                f"DataLoader.load_state_dict: batches_done must be in [0, {len(self)}], got {done!r}"
            )
        self._resume = {
            "generator_state": copy.deepcopy(state.get("generator_state")),
            "batches_done": int(done),
        }

    def __repr__(self) -> str:
        return (
            f"DataLoader({type(self.dataset).__name__}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, batch_path={self.uses_batch_path})"
        )


__all__ = ["DataLoader", "default_collate", "to_tensor"]
