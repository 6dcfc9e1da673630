"""The vector store: the ONLY code in the project that imports `qdrant_client` or `qdrant_edge`.

Plain Python values in and out, nothing Django. One interface (`VectorStore`), two implementations:

* `EdgeVectorStore(root_path)`: Qdrant Edge, Qdrant's engine in-process, one shard per collection
  under `<root>/<collection>/`; the embedded default. Exact search by default. No aliases (no reader
  outside this process could see one): its `set_alias` records nothing. One opener per root folder
  (others get `VectorStoreLocked`).
* `QdrantClientVectorStore(url=..., api_key=...)`: a Qdrant server; `path=` / `location=":memory:"`
  give qdrant-client's local mode, used by the contract tests.

`open_vector_store(url=..., api_key=..., path=...)` picks one: a URL means a server, else Edge at path.
`vector_store()` is this process's one store, opened from Django settings (process.py, the only module
here that reads settings); `reset_vector_store()` closes it.

Interface (on a server, collection arguments may be an alias; point ids are image UUID strings):
    ensure_collection(name, dim)                      idempotent; cosine; IndexSpec; payload indexes on product_id,
                                                      category, price, in_stock, active, model_version;
                                                      DimensionMismatch if it exists with another dim
    upsert(collection, [(image_id, vector, payload)], batch_size=None) -> int   replays are no-ops
    delete(collection, image_ids); delete_by_product(collection, product_id)
    set_payload(collection, image_ids, patch); set_payload_by_product(collection, product_id, patch)
    search(collection, vector, limit, filter: SearchFilter|None, group_by_product=True,
           score_threshold=None, beam=None) -> list[Hit]   one hit per product (its best image), best
                                                      first; beam None is exact, a Beam walks the graph
    index_state(collection) -> IndexState             points, graph-indexed vectors, segments
    build_index(collection, spec=INDEX_SPEC, progress=None) -> BuildReport   graph + int8 vectors built off
                                                      the request path (Edge: a child process on a copy)
    ensure_sparse_collection(name)                    a text collection: one sparse vector per point
                                                      (SPARSE_VECTOR, IDF modifier), same payload indexes
    upsert_sparse(collection, [(point_id, SparseVector, payload)]) -> int
    search_sparse(collection, SparseVector, limit, filter) -> list[Hit]   IDF-weighted dot product
    retrieve(collection, image_ids, with_vectors=False) -> {image_id: (unit vector|None, payload)}
    count(collection, filter=None) -> int; scroll_ids(collection, batch=1000) -> iter of (id, payload)
    list_collections(); collection_exists(name); drop_collection(name) -> bool
    set_alias(alias, collection); get_alias(alias) -> str|None; delete_alias(alias) -> bool
    snapshot(collection, dest_dir) -> Path             one file, consistent at one moment (backups);
    restore_snapshot(collection, file)                 the collection again, from it (same snapshot_format)
    healthcheck() -> bool; close()  (also a context manager)

Errors: VectorStoreError > VectorStoreUnavailable (server down, refused, timeout), VectorStoreLocked
(embedded folder held elsewhere; one-line message naming the fix), CollectionNotFound,
DimensionMismatch. Caller bugs (a non-UUID id, a NaN or zero vector, a payload without an integer
product_id) raise ValueError.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .base import (
    ALIAS,
    COLLECTION_PREFIX,
    DEFAULT_BATCH_SIZE,
    EXACT,
    INDEX_SPEC,
    INDEXED_FIELDS,
    SPARSE_VECTOR,
    Beam,
    BuildReport,
    CollectionNotFound,
    DimensionMismatch,
    FieldIndex,
    Hit,
    IndexSpec,
    IndexState,
    PointPayload,
    SearchFilter,
    SparseVector,
    VectorStore,
    VectorStoreError,
    VectorStoreLocked,
    VectorStoreUnavailable,
    collection_name,
)
from .beam_trial import BeamChoice, BeamTrial, run_trial
from .edge import EdgeVectorStore
from .process import reset_vector_store, vector_store

if TYPE_CHECKING:
    from .client import QdrantClientVectorStore

__all__ = [
    "ALIAS",
    "COLLECTION_PREFIX",
    "DEFAULT_BATCH_SIZE",
    "EXACT",
    "INDEXED_FIELDS",
    "INDEX_SPEC",
    "Beam",
    "BeamChoice",
    "BeamTrial",
    "BuildReport",
    "CollectionNotFound",
    "DimensionMismatch",
    "EdgeVectorStore",
    "FieldIndex",
    "Hit",
    "IndexSpec",
    "IndexState",
    "PointPayload",
    "QdrantClientVectorStore",
    "SPARSE_VECTOR",
    "SearchFilter",
    "SparseVector",
    "VectorStore",
    "VectorStoreError",
    "VectorStoreLocked",
    "VectorStoreUnavailable",
    "collection_name",
    "open_vector_store",
    "reset_vector_store",
    "run_trial",
    "vector_store",
]


def __getattr__(name: str) -> Any:
    # qdrant-client takes ~1.8 s to import (measured here); the embedded default never needs it.
    if name == "QdrantClientVectorStore":
        from .client import QdrantClientVectorStore

        return QdrantClientVectorStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_vector_store(
    *,
    url: str | None = None,
    api_key: str | None = None,
    path: str | os.PathLike[str] | None = None,
    timeout: int = 10,
    flush_interval_s: float = 0.0,
) -> VectorStore:
    """A Qdrant server when `url` is given, else the embedded Qdrant Edge store at `path`."""
    if url:
        from .client import QdrantClientVectorStore

        return QdrantClientVectorStore(url=url, api_key=api_key or None, timeout=timeout)
    if path is None:
        raise ValueError("open_vector_store needs url (a Qdrant server) or path (the embedded store)")
    return EdgeVectorStore(path, flush_interval_s=flush_interval_s)
