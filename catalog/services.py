"""Every write to the catalog. Views, admin, commands and tasks call these, never ``save()`` directly."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from catalog import events
from catalog.models import IndexStatus, Product, ProductImage
from catalog.storage import delete_if_unreferenced, sha256_of, write_image
from ml.preprocess import ImageInfo, validate_image

# Changing these changes what a filtered search must see, so the vector payloads follow them.
PAYLOAD_FIELDS = frozenset({"sku", "category", "price", "in_stock"})
EDITABLE_FIELDS = frozenset(
    {"sku", "title", "description", "category", "brand", "price", "currency", "in_stock", "attributes"}
)


class CatalogError(ValueError):
    """A catalog write that cannot be done as asked; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def _clean_price(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        price = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise CatalogError("invalid_parameter", f"price must be a number, got {value!r}.", "price") from exc
    if not price.is_finite() or price < 0 or price >= Decimal("1e10"):
        raise CatalogError("invalid_parameter", "price must be between 0 and 9,999,999,999.99.", "price")
    return price.quantize(Decimal("0.01"))


def _storable_json(value: Any) -> bool:
    # PostgreSQL's jsonb refuses NUL and unpaired surrogates ("unsupported Unicode escape sequence"),
    # which json.loads lets through; caught here they are a 400 instead of a 500 from the database.
    if isinstance(value, str):
        return "\x00" not in value and not any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return all(_storable_json(k) and _storable_json(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_storable_json(v) for v in value)
    return True


def _clean_fields(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - EDITABLE_FIELDS
    if unknown:
        raise CatalogError("invalid_parameter", f"Unknown product field(s): {', '.join(sorted(unknown))}.")
    cleaned = dict(fields)
    if "price" in cleaned:
        cleaned["price"] = _clean_price(cleaned["price"])
    if "sku" in cleaned:
        sku = str(cleaned["sku"]).strip()
        if not sku or len(sku) > 64:
            raise CatalogError("invalid_parameter", "sku must be 1 to 64 characters.", "sku")
        cleaned["sku"] = sku
    if "title" in cleaned:
        title = str(cleaned["title"]).strip()
        if not title:
            raise CatalogError("invalid_parameter", "title must not be empty.", "title")
        cleaned["title"] = title[:300]
    if "currency" in cleaned:
        currency = str(cleaned["currency"] or "EUR").strip().upper()
        if len(currency) != 3 or not currency.isalpha():
            raise CatalogError("invalid_parameter", "currency must be a 3-letter ISO code.", "currency")
        cleaned["currency"] = currency
    if "attributes" in cleaned:
        if cleaned["attributes"] is None:
            cleaned["attributes"] = {}
        if not isinstance(cleaned["attributes"], dict):
            raise CatalogError("invalid_parameter", "attributes must be a JSON object.", "attributes")
        if not _storable_json(cleaned["attributes"]):
            raise CatalogError(
                "invalid_parameter",
                "attributes must not contain NUL characters or unpaired surrogates.",
                "attributes",
            )
    if "in_stock" in cleaned and not isinstance(cleaned["in_stock"], bool):
        raise CatalogError("invalid_parameter", "in_stock must be true or false.", "in_stock")
    for key in ("description", "category", "brand"):
        if key in cleaned:
            cleaned[key] = "" if cleaned[key] is None else str(cleaned[key]).strip()
    return cleaned


@transaction.atomic
def product_create(*, sku: str, title: str, **fields: Any) -> Product:
    cleaned = _clean_fields({"sku": sku, "title": title, **fields})
    if Product.objects.filter(sku=cleaned["sku"]).exists():
        raise CatalogError("duplicate_sku", f"A product with sku {cleaned['sku']!r} already exists.", "sku")
    try:
        with transaction.atomic():
            return Product.objects.create(**cleaned)
    except IntegrityError as exc:  # a concurrent create of the same sku
        raise CatalogError(
            "duplicate_sku", f"A product with sku {cleaned['sku']!r} already exists.", "sku"
        ) from exc


@transaction.atomic
def product_update(*, product: Product, **fields: Any) -> Product:
    cleaned = _clean_fields(fields)
    if "sku" in cleaned and Product.objects.exclude(pk=product.pk).filter(sku=cleaned["sku"]).exists():
        raise CatalogError("duplicate_sku", f"A product with sku {cleaned['sku']!r} already exists.", "sku")
    changed = {k for k, v in cleaned.items() if getattr(product, k) != v}
    if not changed:
        return product
    for key in changed:
        setattr(product, key, cleaned[key])
    product.save(update_fields=[*sorted(changed), "updated_at"])
    if changed & PAYLOAD_FIELDS and product.images.exists():
        events.product_changed(product.pk)
    return product


@transaction.atomic
def product_delete(*, product: Product) -> None:
    images = list(product.images.values_list("id", "file"))
    product.delete()
    events.images_removed(image_id for image_id, _ in images)
    events.files_released(name for _, name in images)


@dataclass(frozen=True)
class ImageAddResult:
    image: ProductImage
    created: bool


def product_image_add(
    *,
    product: Product,
    data: bytes,
    original_name: str = "",
    display_order: int | None = None,
    info: ImageInfo | None = None,
    enqueue: bool = True,
) -> ImageAddResult:
    """Validate, store and record one image; indexing is enqueued after commit.

    The same bytes on the same product return the existing image (``created=False``): re-imports
    and retried uploads are no-ops. A failure after the file was written removes the file again.
    """
    if info is None:  # callers that validated already (bulk import) pass what they found
        info = validate_image(data, max_bytes=settings.MAX_UPLOAD_BYTES, max_pixels=settings.MAX_IMAGE_PIXELS)
    digest = sha256_of(data)
    existing = ProductImage.objects.filter(product=product, sha256=digest).first()
    if existing is not None:
        return ImageAddResult(existing, created=False)
    name, file_created = write_image(data, digest, info.format)
    try:
        with transaction.atomic():
            if display_order is None:
                top = product.images.aggregate(m=Max("display_order"))["m"]
                display_order = 0 if top is None else top + 1
            image = ProductImage.objects.create(
                product=product,
                file=name,
                sha256=digest,
                original_name=_safe_name(original_name),
                format=info.format,
                width=info.width,
                height=info.height,
                bytes=info.bytes,
                display_order=display_order,
            )
            if enqueue:  # bulk callers enqueue once per batch instead
                events.images_added([image.id])
    except IntegrityError:
        # A concurrent add of the same bytes won; return theirs and keep the shared file.
        existing = ProductImage.objects.filter(product=product, sha256=digest).first()
        if existing is None:
            if file_created:
                delete_if_unreferenced(name)
            raise
        return ImageAddResult(existing, created=False)
    except BaseException:
        if file_created:
            delete_if_unreferenced(name)
        raise
    return ImageAddResult(image, created=True)


def _safe_name(name: str) -> str:
    # Keep a readable original name for people, never used as a path.
    cleaned = "".join(ch for ch in str(name) if ch.isprintable() and ch not in "/\\")
    return cleaned.encode("utf-8", "replace").decode("utf-8", "replace")[-255:]


@transaction.atomic
def product_image_delete(*, image: ProductImage) -> None:
    name = image.file.name
    image_id = image.id
    image.delete()
    events.images_removed([image_id])
    events.files_released([name])


@transaction.atomic
def product_images_reindex(*, product_ids: list[int]) -> int:
    """Mark the products' images pending and enqueue them (admin action, API)."""
    ids = list(ProductImage.objects.filter(product_id__in=product_ids).values_list("id", flat=True))
    ProductImage.objects.filter(id__in=ids).update(
        index_status=IndexStatus.PENDING,
        last_error="",
        index_attempts=0,
        next_attempt_at=None,
        updated_at=timezone.now(),
    )
    events.images_added(ids)
    return len(ids)
