"""Search API latency against its bare steps, at 10,000 and 100,000 indexed images (Qdrant Edge, exact).

    .venv/bin/python -m bench.query                          # 10k and 100k images, ~3 minutes
    .venv/bin/python -m bench.query --sizes 10000 --queries 50

What it measures, per catalog size:
  * POST /api/v1/search/ with a real photo (a Grocery Store test-split JPEG), with and without filters,
    and with a product_id ("more like this"), handed to Django's WSGI application in this process the
    way gunicorn hands it a parsed request: the whole Django stack (middleware, DRF parsing and
    throttling, the search service, catalog reads, JSON) but no HTTP server or socket. The multipart
    body is encoded before the clock starts (a client's work). Wall time plus the API's own
    ``timings_ms``. ``--via testclient`` uses Django's test Client instead, which also times its own
    request building and bookkeeping.
  * The same queries' bare steps, in the same run and interleaved query by query (so load from other
    processes hits both alike): ``ml.preprocess.preprocess`` on the bytes, ``LocalEmbedder.embed`` on
    the pixels, ``store.search`` (grouped by product, as the API asks) on the vector.

The catalog: the dataset's 81 web-shop ("iconic") images are real products indexed through the real
path (catalog.services -> on-commit -> eager task -> model -> store). The bulk is synthetic: products
and image rows written in bulk to the database and unit vectors written straight into the vector
store with the payload indexing writes (product_id, sku, category among 40, price, in_stock,
model_version). Synthetic vectors are drawn around the real catalog embeddings (non-negative, like the
model's pooled ReLU features), 3 images per product, so the grouping's over-fetch sees realistic
near-duplicates. Exact search cost does not depend on the values, only on count and dimension.

Runs in a throw-away environment (temporary SQLite, media, models and vector store under
var/bench/); the real bootstrap model (the settings' BOOTSTRAP_BACKBONE at BOOTSTRAP_IMAGE_SIZE) is exported there.
Writes var/bench/query.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from bench.inputs import (
    DEFAULT_DATA,
    DEFAULT_WEIGHTS,
    EXTERNAL_SERVICES,
    REPO,
    embedded_settings,
    missing_inputs,
    weights_value,
)

IMAGES_PER_PRODUCT = 3
CATEGORIES = [f"cat-{i:02d}" for i in range(40)]
LIMIT = 12  # the search page's default
WARMUP = 10  # first calls pay for TF graph tracing, allocator growth and page-cache misses
UPSERT_BATCH = 1000


def _percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "p50": round(statistics.median(s), 2),
        "p95": round(s[min(len(s) - 1, int(0.95 * len(s)))], 2),
        "n": len(s),
    }


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def _setup_django(workdir: Path) -> None:
    """A private embedded environment: nothing of the developer's var/ is read or written."""
    os.environ.update(embedded_settings(workdir))
    for var in EXTERNAL_SERVICES:
        os.environ.pop(var, None)
    (workdir / "static").mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request without it
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _index_real_catalog(data: Path) -> list[int]:
    """The 81 iconic images as products, through the real write path; returns their product ids."""
    from catalog import services
    from catalog.models import IndexStatus, ProductImage
    from ml.grocery import iconic_items

    ids = []
    for i, (path, label) in enumerate(iconic_items(data)):
        product = services.product_create(
            sku=f"GROCERY-{i:03d}",
            title=label.replace("-", " "),
            category=CATEGORIES[i % len(CATEGORIES)],
            price=f"{1 + (i * 7) % 20}.99",
            in_stock=True,
        )
        # Outside a transaction on_commit fires at once and the task runs eagerly (no broker).
        services.product_image_add(
            product=product, data=Path(path).read_bytes(), original_name=Path(path).name
        )
        ids.append(product.pk)
    bad = ProductImage.objects.exclude(index_status=IndexStatus.INDEXED).count()
    if bad:
        raise SystemExit(f"{bad} catalog images failed to index; see the log above")
    return ids


