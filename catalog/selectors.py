"""Every read of the catalog. Return QuerySets (or plain values) so callers can compose them."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from django.db import connection
from django.db.models import Count, Field, Min, Model, Prefetch, Q, QuerySet

from catalog.models import DismissedDuplicate, IndexStatus, Product, ProductImage


def product_list(
    *,
    search: str | None = None,
    category: str | None = None,
    in_stock: bool | None = None,
) -> QuerySet[Product]:
    qs = Product.objects.all().prefetch_related(
        Prefetch("images", queryset=ProductImage.objects.order_by("display_order", "created_at"))
    )
    if search:
        qs = qs.filter(Q(sku__icontains=search) | Q(title__icontains=search) | Q(brand__icontains=search))
    if category:
        qs = qs.filter(category=category)
    if in_stock is not None:
        qs = qs.filter(in_stock=in_stock)
    return qs


def product_get(*, product_id: int) -> Product | None:
    return product_list().filter(pk=product_id).first()


def product_get_by_sku(*, sku: str) -> Product | None:
    return Product.objects.filter(sku=sku).first()


def primary_image(product: Product) -> ProductImage | None:
    images = list(product.images.all())
    return min(images, key=lambda i: (i.display_order, i.created_at)) if images else None


def image_get(*, image_id: UUID | str) -> ProductImage | None:
    try:
        return ProductImage.objects.select_related("product").filter(pk=image_id).first()
    except (ValueError, TypeError):
        return None


def images_with_products(*, image_ids: Iterable[UUID | str]) -> list[ProductImage]:
    """The images that exist of ``image_ids``, each with its product (one query): indexing's batch."""
    return list(ProductImage.objects.select_related("product").filter(pk__in=list(image_ids)))


def existing_image_ids(*, image_ids: Iterable[UUID | str]) -> set[str]:
    """Which of ``image_ids`` still exist (an image may be deleted while it is being indexed)."""
    return {
        str(pk) for pk in ProductImage.objects.filter(pk__in=list(image_ids)).values_list("pk", flat=True)
    }


def products_by_id(*, product_ids: Iterable[int]) -> dict[int, Product]:
    return {p.pk: p for p in Product.objects.filter(pk__in=set(product_ids))}


# What a search result shows of an image and its product: the matched image's id and file, its
# product's id and Product.CARD_FIELDS. Search reads these for every query, so they are read with one
# hand-written SQL statement: through the ORM the same read cost 1.4 ms on SQLite (0.6 ms compiling
# the query, the rest building and converting rows), by hand 0.28 ms, 0.14 of it the query itself
# (bench/query.py; the query plan is two primary-key lookups either way).
CARD_KEYS = ("image_id", "file", "product_id", *Product.CARD_FIELDS)


def _column(model: type[Model], name: str) -> str:
    field = model._meta.get_field(name)
    if not isinstance(field, Field):  # a reverse relation or generic key has no column of its own
        raise TypeError(f"{model.__name__}.{name} is not a concrete field")
    return field.column


def _card_columns() -> list[str]:
    return [
        f"i.{_column(ProductImage, ProductImage._meta.pk.name)}",
        f"i.{_column(ProductImage, 'file')}",
        f"i.{_column(ProductImage, 'product')}",
        *(f"p.{_column(Product, name)}" for name in Product.CARD_FIELDS),
    ]


def _tables() -> tuple[str, str]:
    quote = connection.ops.quote_name
    return quote(ProductImage._meta.db_table), quote(Product._meta.db_table)


def _active_column() -> str:
    return f"p.{_column(Product, 'active')}"


