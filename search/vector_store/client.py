"""qdrant-client: a Qdrant server in production (QDRANT_URL), its local mode (path / ":memory:") in tests.

Local mode runs the same client calls the server path makes, which is why the contract tests use it;
it is pure Python (a filtered query over 100k points took ~1.8 s here), so never a production store.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from .base import (
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
    PointIn,
    SearchFilter,
    SparsePointIn,
    SparseVector,
    VectorLike,
    VectorStore,
    VectorStoreError,
    VectorStoreLocked,
    VectorStoreUnavailable,
    batched,
    check_sparse,
    normalize_id,
    normalize_ids,
    prepare_points,
    prepare_sparse_points,
    validate_name,
    vector_to_list,
)
from .beam_trial import BeamTrial, run_trial

# A build on the server: how often to ask whether it is done, and to say it is still going.
BUILD_POLL_S = 2.0
BUILD_LOG_EVERY_S = 30.0
_NOT_FOUND_RE = re.compile(r"Collection .* (not found|doesn't exist)", re.IGNORECASE)


class QdrantClientVectorStore(VectorStore):
    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        path: str | Path | None = None,
        location: str | None = None,
        timeout: int = 10,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if sum(x is not None for x in (url, path, location)) != 1:
            raise ValueError("give exactly one of url, path or location")
        self.batch_size = batch_size
        self._where = url or str(path or location)
        # Snapshots are files moved over HTTP, which qdrant-client has no call for.
        self._url, self._api_key, self._timeout = url, api_key, timeout
        self._local = url is None
        try:
            if url is not None:
                # check_compatibility would make a network call (and log a warning) in the constructor;
                # healthcheck() is where the web process asks whether the server answers.
                self._client = QdrantClient(
                    url=url, api_key=api_key, timeout=timeout, check_compatibility=False
                )
            elif path is not None:
                self._client = QdrantClient(path=str(path))
            else:
                self._client = QdrantClient(location=location)
        except RuntimeError as exc:
            if "already accessed" in str(exc):
                raise VectorStoreLocked(str(Path(path).absolute()) if path else self._where) from None
            raise VectorStoreError(str(exc)) from exc
        self._closed = False

    # --- error mapping --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, collection: str | None = None, dim: int | None = None) -> Iterator[None]:
        try:
            yield
        except VectorStoreError:
            raise
        except (ResponseHandlingException, httpx.TransportError) as exc:
            # Connection refused, DNS, timeouts: qdrant-client wraps httpx's errors in these.
            raise VectorStoreUnavailable(
                f"Qdrant at {self._where} is unavailable: {_root_cause(exc)}"
            ) from exc
        except UnexpectedResponse as exc:
            text = _response_text(exc)
            if exc.status_code == 404 and collection is not None:
                raise CollectionNotFound(collection) from exc
            if exc.status_code in (502, 503, 504):
                raise VectorStoreUnavailable(f"Qdrant at {self._where}: {exc.status_code} {text}") from exc
            self._raise_dim_mismatch(collection, dim, exc)
            raise VectorStoreError(f"Qdrant at {self._where}: {exc.status_code} {text}") from exc
        except ValueError as exc:
            # Local mode raises ValueError for server-side 404s and bad input.
            if collection is not None and _NOT_FOUND_RE.search(str(exc)):
                raise CollectionNotFound(collection) from exc
            self._raise_dim_mismatch(collection, dim, exc)
            raise
        except RuntimeError as exc:
            if "closed" in str(exc):
                raise VectorStoreError("the vector store is closed") from exc
            raise

    def _raise_dim_mismatch(self, collection: str | None, dim: int | None, exc: Exception) -> None:
        # Only on the error path: ask the collection its size rather than parse each engine's message
        # (local mode fails inside numpy on a wrong-sized query).
        if collection is None or dim is None:
            return
        try:
            expected = self._dim_of(collection)
        except Exception:
            return
        if expected is not None and expected != dim:
            raise DimensionMismatch(collection, expected, dim) from exc

    def _dim_of(self, name: str) -> int | None:
        vectors = self._client.get_collection(name).config.params.vectors
        if isinstance(vectors, models.VectorParams):
            return int(vectors.size)
        if isinstance(vectors, dict) and "" in vectors:
            return int(vectors[""].size)
        return None

    # --- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._client.close()

    def healthcheck(self) -> bool:
        if self._closed:
            return False
        try:
            self._client.get_collections()
            return True
        except Exception:
            return False

    # --- collections ----------------------------------------------------------------------------

    def _create_if_missing(self, name: str, config: dict[str, Any]) -> None:
        if not self._client.collection_exists(name):
            try:
                self._client.create_collection(name, **config)
            except (UnexpectedResponse, ValueError) as exc:
                # Another process created it between our check and our create: fine, verify below.
                if not self._client.collection_exists(name):
                    raise VectorStoreError(f"could not create collection {name!r}: {exc}") from exc

    def ensure_collection(self, name: str, dim: int) -> None:
        validate_name(name)
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dimension must be a positive int, got {dim!r}")
        with self._errors(name):
            self._create_if_missing(name, collection_config(dim, INDEX_SPEC))
            existing = self._dim_of(name)
            if existing is not None and existing != dim:
                raise DimensionMismatch(name, existing, dim)
            self._ensure_field_indexes(name)

    def ensure_sparse_collection(self, name: str) -> None:
        validate_name(name)
        with self._errors(name):
            self._create_if_missing(name, sparse_collection_config(INDEX_SPEC))
            self._ensure_field_indexes(name)

    def _ensure_field_indexes(self, name: str) -> None:
        info = self._client.get_collection(name)
        have = set((info.payload_schema or {}).keys())
        with warnings.catch_warnings():
            # Local mode warns that payload indexes have no effect there; the call is still the
            # server path's call, which is the point of testing against local mode.
            warnings.simplefilter("ignore", UserWarning)
            for field_name, field in INDEXED_FIELDS.items():
                if field_name not in have:
                    self._client.create_payload_index(
                        name, field_name, field_schema=field_index_params(field, INDEX_SPEC), wait=True
                    )

    def collection_exists(self, name: str) -> bool:
        validate_name(name)
        with self._errors():
            if self._client.collection_exists(name):
                return True
            # The server resolves aliases in data calls but collection_exists checks real names only.
            return self.get_alias(name) is not None

    def list_collections(self) -> list[str]:
        with self._errors():
            return sorted(c.name for c in self._client.get_collections().collections)

    def drop_collection(self, name: str) -> bool:
        validate_name(name)
        with self._errors(name):
            if not self._client.collection_exists(name):
                return False
            # Qdrant removes the collection's aliases with it; do it explicitly so local mode agrees.
            ops: list[Any] = [
                models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=a.alias_name))
                for a in self._client.get_aliases().aliases
                if a.collection_name == name
            ]
            if ops:
                self._client.update_collection_aliases(change_aliases_operations=ops)
            return bool(self._client.delete_collection(name))

    # --- writes ---------------------------------------------------------------------------------

    def upsert(self, collection: str, points: Sequence[PointIn], *, batch_size: int | None = None) -> int:
        prepared = prepare_points(collection, points, None)
        if not prepared:
            return 0
        dim = len(prepared[0][1])
        with self._errors(collection, dim):
            for chunk in batched(prepared, batch_size or self.batch_size):
                structs = [models.PointStruct(id=pid, vector=vec, payload=pl) for pid, vec, pl in chunk]
                # wait=True: the caller marks the image indexed only after the write is applied.
                self._client.upsert(collection, points=structs, wait=True)
        return len(prepared)

    def upsert_sparse(
        self, collection: str, points: Sequence[SparsePointIn], *, batch_size: int | None = None
    ) -> int:
        prepared = prepare_sparse_points(points)
        if not prepared:
            return 0
        with self._errors(collection):
            for chunk in batched(prepared, batch_size or self.batch_size):
                structs = [
                    models.PointStruct(
                        id=pid,
                        vector={SPARSE_VECTOR: models.SparseVector(indices=vec[0], values=vec[1])},
                        payload=pl,
                    )
                    for pid, vec, pl in chunk
                ]
                self._client.upsert(collection, points=structs, wait=True)
        return len(prepared)

    def delete(self, collection: str, image_ids: Iterable[str]) -> None:
        ids: list[models.ExtendedPointId] = list(normalize_ids(image_ids))  # the client's id type
        with self._errors(collection):
            if not ids:
                self._require(collection)
                return
            self._client.delete(collection, points_selector=models.PointIdsList(points=ids), wait=True)

    def delete_by_product(self, collection: str, product_id: int) -> None:
        with self._errors(collection):
            selector = models.FilterSelector(filter=_product_filter(product_id))
            self._client.delete(collection, points_selector=selector, wait=True)

    def set_payload(self, collection: str, image_ids: Iterable[str], payload_patch: dict[str, Any]) -> None:
        ids: list[models.ExtendedPointId] = list(normalize_ids(image_ids))  # the client's id type
        with self._errors(collection):
            if not ids or not payload_patch:
                self._require(collection)
                return
            self._client.set_payload(collection, payload=dict(payload_patch), points=ids, wait=True)

    def set_payload_by_product(self, collection: str, product_id: int, patch: dict[str, Any]) -> None:
        with self._errors(collection):
            if not patch:
                self._require(collection)
                return
            self._client.set_payload(
                collection, payload=dict(patch), points=_product_filter(product_id), wait=True
            )

    def _require(self, collection: str) -> None:
        # No-op writes still report a missing collection, the same as Edge.
        self._client.get_collection(collection)

    # --- reads ----------------------------------------------------------------------------------

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
        query = vector_to_list(collection, vector, None)
        params: models.SearchParams | None = search_params(beam)
        qfilter = _to_filter(filter)
        with self._errors(collection, len(query)):
            if limit <= 0:
                self._require(collection)
                return []
            if self._local:
                # Local mode scans exactly and warns that search_params do nothing; the call stays the
                # server path's call, which is what the contract tests are for.
                params = None
            if group_by_product:
                result = self._client.query_points_groups(
                    collection,
                    query=query,
                    group_by="product_id",
                    group_size=1,
                    limit=limit,
                    query_filter=qfilter,
                    search_params=params,
                    score_threshold=score_threshold,
                    with_payload=True,
                )
                return [_to_hit(g.hits[0]) for g in result.groups if g.hits]
            response = self._client.query_points(
                collection,
                query=query,
                limit=limit,
                query_filter=qfilter,
                search_params=params,
                score_threshold=score_threshold,
                with_payload=True,
            )
            return [_to_hit(p) for p in response.points]

    def search_sparse(
        self,
        collection: str,
        vector: SparseVector,
        limit: int = 10,
        filter: SearchFilter | None = None,
    ) -> list[Hit]:
        indices, values = check_sparse(vector)
        with self._errors(collection):
            if limit <= 0 or not indices:
                self._require(collection)
                return []
            response = self._client.query_points(
                collection,
                query=models.SparseVector(indices=indices, values=values),
                using=SPARSE_VECTOR,
                limit=limit,
                query_filter=_to_filter(filter),
                with_payload=True,
            )
        # A point sharing no term scores 0 (the server leaves it out; say so for every engine).
        return [_to_hit(p) for p in response.points if p.score > 0]

    # --- the index ------------------------------------------------------------------------------

    def index_state(self, collection: str) -> IndexState:
        with self._errors(collection):
            info = self._client.get_collection(collection)
            dim = self._dim_of(collection) or 0
        points = int(info.points_count or 0)
        return IndexState(
            points=points,
            indexed=int(info.indexed_vectors_count or 0),
            segments=int(info.segments_count or 0),
            vector_bytes=points * dim * 4,
        )

    def build_index(
        self,
        collection: str,
        spec: IndexSpec = INDEX_SPEC,
        *,
        progress: Callable[[str], None] | None = None,
        trial: BeamTrial | None = None,
    ) -> BuildReport:
        """A server builds in its own process: switch indexing on with the spec, then wait for green.

        Collections are created with indexing off (bulk fills are cheaper unindexed, and searches
        stay exact); once on, the server also indexes later segments by itself.
        """
        log = progress or (lambda line: None)
        started = time.monotonic()
        # on_disk_payload is fixed at creation on a server; the rest is updated.
        config = collection_config(0, spec, indexing=True)
        with self._errors(collection):
            self._client.update_collection(
                collection,
                optimizers_config=config["optimizers_config"],
                hnsw_config=config["hnsw_config"],
                quantization_config=config["quantization_config"],
                vectors_config={"": models.VectorParamsDiff(on_disk=spec.vectors_on_disk)},
            )
            last_log = started
            while True:
                info = self._client.get_collection(collection)
                if self._local or info.status == models.CollectionStatus.GREEN:
                    break
                if time.monotonic() - last_log >= BUILD_LOG_EVERY_S:
                    last_log = time.monotonic()
                    log(f"{collection}: {info.indexed_vectors_count}/{info.points_count} vectors indexed")
                time.sleep(BUILD_POLL_S)
        state = self.index_state(collection)
        # The exact searches of the trial run on the server too: nothing of it loads this process.
        choice = run_trial(self, collection, trial) if trial is not None and state.indexed else None
        return BuildReport(
            points=state.points, indexed=state.indexed, seconds=time.monotonic() - started, choice=choice
        )

    def retrieve(
        self, collection: str, image_ids: Iterable[str], with_vectors: bool = False
    ) -> dict[str, tuple[list[float] | None, dict[str, Any]]]:
        ids = normalize_ids(image_ids)
        with self._errors(collection):
            if not ids:
                self._require(collection)
                return {}
            records = self._client.retrieve(collection, ids=ids, with_payload=True, with_vectors=with_vectors)
        return {
            normalize_id(r.id): (_plain_vector(r.vector) if with_vectors else None, dict(r.payload or {}))
            for r in records
        }

    def count(self, collection: str, filter: SearchFilter | None = None) -> int:
        with self._errors(collection):
            return int(self._client.count(collection, count_filter=_to_filter(filter), exact=True).count)

    def scroll_ids(self, collection: str, batch: int = 1000) -> Iterator[tuple[str, dict[str, Any]]]:
        offset: Any = None
        while True:
            with self._errors(collection):
                records, offset = self._client.scroll(
                    collection, limit=batch, offset=offset, with_payload=True, with_vectors=False
                )
            for r in records:
                yield normalize_id(r.id), dict(r.payload or {})
            if offset is None or not records:
                return

    # --- snapshots (the server's snapshot API) ---------------------------------------------------

    snapshot_format = "qdrant-snapshot"

    def _http(self) -> httpx.Client:
        if self._url is None:
            raise VectorStoreError("snapshots need a Qdrant server; qdrant-client's local mode has none")
        headers = {"api-key": self._api_key} if self._api_key else {}
        # A snapshot of a large collection takes minutes to write and to move: no read or write limit.
        timeout = httpx.Timeout(self._timeout, read=None, write=None)
        return httpx.Client(base_url=self._url.rstrip("/"), headers=headers, timeout=timeout)

    def snapshot(self, collection: str, dest_dir: Path) -> Path:
        with self._http() as http:
            real = self.get_alias(collection) or validate_name(collection)
            with self._errors(collection):
                made = self._client.create_snapshot(collection_name=real, wait=True)
            if made is None:
                raise VectorStoreError(f"Qdrant at {self._where} made no snapshot of {real!r}")
            dest = Path(dest_dir) / f"{real}.snapshot"
            partial = dest.with_name(dest.name + ".partial")
            try:
                with (
                    self._errors(collection),
                    http.stream("GET", f"/collections/{real}/snapshots/{made.name}") as r,
                ):
                    if r.status_code != 200:
                        raise VectorStoreError(f"Qdrant at {self._where}: snapshot download {r.status_code}")
                    with open(partial, "wb") as fh:
                        for chunk in r.iter_bytes(1 << 20):
                            fh.write(chunk)
                os.replace(partial, dest)
            finally:
                partial.unlink(missing_ok=True)
                # The server keeps every snapshot on its own disk until told otherwise.
                with contextlib.suppress(Exception):
                    self._client.delete_snapshot(collection_name=real, snapshot_name=made.name, wait=True)
        return dest

    def restore_snapshot(self, collection: str, snapshot_file: Path) -> None:
        validate_name(collection)
        with self._http() as http:
            with self._errors(collection):
                if self._client.collection_exists(collection):
                    raise VectorStoreError(f"vector collection {collection!r} exists already; drop it first")
            # Uploaded, not recovered from a location: the server need not see the backup's disk.
            with self._errors(collection), open(snapshot_file, "rb") as fh:
                r = http.post(
                    f"/collections/{collection}/snapshots/upload",
                    params={"priority": "snapshot", "wait": "true"},
                    files={"snapshot": (Path(snapshot_file).name, fh, "application/octet-stream")},
                )
            if r.status_code >= 400:
                raise VectorStoreError(
                    f"Qdrant at {self._where}: snapshot upload {r.status_code} {r.text[:200]}"
                )

    # --- aliases --------------------------------------------------------------------------------

    def set_alias(self, alias: str, collection: str) -> None:
        validate_name(alias)
        validate_name(collection)
        with self._errors(collection):
            if not self._client.collection_exists(collection):
                raise CollectionNotFound(collection)
            ops: list[Any] = []
            # The server rejects deleting an alias that does not exist, which would fail the whole
            # (atomic) batch, so delete only an existing one. Delete + create in ONE call: readers of
            # the alias never see it missing or pointing at a half-state.
            if self.get_alias(alias) is not None:
                ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
            ops.append(
                models.CreateAliasOperation(
                    create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)
                )
            )
            self._client.update_collection_aliases(change_aliases_operations=ops)

    def get_alias(self, alias: str) -> str | None:
        validate_name(alias)
        with self._errors():
            for a in self._client.get_aliases().aliases:
                if a.alias_name == alias:
                    return a.collection_name
        return None

    def delete_alias(self, alias: str) -> bool:
        if self.get_alias(alias) is None:
            return False
        with self._errors():
            op = models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
            self._client.update_collection_aliases(change_aliases_operations=[op])
        return True


# --- conversions --------------------------------------------------------------------------------


def collection_config(dim: int, spec: IndexSpec, *, indexing: bool = False) -> dict[str, Any]:
    """The IndexSpec in qdrant-client's terms (the one translation for the server): create_collection's
    keyword arguments. Indexing starts off (threshold 0) unless ``indexing``; build_index turns it on."""
    quantization = None
    if spec.quantization == "int8":
        quantization = models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(
                type=models.ScalarType.INT8, quantile=spec.quantile, always_ram=True
            )
        )
    elif spec.quantization is not None:
        raise ValueError(f"unknown quantization {spec.quantization!r}")
    return {
        "vectors_config": models.VectorParams(
            size=dim, distance=models.Distance.COSINE, on_disk=spec.vectors_on_disk
        ),
        "hnsw_config": models.HnswConfigDiff(
            m=spec.m,
            ef_construct=spec.ef_construct,
            full_scan_threshold=spec.full_scan_threshold_kb,
            max_indexing_threads=spec.build_threads,
        ),
        "quantization_config": quantization,
        "optimizers_config": models.OptimizersConfigDiff(
            indexing_threshold=spec.indexing_threshold_kb if indexing else 0
        ),
        "on_disk_payload": spec.payload_on_disk,
    }


def sparse_collection_config(spec: IndexSpec) -> dict[str, Any]:
    """A text collection in qdrant-client's terms: no dense vector, one sparse vector with IDF."""
    return {
        "vectors_config": {},
        "sparse_vectors_config": {
            SPARSE_VECTOR: models.SparseVectorParams(
                index=models.SparseIndexParams(on_disk=False), modifier=models.Modifier.IDF
            )
        },
        "on_disk_payload": spec.payload_on_disk,
    }


