"""Celery application. With no CELERY_BROKER_URL, settings make every task run eagerly in-process."""

import os

from celery import Celery
from celery.signals import worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("lookalike")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])


@worker_init.connect
@worker_process_init.connect
def _allocator(**_: object) -> None:
    # A worker reads catalog photos' text and embeds batches for days: as config/wsgi.py does.
    from config.allocator import apply_from_settings

    apply_from_settings()
