"""What every feed parser yields: ``FeedProduct`` and ``FeedError``, in one definition.

One ``FeedProduct`` is one product page a shopper sees; variants of it (sizes, colours) are listed in
``attributes["variants"]``. A ``FeedError`` is about one record (an item, a row, a line); the parse
goes on after it. Only an error with ``fatal=True`` ends a parse: the feed broke there (truncated,
not XML, refused), and everything after that point is missing, so a caller that removes products
absent from a feed must not do so after a fatal error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

FeedFormat = Literal["merchant_xml", "merchant_tsv", "shopify_csv", "jsonl"]
FEED_FORMATS: tuple[FeedFormat, ...] = ("merchant_xml", "merchant_tsv", "shopify_csv", "jsonl")

# The catalog's column limits are in catalog.field_limits; parsers cut longer values to them instead of
# refusing the record: a long title is still the right product.
# Google Merchant Center's own limit for descriptions; a longer text is a page's worth of copy, not
# something the search page shows, and it bounds what one grouped product holds in memory.
DESCRIPTION_MAX = 5000
# Bounds on one product, so that a hostile or broken feed cannot grow one record without limit.
# Shopify allows 2,048 variants per product and Merchant Center 10 additional images per item.
MAX_VARIANTS = 2048
MAX_IMAGES = 50
# Our own JSONL manifest carries a shop's whole photo set of a product (the Grocery Store catalog has
# up to 71 photos of one product), so its cap is higher; it is still a cap.
MANIFEST_MAX_IMAGES = 500


@dataclass(frozen=True)
class FeedImage:
    """One picture of a product, in page order.

    ``url_or_path`` is an ``http(s)://`` URL, or (only from a JSONL manifest parsed with
    ``allow_local_images=True``) the resolved absolute path of a file inside the manifest's folder.
    ``source`` names the feed field it came from: ``image_link``, ``additional_image_link``,
    ``image_src``, ``variant_image`` or ``manifest``.
    """

    url_or_path: str
    position: int
    alt: str = ""
    source: str = ""

    @property
    def is_url(self) -> bool:
        return self.url_or_path.startswith(("http://", "https://"))


@dataclass(frozen=True)
class FeedProduct:
    """One product, normalised and cut to the catalog's limits.

    ``price`` is the price a shopper pays now (a sale price in effect replaces the regular price,
    which then sits in ``attributes["regular_price"]``), rounded to cents. ``currency`` is an ISO 4217
    code, or None when the feed names none (Shopify exports never do; pass ``default_currency``).
    Money inside ``attributes`` is a decimal string ("15.00") in the product's currency, so the
    attributes stay JSON.
    """

    sku: str
    title: str
    description: str = ""
    link: str = ""
    category: str = ""
    brand: str = ""
    price: Decimal | None = None
    currency: str | None = None
    in_stock: bool = True
    attributes: dict[str, Any] = field(default_factory=dict)
    images: tuple[FeedImage, ...] = ()
    # Where the product starts in the feed (its line, or its item for XML; a group's first item), so
    # a problem met later (a refused field, an unreadable image) can name it; 0 when not known. Not
    # part of the product's value: the same product read from another spot of the feed is equal.
    position: int = field(default=0, compare=False)
    unit: Literal["line", "item"] = field(default="line", compare=False)


@dataclass(frozen=True)
class FeedError:
    """A problem with one record, or (``fatal``) the point where the feed broke.

    ``position`` is a 1-based line number (``unit="line"``: text formats, and XML syntax errors) or
    item number (``unit="item"``: the n-th item or entry of an XML feed). ``sku`` is the sku of the
    product the record belongs to, when known; ``variant`` is the item id or variant sku when the
    error concerns one variant of a grouped product (the product itself may still be emitted, with
    the other variants). Whether the product came out at all is visible in the stream: it is there
    as a ``FeedProduct`` or it is not.
    """

    position: int
    code: str
    message: str
    sku: str | None = None
    variant: str | None = None
    unit: Literal["line", "item"] = "line"
    fatal: bool = False

    def __str__(self) -> str:
        who = (
            f" (sku {self.sku}" + (f", variant {self.variant})" if self.variant else ")") if self.sku else ""
        )
        return f"{self.unit} {self.position}{who}: {self.code}: {self.message}"


FeedRecord = FeedProduct | FeedError
