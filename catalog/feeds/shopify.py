"""Shopify's product CSV export: one product per ``Handle``.

The export writes a product's rows together: the first carries the product's fields, every row with
variant values (Variant SKU, Variant Price, Option1 Value) is one variant, and rows with only
``Image Src`` add pictures. Mapping:

* sku = Handle (cut to 64); link = ``store_url`` + "/products/" + Handle when a store URL is given
  (exports carry none); title = Title; description = Body (HTML) reduced to its text; brand = Vendor.
* category = Type (the shop's own), else Product Category (Shopify's taxonomy path); both raw in
  attributes, with ``tags`` (a list), ``handle``, ``status`` and ``published``.
* Variants (see ``catalog.feeds.assemble``): price = Variant Price in ``default_currency`` (Shopify
  writes no currency); a Variant Compare At Price above it is the regular price of a sale. In stock
  when the inventory policy is "continue" (sold when out), inventory is not tracked (Variant
  Inventory Tracker empty), or Variant Inventory Qty > 0; with no inventory columns at all, in stock.
  gtin = Variant Barcode; color/size = the value of an option named Color/Colour/Size; all named
  options in ``options`` (Shopify's "Title: Default Title" placeholder left out).
* Images: Image Src rows in Image Position order, then Variant Image URLs not already among them.
* Status draft or archived, or Published false: the product is still yielded, with in_stock False
  and ``attributes["status"]``/``["published"]`` saying why, so a sync can hide it without losing it
  (and without downloading its images again when it is published).
* A handle whose rows reappear after another product's is refused (``duplicate_product``): the
  export never does this, so the file was edited or concatenated and the rows cannot be trusted.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import quote

from catalog.feeds.assemble import ProductBuilder, Variant, VariantRefused
from catalog.feeds.delimited import delimited_rows
from catalog.feeds.errors import FeedFormatError
from catalog.feeds.html_text import html_to_text
from catalog.feeds.image_refs import web_url
from catalog.feeds.prices import Money, PriceError, parse_price
from catalog.feeds.records import FeedError, FeedRecord
from catalog.feeds.text import clean_text, clip, normalise_path
from catalog.field_limits import SKU_MAX

_COLOR = frozenset({"color", "colour"})
_VARIANT_COLUMNS = ("variant sku", "variant price", "option1 value", "option2 value", "option3 value")


@dataclass
class _Product:
    handle: str
    builder: ProductBuilder | None  # None: refused, its remaining rows are skipped
    option_names: list[str] = field(default_factory=list)


def _published(value: str) -> bool | None:
    value = value.strip().lower()
    return {"true": True, "false": False}.get(value)


def _in_stock(row: dict[str, str], columns: set[str]) -> bool:
    if row.get("variant inventory policy", "").strip().lower() == "continue":
        return True
    if "variant inventory tracker" in columns and not row.get("variant inventory tracker", "").strip():
        return True
    quantity = row.get("variant inventory qty", "").strip()
    if not quantity:
        return True
    try:
        return float(quantity) > 0
    except ValueError:
        return False


class _ShopifyReader:
    def __init__(self, *, store_url: str | None, default_currency: str | None) -> None:
        self.store_url = store_url.rstrip("/") if store_url else None
        self.default_currency = default_currency
        self.columns: set[str] = set()
        self.seen: set[str] = set()

    def start(self, row: dict[str, str], line: int, handle: str) -> Generator[FeedRecord, None, _Product]:
        sku = clip(handle, SKU_MAX)
        product = _Product(handle=handle, builder=None)
        if sku in self.seen:
            yield FeedError(
                line,
                "duplicate_product",
                f"rows of handle {handle!r} appear again after other products.",
                sku,
            )
            return product
        self.seen.add(sku)
        title = clean_text(row.get("title"))
        if not title:
            yield FeedError(line, "missing_field", "the product's first row has no Title.", sku)
            return product
        builder = ProductBuilder(sku=sku, position=line)
        product_type = normalise_path(clean_text(row.get("type")))
        product_category = normalise_path(clean_text(row.get("product category")))
        builder.fill(
            title=title,
            description=html_to_text(clean_text(row.get("body (html)"))),
            link=f"{self.store_url}/products/{quote(handle, safe='')}" if self.store_url else "",
            category=product_type or product_category,
            brand=clean_text(row.get("vendor")),
        )
        status = clean_text(row.get("status")).lower() or "active"
        published = _published(row.get("published", ""))
        builder.held_back = status != "active" or published is False
        tags = [clean_text(t) for t in row.get("tags", "").split(",") if clean_text(t)]
        builder.fill_attributes(
            {"handle": handle, "type": product_type, "product_category": product_category, "tags": tags}
        )
        builder.attributes["status"] = status
        if published is not None:
            builder.attributes["published"] = published
        product.builder = builder
        product.option_names = [clean_text(row.get(f"option{n} name")) for n in (1, 2, 3)]
        return product

    def add_row(self, product: _Product, row: dict[str, str], line: int) -> Iterator[FeedRecord]:
        builder = product.builder
        assert builder is not None
        sku = builder.sku
        if src := clean_text(row.get("image src")):
            if web_url(src) is None:
                yield FeedError(
                    line, "invalid_image", f"Image Src {src[:80]!r} is not an http(s) URL; dropped.", sku
                )
            else:
                try:
                    rank = int(row.get("image position", "").strip())
                except ValueError:
                    rank = None
                alt = clean_text(row.get("image alt text"))
                builder.images.add(src, source="image_src", alt=alt, rank=rank)
        if not any(clean_text(row.get(column)) for column in _VARIANT_COLUMNS):
            return
        variant_sku = clean_text(row.get("variant sku")) or None
        who = variant_sku or f"row at line {line}"
        price: Money | None = None
        if text := clean_text(row.get("variant price")):
            try:
                price = parse_price(text, default_currency=self.default_currency)
            except PriceError as exc:
                yield FeedError(line, "invalid_price", f"Variant Price: {exc}.", sku, who)
                return
        regular: Money | None = None
        if (text := clean_text(row.get("variant compare at price"))) and price is not None:
            try:
                compare = parse_price(text, default_currency=price.currency)
            except PriceError as exc:
                yield FeedError(line, "invalid_price", f"Variant Compare At Price ignored: {exc}.", sku, who)
            else:
                if compare.amount > price.amount and compare.currency == price.currency:
                    regular = compare
        options: dict[str, str] = {}
        for n, name in enumerate(product.option_names, start=1):
            value = clean_text(row.get(f"option{n} value"))
            if name and value and not (name.lower() == "title" and value == "Default Title"):
                options[name] = value
        color = next((v for k, v in options.items() if k.lower() in _COLOR), None)
        size = next((v for k, v in options.items() if k.lower() == "size"), None)
        variant = Variant(
            sku=variant_sku,
            price=price,
            regular=regular,
            in_stock=_in_stock(row, self.columns),
            color=color,
            size=size,
            gtin=clean_text(row.get("variant barcode")) or None,
            options=options or None,
        )
        try:
            builder.add_variant(variant)
        except VariantRefused as exc:
            yield FeedError(line, exc.code, exc.message, sku, who)
            return
        if image := clean_text(row.get("variant image")):
            if web_url(image) is None:
                yield FeedError(
                    line,
                    "invalid_image",
                    f"Variant Image {image[:80]!r} is not an http(s) URL; dropped.",
                    sku,
                    who,
                )
            else:
                builder.images.add(image, source="variant_image")

    @staticmethod
    def finish(product: _Product | None) -> Iterator[FeedRecord]:
        if product is not None and product.builder is not None:
            yield product.builder.build()


def parse_shopify_csv(
    stream: BinaryIO, *, store_url: str | None, default_currency: str | None
) -> Iterator[FeedRecord]:
    reader = _ShopifyReader(store_url=store_url, default_currency=default_currency)
    header: list[str] | None = None
    current: _Product | None = None
    rows = 0
    line = 0
    fatal: FeedError | None = None
    try:
        for row in delimited_rows(stream, delimiter=","):
            if header is None:
                if row.problem:
                    fatal = FeedError(
                        row.line, row.code or "bad_row", f"the header row: {row.problem}.", fatal=True
                    )
                    break
                header = [cell.strip().lower() for cell in row.cells]
                if "handle" not in header:
                    fatal = FeedError(
                        row.line, "missing_column",
                        "the header row has no 'Handle' column; is this a Shopify product export?",
                        fatal=True,
                    )  # fmt: skip
                    break
                reader.columns = set(header)
                continue
            rows += 1
            line = row.line
            if row.problem:
                yield FeedError(
                    row.line,
                    row.code or "bad_row",
                    f"{row.problem}.",
                    current.builder.sku if current and current.builder else None,
                )
                continue
            values: dict[str, str] = {}
            for name, cell in zip(header, row.cells, strict=False):
                values.setdefault(name, cell)
            handle = clean_text(values.get("handle"))
            if not handle:
                yield FeedError(row.line, "missing_field", "the row has no Handle.")
                continue
            if current is None or handle != current.handle:
                yield from reader.finish(current)
                current = yield from reader.start(values, row.line, handle)
            if current.builder is not None:
                yield from reader.add_row(current, values, row.line)
    except FeedFormatError as exc:
        fatal = FeedError(1, exc.code, exc.message, fatal=True)
    except OSError as exc:
        fatal = FeedError(
            line + 1, "read_error", f"reading the feed failed after line {line}: {exc}.", fatal=True
        )
    if fatal is None and rows == 0:
        fatal = FeedError(1, "no_items", "the file has no product rows.", fatal=True)
    yield from reader.finish(current)
    if fatal is not None:
        yield fatal
