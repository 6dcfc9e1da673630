"""One contract suite, run against both implementations for real (never mocked):

* Qdrant Edge in a temporary folder (the embedded default),
* qdrant-client's local mode in a temporary folder (the same client calls the server path makes).

Expected rankings are computed here with numpy cosine similarity, independently of the engine.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from search.vector_store import (
    ALIAS,
    CollectionNotFound,
    DimensionMismatch,
    EdgeVectorStore,
    Hit,
    PointPayload,
    QdrantClientVectorStore,
    SearchFilter,
    VectorStore,
    VectorStoreError,
    VectorStoreLocked,
    VectorStoreUnavailable,
    collection_name,
    open_vector_store,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DIM = 16
COLL = "images_test"
CATEGORIES = ["fruit", "vegetable", "dairy", "bakery"]


def _open(kind: str, path: Path) -> VectorStore:
    if kind == "edge":
        return EdgeVectorStore(path)
    return QdrantClientVectorStore(path=path)


@pytest.fixture(params=["edge", "local"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store_path(tmp_path: Path, kind: str) -> Path:
    return tmp_path / f"vectors-{kind}"


@pytest.fixture
def store(kind: str, store_path: Path) -> Iterator[VectorStore]:
    s = _open(kind, store_path)
    yield s
    s.close()


def image_id(n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"lookalike-test-image-{n}"))


class Catalog:
    """Synthetic points plus a numpy reference implementation of the grouped, filtered search."""

    def __init__(self, n_products: int = 40, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.points: list[tuple[str, np.ndarray, dict[str, Any]]] = []
        n = 0
        for pid in range(1, n_products + 1):
            price = None if pid % 10 == 0 else float(round(rng.uniform(1, 100), 2))
            for _ in range(int(rng.integers(1, 5))):  # 1-4 images per product
                payload = PointPayload(
                    product_id=pid,
                    sku=f"SKU-{pid}",
                    category=CATEGORIES[pid % len(CATEGORIES)],
                    price=price,
                    in_stock=pid % 3 != 0,
                    model_version="test",
                    active=pid % 7 != 0,
                ).to_dict()
                if pid % 5 == 0:  # written before payloads carried "active": counts as active
                    del payload["active"]
                self.points.append((image_id(n), rng.normal(size=DIM).astype(np.float32), payload))
                n += 1
        self.rng = rng

    def expected(
        self, query: np.ndarray, limit: int, keep: Callable[[dict[str, Any]], bool] = lambda p: True
    ) -> list[tuple[int, str, float]]:
        """(product_id, best image_id, cosine) for the top `limit` products, best first."""
        q = query / np.linalg.norm(query)
        best: dict[int, tuple[float, str]] = {}
        for pid_, vec, payload in self.points:
            if not keep(payload):
                continue
            score = float(np.dot(vec / np.linalg.norm(vec), q))
            prod = payload["product_id"]
            if prod not in best or score > best[prod][0]:
                best[prod] = (score, pid_)
        ranked = sorted(best.items(), key=lambda kv: -kv[1][0])[:limit]
        return [(prod, iid, score) for prod, (score, iid) in ranked]


def assert_hits(hits: list[Hit], expected: list[tuple[int, str, float]]) -> None:
    assert [h.product_id for h in hits] == [e[0] for e in expected]
    assert [h.image_id for h in hits] == [e[1] for e in expected]
    np.testing.assert_allclose([h.score for h in hits], [e[2] for e in expected], atol=1e-5)


@pytest.fixture
def catalog() -> Catalog:
    return Catalog()


@pytest.fixture
def filled(store: VectorStore, catalog: Catalog) -> VectorStore:
    store.ensure_collection(COLL, DIM)
    # A small batch size so the batching path runs several times.
    assert store.upsert(COLL, catalog.points, batch_size=17) == len(catalog.points)
    return store


# --- collections ----------------------------------------------------------------------------------


def test_ensure_collection_is_idempotent_and_checks_dim(store: VectorStore) -> None:
    assert not store.collection_exists(COLL)
    store.ensure_collection(COLL, DIM)
    store.ensure_collection(COLL, DIM)
    assert store.collection_exists(COLL)
    assert store.list_collections() == [COLL]
    with pytest.raises(DimensionMismatch) as err:
        store.ensure_collection(COLL, DIM + 1)
    assert (err.value.expected, err.value.got) == (DIM, DIM + 1)
    with pytest.raises(DimensionMismatch):
        store.upsert(COLL, [(image_id(1), np.ones(DIM + 1), {"product_id": 1})])
    with pytest.raises(DimensionMismatch):
        store.search(COLL, np.ones(DIM - 1))
    assert store.drop_collection(COLL) is True
    assert store.drop_collection(COLL) is False
    assert store.list_collections() == []


def test_missing_collection_is_a_typed_error(store: VectorStore) -> None:
    with pytest.raises(CollectionNotFound):
        store.search("nope", np.ones(DIM))
    with pytest.raises(CollectionNotFound):
        store.count("nope")
    with pytest.raises(CollectionNotFound):
        store.upsert("nope", [(image_id(1), np.ones(DIM), {"product_id": 1})])
    with pytest.raises(CollectionNotFound):
        store.set_alias(ALIAS, "nope")


def test_bad_input_is_rejected_before_writing(store: VectorStore) -> None:
    store.ensure_collection(COLL, DIM)
    with pytest.raises(ValueError, match="UUID"):
        store.upsert(COLL, [("not-a-uuid", np.ones(DIM), {"product_id": 1})])
    with pytest.raises(ValueError, match="NaN"):
        store.upsert(COLL, [(image_id(1), np.full(DIM, np.nan), {"product_id": 1})])
    with pytest.raises(ValueError, match="zero"):
        store.upsert(COLL, [(image_id(1), np.zeros(DIM), {"product_id": 1})])
    with pytest.raises(ValueError, match="product_id"):
        store.upsert(COLL, [(image_id(1), np.ones(DIM), {"sku": "x"})])
    with pytest.raises(ValueError):
        store.ensure_collection("../escape", DIM)
    assert store.count(COLL) == 0


def test_collection_name_helper() -> None:
    assert collection_name("v3.1-MNv2") == "images_v3_1-mnv2"
    assert collection_name("2024-06-01T10:00") == "images_2024-06-01t10_00"
    with pytest.raises(ValueError):
        collection_name("../..")


# --- writes ---------------------------------------------------------------------------------------


def test_upsert_replay_is_a_no_op(filled: VectorStore, catalog: Catalog) -> None:
    n = len(catalog.points)
    assert filled.count(COLL) == n
    filled.upsert(COLL, catalog.points)
    assert filled.count(COLL) == n
    # The same UUID in another spelling is the same point.
    iid, vec, payload = catalog.points[0]
    filled.upsert(COLL, [(iid.upper(), vec.tolist(), {**payload, "sku": "NEW"})])
    assert filled.count(COLL) == n
    assert filled.retrieve(COLL, [iid])[iid][1]["sku"] == "NEW"


def test_retrieve_returns_unit_vectors_and_skips_missing(filled: VectorStore, catalog: Catalog) -> None:
    iid, vec, payload = catalog.points[3]
    got = filled.retrieve(COLL, [iid, image_id(10**6)], with_vectors=True)
    assert list(got) == [iid]
    vector, got_payload = got[iid]
    np.testing.assert_allclose(vector, vec / np.linalg.norm(vec), atol=1e-6)
    assert got_payload == payload
    assert filled.retrieve(COLL, [iid])[iid][0] is None


def test_vectors_reads_in_batches_as_float32_and_skips_missing(filled: VectorStore, catalog: Catalog) -> None:
    wanted = [p[0] for p in catalog.points[:5]] + [image_id(10**6)]
    got = list(filled.vectors(COLL, wanted, batch=2))
    assert [i for i, _, _ in got] == wanted[:5]
    for (_, vector, payload), (_, vec, expected) in zip(got, catalog.points[:5], strict=True):
        assert vector.dtype == np.float32 and vector.shape == (DIM,)
        np.testing.assert_allclose(vector, vec / np.linalg.norm(vec), atol=1e-6)
        assert payload == expected


def test_delete_and_payload_updates_reach_search_and_retrieve(filled: VectorStore, catalog: Catalog) -> None:
    query = catalog.rng.normal(size=DIM)
    top = filled.search(COLL, query, limit=3)
    first = top[0]

    # Deleting the best image of the top product: it falls back to its next image, or drops out.
    filled.delete(COLL, [first.image_id])
    assert filled.retrieve(COLL, [first.image_id]) == {}
    remaining = [p for p in catalog.points if p[0] != first.image_id]
    hits = filled.search(COLL, query, limit=3)
    catalog.points = remaining
    assert_hits(hits, catalog.expected(query, 3))

    # Deleting a whole product.
    second = hits[0].product_id
    filled.delete_by_product(COLL, second)
    assert second not in [h.product_id for h in filled.search(COLL, query, limit=50)]
    catalog.points = [p for p in catalog.points if p[2]["product_id"] != second]
    assert filled.count(COLL) == len(catalog.points)

    # set_payload merges: in_stock flips, other keys stay.
    target = catalog.points[0][0]
    filled.set_payload(COLL, [target], {"in_stock": False, "badge": "sale"})
    payload = filled.retrieve(COLL, [target])[target][1]
    assert payload["in_stock"] is False and payload["badge"] == "sale" and payload["sku"].startswith("SKU-")

    # set_payload_by_product reaches every image of the product, and filters see it at once.
    prod = hits[1].product_id
    filled.set_payload_by_product(COLL, prod, {"in_stock": False, "price": 999.0})
    images = [p[0] for p in catalog.points if p[2]["product_id"] == prod]
    assert all(v[1]["price"] == 999.0 for v in filled.retrieve(COLL, images).values())
    in_stock = filled.search(COLL, query, limit=50, filter=SearchFilter(in_stock=True))
    assert prod not in [h.product_id for h in in_stock]
    pricey = filled.search(COLL, query, limit=50, filter=SearchFilter(min_price=500))
    assert [h.product_id for h in pricey] == [prod]


def test_deactivating_a_product_takes_it_out_of_active_search_at_once(
    filled: VectorStore, catalog: Catalog
) -> None:
    query = catalog.rng.normal(size=DIM)
    active_only = SearchFilter(active=True)
    top = filled.search(COLL, query, limit=3, filter=active_only)
    gone = top[0].product_id
    filled.set_payload_by_product(COLL, gone, {"active": False})
    images = [p[0] for p in catalog.points if p[2]["product_id"] == gone]
    assert all(v[1]["active"] is False for v in filled.retrieve(COLL, images).values())
    assert gone not in [h.product_id for h in filled.search(COLL, query, limit=50, filter=active_only)]
    assert gone in [
        h.product_id for h in filled.search(COLL, query, limit=50, filter=SearchFilter(active=False))
    ]
    # Coming back is the same patch the other way.
    filled.set_payload_by_product(COLL, gone, {"active": True})
    assert filled.search(COLL, query, limit=1, filter=active_only)[0].product_id == gone


def test_active_search_stays_right_when_every_point_is_active_and_then_one_is_not(
    store: VectorStore, kind: str
) -> None:
    """Edge skips the ``active`` condition while no point is inactive (the API sends it on every
    search); the first write that marks a point inactive must bring it back at once."""
    rng = np.random.default_rng(3)
    store.ensure_collection(COLL, DIM)
    query = rng.normal(size=DIM).astype(np.float32)
    near = query + 0.01 * rng.normal(size=DIM).astype(np.float32)

    def point(n: int, vec: np.ndarray, product: int, active: bool) -> tuple[str, np.ndarray, dict[str, Any]]:
        payload = PointPayload(
            product_id=product,
            sku=f"S{product}",
            category="fruit",
            price=1.0,
            in_stock=True,
            model_version="test",
            active=active,
        ).to_dict()
        return image_id(n), vec, payload

    store.upsert(COLL, [point(n, rng.normal(size=DIM).astype(np.float32), n, True) for n in range(1, 30)])
    active_only = SearchFilter(active=True)
    assert len(store.search(COLL, query, limit=50, filter=active_only)) == 29
    if kind == "edge":
        assert store._open(COLL).inactive_points == 0  # type: ignore[attr-defined]

    store.upsert(COLL, [point(100, near, 100, False)])  # the nearest point, written inactive
    if kind == "edge":
        assert store._open(COLL).inactive_points is None  # type: ignore[attr-defined]
    assert 100 not in [h.product_id for h in store.search(COLL, query, limit=50, filter=active_only)]
    assert store.search(COLL, query, limit=1)[0].product_id == 100

    store.set_payload_by_product(COLL, 100, {"active": True})
    assert store.search(COLL, query, limit=1, filter=active_only)[0].product_id == 100
    store.set_payload_by_product(COLL, 5, {"active": False})
    assert 5 not in [h.product_id for h in store.search(COLL, query, limit=50, filter=active_only)]


# --- search ---------------------------------------------------------------------------------------

FILTERS: list[tuple[SearchFilter, Callable[[dict[str, Any]], bool]]] = [
    (SearchFilter(categories=["fruit"]), lambda p: p["category"] == "fruit"),
    (SearchFilter(categories=["fruit", "dairy"]), lambda p: p["category"] in ("fruit", "dairy")),
    (SearchFilter(min_price=20, max_price=60), lambda p: p["price"] is not None and 20 <= p["price"] <= 60),
    (SearchFilter(max_price=30), lambda p: p["price"] is not None and p["price"] <= 30),
    (SearchFilter(in_stock=True), lambda p: p["in_stock"]),
    (SearchFilter(in_stock=False), lambda p: not p["in_stock"]),
    (SearchFilter(exclude_product_ids=[1, 2, 3, 5, 8]), lambda p: p["product_id"] not in (1, 2, 3, 5, 8)),
    (SearchFilter(product_ids=[2, 3, 5]), lambda p: p["product_id"] in (2, 3, 5)),
    (
        SearchFilter(
            categories=["vegetable", "bakery"], min_price=10, in_stock=True, exclude_product_ids=[7]
        ),
        lambda p: (
            p["category"] in ("vegetable", "bakery")
            and p["price"] is not None
            and p["price"] >= 10
            and p["in_stock"]
            and p["product_id"] != 7
        ),
    ),
    (SearchFilter(categories=[]), lambda p: True),  # an empty list constrains nothing
    (SearchFilter(active=True), lambda p: p.get("active", True)),
    (SearchFilter(active=False), lambda p: p.get("active") is False),
    (
        SearchFilter(categories=["fruit", "dairy"], in_stock=True, active=True),
        lambda p: p["category"] in ("fruit", "dairy") and p["in_stock"] and p.get("active", True),
    ),
]


@pytest.mark.parametrize("case", range(len(FILTERS)))
def test_filtered_grouped_search_matches_numpy(filled: VectorStore, catalog: Catalog, case: int) -> None:
    flt, keep = FILTERS[case]
    for _ in range(3):
        query = catalog.rng.normal(size=DIM)
        assert_hits(filled.search(COLL, query, limit=6, filter=flt), catalog.expected(query, 6, keep))
    assert filled.count(COLL, flt) == sum(keep(p[2]) for p in catalog.points)


def test_grouping_gives_each_product_once_with_its_best_image(store: VectorStore) -> None:
    rng = np.random.default_rng(3)
    query = rng.normal(size=DIM)
    points = []
    # Product 1 has 60 images all very close to the query: without grouping it would fill every
    # slot; the gateway's over-fetch must look past them (several rounds on Edge).
    for k in range(60):
        points.append((image_id(k), query + 0.01 * rng.normal(size=DIM), {"product_id": 1}))
    for pid in range(2, 12):
        for j in range(3):
            points.append((image_id(1000 + pid * 10 + j), rng.normal(size=DIM), {"product_id": pid}))
    store.ensure_collection(COLL, DIM)
    store.upsert(COLL, points)

    cat = Catalog(n_products=0)
    cat.points = [(i, np.asarray(v, dtype=np.float32), p) for i, v, p in points]
    hits = store.search(COLL, query, limit=5)
    assert len({h.product_id for h in hits}) == 5
    assert_hits(hits, cat.expected(query, 5))
    # Asking for more products than exist returns each product once.
    everything = store.search(COLL, query, limit=100)
    assert sorted(h.product_id for h in everything) == list(range(1, 12))
    assert_hits(everything, cat.expected(query, 100))
    # Ungrouped: plain top points, here all of product 1.
    raw = store.search(COLL, query, limit=5, group_by_product=False)
    assert [h.product_id for h in raw] == [1] * 5
    assert [h.score for h in raw] == sorted((h.score for h in raw), reverse=True)
    assert store.search(COLL, query, limit=0) == []
    # score_threshold cuts on cosine similarity.
    assert {h.product_id for h in store.search(COLL, query, limit=5, score_threshold=0.99)} == {1}


def test_scroll_ids_visits_every_point_once(filled: VectorStore, catalog: Catalog) -> None:
    seen = list(filled.scroll_ids(COLL, batch=7))
    assert sorted(i for i, _ in seen) == sorted(p[0] for p in catalog.points)
    by_id = {p[0]: p[2] for p in catalog.points}
    assert all(payload == by_id[i] for i, payload in seen)


# --- aliases and persistence ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["edge"])
def test_edge_records_no_alias(kind: str, store_path: Path, store: VectorStore) -> None:
    """An embedded store is locked to one process, so no outside reader could follow an alias: Edge
    checks the target as a server does and writes nothing; collections are named, never aliased."""
    store.ensure_collection(collection_name("v1"), DIM)
    store.set_alias(ALIAS, collection_name("v1"))
    with pytest.raises(CollectionNotFound):
        store.set_alias(ALIAS, "nope")
    assert store.get_alias(ALIAS) is None and store.delete_alias(ALIAS) is False
    assert sorted(p.name for p in store_path.iterdir() if not p.name.startswith(".")) == [
        collection_name("v1")
    ]
    with pytest.raises(CollectionNotFound):
        store.count(ALIAS)


@pytest.mark.parametrize("kind", ["local"])  # a server's aliases; Edge has none (the next test)
def test_aliases_swap_and_persist(kind: str, store_path: Path, store: VectorStore) -> None:
    old, new = collection_name("v1"), collection_name("v2")
    store.ensure_collection(old, DIM)
    store.ensure_collection(new, DIM)
    store.upsert(old, [(image_id(1), np.ones(DIM), {"product_id": 1})])
    store.upsert(new, [(image_id(2), np.ones(DIM), {"product_id": 2})])
    assert store.get_alias(ALIAS) is None

    store.set_alias(ALIAS, old)
    assert store.get_alias(ALIAS) == old
    assert [h.product_id for h in store.search(ALIAS, np.ones(DIM))] == [1]
    store.set_alias(ALIAS, new)  # swap: delete + create in one step
    assert store.get_alias(ALIAS) == new
    assert [h.product_id for h in store.search(ALIAS, np.ones(DIM))] == [2]
    assert store.count(ALIAS) == 1
    assert sorted(store.list_collections()) == [old, new]  # an alias is not a collection

    store.close()
    reopened = _open(kind, store_path)
    try:
        assert reopened.get_alias(ALIAS) == new
        assert reopened.count(old) == 1
        # Dropping the target removes the alias, as a Qdrant server does.
        assert reopened.drop_collection(new)
        assert reopened.get_alias(ALIAS) is None
        assert reopened.delete_alias(ALIAS) is False
        reopened.set_alias(ALIAS, old)
        assert reopened.delete_alias(ALIAS) is True
    finally:
        reopened.close()


# --- locking and availability ---------------------------------------------------------------------


def _locked_message(path: Path) -> str:
    return (
        f"The embedded vector store at {path.absolute()} is in use by another process; "
        "stop that process or set QDRANT_URL to use a Qdrant server."
    )


def test_second_opener_in_process_gets_one_line_error(
    kind: str, store_path: Path, store: VectorStore
) -> None:
    store.ensure_collection(COLL, DIM)
    with pytest.raises(VectorStoreLocked) as err:
        _open(kind, store_path)
    assert str(err.value) == _locked_message(store_path)
    assert "\n" not in str(err.value)
    # Releasing the first opener frees the folder.
    store.close()
    again = _open(kind, store_path)
    assert again.collection_exists(COLL)
    again.close()


CHILD = """
import sys
from search.vector_store import EdgeVectorStore, QdrantClientVectorStore, VectorStoreLocked
kind, path = sys.argv[1], sys.argv[2]
try:
    EdgeVectorStore(path) if kind == "edge" else QdrantClientVectorStore(path=path)
