"""GEMM cases: C = A @ B, square float32, cnnrs's kernel against numpy (OpenBLAS).

Both write into a preallocated output, so that neither pays an allocation the
other does not; 2*n^3 flops per call.

OpenBLAS's worker threads spin for about 0.1 s after each call (measured:
0.105 s of a core's time while the caller sleeps), so a cnnrs sample taken
right after a numpy sample would share its cores with them. Each sample
therefore starts after a pause of ``SETTLE_S``, long enough for both
libraries' threads to go idle, then one untimed call that wakes the library's
own threads: each is timed calling back to back as if it ran alone.
"""

from __future__ import annotations

import numpy as np

from .timing import Case, Contender

QUICK_SIZES = (64, 256, 1024)
FULL_SIZES = (64, 128, 256, 512, 1024, 2048)
SETTLE_S = 0.15


def _build(n: int):
    def build() -> list[Contender]:
        from cnnrs import _cnnrs

        rng = np.random.default_rng(n)
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        out_cnnrs = np.empty((n, n), dtype=np.float32)
        out_numpy = np.empty((n, n), dtype=np.float32)
        _cnnrs.gemm(a, b, out=out_cnnrs)
        np.matmul(a, b, out=out_numpy)
        error = float(np.max(np.abs(out_cnnrs - out_numpy)) / max(1.0, float(np.max(np.abs(out_numpy)))))
        if error > 1e-4:
            raise AssertionError(f"cnnrs and numpy disagree on gemm n={n}: relative error {error:.2e}")
        return [
            Contender("cnnrs", lambda: _cnnrs.gemm(a, b, out=out_cnnrs)),
            Contender("numpy", lambda: np.matmul(a, b, out=out_numpy)),
        ]

    return build


def cases(quick: bool) -> list[Case]:
    sizes = QUICK_SIZES if quick else FULL_SIZES
    return [
        Case(f"gemm n={n}", "gemm", "GFLOP/s", 2.0 * n**3 / 1e9, _build(n), settle_s=SETTLE_S) for n in sizes
    ]
