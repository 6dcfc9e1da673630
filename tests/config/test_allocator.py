"""glibc's mmap threshold fixed (config/allocator.py): a process that allocates large buffers of ever new
sizes, with small long-lived objects allocated in between (as the text reader does per photo), hands
the large ones back instead of keeping their space. Each case runs in a child process of its own,
since the setting lasts for the process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from config.allocator import fix_mmap_threshold

SCRIPT = textwrap.dedent(
    """
    import random, sys
    import numpy as np
    from config.allocator import fix_mmap_threshold

    if sys.argv[1] == "fixed":
        assert fix_mmap_threshold(4 * 1024 * 1024)

    def rss_mib():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

    rng = random.Random(0)
    kept = []
    start = rss_mib()
    for _ in range(300):
        tensor = np.ones(rng.randint(5, 20) * 1024 * 1024 // 8)  # 5-20 MiB, a new size, touched
        kept.append(np.ones(2048))  # 16 KiB that outlives it
        del tensor
    print(round(rss_mib() - start, 1))
    """
)


def _growth_mib(mode: str) -> float:
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return float(done.stdout.split()[-1])


def test_a_fixed_threshold_keeps_a_process_from_growing_with_new_buffer_sizes() -> None:
    glibc_default, fixed = _growth_mib("default"), _growth_mib("fixed")
    # Measured here: 26 MiB with glibc's adjusting threshold, 5 MiB with it fixed (the kept objects).
    assert fixed < 12
    assert glibc_default > fixed + 12


def test_zero_leaves_glibc_alone() -> None:
    assert fix_mmap_threshold(0) is False


TRIM_SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    import numpy as np
    from config.allocator import fix_mmap_threshold, start_trimming

    assert fix_mmap_threshold(4 * 1024 * 1024)
    if sys.argv[1] == "trim":
        assert start_trimming(0.2) and start_trimming(0.2)  # a second call starts nothing more
        assert sum(t.name == "lookalike-malloc-trim" for t in threading.enumerate()) == 1

    def anon_mib():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024

    start = anon_mib()
    # Many small blocks below the threshold, touched, then all freed but one in 64 (which pins
    # nothing at the top of the heap but keeps glibc from giving the rest back by itself).
    blocks = [np.ones(8192) for _ in range(20000)]  # 64 KiB each, 1.25 GiB in all
    kept = blocks[::64]
    del blocks
    time.sleep(1.0)
    print(round(anon_mib() - start, 1), len(kept))
    """
)


def _held_mib(mode: str) -> float:
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", TRIM_SCRIPT, mode], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return float(done.stdout.split()[0])


def test_trimming_hands_freed_small_blocks_back() -> None:
    untrimmed, trimmed = _held_mib("none"), _held_mib("trim")
    assert untrimmed > 500  # freed in the middle of the heap, still the process's
    assert trimmed < untrimmed / 4


def test_zero_interval_starts_no_thread() -> None:
    from config.allocator import start_trimming

    assert start_trimming(0) is False