except VectorStoreLocked as exc:
    print(exc)
    sys.exit(3)
"""


def test_second_opener_in_another_process_gets_one_line_error(
    kind: str, store_path: Path, store: VectorStore
) -> None:
    store.ensure_collection(COLL, DIM)
    result = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(store_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout.strip() == _locked_message(store_path)
    assert "Traceback" not in result.stderr


def test_unreachable_server_is_unavailable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = open_vector_store(url=f"http://127.0.0.1:{port}", timeout=2)
    assert isinstance(store, QdrantClientVectorStore)
    assert store.healthcheck() is False
    with pytest.raises(VectorStoreUnavailable):
        store.count(COLL)
    with pytest.raises(VectorStoreUnavailable):
        store.ensure_collection(COLL, DIM)
    store.close()


def test_healthcheck_and_close(store: VectorStore) -> None:
    assert store.healthcheck() is True
    store.close()
    store.close()  # idempotent
    assert store.healthcheck() is False


def test_open_vector_store_defaults_to_edge(tmp_path: Path) -> None:
    with open_vector_store(path=tmp_path / "vs") as store:
        assert isinstance(store, EdgeVectorStore)
        assert store.healthcheck()


def test_edge_store_is_safe_across_threads(tmp_path: Path) -> None:
    store = EdgeVectorStore(tmp_path / "vs")
    store.ensure_collection(COLL, DIM)
    rng = np.random.default_rng(11)
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for k in range(20):
                n = t * 1000 + k
                store.upsert(COLL, [(image_id(n), rng.normal(size=DIM), {"product_id": n % 13})])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(30):
                store.search(COLL, np.ones(DIM), limit=5)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert store.count(COLL) == 80
    store.close()


def test_the_index_spec_builds_on_both_engines_and_searches_through_it(store: VectorStore, kind: str) -> None:
    from search.vector_store import Beam, IndexSpec

    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    store.ensure_collection("spec", 8)
    store.upsert("spec", [(image_id(i), v, {"product_id": i}) for i, v in enumerate(vectors)])
    state = store.index_state("spec")
    assert (state.points, state.indexed, state.vector_bytes) == (300, 0, 300 * 8 * 4)
    # A threshold of 1 KB makes these 9.6 KB of vectors graph-sized.
    report = store.build_index("spec", IndexSpec(indexing_threshold_kb=1, full_scan_threshold_kb=1))
    assert report.points == 300
    if kind == "edge":  # local mode has no graph: it always scans
        assert store.index_state("spec").indexed == 300
    exact = store.search("spec", vectors[7], 5, group_by_product=False)
    graph = store.search("spec", vectors[7], 5, group_by_product=False, beam=Beam(128, 4.0))
    originals = store.search("spec", vectors[7], 5, group_by_product=False, beam=Beam(128, None))
    assert [h.image_id for h in originals] == [h.image_id for h in exact]
    assert [h.image_id for h in graph][:1] == [h.image_id for h in exact][:1] == [image_id(7)]
    assert len(graph) == 5


def test_filters_answer_the_same_through_the_built_index(store: VectorStore, kind: str) -> None:
    """The payload indexes as the spec makes them (lookup-only integers, mapped from disk) still
    answer every filter the API sends, on a built graph as on the exact scan."""
    from search.vector_store import Beam, IndexSpec

    rng = np.random.default_rng(9)
    vectors = rng.normal(size=(400, 8)).astype(np.float32)
    payloads = [
        {"product_id": i // 4, "category": f"c{i % 5}", "price": float(i % 50), "in_stock": i % 3 != 0}
        for i in range(400)
    ]
    store.ensure_collection("filters", 8)
    store.upsert(
        "filters", [(image_id(i), v, p) for i, (v, p) in enumerate(zip(vectors, payloads, strict=True))]
    )
    store.build_index("filters", IndexSpec(indexing_threshold_kb=1, full_scan_threshold_kb=1))
    filters: list[tuple[SearchFilter, Callable[[dict[str, Any]], bool]]] = [
        (SearchFilter(categories=["c2"]), lambda p: p["category"] == "c2"),
        (SearchFilter(min_price=10.0, max_price=20.0), lambda p: 10.0 <= p["price"] <= 20.0),
        (
            SearchFilter(in_stock=True, exclude_product_ids=[1, 2, 3]),
            lambda p: p["in_stock"] and p["product_id"] not in (1, 2, 3),
        ),
        (
            SearchFilter(active=True, categories=["c1", "c3"], max_price=30.0),
            lambda p: p["category"] in ("c1", "c3") and p["price"] <= 30.0,
        ),
    ]
    for flt, keep in filters:
        for q in vectors[:5]:
            exact = store.search("filters", q, 10, flt, group_by_product=False)
            walked = store.search("filters", q, 10, flt, group_by_product=False, beam=Beam(400, None))
            assert [h.image_id for h in walked] == [h.image_id for h in exact]
            assert len(exact) == 10 and all(keep(h.payload) for h in exact)


def test_edge_payload_indexes_are_mapped_and_integers_lookup_only(tmp_path: Path) -> None:
    from search.vector_store import INDEXED_FIELDS

    store = EdgeVectorStore(tmp_path / "vs")
    store.ensure_collection(COLL, DIM)
    schema = store._open(COLL).shard.info().payload_schema
    assert set(schema) == set(INDEXED_FIELDS)
    for name, field in INDEXED_FIELDS.items():
        params = schema[name].params
        assert str(params.memory).endswith("Cold"), name
        assert params.enable_hnsw is field.graph_links, name
        if field.kind in ("integer", "bool"):
            assert (params.lookup, params.range) == (True, field.ranged), name
    assert INDEXED_FIELDS["price"].ranged and not INDEXED_FIELDS["product_id"].ranged
    store.close()


def test_a_build_with_a_trial_chooses_the_first_beam_that_reaches_the_target(
    store: VectorStore, kind: str
) -> None:
    from search.vector_store import Beam, BeamTrial, IndexSpec

    rng = np.random.default_rng(6)
    vectors = rng.normal(size=(600, 8)).astype(np.float32)
    store.ensure_collection("trial", 8)
    store.upsert("trial", [(image_id(i), v, {"product_id": i}) for i, v in enumerate(vectors)])
    # The walk on the originals with ef as large as the collection finds what exact search finds.
    trial = BeamTrial(
        beams=(Beam(600, None), Beam(8, 1.0)), target=0.99, queries=30, flt=SearchFilter(active=True)
    )
    report = store.build_index(
        "trial", IndexSpec(indexing_threshold_kb=1, full_scan_threshold_kb=1), trial=trial
    )
    if kind != "edge":  # local mode builds no graph, so there is no beam to choose
        assert report.choice is None
        return
    choice = report.choice
    assert choice is not None
    assert choice.beam == Beam(600, None) and choice.recall_at_10 >= 0.99
    assert choice.queries == 30
    assert [(c["hnsw_ef"], c["oversampling"]) for c in choice.curve] == [(600, None)]  # stopped at the first
    # The store still serves the built collection after the trial ran on the copy.
    assert store.count("trial") == 600
    assert store.search("trial", vectors[3], 1, group_by_product=False, beam=choice.beam)[
        0
    ].image_id == image_id(3)


# --- snapshots (backups) ----------------------------------------------------------------------------


def test_an_edge_snapshot_restores_the_collection_elsewhere(tmp_path: Path, catalog: Catalog) -> None:
    with EdgeVectorStore(tmp_path / "source") as source:
        source.ensure_collection(COLL, DIM)
        source.upsert(COLL, catalog.points)
        snapshot = source.snapshot(COLL, tmp_path)
        assert snapshot.name == f"{COLL}.edge.tar.gz" and not list(tmp_path.glob("*.partial"))
        source.upsert(COLL, [(image_id(10_000), catalog.rng.normal(size=DIM), catalog.points[0][2])])
    query = catalog.rng.normal(size=DIM)
    with EdgeVectorStore(tmp_path / "target") as target:
        target.restore_snapshot(COLL, snapshot)
        # As of the snapshot: the point written after it is not there.
        assert target.count(COLL) == len(catalog.points)
        assert_hits(target.search(COLL, query, limit=10), catalog.expected(query, 10))
        target.upsert(COLL, [(image_id(10_001), query, catalog.points[0][2])])  # takes writes
        with pytest.raises(VectorStoreError, match="exists already"):
            target.restore_snapshot(COLL, snapshot)
        not_a_snapshot = tmp_path / "junk.tar"
        not_a_snapshot.write_bytes(b"not a tar file")
        with pytest.raises(VectorStoreError):
            target.restore_snapshot("images_other", not_a_snapshot)
        assert target.list_collections() == [COLL]
    with EdgeVectorStore(tmp_path / "target") as reopened:
        assert reopened.count(COLL) == len(catalog.points) + 1


def test_local_mode_has_no_snapshots_and_a_down_server_is_unavailable(tmp_path: Path) -> None:
    with QdrantClientVectorStore(path=tmp_path / "local") as local:
        local.ensure_collection(COLL, DIM)
        with pytest.raises(VectorStoreError, match="need a Qdrant server"):
            local.snapshot(COLL, tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with open_vector_store(url=f"http://127.0.0.1:{port}", timeout=2) as down:
        with pytest.raises(VectorStoreUnavailable):
            down.snapshot(COLL, tmp_path)
        with pytest.raises(VectorStoreUnavailable):
            down.restore_snapshot(COLL, tmp_path / "x.snapshot")


# --- text collections: sparse vectors with IDF ------------------------------------------------------

TEXT = "text_test"


def _text_point(pid: int, terms: dict[int, float], **payload: Any) -> tuple[str, Any, dict[str, Any]]:
    from search.vector_store import SparseVector

    body = {"product_id": pid, "category": "dairy", "price": 1.0, "in_stock": True, "active": True}
    body.update(payload)
    return (
        str(uuid.uuid5(uuid.NAMESPACE_URL, f"text-{pid}")),
        SparseVector(list(terms), list(terms.values())),
        body,
    )


TEXT_DOCS = {
    1: {10: 1.0, 11: 1.0, 12: 1.0},  # 10 is in every document: its IDF is the lowest
    2: {10: 1.0, 13: 2.0},
    3: {10: 1.0, 11: 1.0, 14: 1.0},
    4: {10: 1.0, 15: 1.0},
}


def _idf_scores(query: dict[int, float]) -> dict[int, float]:
    """Qdrant's IDF modifier, computed here: ln(1 + (N - n + 0.5) / (n + 0.5)) per query term."""
    n_docs = len(TEXT_DOCS)
    scores = {}
    for pid, doc in TEXT_DOCS.items():
        score = 0.0
        for term, weight in query.items():
            if term in doc:
                n = sum(term in d for d in TEXT_DOCS.values())
                score += weight * doc[term] * float(np.log(1 + (n_docs - n + 0.5) / (n + 0.5)))
        if score > 0:
            scores[pid] = score
    return scores


