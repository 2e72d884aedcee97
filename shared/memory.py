"""glibc's allocator, set for a long-running asyncio service.

With glibc's defaults a service's resident size crept up under load while its
Python heap did not: in a wave of 5,000 referrals the scheduler's heap peaked at
109 MB (memray) and its RSS at 153 MB; with a fixed mmap threshold and two arenas it
peaked at 133 MB in the same wave (README "Performance"). The likely cause is
asyncio's reads: each goes into a fresh 256 KiB buffer shrunk to what arrived, and
once glibc has freed one such block it raises its mmap threshold and serves the next
ones from the heap, where freed space between live objects is kept, not returned. A
fixed threshold keeps them in ``mmap``, given back on free; two arenas are plenty
for one event-loop thread and the few helper threads (DNS resolution).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# From <malloc.h>.
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

MMAP_THRESHOLD_BYTES = 128 * 1024
ARENA_MAX = 2


def tune_allocator() -> bool:
    """Fix glibc's mmap threshold and arena count; False where the C library is not
    glibc (musl, macOS), which leaves things as they are."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and mallopt(M_ARENA_MAX, ARENA_MAX))
