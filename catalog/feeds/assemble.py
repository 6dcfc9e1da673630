"""One product from several feed records: the rules for variants, written once for Merchant Center
item groups and Shopify handles alike.

* title, description, link, category, brand: the first non-empty value in feed order (the first
  record's title, as a rule, since a product's first record carries it).
* price: the lowest price among the variants that have a valid one, in the currency of the first
  such variant (a variant in another currency is refused: "lowest" across currencies means nothing);
  when that variant is on sale its regular price goes to ``attributes["regular_price"]``.
* in_stock: any variant in stock (and the product not held back, e.g. a Shopify draft).
* images: the union of the variants' images in feed order, each URL once.
* ``attributes["variants"]``: one dict per variant in feed order: sku, price, regular_price,
  in_stock, color, size, gtin, mpn (absent values are None; money as "15.00" strings), plus
  ``options`` ({name: value}) where the feed has named options (Shopify).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from catalog.feeds.image_refs import ImageCollector
from catalog.feeds.prices import Money, money_text
from catalog.feeds.records import DESCRIPTION_MAX, MAX_VARIANTS, FeedProduct
from catalog.feeds.text import clip, clip_path, one_line
from catalog.field_limits import BRAND_MAX, CATEGORY_MAX, SKU_MAX, TITLE_MAX


class VariantRefused(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Variant:
    sku: str | None
    price: Money | None
    regular: Money | None = None  # set only while a sale price is in effect
    in_stock: bool = True
    color: str | None = None
    size: str | None = None
    gtin: str | None = None
    mpn: str | None = None
    options: dict[str, str] | None = None

    def compact(self) -> tuple[Any, ...]:
        # What a held group keeps per variant until the feed ends: a tuple of short strings (colour
        # and size names interned, they repeat), not a dict; about a third of the memory.
        return (
            self.sku,
            money_text(self.price.amount) if self.price else None,
            money_text(self.regular.amount) if self.regular else None,
            self.in_stock,
            sys.intern(self.color) if self.color else None,
            sys.intern(self.size) if self.size else None,
            self.gtin,
            self.mpn,
            self.options,
        )


_VARIANT_KEYS = ("sku", "price", "regular_price", "in_stock", "color", "size", "gtin", "mpn")


def _variant_attribute(row: tuple[Any, ...]) -> dict[str, Any]:
    attribute = dict(zip(_VARIANT_KEYS, row[:-1], strict=True))
    if row[-1]:
        attribute["options"] = row[-1]
    return attribute


@dataclass(slots=True)
class ProductBuilder:
    sku: str
    title: str = ""
    description: str = ""
    link: str = ""
    category: str = ""
    brand: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    images: ImageCollector = field(default_factory=ImageCollector)
    held_back: bool = False  # not for sale whatever the variants say (a draft, an unpublished product)
    position: int = 0  # FeedProduct.position / unit
    unit: Literal["line", "item"] = "line"
    _variants: list[tuple[Any, ...]] = field(default_factory=list)
    _currency: str | None = None
    _best: tuple[Decimal, Decimal | None] | None = None
    _any_in_stock: bool = False
    _priced: bool = False

    def fill(self, **values: str) -> None:
        """Set each of title/description/link/category/brand that is still empty."""
        for name, value in values.items():
            if value and not getattr(self, name):
                setattr(self, name, value)

    def fill_attributes(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if value not in (None, "", [], {}) and key not in self.attributes:
                self.attributes[key] = value

    def add_variant(self, variant: Variant) -> None:
        """Take one variant into the product; raises ``VariantRefused`` (the product keeps the others)."""
        if len(self._variants) >= MAX_VARIANTS:
            raise VariantRefused("too_many_variants", f"a product may have at most {MAX_VARIANTS} variants.")
        if variant.price is not None:
            if self._priced and variant.price.currency != self._currency:
                raise VariantRefused(
                    "currency_mismatch",
                    f"price in {variant.price.currency or 'no currency'}, "
                    f"the product's other variants in {self._currency or 'no currency'}.",
                )
            if not self._priced:
                self._priced, self._currency = True, variant.price.currency
            regular = variant.regular.amount if variant.regular else None
            if self._best is None or variant.price.amount < self._best[0]:
                self._best = (variant.price.amount, regular)
        self._any_in_stock = self._any_in_stock or variant.in_stock
        self._variants.append(variant.compact())

    def build(self, *, list_variants: bool = True) -> FeedProduct:
        attributes = dict(self.attributes)
        if self._best is not None and self._best[1] is not None:
            attributes["regular_price"] = money_text(self._best[1])
        if list_variants:
            attributes["variants"] = [_variant_attribute(row) for row in self._variants]
        return FeedProduct(
            sku=clip(self.sku, SKU_MAX),
            title=clip(one_line(self.title), TITLE_MAX),
            description=clip(self.description, DESCRIPTION_MAX),
            link=self.link,
            category=clip_path(one_line(self.category), CATEGORY_MAX),
            brand=clip(one_line(self.brand), BRAND_MAX),
            price=self._best[0] if self._best is not None else None,
            currency=self._currency,
            in_stock=self._any_in_stock and not self.held_back,
            attributes=attributes,
            images=self.images.build(),
            position=self.position,
            unit=self.unit,
        )
