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


def get_rng_state() -> dict:
    """The global generator's state as plain JSON-safe data (for checkpoints)."""
    return get_rng().bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state returned by :func:`get_rng_state`, so a resumed run draws
    the same numbers as one that was never interrupted."""
    rng = get_rng()
    try:
        rng.bit_generator.state = state
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"set_rng_state: not a state from get_rng_state(): {e}") from None


__all__ = ["get_rng", "get_rng_state", "initial_seed", "manual_seed", "set_rng_state"]
