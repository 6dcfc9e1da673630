"""The index built off the request path: a graph-sized collection gets its graph and a beam chosen by
measured recall, searches answer (exactly) while it builds and writes made meanwhile are kept, a small
collection stays exact, and the sweeper asks for a build when much of the collection is outside the
graph. Real Qdrant Edge throughout (the build runs in a real child process)."""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest

from search.jobs.records import job_claim, job_submit
from search.jobs.runner import job_run
from search.models import Job, ModelKind
from search.services import index_building
from search.services.model_versions import model_activate, model_version_register
from search.vector_store import INDEX_SPEC, Beam, SearchFilter, vector_store

pytestmark = pytest.mark.django_db(transaction=True)

DIM = 256
# Just past the indexing threshold (20,000 KB = 20,000 256-d vectors) so the graph is built.
GRAPH_POINTS = INDEX_SPEC.indexing_threshold_kb + 2_000


def clustered(n: int, seed: int = 3) -> np.ndarray:
    """Points around product-like centres, as a shop's photos are (HNSW on uniform noise is a worst case)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 5), DIM)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def point_id(n: int) -> str:
    return str(uuid.UUID(int=n + 1))


@pytest.fixture
def model(vector_store_path):
    record = model_version_register(
        version=41,
        kind=ModelKind.BOOTSTRAP,
        backbone="efficientnet_lite0",
        embedding_dim=DIM,
        image_size=64,
        export_path="unused: nothing is embedded here",
    )
    vector_store().ensure_collection(record.collection, DIM)
    model_activate(record)
    return record


def fill(collection: str, vectors: np.ndarray, start: int = 0) -> None:
    points = [
        (point_id(start + i), v, {"product_id": (start + i) // 5, "category": f"c{i % 7}", "in_stock": True})
        for i, v in enumerate(vectors)
    ]
    vector_store().upsert(collection, points, batch_size=2000)


def run_job(kind: str, params: dict) -> Job:
    job = job_submit(kind=kind, params=params)
    claimed = job_claim(job_id=job.pk)
    assert claimed is not None
    return job_run(claimed)


def test_a_graph_sized_collection_gets_a_graph_and_a_measured_beam(model) -> None:
    vectors = clustered(GRAPH_POINTS)
    fill(model.collection, vectors)
    store = vector_store()
    assert store.index_state(model.collection).indexed == 0

    answered: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def search_meanwhile() -> None:
        while not stop.is_set():
            try:
                answered.append(len(store.search(model.collection, vectors[len(answered) % 50], 5)))
            except BaseException as exc:  # noqa: BLE001 - any failure is what the test reports
                errors.append(exc)

    def write_meanwhile() -> None:
        # Lands while the child builds on its copy: must survive the swap.
        fill(model.collection, clustered(3, seed=9), start=10**6)
        store.delete(model.collection, [point_id(0)])

    searcher = threading.Thread(target=search_meanwhile)
    searcher.start()
    lines: list[str] = []

    def log_line(line: str) -> None:
        lines.append(line)
        if "copied" in line:
            write_meanwhile()

    try:
        index = index_building.index_optimize(model, log_line=log_line)
    finally:
        stop.set()
        searcher.join()

    assert not errors
    assert answered and all(n == 5 for n in answered)
    state = store.index_state(model.collection)
    assert state.points == GRAPH_POINTS + 3 - 1
    assert state.indexed >= GRAPH_POINTS - 1
    assert store.retrieve(model.collection, [point_id(10**6), point_id(0)]).keys() == {point_id(10**6)}
    assert Beam(index["hnsw_ef"], index["oversampling"]) in index_building.BEAMS
    assert index["recall_at_10"] >= index_building.RECALL_TARGET
    assert index["curve"][-1]["recall_at_10"] == index["recall_at_10"]
    model.refresh_from_db()
    assert model.search_beam == Beam(index["hnsw_ef"], index["oversampling"])
    # The chosen beam finds what exact search finds, filtered as every API search is.
    query = vectors[123]
    flt = SearchFilter(active=True)
    exact = store.search(model.collection, query, 10, flt, group_by_product=False)
    graph = store.search(model.collection, query, 10, flt, group_by_product=False, beam=model.search_beam)
    assert len({h.image_id for h in exact} & {h.image_id for h in graph}) >= 8
    assert any("hnsw_ef" in line for line in lines)


def test_a_small_collection_stays_exact_and_the_job_says_so(model) -> None:
    fill(model.collection, clustered(500))
    job = run_job(index_building.JOB_KIND, {"model": model.version})
    assert job.state == "succeeded", job.error
    assert "searched exactly" in job.result["summary"]
    model.refresh_from_db()
    assert model.index["hnsw_ef"] is None and model.index["indexed"] == 0
    assert model.search_beam is None
    assert vector_store().index_state(model.collection).indexed == 0


def test_an_unknown_model_is_refused_at_submission(model) -> None:
    from search.jobs.registry import JobError

    with pytest.raises(JobError):
        job_submit(kind=index_building.JOB_KIND, params={"model": 9999})


def test_the_sweeper_queues_a_build_once_when_much_is_outside_the_graph(model) -> None:
    fill(model.collection, clustered(500))
    assert not index_building.index_optimize_if_due()  # small: stays exact
    fill(model.collection, clustered(GRAPH_POINTS), start=500)
    assert index_building.index_optimize_if_due()
    assert not index_building.index_optimize_if_due()  # one job at a time
    job = Job.objects.get(kind=index_building.JOB_KIND)
    assert job.params == {"model": model.version} and job.requested_by == "sweeper"
