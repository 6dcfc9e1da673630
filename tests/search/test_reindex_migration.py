"""Migration 0012 keeps one record per reindex: each ReindexJob's state moves onto the Job that ran it
(its result), so an unfinished reindex resumes from its cursor and a finished one keeps its verdict."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("search", "0011_search_log_text_kind")]
AFTER = [("search", "0012_reindex_state_on_job")]


@pytest.mark.django_db(transaction=True)
def test_reindex_rows_move_onto_their_jobs() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    model = old.get_model("search", "ModelVersion")
    v7 = model.objects.create(version=7, kind="bootstrap", backbone="b", embedding_dim=8, image_size=32)
    v8 = model.objects.create(version=8, kind="trained", backbone="b", embedding_dim=8, image_size=32)
    work = old.get_model("search", "ReindexJob").objects.create(
        model_version=v8, previous_version=v7, status="running", total=5, done=2, failed=1, cursor="abc"
    )
    job = old.get_model("search", "Job").objects.create(
        kind="reindex", state="queued", params={"model": 8}, result={"reindex_job": work.pk}
    )

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    moved = new.get_model("search", "Job").objects.get(pk=job.pk)
    assert moved.result == {
        "model_version": 8,
        "previous_version": 7,
        "status": "running",
        "total": 5,
        "indexed": 2,
        "failed": 1,
        "cursor": "abc",
        "gate": {},
    }
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())  # the rest of the tests run on the latest schema
