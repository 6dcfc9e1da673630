"""A reindex begun the way its job begins one: a running job of kind "reindex" (claimed by the test's
process) whose result then holds the reindex's state (search/services/reindex.py)."""

from __future__ import annotations

from search.jobs.records import job_submit
from search.models import Job, ModelVersion
from search.services import reindex


def reindex_job(model: ModelVersion | None = None, *, force: bool = False) -> Job:
    """A running reindex job to ``model`` (default: the latest candidate), not started yet."""
    params = {"model": model.version if model is not None else None, "force": force}
    return job_submit(kind="reindex", params=params, requested_by="the test", claim=True)


def reindex_start(model: ModelVersion | None = None, *, force: bool = False) -> Job:
    """``reindex.reindex_start`` on a new reindex job: the candidate's collection exists and is filling."""
    return reindex.reindex_start(reindex_job(model, force=force))
