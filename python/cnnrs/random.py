"""The global random number generator of cnnrs.

One seeded :class:`numpy.random.Generator` serves weight initialisation,
dropout, ``cnnrs.randn`` / ``cnnrs.rand`` and data-loader shuffling, so
``cnnrs.manual_seed(0)`` makes a whole training run repeatable.
"""

from __future__ import annotations

import numpy as np


class _State:
    # Created on first use: importing numpy.random costs tens of milliseconds.
    rng = None
    seed: int | None = None


def manual_seed(seed: int):
    """Reseed the global generator (like ``torch.manual_seed``) and return it."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
    # numpy seeds must be non-negative; fold negatives like torch accepts them.
    _State.seed = int(seed)
    _State.rng = np.random.default_rng(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
    return _State.rng


def initial_seed() -> int | None:
    """The seed last given to :func:`manual_seed` (None if never seeded)."""
    return _State.seed


def get_rng():
    """The global generator. Fetch it at each use: :func:`manual_seed` replaces it."""
    if _State.rng is None:
        _State.rng = np.random.default_rng()
    return _State.rng


__all__ = ["get_rng", "initial_seed", "manual_seed"]
