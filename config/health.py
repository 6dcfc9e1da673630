"""Liveness (/healthz: the process answers) and readiness (/readyz: its dependencies answer)."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

from search import selectors
from search.embedders import embedder_for
from search.vector_store import vector_store


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any driver error means "not ready"
        return f"{type(exc).__name__}: {exc}"
    return None


def _check_broker() -> str | None:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return None
    try:
        from config.celery import app

        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _check_vector_store() -> str | None:
    try:
        if not vector_store().healthcheck():
            return "vector store did not answer"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _check_model() -> str | None:
    try:
        model = selectors.active_model()
        if model is None:
            return "no active model version (run `manage.py bootstrap_model`)"
        if not embedder_for(model).ready():
            return f"model v{model.version} is not ready"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str | None] = {
        "database": _check_database(),
        "broker": _check_broker(),
        "vector_store": _check_vector_store(),
        "model": _check_model(),
    }
    down = {name: error for name, error in checks.items() if error}
    shown = {name: ("down: " + down[name]) if name in down else "ok" for name in checks}
    if settings.CELERY_TASK_ALWAYS_EAGER:
        shown["broker"] = "not configured (tasks run in-process)"
    body = {"status": "ready" if not down else "unavailable", "checks": shown}
    return JsonResponse(body, status=200 if not down else 503)