@pytest.fixture
def text_filled(store: VectorStore) -> VectorStore:
    store.ensure_sparse_collection(TEXT)
    store.ensure_sparse_collection(TEXT)  # idempotent
    points = [_text_point(pid, doc, in_stock=pid != 3) for pid, doc in TEXT_DOCS.items()]
    assert store.upsert_sparse(TEXT, points) == len(points)
    assert store.upsert_sparse(TEXT, points) == len(points)  # a replay adds nothing
    assert store.count(TEXT) == len(points)
    return store


@pytest.mark.parametrize("query", [{10: 1.0, 11: 1.0}, {13: 1.0}, {10: 1.0}, {11: 1.0, 14: 0.5, 99: 1.0}])
def test_sparse_search_ranks_by_idf_weighted_overlap(
    text_filled: VectorStore, query: dict[int, float]
) -> None:
    from search.vector_store import SparseVector

    expected = _idf_scores(query)
    hits = text_filled.search_sparse(TEXT, SparseVector(list(query), list(query.values())), limit=10)
    assert {h.product_id for h in hits} == set(expected)  # no hit shares no word with the query
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for hit in hits:
        assert hit.score == pytest.approx(expected[hit.product_id], rel=1e-4)


def test_a_rare_word_outranks_a_common_one(text_filled: VectorStore) -> None:
    from search.vector_store import SparseVector

    # Product 2 has the common word twice as often as 1 and 3 have 11, yet 11 (in two of four) wins.
    hits = text_filled.search_sparse(TEXT, SparseVector([10, 11], [1.0, 1.0]), limit=2)
    assert {h.product_id for h in hits} == {1, 3}


