# gunicorn for the embedded default (SQLite, Qdrant Edge, in-process model, eager tasks).
# Qdrant Edge locks its folder to one process, so this is ONE worker with threads; scale out with
# the production stack (docker-compose.yml: a Qdrant server and TF Serving), not with workers here.
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = 1
threads = int(os.environ.get("THREADS", "8"))
worker_class = "gthread"
timeout = 120
accesslog = "-"


def post_worker_init(worker):
    from search.warmup import warm_up
    from workers.embedded import (
        start_job_runner,
        start_search_photo_retention,
        start_sweeper,
        start_sync_scheduler,
        start_text_sweep,
    )

    warm_up()
    start_sweeper()
    start_search_photo_retention()
    start_sync_scheduler()
    start_text_sweep()  # images the reader missed (text on catalog images, OCR)
    start_job_runner()  # runs jobs handed over by commands, the admin and the demo (this process owns the store)
