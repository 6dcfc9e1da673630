"""Products and their images. An image's UUID is also its point id in the vector store."""

from __future__ import annotations

import uuid

from django.db import models

from catalog.field_limits import BRAND_MAX, CATEGORY_MAX, CURRENCY_LEN, SKU_MAX, TITLE_MAX, URL_MAX


class Product(models.Model):
    # The fields an editor, the API or an import may set; every writer and reader of product fields
    # (services, admin, API serializers, the manifest import) takes the list from here.
    EDITABLE_FIELDS = (
        "sku",
        "title",
        "description",
        "category",
        "brand",
        "price",
        "currency",
        "in_stock",
        "attributes",
        "link",
    )
    # What a search result shows of its product (the hit's "product" object, besides id and URLs).
    CARD_FIELDS = ("sku", "title", "category", "price", "currency", "in_stock", "link")

    sku = models.CharField(max_length=SKU_MAX, unique=True)
    title = models.CharField(max_length=TITLE_MAX)
    description = models.TextField(blank=True, default="")
    category = models.CharField(max_length=CATEGORY_MAX, blank=True, default="", db_index=True)
    brand = models.CharField(max_length=BRAND_MAX, blank=True, default="")
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=CURRENCY_LEN, default="EUR")
    in_stock = models.BooleanField(default=True, db_index=True)
    attributes = models.JSONField(default=dict, blank=True)
    # The product's page in the shop (a feed's `link`): search results link shoppers there.
    link = models.URLField(max_length=URL_MAX, blank=True, default="")
    # Set by the duplicate check when another product's image is nearly identical to one of ours.
    possible_duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    duplicate_score = models.FloatField(null=True, blank=True)
    # Catalog sync (catalog/services/sync/): a product missing from a full sync of its source is
    # deactivated at once (it leaves search; its vectors stay, flagged) and deleted after the
    # retention period (CATALOG_SYNC_RETENTION_DAYS) unless it comes back before.
    active = models.BooleanField(default=True, db_index=True)
    deactivated_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The catalog source that last synced the product (None: the API, the admin or a command run);
    # a full sync deactivates only products of its own source.
    source = models.ForeignKey(
        "catalog.CatalogSource", null=True, blank=True, on_delete=models.SET_NULL, related_name="products"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]

    def __str__(self) -> str:
        return f"{self.sku} · {self.title}"


class IndexStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    INDEXED = "indexed", "Indexed"
    FAILED = "failed", "Failed"
    REMOVED = "removed", "Removed"


class ProductImage(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="images")
    # Content-addressed: images/<aa>/<bb>/<sha256>.<ext>; identical bytes share one file.
    file = models.FileField(upload_to="images/", max_length=255)
    sha256 = models.CharField(max_length=64, db_index=True)
    original_name = models.CharField(max_length=255, blank=True, default="")
    # Where the bytes came from when a feed named the image by URL (empty for uploads and local files).
    source_url = models.URLField(max_length=URL_MAX, blank=True, default="")
    format = models.CharField(max_length=8, blank=True, default="")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bytes = models.PositiveBigIntegerField()
    display_order = models.PositiveIntegerField(default=0)
    index_status = models.CharField(
        max_length=10, choices=IndexStatus.choices, default=IndexStatus.PENDING, db_index=True
    )
    indexed_model_version = models.CharField(max_length=32, blank=True, default="")
    indexed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    index_attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["product_id", "display_order", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["product", "sha256"], name="unique_image_per_product"),
        ]
        indexes = [
            models.Index(fields=["index_status", "next_attempt_at"]),
            # The index backlog read on every metrics scrape: counts and the oldest pending image.
            models.Index(fields=["index_status", "updated_at"], name="catalog_image_status_updated"),
        ]

    def __str__(self) -> str:
        return f"{self.product.sku} #{self.display_order} ({self.index_status})"

    def is_indexed_by(self, model_label: str | None) -> bool:
        """Whether the image is indexed and its point written by model ``model_label``."""
        return self.index_status == IndexStatus.INDEXED and self.indexed_model_version == model_label


class DismissedDuplicate(models.Model):
    """An editor's "these two are not duplicates": the duplicate check never flags the pair again,
    either way round. The lower product id is stored first, so a pair is one row."""

    product_low = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    product_high = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    dismissed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["product_low", "product_high"], name="unique_dismissed_pair"),
            models.CheckConstraint(
                condition=models.Q(product_low__lt=models.F("product_high")), name="dismissed_pair_in_order"
            ),
        ]

    def __str__(self) -> str:
        return f"products {self.product_low_id} and {self.product_high_id} are not duplicates"


# The catalog sync's tables (sources, runs, their errors, image downloads) live in their own module;
# importing them here registers them with the app.
from catalog.sync_models import (  # noqa: E402
    CatalogSource,
    FeedChoice,
    FetchState,
    ImageFetch,
    ImageSource,
    SyncOrigin,
    SyncProblem,
    SyncRun,
    SyncState,
)

__all__ = [
    "CatalogSource",
    "FeedChoice",
    "FetchState",
    "ImageFetch",
    "ImageSource",
    "IndexStatus",
    "Product",
    "ProductImage",
    "SyncProblem",
    "SyncOrigin",
    "SyncRun",
    "SyncState",
]
