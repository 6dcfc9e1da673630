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

What is freed below the threshold stays with the process too, in the free lists of glibc's arenas
(one per thread that allocates, up to 8 per core), until ``malloc_trim`` hands the free pages back.
The reading mix of the soak (8 threads reading 200 Grocery photos' text) held 270-320 MiB of its own
memory untrimmed and 170-220 MiB trimmed every 2 s; a trim took 17-40 ms. So a daemon thread trims
every ``MALLOC_TRIM_INTERVAL_S`` seconds (0: never).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
_applied: int | None = None
_trimming_in: int | None = None  # the pid whose trimming thread runs (a fork does not inherit it)


def _glibc_function(name: str) -> Any:
    """A function of the C library by name; None where there is none (musl, macOS have neither)."""
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c")), name)
    except (OSError, AttributeError, TypeError):
        return None


def fix_mmap_threshold(threshold: int) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process; whether it was set."""
    global _applied
    if threshold <= 0:
        return False
    if _applied == threshold:
        return True
    mallopt = _glibc_function("mallopt")
    if mallopt is None:
        return False  # not glibc: its allocator has no such knob
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, int(threshold)) != 1:
        log.warning("mallopt(M_MMAP_THRESHOLD, %d) was refused; glibc's default stays", threshold)
        return False
    _applied = threshold
    return True


def start_trimming(interval_s: float) -> bool:
    """Hand the arenas' free pages back to the system every ``interval_s`` seconds, from a daemon
    thread of this process; whether it runs (once per process, however often it is called)."""
    global _trimming_in
    if interval_s <= 0:
        return False
    if _trimming_in == os.getpid():
        return True
    trim = _glibc_function("malloc_trim")
    if trim is None:
        return False  # not glibc
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def loop() -> None:
        while True:
            time.sleep(interval_s)
            trim(0)

    threading.Thread(target=loop, name="lookalike-malloc-trim", daemon=True).start()
    _trimming_in = os.getpid()
    return True


def apply_from_settings() -> bool:
    """The allocator set up as the settings say; whether the threshold was fixed."""
    from django.conf import settings

    start_trimming(settings.MALLOC_TRIM_INTERVAL_S)
    return fix_mmap_threshold(settings.MALLOC_MMAP_THRESHOLD_BYTES)