def test_sparse_search_filters_and_product_writes(text_filled: VectorStore) -> None:
    from search.vector_store import SparseVector

    query = SparseVector([10], [1.0])
    in_stock = text_filled.search_sparse(TEXT, query, 10, SearchFilter(in_stock=True, active=True))
    assert {h.product_id for h in in_stock} == {1, 2, 4}
    excluded = text_filled.search_sparse(TEXT, query, 10, SearchFilter(exclude_product_ids=[1, 2]))
    assert {h.product_id for h in excluded} == {3, 4}
    # Only these products: how the re-ranking by a photo's words scores its visual candidates.
    only = text_filled.search_sparse(TEXT, query, 10, SearchFilter(product_ids=[2, 4], active=True))
    assert {h.product_id for h in only} == {2, 4}
    assert isinstance(in_stock[0].payload["in_stock"], bool)

    text_filled.set_payload_by_product(TEXT, 4, {"active": False, "category": "bakery"})
    active = text_filled.search_sparse(TEXT, query, 10, SearchFilter(active=True))
    assert {h.product_id for h in active} == {1, 2, 3}
    bakery = text_filled.search_sparse(TEXT, query, 10, SearchFilter(categories=["bakery"]))
    assert [h.product_id for h in bakery] == [4]

    text_filled.delete_by_product(TEXT, 2)
    assert text_filled.search_sparse(TEXT, SparseVector([13], [1.0]), 10) == []
    assert text_filled.count(TEXT) == 3
    assert text_filled.search_sparse(TEXT, SparseVector([], []), 10) == []  # no words, no hits


def test_sparse_input_is_checked_before_writing(store: VectorStore) -> None:
    from search.vector_store import SparseVector

    with pytest.raises(CollectionNotFound):
        store.search_sparse("text_missing", SparseVector([1], [1.0]))
    store.ensure_sparse_collection(TEXT)
    good = _text_point(1, {1: 1.0})
    for bad in (
        SparseVector([1, 1], [1.0, 2.0]),
        SparseVector([1], [float("nan")]),
        SparseVector([-1], [1.0]),
        SparseVector([2**32], [1.0]),
        SparseVector([1, 2], [1.0]),
    ):
        with pytest.raises(ValueError):
            store.upsert_sparse(TEXT, [good, (good[0].replace("a", "b", 1), bad, good[2])])
    assert store.count(TEXT) == 0  # nothing of a rejected batch was written
