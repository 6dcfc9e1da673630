"""glibc's malloc, set up for long-running processes that allocate large buffers of many sizes.

glibc serves a request over its mmap threshold (128 KiB at start) with its own mapping, returned to
the system when freed; but each time such a block is freed it raises the threshold to that block's
size (up to 32 MiB), after which blocks of that size come from the heap and their freed space stays
with the process. The text reader (onnxruntime) allocates tensors of a new size for nearly every
photo (each photo's lines are a batch of another width), so a serving process kept growing: the
soak's gunicorn worker 755 -> 875 MiB in 20 minutes, still rising. Reading the same 200 photos with
the catalog profile in one process (docs/benchmarks.md, "Soak"): 223 -> 421 MiB with glibc's
defaults, 174 -> 235 MiB with the threshold fixed at 4 MiB, at the same speed (fixed at 128 KiB:
132 -> 164 MiB but 5-10% slower, each tensor's pages faulted in anew).

Setting the threshold by hand also turns glibc's adjustment off. ``MALLOC_MMAP_THRESHOLD_BYTES``
(0: leave glibc as it is); nothing happens on a C library without ``mallopt``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
_applied: int | None = None


def fix_mmap_threshold(threshold: int) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process; whether it was set."""
    global _applied
    if threshold <= 0:
        return False
    if _applied == threshold:
        return True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False  # not glibc (musl, macOS): their allocators have no such knob
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, int(threshold)) != 1:
        log.warning("mallopt(M_MMAP_THRESHOLD, %d) was refused; glibc's default stays", threshold)
        return False
    _applied = threshold
    return True


def apply_from_settings() -> bool:
    from django.conf import settings

    return fix_mmap_threshold(settings.MALLOC_MMAP_THRESHOLD_BYTES)
