"""The vector store's interface, data types and errors, shared by both implementations.

Nothing here imports qdrant_client or qdrant_edge: callers (Django services, tasks, benchmarks)
depend on this module's plain Python values only.
"""

from __future__ import annotations

import abc
import math
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .beam_trial import BeamChoice, BeamTrial

# The alias outside readers (and the server path) use for the active collection.
ALIAS = "images"
COLLECTION_PREFIX = "images_"

# The one sparse vector of a text collection (one point per product, its words as BM25-style term
# weights): the engine multiplies each term by its IDF over the collection at query time, so a word
# every product shares ("juice" in a juice aisle) counts little and a rare one ("alpro") counts much.
SPARSE_VECTOR = "words"
# Term ids are hashes (ml/text_tokens.py), below 2**32 as the engines' sparse indices must be.
SPARSE_INDEX_LIMIT = 2**32

# Points per write request. 500 x 128-d float32 is about 1 MB of JSON on the server path (well under
# Qdrant's 32 MB request limit) and, measured on Qdrant Edge, batches of 500-1,000 upsert at about
# 30k points/s; larger batches gain nothing and hold the shard lock longer.
DEFAULT_BATCH_SIZE = 500


@dataclass(frozen=True, slots=True)
class FieldIndex:
    """A payload index: the field's type, whether range filters read it (an integer indexed for
    lookups only skips the ordered index, the costliest part to load), and whether the graph gets
    extra links for the field's large value blocks, which a filter keeping one such block walks."""

    kind: str  # integer | keyword | float | bool
    ranged: bool = False
    graph_links: bool = False


# The payload fields that get payload indexes. Filters and grouping use them. product_id is matched
# (one product's images, products excluded), never ranged. Graph links only where a filter keeps a
# small share that still needs a walk (a category, a price band): active, stock and the model version
# keep most of a collection, where the main graph serves, and their links would be a second graph.
INDEXED_FIELDS: dict[str, FieldIndex] = {
    "product_id": FieldIndex("integer"),
    "category": FieldIndex("keyword", graph_links=True),
    "price": FieldIndex("float", ranged=True, graph_links=True),
    "in_stock": FieldIndex("bool"),
    "active": FieldIndex("bool"),
    "model_version": FieldIndex("keyword"),
}


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """How every collection is indexed, for both engines (edge.py and client.py translate it once each).

    Thresholds are in kilobytes of original vectors, as Qdrant counts them, so they scale with the
    dimension: 20,000 KB is 20,000 256-d vectors or 4,000 1280-d ones.
    """

    # Graph degree and build beam. m=16 / ef_construct=100 (Qdrant's defaults) reached recall@10 0.96
    # at ef 512 on 1M clustered 128-d points here; docs/scaling.md has this project's figures.
    m: int = 16
    ef_construct: int = 100
    # A segment whose vectors fit in this stays a plain (exact) segment. An exact search of 10,000
    # 256-d vectors measured 2-3 ms p50 in the API (bench/scale.py), about what a graph search with its
    # rescoring costs at 1M (2.7 ms ungrouped), so twice that still pays no graph.
    indexing_threshold_kb: int = 20_000
    # A filter matching fewer vectors than this is answered by the payload index plus an exact scan of
    # what it matches (recall 1.0) instead of a filtered graph walk: a 1% filter at 1M 256-d points
    # (~10,000 KB) stays exact and fast.
    full_scan_threshold_kb: int = 20_000
    # int8 scalar quantization, kept in RAM; the top candidates are rescored on the original vectors,
    # which may then live on disk (page cache) since a query reads only a few of them. How many are
    # rescored (the oversampling) is chosen with the beam, per collection, by measured recall.
    quantization: str | None = "int8"
    quantile: float = 0.99
    vectors_on_disk: bool = True
    # Payloads held in RAM (the engine maps the file and reads it all in at load). Grouping by
    # product reads the payload of every candidate of every round, 40-50 random pages per search at
    # 1M points; on disk this host's reclaim of unmapped file pages sent most of them to the disk
    # (46 reads per search, vector stage p95 8.7 ms). In RAM: 27 reads, p95 6.5 ms, and the serving
    # peak RSS 1,801 MB against 1,749-1,783 (bench.scale, 1M points, 2026-12-07).
    payload_on_disk: bool = False
    # The payload indexes memory-mapped too, paged in by the filters that read them. Held in RAM they
    # are rebuilt from disk at every load: 0.7 s of a 100,000-point shard's load, against 0.15 s
    # mapped (measured here), and the load holds the web process's GIL at the swap of a rebuilt
    # index (edge_build.py). A filtered query paid +0.1 ms for it.
    payload_indexes_on_disk: bool = True
    # Threads the graph build may use; 0 leaves the engine to choose (all cores). The embedded store
    # builds in a child process with one thread less than the machine has, so searches keep a core.
    build_threads: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


