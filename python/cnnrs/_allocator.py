"""Keep freed memory inside the process between training steps (glibc only).

Every training step frees its activations and gradients and allocates the
same sizes again. With glibc's default settings the large blocks go back to
the kernel (heap trimming, or munmap above the mmap threshold) and come back
as fresh pages, each one a page fault on first write: about a thousand faults
and 2-3 ms of system time per LeNet-5 step at batch 64 on the project machine,
some 20% of the step's CPU time. Raising the trim threshold, the top pad and
the mmap threshold makes glibc reuse the memory instead (peak RSS unchanged).

It is a process-wide malloc setting, applied once, when the first backward
pass runs (so plain ``import cnnrs`` changes nothing). Set the environment
variable ``CNNRS_MALLOC_TUNING=0`` to leave the allocator alone.
"""

from __future__ import annotations

import os
import sys

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

_SETTINGS = ((_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 64 << 20), (_M_MMAP_THRESHOLD, 256 << 20))


class _State:
    done = False
    applied = False


def keep_freed_memory() -> bool:
    """Apply the settings once; True if glibc accepted them."""
    if _State.done:
        return _State.applied
    _State.done = True
    if os.environ.get("CNNRS_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    _State.applied = all(mallopt(option, value) == 1 for option, value in _SETTINGS)
    return _State.applied
