"""Google Merchant Center items to products, for the XML and the tab-separated forms alike.

Mapping (attribute names as in Google's product data specification):

* ``id`` -> sku of a lone item; ``item_group_id`` -> sku of the product its items make together
  (variants: see ``catalog.feeds.assemble``). Items of one group may be anywhere in the feed.
* ``title``, ``link``, ``brand`` -> the same fields; ``description`` -> description (HTML, which
  shop plugins often copy in, is reduced to its text).
* ``product_type`` (the shop's own path "A > B > C") -> category, else ``google_product_category``
  when it is a path; a numeric Google category id is kept in attributes only (mapping ids to names
  needs Google's taxonomy file). Both raw values go to attributes.
* ``price`` -> price and currency; a valid ``sale_price`` in the same currency, lower than the price,
  whose ``sale_price_effective_date`` window (if given) contains the parse's ``now``, becomes the
  price, the regular one going to ``attributes["regular_price"]``. An upcoming or ended sale is
  ignored (the feed's next sync picks it up), so the price is always the one a shopper pays now.
* ``availability``: in_stock (also the old "in stock") -> in_stock True; out_of_stock, preorder,
  backorder (and the old "available for order") -> False, since none can be shipped now; the value
  is kept in ``attributes["availability"]`` of a lone item (a group's variants each carry their
  in_stock). Missing -> True (the catalog's default).
* ``image_link`` then every ``additional_image_link`` -> images (http(s) URLs only).
* ``condition``, ``custom_label_0``..``custom_label_4``, ``gtin``, ``mpn``, ``color``, ``size``
  -> attributes (for a group, gtin/mpn/color/size are per variant in ``attributes["variants"]``).

Rejections (the item is left out, a FeedError says why): no id, no title on a lone item, an id seen
before, a price that cannot be read (``invalid_price``). Kept with a FeedError: a bad sale price or
window, an unknown availability (then out of stock), a bad image URL or link (dropped).

Memory: lone items stream through. Each group is held, as a ``ProductBuilder``, from its first item
to the end of the feed (a later item may still join it): per variant a tuple of short strings, per
image one URL string, about 1.1 KB per held item with 3 images. Plus the set of item ids seen, for
duplicates (about 100 bytes an id). Measured with ``python -m bench.feeds`` (docs/benchmarks.md) on
100,000 items with 3 images each: a third of them variants in groups of 2-6 spread over the feed, peak
RSS of the whole process 72 MB (25 of them the interpreter and imports); every item in a group,
141 MB.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from catalog.feeds.assemble import ProductBuilder, Variant, VariantRefused
from catalog.feeds.html_text import html_to_text
from catalog.feeds.image_refs import web_url
from catalog.feeds.prices import Money, PriceError, parse_price, parse_sale_window, sale_in_effect
from catalog.feeds.records import FeedError, FeedRecord
from catalog.feeds.text import clean_text, clip, normalise_path
from catalog.field_limits import SKU_MAX, URL_MAX

Fields = dict[str, list[str]]

_IN_STOCK = {"in_stock": True, "out_of_stock": False, "preorder": False, "backorder": False}
_OLD_AVAILABILITY = {
    "in stock": "in_stock",
    "out of stock": "out_of_stock",
    "available for order": "backorder",
}
_ATTRIBUTE_FIELDS = ("condition",) + tuple(f"custom_label_{n}" for n in range(5))


def field_name(name: str) -> str:
    """A Merchant attribute name as a header or tag writes it -> its canonical form:
    "g:image_link", "image link", "Image_Link" -> "image_link"."""
    name = name.strip().lower().removeprefix("g:")
    return "_".join(name.replace("-", " ").split())


def split_image_list(value: str) -> list[str]:
    """A comma-separated list of image URLs (the text form of a repeated attribute). Commas inside a
    URL (image CDNs use them in transformations: "w_100,h_100") stay: a new URL starts only where a
    part starts with a scheme."""
    urls: list[str] = []
    for part in value.split(","):
        stripped = part.strip()
        if not urls or stripped.lower().startswith(("http://", "https://")) or not stripped:
            urls.append(stripped)
        else:
            urls[-1] += "," + part
    return [u.strip() for u in urls if u.strip()]


def description_text(value: str) -> str:
    value = clean_text(value)
    if "<" in value or "&" in value:
        return html_to_text(value)
    return "\n".join(" ".join(line.split()) for line in value.splitlines() if line.strip())


@dataclass
class _Item:
    id: str
    group: str | None
    title: str
    description: str
    link: str
    category: str
    brand: str
    attributes: dict[str, object]
    availability: str
    variant: Variant
    images: list[tuple[str, str]]


class MerchantAssembler:
    """Feed it each item's fields in feed order (``add``), then ``finish``; both yield records."""

    def __init__(self, *, unit: Literal["line", "item"], default_currency: str | None, now: datetime) -> None:
        self.unit: Literal["line", "item"] = unit
        self.default_currency = default_currency
        self.now = now
        self._ids: set[str] = set()
        self._lone_skus: set[str] = set()
        self._groups: dict[str, tuple[int, ProductBuilder]] = {}

    def _error(
        self, position: int, code: str, message: str, sku: str | None, variant: str | None = None
    ) -> FeedError:
        return FeedError(position, code, message, sku=sku, variant=variant, unit=self.unit)

    def add(self, fields: Fields, position: int) -> Iterator[FeedRecord]:
        def first(name: str) -> str:
            return clean_text(next((v for v in fields.get(name, ()) if v.strip()), ""))

        item_id = clip(first("id"), SKU_MAX)
        group = clip(first("item_group_id"), SKU_MAX) or None
        sku = group or item_id or None
        variant_id = item_id if group else None
        if not item_id:
            yield self._error(position, "missing_field", "the item has no id.", sku)
            return
        if item_id in self._ids:
            yield self._error(
                position, "duplicate_id", f"id {item_id!r} appears earlier in the feed.", sku, variant_id
            )
            return
        self._ids.add(item_id)
        title = first("title")
        if not title and not group:
            yield self._error(position, "missing_field", "the item has no title.", sku)
            return

        price: Money | None = None
        if text := first("price"):
            try:
                price = parse_price(text, default_currency=self.default_currency)
            except PriceError as exc:
                yield self._error(position, "invalid_price", f"price: {exc}.", sku, variant_id)
                return
        regular: Money | None = None
        if (text := first("sale_price")) and price is not None:
            try:
                sale = parse_price(text, default_currency=price.currency)
                window_text = first("sale_price_effective_date")
                window = parse_sale_window(window_text) if window_text else None
            except PriceError as exc:
                yield self._error(position, "invalid_price", f"sale_price ignored: {exc}.", sku, variant_id)
            else:
                if sale.currency != price.currency:
                    yield self._error(
                        position,
                        "invalid_price",
                        "sale_price ignored: its currency differs from price's.",
                        sku,
                        variant_id,
                    )
                elif sale.amount < price.amount and sale_in_effect(window, self.now):
                    price, regular = sale, price

        availability = first("availability").lower()
        availability = _OLD_AVAILABILITY.get(availability, availability).replace(" ", "_")
        in_stock = True
        if availability:
            if availability in _IN_STOCK:
                in_stock = _IN_STOCK[availability]
            else:
                in_stock = False
                yield self._error(
                    position, "invalid_availability",
                    f"availability {availability!r} is not in_stock, out_of_stock, preorder or backorder; taken as out of stock.",
                    sku, variant_id,
                )  # fmt: skip

        link = first("link")
        if link and (len(link) > URL_MAX or web_url(link) is None):
            yield self._error(
                position,
                "invalid_link",
                f"link {link[:80]!r} is not an http(s) URL; dropped.",
                sku,
                variant_id,
            )
            link = ""

        images: list[tuple[str, str]] = []
        candidates = [("image_link", u) for u in fields.get("image_link", ())[:1]]
        candidates += [
            ("additional_image_link", u)
            for v in fields.get("additional_image_link", ())
            for u in split_image_list(v)
        ]
        for source, value in candidates:
            value = clean_text(value)
            if not value:
                continue
            if web_url(value) is None:
                yield self._error(
                    position,
                    "invalid_image",
                    f"{source} {value[:80]!r} is not an http(s) URL; dropped.",
                    sku,
                    variant_id,
                )
            else:
                images.append((value, source))

        product_type = normalise_path(first("product_type"))
        google_category = normalise_path(first("google_product_category"))
        category = product_type or ("" if google_category.isdigit() else google_category)
        attributes: dict[str, object] = {
            "product_type": product_type,
            "google_product_category": google_category,
        }
        attributes.update({name: first(name) for name in _ATTRIBUTE_FIELDS})
        variant = Variant(
            sku=item_id,
            price=price,
            regular=regular,
            in_stock=in_stock,
            color=first("color") or None,
            size=first("size") or None,
            gtin=first("gtin") or None,
            mpn=first("mpn") or None,
        )
        item = _Item(
            id=item_id,
            group=group,
            title=title,
            description=description_text(first("description")),
            link=link,
            category=category,
            brand=first("brand"),
            attributes=attributes,
            availability=availability,
            variant=variant,
            images=images,
        )
        if group is None:
            yield from self._lone(item, position)
        else:
            yield from self._join(item, position)

    def _fill(self, builder: ProductBuilder, item: _Item) -> None:
        builder.fill(
            title=item.title,
            description=item.description,
            link=item.link,
            category=item.category,
            brand=item.brand,
        )
        builder.fill_attributes(item.attributes)
        for url, source in item.images:
            builder.images.add(url, source=source)

    def _lone(self, item: _Item, position: int) -> Iterator[FeedRecord]:
        builder = ProductBuilder(sku=item.id, position=position, unit=self.unit)
        self._fill(builder, item)
        v = item.variant
        builder.fill_attributes(
            {
                "availability": item.availability,
                "color": v.color,
                "size": v.size,
                "gtin": v.gtin,
                "mpn": v.mpn,
            }
        )
        builder.add_variant(v)
        self._lone_skus.add(item.id)
        yield builder.build(list_variants=False)

    def _join(self, item: _Item, position: int) -> Iterator[FeedRecord]:
        assert item.group is not None
        if item.group not in self._groups:
            self._groups[item.group] = (
                position,
                ProductBuilder(sku=item.group, position=position, unit=self.unit),
            )
        builder = self._groups[item.group][1]
        try:
            builder.add_variant(item.variant)
        except VariantRefused as exc:
            yield self._error(position, exc.code, exc.message, item.group, item.id)
            return
        self._fill(builder, item)

    def finish(self) -> Iterator[FeedRecord]:
        """The groups, in the order of their first items. Call once, also after a fatal error: the
        groups read so far are what the feed could give."""
        groups, self._groups = self._groups, {}
        for sku in list(groups):
            position, builder = groups.pop(sku)  # each group's memory goes once it is built
            if sku in self._lone_skus:
                yield self._error(
                    position, "duplicate_sku", f"item_group_id {sku!r} is also the id of a lone item.", sku
                )
            elif not builder.title:
                yield self._error(position, "missing_field", "no item of the group has a title.", sku)
            else:
                yield builder.build()
