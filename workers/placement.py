"""Who runs jobs and announced work: the embedded runner (no broker: CELERY_TASK_ALWAYS_EAGER, the
embedded default) or Celery's workers. The choice is made here, where the workers live, and handed to
search once when this app is ready (search/jobs/placement.py); search never reads Celery's settings.
It is answered on each call, so a test that switches the broker setting is heard at once."""

from __future__ import annotations

from django.conf import settings

from search.jobs.placement import BROKER, EMBEDDED, Placement, use_placement


def current() -> Placement:
    return EMBEDDED if settings.CELERY_TASK_ALWAYS_EAGER else BROKER


def connect() -> None:
    use_placement(current)
