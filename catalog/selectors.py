"""Every read of the catalog. Return QuerySets (or plain values) so callers can compose them."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from django.db.models import Count, Prefetch, Q, QuerySet

from catalog.models import IndexStatus, Product, ProductImage


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


# What a search result shows of an image and its product, read as plain values: building model
# instances for a dozen hits cost more than the query itself (bench/query.py).
CARD_FIELDS = (
    "id",
    "file",
    "product_id",
    "product__sku",
    "product__title",
    "product__category",
    "product__price",
    "product__currency",
    "product__in_stock",
)


def image_cards(ids: Iterable[UUID | str]) -> dict[str, dict]:
    """``{image id: {field: value}}`` (``CARD_FIELDS``) for the images that still exist, in one query."""
    rows = ProductImage.objects.filter(pk__in=list(ids)).values_list(*CARD_FIELDS)
    return {str(row[0]): dict(zip(CARD_FIELDS, row, strict=True)) for row in rows}


def product_image_ids(*, product_id: int) -> list[str] | None:
    """The product's image ids, ``[]`` for a product without images, ``None`` for no such product."""
    rows = Product.objects.filter(pk=product_id).values_list("images__id", flat=True)
    ids = list(rows)
    if not ids:
        return None
    return [str(i) for i in ids if i is not None]


def image_list(*, product_id: int | None = None, status: str | None = None) -> QuerySet[ProductImage]:
    qs = ProductImage.objects.select_related("product")
    if product_id is not None:
        qs = qs.filter(product_id=product_id)
    if status:
        qs = qs.filter(index_status=status)
    return qs


def index_status_counts() -> dict[str, int]:
    rows = ProductImage.objects.values("index_status").annotate(n=Count("id"))
    counts = {s.value: 0 for s in IndexStatus}
    counts.update({r["index_status"]: r["n"] for r in rows})
    return counts


def categories() -> list[str]:
    return list(
        Product.objects.exclude(category="")
        .order_by("category")
        .values_list("category", flat=True)
        .distinct()
    )
