"""A task that failed because PostgreSQL went away must still be retried: noting the failure on the
image rows needs that same database, and before this an error there replaced the retry (the task
ended "raised unexpected", its message acked, the images left to the sweeper's next pass)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from django.db import OperationalError, connection

from tests.support.serving_fixtures import free_port
from workers.tasks import _retry

pytestmark = pytest.mark.django_db(transaction=True)


class Retried(Exception):
    pass


def test_a_database_outage_is_retried_even_though_the_failure_cannot_be_noted() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    # A worker's task, as Celery hands it over: not eager, first try; retry() gives the exception the
    # worker raises to schedule the retry.
    task = SimpleNamespace(
        name="lookalike.index_images",
        max_retries=6,
        request=SimpleNamespace(is_eager=False, retries=0),
        retry=lambda exc, countdown: Retried(countdown),
    )
    real_port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(free_port())  # refused, as while the server restarts
    try:
        with pytest.raises(Retried):
            _retry(task, OperationalError("server closed the connection unexpectedly"), [str(uuid.uuid4())])
    finally:
        connection.close()
        connection.settings_dict["PORT"] = real_port
