# The embedded gunicorn config with Python's allocation tracer in its worker, for
# `python -m bench.soak --trace-python`: which lines of Python hold the memory a soak sees grow.
# A snapshot is written every SOAK_TRACE_EVERY_S seconds into SOAK_TRACE_DIR, named by the wall-clock
# second it was taken, so the bench can pick the ones at the start and the end of its measured window.
# Tracing costs the worker time and memory of its own: a traced run's latency and RSS are not figures.
import os
import threading
import time
import tracemalloc
from pathlib import Path

_EMBEDDED = Path(__file__).resolve().parent.parent / "platform" / "gunicorn.embedded.conf.py"
# The same settings and hooks as a plain run (bind, threads, the warm-up and background work), read
# from the one file that defines them.
exec(compile(_EMBEDDED.read_text(), str(_EMBEDDED), "exec"))
_embedded_post_worker_init = post_worker_init  # noqa: F821 (defined by the file just run)


def post_worker_init(worker):
    _embedded_post_worker_init(worker)
    folder = Path(os.environ["SOAK_TRACE_DIR"])
    every = float(os.environ.get("SOAK_TRACE_EVERY_S", "60"))
    tracemalloc.start(int(os.environ.get("SOAK_TRACE_FRAMES", "8")))

    def dump() -> None:
        while True:
            time.sleep(every)
            tracemalloc.take_snapshot().dump(str(folder / f"{time.time():.0f}.snap"))

    threading.Thread(target=dump, name="soak-trace", daemon=True).start()
