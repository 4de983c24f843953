"""Process settings that make CPU training of these models faster without changing results.

A dense MoE layer on PubMed allocates and frees ``(N, E * out)`` tensors of 40 MB several
times per step.  glibc serves allocations above its mmap threshold (at most 32 MB) with a
fresh ``mmap`` and returns them on ``free``, so every such tensor is page-faulted in again,
4 KiB at a time, on every step.  :func:`keep_freed_memory` raises the mmap and trim
thresholds so freed memory stays in the heap and is reused: measured 1.5x faster for a
16-expert PubMed training step, 2x for its evaluation; no effect on the numbers computed.
The price is that the process keeps its peak heap until it exits (fine for a training
job).  The same can be had without code through the environment:
``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=2147483647``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: Largest allocation served from the heap after :func:`keep_freed_memory` (1 GiB).
MMAP_THRESHOLD = 1 << 30


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Ask glibc to keep freed memory for reuse; returns False where that is not possible
    (not Linux/glibc), True when both settings were accepted."""
    return malloc_thresholds(mmap_threshold, 2**31 - 1)


def malloc_thresholds(mmap_threshold: int, trim_threshold: int) -> bool:
    """Set glibc's mmap and trim thresholds (``mallopt``); False where not possible.

    Low values (e.g. 64 KiB) do the opposite of :func:`keep_freed_memory`: freed memory
    goes back to the system at once, so the resident size follows live memory (used by
    the benchmark to measure peak memory).
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok_mmap = mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))
    ok_trim = mallopt(_M_TRIM_THRESHOLD, int(trim_threshold))
    return bool(ok_mmap and ok_trim)
