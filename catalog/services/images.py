"""Adding, deleting and re-indexing product images. Indexing itself is announced, not done here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from catalog import events, image_limits
from catalog.errors import CatalogError
from catalog.field_limits import URL_MAX
from catalog.models import IndexStatus, Product, ProductImage
from catalog.storage import delete_if_unreferenced, release_files_on_commit, sha256_of, write_image
from ml.preprocess import ImageInfo


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
    announce: bool = True,
    source_url: str = "",
) -> ImageAddResult:
    """Validate, store and record one image; ``images_added`` is announced after commit.

    The same bytes on the same product return the existing image (``created=False``): re-imports
    and retried uploads are no-ops. A failure after the file was written removes the file again.
    Bulk callers pass ``announce=False`` and announce once per batch, so the embedder gets a batch.
    ``source_url``: the URL a feed named the image by (the catalog sync matches images by it).
    """
    if info is None:  # callers that validated already (bulk import) pass what they found
        info = image_limits.validate(data)
    digest = sha256_of(data)
    # One round trip for both facts an add needs (an upload's few milliseconds are CPU the embedding
    # worker shares on a small host): whether these bytes are on the product, and its last position.
    facts = product.images.aggregate(top=Max("display_order"), same=Count("pk", filter=Q(sha256=digest)))
    if facts["same"]:
        existing = ProductImage.objects.filter(product=product, sha256=digest).first()
        if existing is not None:
            return ImageAddResult(existing, created=False)
    if display_order is None:
        display_order = 0 if facts["top"] is None else facts["top"] + 1
    name, file_created = write_image(data, digest, info.format)
    try:
        with transaction.atomic():
            image = ProductImage.objects.create(
                product=product,
                file=name,
                sha256=digest,
                original_name=_safe_name(original_name),
                source_url=source_url[:URL_MAX],
                format=info.format,
                width=info.width,
                height=info.height,
                bytes=info.bytes,
                display_order=display_order,
            )
            if announce:
                events.announce(events.images_added, image_ids=[str(image.id)])
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


@dataclass(frozen=True)
class NewImage:
    """One image of a batch for ``product_images_add_many`` (bytes already validated: ``info``)."""

    product: Product
    data: bytes
    info: ImageInfo
    original_name: str = ""
    display_order: int = 0
    source_url: str = ""


def product_images_add_many(*, images: Sequence[NewImage]) -> list[ImageAddResult | None]:
    """``product_image_add`` for a batch (the catalog sync's downloads): one query finds the images
    that exist, one INSERT adds the rest, so a batch costs a few round trips instead of a few per image.
    Nothing is announced (the caller announces the batch). Results are in input order; ``None`` for an
    image whose product no longer exists. If the batch meets a concurrent writer, it is redone one
    image at a time."""
    digests = [sha256_of(image.data) for image in images]
    found = {
        (row.product_id, row.sha256): row
        for row in ProductImage.objects.filter(
            product_id__in={i.product.pk for i in images}, sha256__in=set(digests)
        )
    }
    results: list[ImageAddResult | None] = []
    rows: list[ProductImage] = []
    written: list[str] = []
    try:
        for image, digest in zip(images, digests, strict=True):
            same = found.get((image.product.pk, digest))
            if same is not None:
                results.append(ImageAddResult(same, created=False))
                continue
            name, file_created = write_image(image.data, digest, image.info.format)
            if file_created:
                written.append(name)
            row = ProductImage(
                id=uuid.uuid4(),
                product=image.product,
                file=name,
                sha256=digest,
                original_name=_safe_name(image.original_name),
                source_url=image.source_url[:URL_MAX],
                format=image.info.format,
                width=image.info.width,
                height=image.info.height,
                bytes=image.info.bytes,
                display_order=image.display_order,
            )
            rows.append(row)
            found[(image.product.pk, digest)] = row
            results.append(ImageAddResult(row, created=True))
        with transaction.atomic():
            ProductImage.objects.bulk_create(rows)
    except IntegrityError:
        for name in written:
            delete_if_unreferenced(name)
        return [_add_one(image) for image in images]
    except BaseException:
        for name in written:
            delete_if_unreferenced(name)
        raise
    return results


def _add_one(image: NewImage) -> ImageAddResult | None:
    try:
        return product_image_add(
            product=image.product,
            data=image.data,
            original_name=image.original_name,
            display_order=image.display_order,
            info=image.info,
            announce=False,
            source_url=image.source_url,
        )
    except IntegrityError:  # the product was deleted meanwhile
        return None


def _safe_name(name: str) -> str:
    # Keep a readable original name for people, never used as a path.
    cleaned = "".join(ch for ch in str(name) if ch.isprintable() and ch not in "/\\")
    return cleaned.encode("utf-8", "replace").decode("utf-8", "replace")[-255:]


@transaction.atomic
def product_image_delete(*, image: ProductImage) -> None:
    name = image.file.name
    image_id = str(image.id)
    image.delete()
    events.announce(events.images_removed, image_ids=[image_id])
    release_files_on_commit([name])


def product_image_replace(
    *, image: ProductImage, data: bytes, original_name: str = "", info: ImageInfo | None = None
) -> ImageAddResult:
    """Put a new photo in ``image``'s place: same product, same display order. The old image is deleted
    (its vectors removed and its file released after commit) and the new one indexed after commit, in
    one transaction: a failure leaves the old photo as it was.

    Checked like an upload before anything is written. The old image's own bytes are a no-op
    (``created=False``); bytes another image of the product already has are refused
    (``duplicate_image``), since a product holds each photo once.
    """
    if info is None:
        info = image_limits.validate(data)
    digest = sha256_of(data)
    if digest == image.sha256:
        return ImageAddResult(image, created=False)
    with transaction.atomic():
        current = (
            ProductImage.objects.select_for_update().select_related("product").filter(pk=image.pk).first()
        )
        if current is None:
            raise CatalogError("image_not_found", f"No image with id {image.pk}.")
        twin = ProductImage.objects.filter(product_id=current.product_id, sha256=digest).first()
        if twin is not None:
            raise CatalogError(
                "duplicate_image",
                f"Product {current.product.sku} already has this photo (image {twin.pk}).",
                "image",
            )
        order = current.display_order
        product_image_delete(image=current)
        return product_image_add(
            product=current.product, data=data, original_name=original_name, display_order=order, info=info
        )


@transaction.atomic
def product_images_reindex(*, product_ids: list[int]) -> int:
    """Mark the products' images pending and ask for them to be indexed again (admin action, API)."""
    ids = list(ProductImage.objects.filter(product_id__in=product_ids).values_list("id", flat=True))
    ProductImage.objects.filter(id__in=ids).update(
        index_status=IndexStatus.PENDING,
        last_error="",
        index_attempts=0,
        next_attempt_at=None,
        updated_at=timezone.now(),
    )
    if ids:
        events.announce(events.images_reindex_requested, image_ids=events.ids(ids))
    return len(ids)
