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
    from workers.embedded import start_background_work

    warm_up()
    # Started when config.wsgi built the application already (a no-op here then); kept so that this
    # config says what its process runs: the sweeper, the job runner (jobs handed over by commands, the
    # admin and the demo: this process owns the store), search-photo retention, catalog syncs and
    # the sweep for catalog photos whose text was not read yet.
    start_background_work()