def image_cards(ids: Iterable[UUID | str]) -> dict[str, dict[str, Any]]:
    """``{image id: {key: value}}`` (``CARD_KEYS``) for the images that still exist and whose product is
    active, in one query. A product deactivated by a sync leaves results here at once, even while
    its vectors' payloads are still being updated.

    Values are plain: ``price`` a float or None, ``in_stock`` a bool, ids as strings. Ids that are not
    UUIDs match nothing.
    """
    keys = []
    for raw in ids:
        try:
            keys.append(UUID(str(raw)))
        except ValueError:
            continue
    if not keys:
        return {}
    image_table, product_table = _tables()
    prep = ProductImage._meta.pk.get_db_prep_value
    sql = (
        f"SELECT {', '.join(_card_columns())} "
        f"FROM {image_table} i JOIN {product_table} p ON p.id = i.product_id "
        f"WHERE i.id IN ({', '.join(['%s'] * len(keys))}) AND {_active_column()}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [prep(k, connection) for k in keys])
        rows = cursor.fetchall()
    cards = {}
    for row in rows:
        card = dict(zip(CARD_KEYS, row, strict=True))
        card["image_id"] = str(UUID(str(card["image_id"])))  # SQLite gives hex, PostgreSQL a UUID
        price = card["price"]
        card["price"] = float(price) if price is not None else None
        card["in_stock"] = bool(card["in_stock"])
        cards[card["image_id"]] = card
    return cards


def product_image_ids(*, product_id: int) -> list[str] | None:
    """The product's image ids, ``[]`` for a product without images, ``None`` for no such product (or
    one a sync deactivated: it is no longer in the shop)."""
    if not 0 < product_id < 2**63:  # beyond any primary key; SQLite would raise instead of missing
        return None
    image_table, product_table = _tables()
    sql = (
        f"SELECT i.id FROM {product_table} p LEFT JOIN {image_table} i ON i.product_id = p.id "
        f"WHERE p.id = %s AND {_active_column()}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [int(product_id)])
        rows = cursor.fetchall()
    if not rows:
        return None
    return [str(UUID(str(r[0]))) for r in rows if r[0] is not None]


def primary_image_ids(*, product_ids: Iterable[int]) -> dict[int, str]:
    """``{product id: its first image's id}`` (by display order) for the products that have one."""
    rows = (
        ProductImage.objects.filter(product_id__in=[int(p) for p in product_ids])
        .order_by("product_id", "display_order", "id")
        .values_list("product_id", "id")
    )
    first: dict[int, str] = {}
    for product_id, image_id in rows:
        first.setdefault(product_id, str(image_id))
    return first


def image_await_index(*, image_id: UUID | str, timeout_s: float) -> ProductImage | None:
    """The image once it is no longer pending (indexed or failed), or as it is when ``timeout_s`` runs
    out; ``None`` if it was deleted meanwhile. Re-reads the row, from every 50 ms at first to every
    0.5 s, so a quick index is seen quickly and a slow one costs at most a dozen queries a second."""
    deadline = time.monotonic() + max(0.0, timeout_s)
    pause = 0.05
    while True:
        image = image_get(image_id=image_id)
        left = deadline - time.monotonic()
        if image is None or image.index_status != IndexStatus.PENDING or left <= 0:
            return image
        time.sleep(min(pause, left))
        pause = min(pause * 1.5, 0.5)


def image_list(*, product_id: int | None = None, status: str | None = None) -> QuerySet[ProductImage]:
    qs = ProductImage.objects.select_related("product")
    if product_id is not None:
        qs = qs.filter(product_id=product_id)
    if status:
        qs = qs.filter(index_status=status)
    return qs


def index_status_counts(*, image_ids: Iterable[UUID | str] | None = None) -> dict[str, int]:
    """Images by index status (every status present, zeros included), of all or of the given images."""
    qs = ProductImage.objects.all()
    if image_ids is not None:
        qs = qs.filter(pk__in=list(image_ids))
    rows = qs.values("index_status").annotate(n=Count("id"))
    counts = {s.value: 0 for s in IndexStatus}
    counts.update({r["index_status"]: r["n"] for r in rows})
    return counts


class IndexBacklog(NamedTuple):
    pending: int
    failed: int
    oldest_pending_at: datetime | None  # the longest-waiting pending image's updated_at


def image_index_backlog() -> IndexBacklog:
    """Pending and failed image counts and since when the longest-waiting pending image waits, in one
    grouped query that reads only the (index_status, updated_at) index's pending and failed ranges.

    ``updated_at`` is when an image last became pending (an upload, a re-index request) or last
    failed a transient attempt; the sweeper's claims leave it alone.
    """
    rows = (
        ProductImage.objects.filter(index_status__in=[IndexStatus.PENDING, IndexStatus.FAILED])
        .order_by()
        .values("index_status")
        .annotate(n=Count("pk"), oldest=Min("updated_at"))
    )
    by_status = {row["index_status"]: row for row in rows}
    pending = by_status.get(IndexStatus.PENDING, {})
    failed = by_status.get(IndexStatus.FAILED, {})
    return IndexBacklog(pending.get("n", 0), failed.get("n", 0), pending.get("oldest"))


def dismissed_duplicate_partners(*, product_ids: Iterable[int]) -> dict[int, set[int]]:
    """``{product id: the products an editor said it does not duplicate}`` for the given products, in
    one query (both columns of the pair are indexed)."""
    ids = set(product_ids)
    partners: dict[int, set[int]] = {pk: set() for pk in ids}
    rows = DismissedDuplicate.objects.filter(Q(product_low_id__in=ids) | Q(product_high_id__in=ids))
    for low, high in rows.values_list("product_low_id", "product_high_id"):
        if low in partners:
            partners[low].add(high)
        if high in partners:
            partners[high].add(low)
    return partners


def categories() -> list[str]:
    return list(
        Product.objects.exclude(category="")
        .order_by("category")
        .values_list("category", flat=True)
        .distinct()
    )


def single_image_share() -> tuple[float, int]:
    """(share of the active products that have exactly one image, how many active products have one
    or more): whether a catalog is a one-photo-per-product one, in one query."""
    per_product = (
        ProductImage.objects.filter(product__active=True).values("product_id").annotate(n=Count("pk"))
    )
    facts = per_product.aggregate(single=Count("product_id", filter=Q(n=1)), products=Count("product_id"))
    if not facts["products"]:
        return 0.0, 0
    return facts["single"] / facts["products"], facts["products"]
