"""The index build's child process yields the CPU to searches (edge_build.yield_to_searches): it and
the engine threads it starts later run in Linux's idle scheduling class. Run in a child process of its
own, since the class cannot be raised again without privilege."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import os, threading
from search.vector_store.edge_build import yield_to_searches

said = yield_to_searches()
seen = {}
worker = threading.Thread(target=lambda: seen.update(thread=os.sched_getscheduler(0)))
worker.start()
worker.join()
print(said, os.sched_getscheduler(0) == os.SCHED_IDLE, seen["thread"] == os.SCHED_IDLE)
"""


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling classes")
def test_the_build_child_and_its_later_threads_run_in_the_idle_class() -> None:
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=repo, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["SCHED_IDLE", "True", "True"]
    # The test process itself is untouched.
    assert os.sched_getscheduler(0) != os.SCHED_IDLE
