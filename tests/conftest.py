"""Shared fixtures: every test leaves the kernel runtime as it found it."""

from __future__ import annotations

import numpy as np
import pytest

from cnnrs import _cnnrs


@pytest.fixture(autouse=True)
def _restore_runtime():
    """Restores the thread count and the SIMD/fallback and Winograd switches after each test."""
    threads, fallback, winograd = _cnnrs.get_num_threads(), _cnnrs.get_force_fallback(), _cnnrs.get_winograd()
    yield
    _cnnrs.set_num_threads(threads)
    _cnnrs.set_force_fallback(fallback)
    _cnnrs.set_winograd(winograd)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(params=[False, True], ids=["simd", "fallback"])
def simd_mode(request):
    """Runs a test on the SIMD path (where the CPU has one) and on the portable path."""
    _cnnrs.set_force_fallback(request.param)
    return request.param
