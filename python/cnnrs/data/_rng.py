"""Random generators of the data pipeline.

A ``generator`` argument anywhere in :mod:`cnnrs.data` may be ``None`` (use
the cnnrs global generator, see :func:`cnnrs.manual_seed`), an ``int`` seed,
or a :class:`numpy.random.Generator` (used as is, shared with the caller).
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

from .. import random as cnnrs_random

GeneratorLike = Union[None, int, np.random.Generator]


def as_generator(generator: GeneratorLike, owner: str) -> Optional[np.random.Generator]:
    """``None`` stays ``None``; an int seeds a new Generator; a Generator is returned as is."""
    if generator is None or isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        # numpy seeds must be non-negative; fold negatives as cnnrs.manual_seed does.
        return np.random.default_rng(int(generator) & 0xFFFF_FFFF_FFFF_FFFF)
    raise TypeError(
        f"{owner}: generator must be None, an int seed or a numpy.random.Generator, "
        f"got {type(generator).__name__}"
    )


def global_generator() -> np.random.Generator:
    """The cnnrs global generator, fetched at each use because manual_seed replaces it."""
    return cnnrs_random.get_rng()


def spawn_from_global() -> np.random.Generator:
    """A new Generator seeded by one draw from the global one (as PyTorch's loaders do)."""
    return np.random.default_rng(int(global_generator().integers(0, 2**63)))