INDEX_SPEC = IndexSpec()


@dataclass(frozen=True, slots=True)
class Beam:
    """How a search walks a collection's graph: ``ef`` candidates, scored on the int8 vectors with the
    best ``oversampling`` x limit rescored on the originals; ``oversampling`` None scores the walk on
    the originals themselves (the int8 vectors unused), for when int8's error caps recall."""

    ef: int
    oversampling: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"hnsw_ef": self.ef, "oversampling": self.oversampling}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Beam | None:
        """The beam ``as_dict`` wrote; None where there is none (an exact search)."""
        if not data.get("hnsw_ef"):
            return None
        oversampling = data.get("oversampling")
        return cls(int(data["hnsw_ef"]), None if oversampling is None else float(oversampling))


# What a collection is searched with before its beam has been chosen: an exact scan.
EXACT: Beam | None = None


@dataclass(frozen=True, slots=True)
class IndexState:
    """How much of a collection its graph covers: searches stay exact until ``indexed`` covers ``points``."""

    points: int
    indexed: int  # vectors in graph-indexed segments
    segments: int
    vector_bytes: int  # points x dim x 4: what the indexing threshold compares with

    @property
    def unindexed_share(self) -> float:
        return 0.0 if not self.points else max(0, self.points - self.indexed) / self.points

    def needs_graph(self, spec: IndexSpec = INDEX_SPEC) -> bool:
        """Large enough that a graph pays (below the threshold an exact scan is as fast)."""
        return self.vector_bytes > spec.indexing_threshold_kb * 1024


@dataclass(frozen=True, slots=True)
class BuildReport:
    points: int
    indexed: int
    seconds: float
    peak_rss_mb: float | None = None  # of the process that built it, where that was a child
    swap_pause_ms: float | None = None  # how long searches waited while the new index came in
    copy_pause_ms: float | None = None  # how long writes waited while the collection was copied
    choice: BeamChoice | None = (
        None  # the beam trial's outcome, where one was asked for and a graph was built
    )


# Collection names become folder names on Qdrant Edge, so they are kept to a safe alphabet.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,199}$")


# --- errors -------------------------------------------------------------------------------------


class VectorStoreError(Exception):
    """Base class of every error this module raises (besides ValueError for caller bugs)."""


class VectorStoreUnavailable(VectorStoreError):
    """The server is down, refused the connection, or timed out: transient, worth a retry."""


class VectorStoreLocked(VectorStoreError):
    """An embedded store's folder is held by another client (another process, or another opener here)."""

    def __init__(self, path: str) -> None:
        self.path = path
        # One line naming the fix: this is what a second `manage.py` process prints instead of a hang.
        super().__init__(
            f"The embedded vector store at {path} is in use by another process; "
            "stop that process or set QDRANT_URL to use a Qdrant server."
        )


class CollectionNotFound(VectorStoreError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"Vector collection {name!r} does not exist.")


class DimensionMismatch(VectorStoreError):
    def __init__(self, name: str, expected: int, got: int) -> None:
        self.name, self.expected, self.got = name, expected, got
        super().__init__(f"Vector collection {name!r} holds {expected}-d vectors, got {got}-d.")


# --- data types ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PointPayload:
    """The facts stored with each image's vector; filters and grouping read them."""

    product_id: int
    sku: str
    category: str
    price: float | None
    in_stock: bool
    model_version: str
    # False once the product left its catalog (a full sync no longer lists it): every search filters
    # such points out at once, before the product and its points are deleted for good.
    active: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.extra)
        data.update(
            product_id=int(self.product_id),
            sku=self.sku,
            category=self.category,
            price=None if self.price is None else float(self.price),
            in_stock=bool(self.in_stock),
            active=bool(self.active),
            model_version=self.model_version,
        )
        return data


