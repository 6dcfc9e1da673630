"""Our own JSON Lines manifest (what `manage.py import_catalog` reads), with ``link`` and with
images given as ``http(s)://`` URLs or as paths relative to the manifest's folder.

A line is all or nothing: any bad field, a bad image reference included, rejects it with a
FeedError. Local paths are read only when the caller allows it (``allow_local_images``, with the
manifest's folder as ``base_dir``): a manifest fetched from a URL names images by URL alone, so it
can never make the server read its own files. Prices may be JSON numbers (read exactly, as decimals)
or strings like "15.00 EUR"; ``currency`` defaults to the caller's ``default_currency``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, BinaryIO

from catalog.feeds.errors import FeedFormatError, LocalImageRejected
from catalog.feeds.image_refs import ImageCollector, looks_like_url, resolve_local_image, web_url
from catalog.feeds.prices import CENT, PRICE_LIMIT, PriceError, parse_price
from catalog.feeds.records import DESCRIPTION_MAX, MANIFEST_MAX_IMAGES, FeedError, FeedProduct, FeedRecord
from catalog.feeds.text import clean_text, clip, clip_path, decoded_lines, normalise_path, one_line
from catalog.field_limits import BRAND_MAX, CATEGORY_MAX, SKU_MAX, TITLE_MAX, URL_MAX

MANIFEST_FIELDS = frozenset(
    {
        "sku",
        "title",
        "description",
        "category",
        "brand",
        "price",
        "currency",
        "in_stock",
        "attributes",
        "images",
        "link",
    }
)


class _Rejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _storable(value: Any) -> bool:
    # PostgreSQL's jsonb refuses NUL and unpaired surrogates, which json.loads lets through.
    if isinstance(value, str):
        return "\x00" not in value and not any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True


def _text(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Rejected("invalid_field", f"{name} must be a string.")
    return clean_text(value)


def _currency(row: dict[str, Any], default: str | None) -> str | None:
    value = row.get("currency")
    if value is None:
        return default
    if not isinstance(value, str) or len(value.strip()) != 3 or not value.strip().isalpha():
        raise _Rejected("invalid_field", "currency must be a 3-letter ISO 4217 code.")
    return value.strip().upper()


def _price(row: dict[str, Any], currency: str | None) -> tuple[Decimal | None, str | None]:
    value = row.get("price")
    if value is None or value == "":
        return None, currency
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise _Rejected("invalid_price", "price must be a number or a string like '15.00 EUR'.")
    if isinstance(value, str):
        try:
            money = parse_price(value, default_currency=currency)
        except PriceError as exc:
            raise _Rejected("invalid_price", f"price: {exc}.") from exc
        if "currency" in row and row["currency"] is not None and money.currency != currency:
            raise _Rejected("invalid_price", f"price is in {money.currency} but currency says {currency}.")
        return money.amount, money.currency
    amount = Decimal(value)
    if not amount.is_finite() or amount < 0 or amount >= PRICE_LIMIT:
        raise _Rejected("invalid_price", "price must be between 0 and 9,999,999,999.99.")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP), currency


def _images(row: dict[str, Any], base_dir: Path | None, allow_local: bool) -> ImageCollector:
    images = row.get("images", [])
    if not isinstance(images, list) or not all(isinstance(i, str) and i.strip() for i in images):
        raise _Rejected("invalid_field", "images must be a list of URLs or file paths.")
    if len(images) > MANIFEST_MAX_IMAGES:
        raise _Rejected("invalid_field", f"at most {MANIFEST_MAX_IMAGES} images per product.")
    collector = ImageCollector(limit=MANIFEST_MAX_IMAGES)
    for reference in images:
        reference = reference.strip()
        if looks_like_url(reference):
            if web_url(reference) is None:
                raise _Rejected("invalid_image", f"{reference[:80]}: only http(s) URLs can name images.")
            collector.add(reference, source="manifest")
            continue
        if not allow_local or base_dir is None:
            raise _Rejected(
                "local_images_disabled",
                f"{reference[:80]}: this manifest may name images only by http(s) URL, not by file path.",
            )
        try:
            path = resolve_local_image(base_dir, reference)
        except LocalImageRejected as exc:
            raise _Rejected(exc.code, exc.message) from exc
        collector.add(str(path), source="manifest")
    return collector


def _product(
    row: dict[str, Any], base_dir: Path | None, allow_local: bool, default_currency: str | None
) -> FeedProduct:
    unknown = set(row) - MANIFEST_FIELDS
    if unknown:
        raise _Rejected("unknown_field", f"unknown field(s): {', '.join(sorted(unknown))}.")
    for required in ("sku", "title"):
        if not isinstance(row.get(required), str) or not clean_text(row[required]):
            raise _Rejected("missing_field", f"{required} is required and must be a non-empty string.")
    currency = _currency(row, default_currency)
    price, currency = _price(row, currency)
    in_stock = row.get("in_stock", True)
    if not isinstance(in_stock, bool):
        raise _Rejected("invalid_field", "in_stock must be true or false.")
    attributes = row.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise _Rejected("invalid_field", "attributes must be a JSON object.")
    if not _storable(attributes):
        raise _Rejected("invalid_field", "attributes must not contain NUL characters or unpaired surrogates.")
    link = _text(row, "link")
    if link and (len(link) > URL_MAX or web_url(link) is None):
        raise _Rejected("invalid_link", f"link {link[:80]!r} is not an http(s) URL.")
    return FeedProduct(
        sku=clip(clean_text(row["sku"]), SKU_MAX),
        title=clip(one_line(clean_text(row["title"])), TITLE_MAX),
        description=clip(_text(row, "description"), DESCRIPTION_MAX),
        link=link,
        category=clip_path(normalise_path(one_line(_text(row, "category"))), CATEGORY_MAX),
        brand=clip(one_line(_text(row, "brand")), BRAND_MAX),
        price=price,
        currency=currency,
        in_stock=in_stock,
        attributes=_json_ready(attributes),
        images=_images(row, base_dir, allow_local).build(),
    )


def _json_ready(value: Any) -> Any:
    # Fractions were read as Decimal to keep prices exact; in attributes they go back to JSON floats.
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def parse_manifest(
    stream: BinaryIO, *, base_dir: Path | None, allow_local_images: bool, default_currency: str | None
) -> Iterator[FeedRecord]:
    seen: set[str] = set()
    lines = 0
    last = 0
    fatal: FeedError | None = None
    try:
        for line in decoded_lines(stream, "the manifest"):
            last = line.number
            if line.problem:
                lines += 1
                yield FeedError(line.number, "invalid_encoding", f"{line.problem}.")
                continue
            if not line.text.strip():
                continue
            lines += 1
            sku: str | None = None
            try:
                try:
                    row = json.loads(line.text, parse_float=Decimal)
                except json.JSONDecodeError as exc:
                    raise _Rejected(
                        "invalid_json", f"not valid JSON ({exc.msg} at column {exc.colno})."
                    ) from exc
                except RecursionError as exc:
                    raise _Rejected("invalid_json", "the JSON is nested too deeply.") from exc
                if not isinstance(row, dict):
                    raise _Rejected("invalid_json", "each line must be a JSON object.")
                if isinstance(row.get("sku"), str):
                    sku = clip(clean_text(row["sku"]), SKU_MAX) or None
                product = replace(
                    _product(row, base_dir, allow_local_images, default_currency), position=line.number
                )
                if product.sku in seen:
                    raise _Rejected("duplicate_sku", f"sku {product.sku!r} appears on an earlier line.")
                seen.add(product.sku)
                yield product
            except _Rejected as exc:
                yield FeedError(line.number, exc.code, exc.message, sku)
    except FeedFormatError as exc:
        fatal = FeedError(1, exc.code, exc.message, fatal=True)
    except OSError as exc:
        fatal = FeedError(
            last + 1, "read_error", f"reading the manifest failed after line {last}: {exc}.", fatal=True
        )
    if fatal is None and lines == 0:
        fatal = FeedError(1, "no_items", "the manifest has no lines.", fatal=True)
    if fatal is not None:
        yield fatal