def field_index_params(field: FieldIndex, spec: IndexSpec) -> Any:
    """A payload index in qdrant-client's terms (``on_disk``, as the collection's other placements)."""
    on_disk = spec.payload_indexes_on_disk
    if field.kind == "keyword":
        return models.KeywordIndexParams(
            type=models.KeywordIndexType.KEYWORD, on_disk=on_disk, enable_hnsw=field.graph_links
        )
    if field.kind == "float":
        return models.FloatIndexParams(
            type=models.FloatIndexType.FLOAT, on_disk=on_disk, enable_hnsw=field.graph_links
        )
    if field.kind == "bool":
        return models.BoolIndexParams(
            type=models.BoolIndexType.BOOL, on_disk=on_disk, enable_hnsw=field.graph_links
        )
    if field.kind == "integer":
        return models.IntegerIndexParams(
            type=models.IntegerIndexType.INTEGER,
            lookup=True,
            range=field.ranged,
            on_disk=on_disk,
            enable_hnsw=field.graph_links,
        )
    raise ValueError(f"unknown payload index kind {field.kind!r}")


def search_params(beam: Beam | None) -> models.SearchParams:
    if beam is None:
        return models.SearchParams(exact=True)
    if beam.oversampling is None:
        quantization = models.QuantizationSearchParams(ignore=True)
    else:
        quantization = models.QuantizationSearchParams(rescore=True, oversampling=float(beam.oversampling))
    return models.SearchParams(hnsw_ef=int(beam.ef), quantization=quantization)