@dataclass(frozen=True, slots=True)
class Hit:
    image_id: str
    product_id: int
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """Conditions ANDed together. None (or an empty list) means "no constraint".

    Price bounds are inclusive; a point without a price never matches a price bound. ``active=True``
    leaves out points whose payload says ``active: false`` (points written before the field existed
    count as active); ``active=False`` keeps only those.
    """

    categories: list[str] | None = None
    min_price: float | None = None
    max_price: float | None = None
    in_stock: bool | None = None
    exclude_product_ids: list[int] | None = None
    active: bool | None = None
    # Only these products (the text re-ranking scores a photo's visual candidates and no others).
    product_ids: list[int] | None = None

    def is_empty(self) -> bool:
        return (
            not self.categories
            and self.min_price is None
            and self.max_price is None
            and self.in_stock is None
            and not self.exclude_product_ids
            and self.active is None
            and not self.product_ids
        )


@dataclass(frozen=True, slots=True)
class SparseVector:
    """Term ids and their weights: a text as the text collection stores and queries it."""

    indices: list[int]
    values: list[float]


# A vector as callers hand it over.
VectorLike = Sequence[float] | np.ndarray
PointIn = tuple[str, VectorLike, dict[str, Any] | PointPayload]
SparsePointIn = tuple[str, SparseVector, dict[str, Any]]


# --- helpers shared by the implementations -----------------------------------------------------


def collection_name(model_version: str) -> str:
    """The collection that holds one model version's vectors, e.g. "v3.1-mnv2" -> "images_v3_1-mnv2"."""
    slug = re.sub(r"[^a-z0-9-]+", "_", str(model_version).strip().lower()).strip("_-")
    if not slug:
        raise ValueError(f"model version {model_version!r} gives an empty collection name")
    return validate_name(COLLECTION_PREFIX + slug[: 200 - len(COLLECTION_PREFIX)])


def validate_name(name: str) -> str:
    # Names become folders on Qdrant Edge: reject anything that could escape the store's root.
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"invalid collection or alias name {name!r} (use letters, digits, _ and -)")
    return name


def normalize_id(image_id: Any) -> str:
    """Point ids are image UUIDs, in canonical form, so the same image always maps to the same point."""
    try:
        return str(image_id if isinstance(image_id, uuid.UUID) else uuid.UUID(str(image_id)))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"point id {image_id!r} is not a UUID") from exc


def normalize_ids(image_ids: Iterable[Any]) -> list[str]:
    return [normalize_id(i) for i in image_ids]


