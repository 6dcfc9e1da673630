"""Products of one batch of feed records against the catalog: create, update, reactivate or leave alone.

A batch is read with one query (products by sku); only products whose fields differ are written,
through the catalog's services, so an edit that changes a payload field is announced and reaches
the vectors the same way as an editor's. New products are inserted in one statement.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from catalog.errors import CatalogError
from catalog.feeds import FeedProduct
from catalog.models import CatalogSource, Product
from catalog.services.activation import product_reactivate
from catalog.services.products import clean_fields, product_create, product_update, products_create_many
from catalog.services.sync.runs import ErrorRow

# The fields a feed sets; the sku is the key and never changes here.
FEED_FIELDS = tuple(f for f in Product.EDITABLE_FIELDS if f != "sku")


@dataclass
class BatchResult:
    """What a batch did. ``products`` pairs each product written or found with its feed record."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    reactivated: int = 0
    products: list[tuple[Product, FeedProduct]] = field(default_factory=list)
    errors: list[ErrorRow] = field(default_factory=list)


def feed_fields(record: FeedProduct, default_currency: str | None) -> dict[str, Any]:
    """The catalog fields of a feed record, cleaned as the catalog's services clean them."""
    values: dict[str, Any] = {
        "title": record.title,
        "description": record.description,
        "link": record.link,
        "category": record.category,
        "brand": record.brand,
        "price": record.price,
        "in_stock": record.in_stock,
        # Through JSON once, so tuples become lists and the comparison with the stored JSON is exact.
        "attributes": json.loads(json.dumps(record.attributes)),
    }
    currency = record.currency or default_currency
    if currency:
        values["currency"] = currency
    return clean_fields(values)


def apply_batch(
    records: Sequence[FeedProduct], *, source: CatalogSource | None, default_currency: str | None
) -> BatchResult:
    result = BatchResult()
    wanted: dict[str, tuple[FeedProduct, dict[str, Any]]] = {}
    for record in records:
        try:
            wanted[record.sku] = (record, feed_fields(record, default_currency))
        except CatalogError as exc:
            result.errors.append(ErrorRow.about(record, exc.code, f"{exc.field or 'product'}: {exc.message}"))
    existing = {p.sku: p for p in Product.objects.filter(sku__in=list(wanted))}
    new_rows: list[tuple[FeedProduct, dict[str, Any]]] = []
    with transaction.atomic():
        for sku, (record, values) in wanted.items():
            product = existing.get(sku)
            if product is None:
                new_rows.append((record, values))
                continue
            changed = {k: v for k, v in values.items() if getattr(product, k) != v}
            if not changed and product.active:
                # The common case of a re-sync: nothing to write, so not even a savepoint.
                result.unchanged += 1
                result.products.append((product, record))
                continue
            try:
                with transaction.atomic():
                    _update(product, changed, result)
            except CatalogError as exc:
                result.errors.append(ErrorRow.about(record, exc.code, exc.message))
                continue
            result.products.append((product, record))
        _create(new_rows, result)
        if source is not None:  # the product now belongs to this source (a full sync's scope)
            stale = [p.pk for p, _ in result.products if p.source_id != source.pk]
            Product.objects.filter(pk__in=stale).update(source=source)
    return result


def _update(product: Product, changed: dict[str, Any], result: BatchResult) -> None:
    reactivated = product_reactivate(product=product)
    if changed:
        product_update(product=product, **changed)
    if reactivated:
        result.reactivated += 1
    elif changed:
        result.updated += 1
    else:
        result.unchanged += 1


def _create(rows: list[tuple[FeedProduct, dict[str, Any]]], result: BatchResult) -> None:
    if not rows:
        return
    try:
        with transaction.atomic():
            created = products_create_many(rows=[{"sku": r.sku, **values} for r, values in rows])
    except CatalogError:
        # Someone else created one of them meanwhile: one by one, to learn which.
        created = []
        for record, values in rows:
            try:
                with transaction.atomic():
                    created.append(product_create(sku=record.sku, **values))
            except CatalogError as exc:
                result.errors.append(ErrorRow.about(record, exc.code, exc.message))
    by_sku = {record.sku: record for record, _ in rows}
    for product in created:
        result.products.append((product, by_sku[product.sku]))
    result.created += len(created)