def _product_filter(product_id: int) -> models.Filter:
    return models.Filter(
        must=[models.FieldCondition(key="product_id", match=models.MatchValue(value=int(product_id)))]
    )


def _to_filter(flt: SearchFilter | None) -> models.Filter | None:
    if flt is None or flt.is_empty():
        return None
    must: list[Any] = []
    must_not: list[Any] = []
    if flt.categories:
        must.append(
            models.FieldCondition(key="category", match=models.MatchAny(any=[str(c) for c in flt.categories]))
        )
    if flt.min_price is not None or flt.max_price is not None:
        rng = models.Range(
            gte=None if flt.min_price is None else float(flt.min_price),
            lte=None if flt.max_price is None else float(flt.max_price),
        )
        must.append(models.FieldCondition(key="price", range=rng))
    if flt.in_stock is not None:
        must.append(models.FieldCondition(key="in_stock", match=models.MatchValue(value=bool(flt.in_stock))))
    if flt.active is True:  # "not marked inactive": points without the field stay in
        must_not.append(models.FieldCondition(key="active", match=models.MatchValue(value=False)))
    elif flt.active is False:
        must.append(models.FieldCondition(key="active", match=models.MatchValue(value=False)))
    if flt.exclude_product_ids:
        ids = [int(p) for p in flt.exclude_product_ids]
        must_not.append(models.FieldCondition(key="product_id", match=models.MatchAny(any=ids)))
    if flt.product_ids:
        keep = [int(p) for p in flt.product_ids]
        must.append(models.FieldCondition(key="product_id", match=models.MatchAny(any=keep)))
    return models.Filter(must=must or None, must_not=must_not or None)


def _plain_vector(vector: Any) -> list[float] | None:
    if vector is None:
        return None
    if isinstance(vector, dict):
        vector = vector.get("", next(iter(vector.values()), None))
    return [float(x) for x in vector] if vector is not None else None


def _to_hit(point: Any) -> Hit:
    payload = dict(point.payload or {})
    return Hit(
        image_id=normalize_id(point.id),
        product_id=int(payload.get("product_id", -1)),
        score=float(point.score),
        payload=payload,
    )


def _root_cause(exc: BaseException) -> str:
    source = getattr(exc, "source", None) or exc.__cause__ or exc
    return f"{type(source).__name__}: {source}".splitlines()[0]


def _response_text(exc: UnexpectedResponse) -> str:
    try:
        return str(exc.structured().get("status", {}).get("error", ""))[:300]
    except Exception:
        return (exc.content or b"")[:300].decode("utf-8", "replace")