def _grow_synthetic(
    target_points: int, centres: np.ndarray, model_version: int, collection: str, rng: np.random.Generator
) -> dict[str, float]:
    """Add synthetic products, image rows and vectors until the collection holds ``target_points``."""
    from django.db import transaction
    from django.db.models import Max

    from catalog.models import IndexStatus, Product, ProductImage
    from search.vector_store import vector_store

    store = vector_store()
    have = store.count(collection)
    need = target_points - have
    if need <= 0:
        return {"added": 0}
    n_products = -(-need // IMAGES_PER_PRODUCT)
    first_pk = (Product.objects.aggregate(m=Max("pk"))["m"] or 0) + 1
    t0 = time.perf_counter()
    products, images, points = [], [], []
    scale = float(np.mean(centres))  # noise on the features' own scale
    for k in range(n_products):
        pk = first_pk + k
        price = round(1 + (pk * 37) % 500 + 0.99, 2)
        products.append(
            Product(
                pk=pk,
                sku=f"SYN-{pk}",
                title=f"Synthetic product {pk}",
                category=CATEGORIES[pk % len(CATEGORIES)],
                price=price,
                in_stock=pk % 5 != 0,
            )
        )
        base = centres[pk % len(centres)] + rng.normal(0, 0.8 * scale, centres.shape[1])
        payload = {
            "product_id": pk,
            "sku": f"SYN-{pk}",
            "category": CATEGORIES[pk % len(CATEGORIES)],
            "price": price,
            "in_stock": pk % 5 != 0,
            "model_version": str(model_version),
        }
        for j in range(IMAGES_PER_PRODUCT):
            if len(points) >= need:
                break
            image_id = uuid.uuid4()
            digest = f"{pk:032x}{j:032x}"
            images.append(
                ProductImage(
                    id=image_id,
                    product_id=pk,
                    file=f"images/synthetic/{digest}.jpg",  # never read: search only shows its URL
                    sha256=digest,
                    format="JPEG",
                    width=640,
                    height=480,
                    bytes=50_000,
                    display_order=j,
                    index_status=IndexStatus.INDEXED,
                    indexed_model_version=str(model_version),
                )
            )
            vec = np.maximum(base + rng.normal(0, 0.3 * scale, centres.shape[1]), 0).astype(np.float32)
            points.append((str(image_id), vec / np.linalg.norm(vec), payload))
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with transaction.atomic():
        Product.objects.bulk_create(products, batch_size=2000)
        ProductImage.objects.bulk_create(images, batch_size=2000)
    db_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for start in range(0, len(points), UPSERT_BATCH):
        store.upsert(collection, points[start : start + UPSERT_BATCH])
    upsert_s = time.perf_counter() - t0
    assert store.count(collection) == target_points, (store.count(collection), target_points)
    return {
        "added": len(points),
        "generate_s": round(gen_s, 1),
        "db_bulk_s": round(db_s, 1),
        "upsert_s": round(upsert_s, 1),
    }


class WsgiCaller:
    """Hands requests to Django's WSGI application in this process, as a WSGI server would.

    The request body (multipart encoding of the photo) is built before the clock starts: that is the
    client's work, done on the shopper's device. Timed: the WSGI call, Django's middleware, DRF,
    the search, and reading the whole response body.
    """

    def __init__(self) -> None:
        from django.core.handlers.wsgi import WSGIHandler

        self.app = WSGIHandler()

    @staticmethod
    def prepare(path: str, data: dict[str, Any]) -> dict[str, Any]:
        from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

        body = encode_multipart(BOUNDARY, data)
        return {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "CONTENT_TYPE": MULTIPART_CONTENT,
            "CONTENT_LENGTH": str(len(body)),
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.errors": sys.stderr,
            "_body": body,
        }

    def post(self, prepared: dict[str, Any]) -> tuple[int, bytes]:
        import io

        environ = dict(prepared)
        environ["wsgi.input"] = io.BytesIO(environ.pop("_body"))
        status: list[str] = []
        response = self.app(environ, lambda s, headers, exc_info=None: status.append(s))
        try:
            content = b"".join(response)
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()
        return int(status[0].split()[0]), content


class TestClientCaller:
    """Django's test Client: also times building the multipart body and the client's bookkeeping."""

    def __init__(self) -> None:
        from django.test import Client

        self.client = Client()

    @staticmethod
    def prepare(path: str, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return path, data

    def post(self, prepared: tuple[str, dict[str, Any]]) -> tuple[int, bytes]:
        response = self.client.post(*prepared)
        return response.status_code, response.content


def _measure(
    caller: Any,
    queries: list[bytes],
    product_ids: list[int],
    model: Any,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """API and bare steps, interleaved per query; the first WARMUP of each are discarded."""
    from django.conf import settings
    from django.core.files.uploadedfile import SimpleUploadedFile

    from catalog.models import ProductImage
    from ml.preprocess import preprocess
    from search.embedders import embedder_for
    from search.vector_store import SearchFilter, vector_store

    store, embedder = vector_store(), embedder_for(model)
    limits = {"max_bytes": settings.MAX_UPLOAD_BYTES, "max_pixels": settings.MAX_IMAGE_PIXELS}
    series: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        series.setdefault(key, []).append(value)

    def api(data: dict[str, Any], prefix: str, keep: bool) -> dict[str, Any]:
        prepared = caller.prepare("/api/v1/search/", data)
        t0 = time.perf_counter()
        status, content = caller.post(prepared)
        wall = _ms(t0)
        if status != 200:
            raise SystemExit(f"search answered {status}: {content[:300]!r}")
        body = json.loads(content)
        if keep:
            add(f"{prefix}.wall", wall)
            for step, ms in body["timings_ms"].items():
                add(f"{prefix}.{step}", ms)
            add(f"{prefix}.framework", wall - body["timings_ms"]["total"])
            # Inside the service but in no step: the active-model lookup and building the filter.
            steps = sum(ms for step, ms in body["timings_ms"].items() if step != "total")
            add(f"{prefix}.unstepped", body["timings_ms"]["total"] - steps)
        return body

    def api_photo(jpeg: bytes, cats: list[str], keep: bool) -> None:
        photo = {"image": SimpleUploadedFile("q.jpg", jpeg, "image/jpeg"), "limit": LIMIT}
        body = api(photo, "api_image", keep)
        assert len(body["results"]) == LIMIT
        photo = {"image": SimpleUploadedFile("q.jpg", jpeg, "image/jpeg"), "limit": LIMIT}
        api({**photo, "category": ",".join(cats), "in_stock": "true"}, "api_image_filtered", keep)

    def bare_photo(jpeg: bytes, cats: list[str], keep: bool) -> None:
        # The bare steps on the same photo: what the API can at best cost.
        t0 = time.perf_counter()
        pixels = preprocess(jpeg, model.image_size, **limits)
        decode = _ms(t0)
        t0 = time.perf_counter()
        vector = embedder.embed(pixels[None])[0]
        embed = _ms(t0)
        t0 = time.perf_counter()
        hits = store.search(model.collection, vector, LIMIT, None, group_by_product=True)
        search = _ms(t0)
        t0 = time.perf_counter()
        store.search(model.collection, vector, LIMIT, SearchFilter(categories=cats, in_stock=True))
        search_filtered = _ms(t0)
        assert len(hits) == LIMIT
        if keep:
            add("bare_image.decode", decode)
            add("bare_image.embed", embed)
            add("bare_image.search", search)
            add("bare_image.total", decode + embed + search)
            add("bare_image_filtered.search", search_filtered)
            add("bare_image_filtered.total", decode + embed + search_filtered)

    def api_product(pid: int, keep: bool) -> None:
        api({"product_id": pid, "limit": LIMIT}, "api_product", keep)

    def bare_product(pid: int, keep: bool) -> None:
        # "More like this": the product's stored vectors, their mean, a search without the product.
        image_ids = [str(x) for x in ProductImage.objects.filter(product_id=pid).values_list("pk", flat=True)]
        t0 = time.perf_counter()
        found = store.retrieve(model.collection, image_ids, with_vectors=True)
        vector = np.mean(np.stack([np.asarray(v, np.float32) for v, _ in found.values()]), axis=0)
        lookup = _ms(t0)
        t0 = time.perf_counter()
        store.search(model.collection, vector, LIMIT, SearchFilter(exclude_product_ids=[pid]))
        search = _ms(t0)
        if keep:
            add("bare_product.lookup", lookup)
            add("bare_product.search", search)
            add("bare_product.total", lookup + search)

    for i, jpeg in enumerate(queries):
        keep = i >= WARMUP
        cats = [CATEGORIES[i % 40], CATEGORIES[(i * 7 + 3) % 40]]
        pid = product_ids[int(rng.integers(0, len(product_ids)))]
        # Whichever runs second on the same photo finds caches warm (the JPEG bytes, the model's
        # buffers): measured 1.2 ms of embed time at 10k when the bare steps always ran second. So
        # the order alternates, and each side is first half of the time.
        if i % 2 == 0:
            api_photo(jpeg, cats, keep)
            bare_photo(jpeg, cats, keep)
            api_product(pid, keep)
            bare_product(pid, keep)
        else:
            bare_photo(jpeg, cats, keep)
            api_photo(jpeg, cats, keep)
            bare_product(pid, keep)
            api_product(pid, keep)
    return {key: _percentiles(values) for key, values in sorted(series.items())}


def _overheads(m: dict[str, Any]) -> dict[str, float]:
    """API wall time over the bare steps' (medians): Django + DRF + multipart + catalog reads + JSON."""
    out = {}
    for api, bare in (
        ("api_image", "bare_image"),
        ("api_image_filtered", "bare_image_filtered"),
        ("api_product", "bare_product"),
    ):
        out[api] = round(m[f"{api}.wall"]["p50"] / m[f"{bare}.total"]["p50"] - 1, 3)
    return out


def _table(report: dict[str, Any]) -> str:
    rows = [
        f"{'images':>8} {'query':<17} {'API p50':>8} {'API p95':>8} {'decode':>7} {'embed':>7} "
        f"{'search':>7} {'catalog':>8} {'other':>6} {'django':>7} {'bare p50':>9} {'bare p95':>9} {'overhead':>9}"
    ]
    for res in report["results"]:
        m = res["latency_ms"]
        for api, bare, label in (
            ("api_image", "bare_image", "image"),
            ("api_image_filtered", "bare_image_filtered", "image+filters"),
            ("api_product", "bare_product", "product_id"),
        ):
            rows.append(
                f"{res['points']:>8} {label:<17} {m[api + '.wall']['p50']:>8.1f} "
                f"{m[api + '.wall']['p95']:>8.1f} {m[api + '.decode']['p50']:>7.1f} "
                f"{m[api + '.embed']['p50']:>7.1f} {m[api + '.search']['p50']:>7.1f} "
                f"{m[api + '.catalog']['p50']:>8.1f} {m[api + '.unstepped']['p50']:>6.1f} "
                f"{m[api + '.framework']['p50']:>7.1f} "
                f"{m[bare + '.total']['p50']:>9.1f} {m[bare + '.total']['p95']:>9.1f} "
                f"{res['api_overhead_vs_bare'][api]:>+9.0%}"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Grocery Store Dataset folder")
    parser.add_argument(
        "--weights", default=DEFAULT_WEIGHTS, help="BACKBONE_WEIGHTS: 'imagenet' (default) or a weights file"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=150, help="measured queries per size (plus warm-up)")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "query.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--via",
        choices=["wsgi", "testclient"],
        default="wsgi",
        help="wsgi: call the WSGI application with a prepared request (default); testclient: Django's test Client",
    )
    args = parser.parse_args(argv)

    skip = missing_inputs(args.data, args.weights, "test")
    if skip:
        print(skip)
        return 0
    test_dir = args.data / "dataset" / "test"
    rng = np.random.default_rng(args.seed)
    photos = sorted(test_dir.rglob("*.jpg"))
    picks = rng.choice(len(photos), size=min(len(photos), args.queries + WARMUP), replace=False)
    queries = [photos[int(i)].read_bytes() for i in picks]  # read up front: disk I/O is not the API's

    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # The bare steps never read the words on the photo; with re-ranking on, an unclear answer's API
    # search would (about 150 ms), and "API over bare" would time the reading (bench.text and
    # bench.api_speed measure it). Set SEARCH_TEXT_RERANK=true to time it here anyway.
    os.environ.setdefault("SEARCH_TEXT_RERANK", "false")
    with tempfile.TemporaryDirectory(prefix="bench-query-", dir=args.out.parent) as tmp:
        _setup_django(Path(tmp))
        from search.embedders import reset_embedders
        from search.services.model_versions import bootstrap_model_ensure
        from search.vector_store import reset_vector_store, vector_store

        t0 = time.perf_counter()
        model = bootstrap_model_ensure(weights=weights_value(args.weights)).model
        bootstrap_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        real_ids = _index_real_catalog(args.data)
        real_index_s = time.perf_counter() - t0
        store = vector_store()
        found = store.retrieve(model.collection, [str(x) for x in _image_ids(real_ids)], with_vectors=True)
        centres = np.stack([np.asarray(v, np.float32) for v, _ in found.values()])
        report: dict[str, Any] = {
            "benchmark": "search API vs bare steps (Qdrant Edge exact search, in-process SavedModel)",
            "date": time.strftime("%Y-%m-%d"),
            "python": sys.version.split()[0],
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "via": args.via,
            "caller": (WsgiCaller if args.via == "wsgi" else TestClientCaller)
            .__doc__.strip()
            .splitlines()[0],
            "model": {
                "version": model.version,
                "backbone": model.backbone,
                "image_size": model.image_size,
                "embedding_dim": model.embedding_dim,
                "export_s": round(bootstrap_s, 1),
            },
            "real_catalog": {"products": len(real_ids), "index_s": round(real_index_s, 1)},
            "limit": LIMIT,
            "queries_per_size": len(queries) - WARMUP,
            "warmup": WARMUP,
            "results": [],
        }
        caller = WsgiCaller() if args.via == "wsgi" else TestClientCaller()
        for n in sorted(args.sizes):
            t0 = time.perf_counter()
            grow = _grow_synthetic(n, centres, model.version, model.collection, rng)
            from catalog.models import Product

            product_ids = list(Product.objects.values_list("pk", flat=True))
            measured = _measure(caller, queries, product_ids, model, rng)
            res = {
                "points": n,
                "products": len(product_ids),
                "build": grow,
                "latency_ms": measured,
                "api_overhead_vs_bare": _overheads(measured),
                "wall_s": round(time.perf_counter() - t0, 1),
            }
            report["results"].append(res)
            print(
                f"{n:>7} images: API image p50 {measured['api_image.wall']['p50']} ms "
                f"p95 {measured['api_image.wall']['p95']} ms (built in {grow})",
                flush=True,
            )
        report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        report["total_wall_s"] = round(time.perf_counter() - started, 1)
        reset_vector_store()  # close the store before its folder is deleted
        reset_embedders()
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(_table(report))
    print(
        f"\nms; API = wall time of the request ({args.via}); decode/embed/search/catalog = the API's timings_ms; other = service total minus its steps (active-model lookup); django = wall "
        f"minus the service's total; bare = preprocess + LocalEmbedder.embed + store.search (product_id: "
        f"store.retrieve + store.search); overhead = API p50 / bare p50 - 1.\n{report['machine']}, "
        f"load {report['load_average_at_start']} -> {report['load_average_at_end']}; wrote {args.out}"
    )
    return 0


def _image_ids(product_ids: list[int]) -> list[uuid.UUID]:
    from catalog.models import ProductImage

    return list(ProductImage.objects.filter(product_id__in=product_ids).values_list("pk", flat=True))


if __name__ == "__main__":
    raise SystemExit(main())
