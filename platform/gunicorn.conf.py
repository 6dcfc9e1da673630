"""Gunicorn settings for the web role: `gunicorn -c platform/gunicorn.conf.py config.wsgi:application`.

Every value that depends on the host comes from the environment (see platform/.env.example).
"""

import os
import sys


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        sys.exit(f"gunicorn.conf.py: {name} must be an integer, got {value!r}")


# Inside the container; the reverse proxy (platform/nginx.conf) is the only public listener.
bind = "0.0.0.0:8000"

# Processes x threads. Each process imports TensorFlow's protos for the TF Serving gRPC client and
# opens its own gRPC channel and Qdrant client; the model itself runs in TF Serving and the vectors
# live in the Qdrant server, so several processes share nothing and scale with the CPU count.
# The embedded defaults are different: Qdrant Edge locks its folder to ONE process, and with no
# broker the tasks run inside the web process. So with no QDRANT_URL there is exactly one process
# (threads still serve concurrent requests), whatever WEB_CONCURRENCY says.
worker_class = "gthread"
workers = max(1, _env_int("WEB_CONCURRENCY", 2))
threads = max(1, _env_int("GUNICORN_THREADS", 4))
if not os.environ.get("QDRANT_URL") and workers > 1:
    print(
        f"gunicorn.conf.py: QDRANT_URL is not set (embedded vector store, one owner process): "
        f"running 1 worker instead of WEB_CONCURRENCY={workers}.",
        file=sys.stderr,
    )
    workers = 1

# Off on purpose: with preload the app (and any gRPC channel or TensorFlow runtime it creates at
# import) would be built in the master and inherited through fork(), which neither gRPC nor
# TensorFlow supports. Each worker loads the app itself, after the fork.
preload_app = False

# A search request is: decode and resize one image, one TF Serving call (TF_SERVING_TIMEOUT_S,
# 5 s by default) and one Qdrant query. 30 s is a generous ceiling; a worker silent for longer
# is stuck and is restarted. graceful_timeout lets in-flight searches finish on a deploy.
timeout = _env_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = 30
# nginx keeps upstream connections open (keepalive in platform/nginx.conf); match its idle time.
keepalive = 5

# Recycle a worker now and then so slow leaks (image decoding buffers, gRPC arenas) cannot grow
# without bound; the jitter keeps workers from restarting (and re-importing TensorFlow) together.
max_requests = 2000
max_requests_jitter = 200

# Request-header limits: the API takes filters in JSON bodies, so long request lines are abuse.
# 4094 bytes is gunicorn's default, stated here so it is reviewed with the proxy's limits.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

# The heartbeat file lives in memory: container /tmp is often an overlay file system, where the
# workers' periodic writes can stall and get healthy workers killed.
worker_tmp_dir = "/dev/shm"

# Logs to stdout/stderr, where the container runtime collects them. %(D)s is the request time in
# microseconds, the number that matters for search latency.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(D)sus "%(a)s"'

# Trust X-Forwarded-* only from the proxy. In docker-compose.yml the web container publishes no
# port, so only nginx on the private network can reach it; outside compose, set
# FORWARDED_ALLOW_IPS to the proxy's address.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")


# Metrics with several workers (search/metrics/exposition.py): when PROMETHEUS_MULTIPROC_DIR is set
# (docker-compose.yml does), every worker writes its values to files there and /metrics sums them.
# A new run starts from an empty folder; a dead worker's live gauges stop counting (its counters stay).
def on_starting(server):
    from search.metrics.exposition import reset_multiprocess_dir

    reset_multiprocess_dir()


def child_exit(server, worker):
    from search.metrics.exposition import process_exited

    process_exited(worker.pid)