def vectors_to_lists(collection: str, vectors: Sequence[VectorLike], dim: int | None) -> list[list[float]]:
    """Check shape and finiteness once per batch (numpy, not per element in Python) and convert."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"vectors must be a 2-d batch, got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise DimensionMismatch(collection, dim, int(arr.shape[1]))
    if not np.isfinite(arr).all():
        raise ValueError("vectors contain NaN or infinity")
    # A zero vector has no direction: cosine similarity is undefined for it.
    if (np.abs(arr).max(axis=1) == 0).any():
        raise ValueError("vectors contain an all-zero vector (cosine similarity is undefined)")
    return arr.tolist()


def vector_to_list(collection: str, vector: VectorLike, dim: int | None) -> list[float]:
    return vectors_to_lists(collection, [vector], dim)[0]


def payload_to_dict(payload: dict[str, Any] | PointPayload) -> dict[str, Any]:
    data = payload.to_dict() if isinstance(payload, PointPayload) else dict(payload)
    # Grouping and product-level deletes depend on an integer product_id on every point.
    pid = data.get("product_id")
    if isinstance(pid, bool) or not isinstance(pid, int | np.integer):
        raise ValueError(f"payload needs an integer product_id, got {pid!r}")
    data["product_id"] = int(pid)
    if data.get("price") is not None:
        price = float(data["price"])
        if not math.isfinite(price):
            raise ValueError(f"price must be finite, got {data['price']!r}")
        data["price"] = price
    return data


def prepare_points(
    collection: str, points: Sequence[PointIn], dim: int | None
) -> list[tuple[str, list[float], dict[str, Any]]]:
    if not points:
        return []
    ids = [normalize_id(p[0]) for p in points]
    vectors = vectors_to_lists(collection, [p[1] for p in points], dim)
    payloads = [payload_to_dict(p[2]) for p in points]
    return list(zip(ids, vectors, payloads, strict=True))


def check_sparse(vector: SparseVector) -> tuple[list[int], list[float]]:
    """Indices unique, each in [0, 2**32), weights finite: the engines reject anything else late
    and differently (Edge mid-batch), so both get the same ValueError here, before any write."""
    indices = [int(i) for i in vector.indices]
    values = [float(v) for v in vector.values]
    if len(indices) != len(values):
        raise ValueError(f"sparse vector has {len(indices)} indices but {len(values)} values")
    if len(set(indices)) != len(indices):
        raise ValueError("sparse vector has repeated indices")
    if any(i < 0 or i >= SPARSE_INDEX_LIMIT for i in indices):
        raise ValueError("sparse vector indices must be in [0, 2**32)")
    if not all(math.isfinite(v) for v in values):
        raise ValueError("sparse vector values contain NaN or infinity")
    return indices, values


def prepare_sparse_points(
    points: Sequence[SparsePointIn],
) -> list[tuple[str, tuple[list[int], list[float]], dict[str, Any]]]:
    return [(normalize_id(pid), check_sparse(vec), payload_to_dict(pl)) for pid, vec, pl in points]


def batched(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    if size < 1:
        raise ValueError("batch size must be >= 1")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def group_best_per_product(
    fetch: Callable[[int, list[int]], list[Hit]], limit: int, overfetch: int
) -> list[Hit]:
    """One hit per product (its best image), best first, for engines without group-by.

    `fetch(n, exclude_product_ids)` returns the top n hits, best first, among points whose product is
    not excluded. Each round excludes the products already found, so a product with many similar
    images cannot crowd out the rest, and no point is read twice: every point of an unseen product
    scored at most the previous round's last hit, so later rounds' products rank after earlier ones
    and each product's first hit in a round is its best image.
    """
    found: dict[int, Hit] = {}
    while len(found) < limit:
        want = (limit - len(found)) * overfetch
        hits = fetch(want, list(found))
        for hit in hits:
            if hit.product_id not in found:
                found[hit.product_id] = hit
                if len(found) == limit:
                    break
        if len(hits) < want:  # exhausted: no more matching points
            break
    # dicts keep insertion order, which is score order by construction.
    return list(found.values())


def merge_exclusions(flt: SearchFilter | None, extra: list[int]) -> SearchFilter | None:
    if not extra:
        return flt
    base = flt or SearchFilter()
    return SearchFilter(
        categories=base.categories,
        min_price=base.min_price,
        max_price=base.max_price,
        in_stock=base.in_stock,
        exclude_product_ids=list(base.exclude_product_ids or []) + list(extra),
        product_ids=base.product_ids,
        active=base.active,
    )


# --- the interface ------------------------------------------------------------------------------


class VectorStore(abc.ABC):
    """One collection per model version; points keyed by image UUID; cosine similarity.

    Every method takes and returns plain Python values. On a server, collection arguments may also be
    an alias (Edge has none).
    """

    @abc.abstractmethod
    def ensure_collection(self, name: str, dim: int) -> None:
        """Create the collection (cosine, payload indexes) if missing; DimensionMismatch if it exists
        with another dimension. Safe to call on every start-up."""

    @abc.abstractmethod
    def collection_exists(self, name: str) -> bool: ...

    @abc.abstractmethod
    def list_collections(self) -> list[str]: ...

    @abc.abstractmethod
    def drop_collection(self, name: str) -> bool:
        """Delete a collection and the aliases pointing at it; False if it did not exist."""

    @abc.abstractmethod
    def upsert(self, collection: str, points: Sequence[PointIn], *, batch_size: int | None = None) -> int:
        """Write (image_id, vector, payload) points in batches; returns how many. Replays are no-ops."""

    @abc.abstractmethod
    def delete(self, collection: str, image_ids: Iterable[str]) -> None: ...

    @abc.abstractmethod
    def delete_by_product(self, collection: str, product_id: int) -> None: ...

    @abc.abstractmethod
    def set_payload(self, collection: str, image_ids: Iterable[str], payload_patch: dict[str, Any]) -> None:
        """Merge `payload_patch` into the points' payloads (keys not named are kept)."""

    @abc.abstractmethod
    def set_payload_by_product(self, collection: str, product_id: int, patch: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def search(
        self,
        collection: str,
        vector: VectorLike,
        limit: int = 10,
        filter: SearchFilter | None = None,
        group_by_product: bool = True,
        *,
        score_threshold: float | None = None,
        beam: Beam | None = EXACT,
    ) -> list[Hit]:
        """Nearest points by cosine similarity, best first; with group_by_product, one hit per
        product (its best image), up to `limit` products. ``beam`` None searches exactly; a Beam
        walks the graph where it covers the collection, and scans exactly what it does not cover yet."""

    # --- text collections: one sparse vector (SPARSE_VECTOR) per point, no dense vector ---------
    # The writes and reads above that take no dense vector (delete, delete_by_product, set_payload*,
    # retrieve without vectors, count, scroll_ids, drop_collection) serve these collections too.

    @abc.abstractmethod
    def ensure_sparse_collection(self, name: str) -> None:
        """Create a text collection (the sparse vector with the IDF modifier, the same payload
        indexes as an image collection) if missing. Safe to call on every start-up."""

    @abc.abstractmethod
    def upsert_sparse(
        self, collection: str, points: Sequence[SparsePointIn], *, batch_size: int | None = None
    ) -> int:
        """Write (point_id, SparseVector, payload) points; returns how many. Replays are no-ops."""

    @abc.abstractmethod
    def search_sparse(
        self,
        collection: str,
        vector: SparseVector,
        limit: int = 10,
        filter: SearchFilter | None = None,
    ) -> list[Hit]:
        """Points by the dot product of their weights with ``vector``'s, each term weighted by its IDF
        in the collection, best first; points sharing no term with the query are left out. An empty
        query finds nothing."""

    @abc.abstractmethod
    def index_state(self, collection: str) -> IndexState:
        """Points, graph-indexed vectors and segments of a collection."""

    @abc.abstractmethod
    def build_index(
        self,
        collection: str,
        spec: IndexSpec = INDEX_SPEC,
        *,
        progress: Callable[[str], None] | None = None,
        trial: BeamTrial | None = None,
    ) -> BuildReport:
        """Apply ``spec`` to the collection and build its graph and quantized vectors, off the
        request path: searches and writes go on meanwhile and stay exact and correct. Blocks the
        calling thread (a job's) until the graph covers the collection; ``progress`` gets log lines.
        With a ``trial``, the beam is chosen on the built graph too (``BuildReport.choice``), where it
        costs the serving process least (beam_trial.py)."""

    @abc.abstractmethod
    def retrieve(
        self, collection: str, image_ids: Iterable[str], with_vectors: bool = False
    ) -> dict[str, tuple[list[float] | None, dict[str, Any]]]:
        """Existing points by id (missing ids are left out). Vectors come back L2-normalised:
        cosine collections store the unit vector."""

    def vectors(
        self, collection: str, image_ids: Sequence[str], batch: int = 512
    ) -> Iterator[tuple[str, np.ndarray, dict[str, Any]]]:
        """(image_id, unit vector as float32, payload) of the points that exist, read ``batch`` ids at a
        time: a whole collection read at once comes back as Python lists, some 30 bytes a float (1280-d
        vectors of 20,000 images: about 0.8 GB)."""
        for chunk in batched(image_ids, batch):
            for image_id, (vector, payload) in self.retrieve(collection, chunk, with_vectors=True).items():
                if vector is not None:
                    yield image_id, np.asarray(vector, dtype=np.float32), payload

    @abc.abstractmethod
    def count(self, collection: str, filter: SearchFilter | None = None) -> int: ...

    @abc.abstractmethod
    def scroll_ids(self, collection: str, batch: int = 1000) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every (image_id, payload) in the collection, page by page, for reconciliation."""

    @abc.abstractmethod
    def set_alias(self, alias: str, collection: str) -> None:
        """Point `alias` at `collection`, atomically replacing any previous target (a server's outside
        readers follow it; Edge records nothing)."""

    @abc.abstractmethod
    def get_alias(self, alias: str) -> str | None: ...

    @abc.abstractmethod
    def delete_alias(self, alias: str) -> bool: ...

    # The format ``snapshot`` writes and ``restore_snapshot`` reads; a snapshot restores only into a
    # store of the same format (a backup taken on one engine is rebuilt on the other instead).
    snapshot_format: str = ""

    @abc.abstractmethod
    def snapshot(self, collection: str, dest_dir: Path) -> Path:
        """Write one file under ``dest_dir`` holding the collection (points, payload indexes and its
        graph where it has one), consistent at one moment while searches go on; returns its path."""

    @abc.abstractmethod
    def restore_snapshot(self, collection: str, snapshot_file: Path) -> None:
        """Create ``collection`` from a file ``snapshot`` wrote; VectorStoreError if it exists already
        or the file is not a snapshot this store can read."""

    @abc.abstractmethod
    def healthcheck(self) -> bool:
        """True if the store answers; never raises."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store (and an embedded store's folder lock). Idempotent."""

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
