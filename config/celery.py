"""Celery application. With no CELERY_BROKER_URL, settings make every task run eagerly in-process."""

import os

from celery import Celery
from celery.signals import worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("lookalike")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])


@worker_init.connect
def _allocator(**_: object) -> None:
    # A worker reads catalog photos' text and embeds batches for days: as config/wsgi.py does. Set in
    # the main process before the pool starts; forked pool processes inherit the allocator's state.
    from config.allocator import apply_from_settings

    apply_from_settings()


@worker_process_init.connect
def _allocator_in_pool_process(**_: object) -> None:
    # A forked pool process has no thread of its parent's: it starts its own trimming.
    from django.conf import settings

    from config.allocator import start_trimming

    start_trimming(settings.MALLOC_TRIM_INTERVAL_S)
