"""The catalog sync's tables: where feeds come from (``CatalogSource``), each sync (``SyncRun``) and
its problems (``SyncProblem``), the images it asked workers to download (``ImageFetch``), and what we
know of each image URL (``ImageSource``: its validators and content hash, so a re-sync downloads
nothing that has not changed). Imported by catalog/models.py, which registers them with the app.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models


class FeedChoice(models.TextChoices):
    """What a source or a run says its feed is; "merchant" covers the XML and the tab-separated form."""

    AUTO = "auto", "Detect from the content"
    MERCHANT = "merchant", "Google Merchant Center (XML or TSV)"
    SHOPIFY = "shopify", "Shopify product CSV"
    JSONL = "jsonl", "JSON Lines manifest"


class CatalogSource(models.Model):
    """A feed the shop already publishes, synced on a schedule (Celery beat or the embedded thread)."""

    name = models.CharField(max_length=120, unique=True)
    url = models.URLField(max_length=2000, help_text="The feed's http(s) address.")
    format = models.CharField(max_length=16, choices=FeedChoice.choices, default=FeedChoice.AUTO)
    full = models.BooleanField(
        default=True,
        help_text="The feed lists the whole catalog: products missing from it leave search (deactivated) "
        "and are deleted after the retention period.",
    )
    interval_minutes = models.PositiveIntegerField(
        default=24 * 60, validators=[MinValueValidator(5)], help_text="How often to sync, in minutes."
    )
    enabled = models.BooleanField(default=True)
    store_url = models.URLField(
        max_length=2000,
        blank=True,
        default="",
        help_text="Shopify only: the shop's address, for product links.",
    )
    default_currency = models.CharField(
        max_length=3, blank=True, default="", help_text="For prices that name no currency (Shopify's)."
    )
    # The validators of the feed version last applied without a fatal error: the next sync asks
    # with them, and a 304 means there is nothing to do.
    feed_etag = models.CharField(max_length=300, blank=True, default="")
    feed_last_modified = models.CharField(max_length=100, blank=True, default="")
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def interval(self) -> timedelta:
        return timedelta(minutes=self.interval_minutes)


class SyncState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Reading the feed"
    FETCHING = "fetching", "Fetching images"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class SyncOrigin(models.TextChoices):
    COMMAND = "command", "manage.py sync_catalog"
    SCHEDULE = "schedule", "Schedule"
    ADMIN = "admin", "Admin"
    API = "api", "API push"


class SyncRun(models.Model):
    """One sync: what it read, what it changed, and every problem it met (``errors``)."""

    source = models.ForeignKey(
        CatalogSource, null=True, blank=True, on_delete=models.CASCADE, related_name="runs"
    )
    origin = models.CharField(max_length=10, choices=SyncOrigin.choices)
    location = models.CharField(max_length=2000, help_text="The file or URL read, or 'push' for the API.")
    requested_format = models.CharField(max_length=16, choices=FeedChoice.choices, default=FeedChoice.AUTO)
    format = models.CharField(max_length=16, blank=True, default="", help_text="The parser that read it.")
    full = models.BooleanField(default=False)
    images = models.BooleanField(default=True, help_text="Whether image URLs were fetched.")
    state = models.CharField(
        max_length=10, choices=SyncState.choices, default=SyncState.QUEUED, db_index=True
    )
    # A pushed NDJSON body waits here until its run reads it; deleted when the run ends.
    upload = models.FileField(upload_to="sync-uploads/", max_length=255, blank=True, default="")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    feed_not_modified = models.BooleanField(default=False)
    records = models.PositiveIntegerField(default=0, help_text="Products read from the feed.")
    products_created = models.PositiveIntegerField(default=0)
    products_updated = models.PositiveIntegerField(default=0)
    products_unchanged = models.PositiveIntegerField(default=0)
    products_removed = models.PositiveIntegerField(default=0)
    products_reactivated = models.PositiveIntegerField(default=0)
    images_queued = models.PositiveIntegerField(default=0, help_text="Image URLs handed to the workers.")
    images_added = models.PositiveIntegerField(default=0, help_text="Local image files added.")
    images_fetched = models.PositiveIntegerField(default=0)
    images_unchanged = models.PositiveIntegerField(default=0)
    images_failed = models.PositiveIntegerField(default=0)
    images_removed = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    parsed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"sync #{self.pk} of {self.location[:80]} ({self.state})"

    @property
    def finished(self) -> bool:
        return self.state in (SyncState.DONE, SyncState.FAILED)

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end (to now while running); None before it started."""
        if self.started_at is None:
            return None
        end: datetime = self.finished_at or datetime.now(tz=self.started_at.tzinfo)
        return round((end - self.started_at).total_seconds(), 3)


class SyncProblem(models.Model):
    """One problem of a run: a feed line or item (``position``, ``unit``), or an image URL. A row, not
    an exception: the ``*Error`` names are the exceptions'."""

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="errors")
    position = models.PositiveIntegerField(null=True, blank=True)
    unit = models.CharField(max_length=8, blank=True, default="")
    sku = models.CharField(max_length=64, blank=True, default="")
    url = models.CharField(max_length=2000, blank=True, default="")
    code = models.CharField(max_length=40)
    message = models.TextField()
    fatal = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
        verbose_name = "sync error"  # what the admin and the API call it: a run's "errors"

    def __str__(self) -> str:
        where = f"{self.unit} {self.position}" if self.position is not None else self.url[:120]
        return f"{where}: {self.code}: {self.message}"


class ImageSource(models.Model):
    """What we know of one image URL: its HTTP validators, the hash of its bytes, when it was last
    checked and, if that check failed, why. Keyed by a hash of the URL (URLs may be 2,000 characters,
    more than a B-tree index entry may hold)."""

    url_hash = models.CharField(max_length=64, unique=True)
    url = models.CharField(max_length=2000)
    etag = models.CharField(max_length=300, blank=True, default="")
    last_modified = models.CharField(max_length=100, blank=True, default="")
    sha256 = models.CharField(max_length=64, blank=True, default="")
    checked_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=40, blank=True, default="", help_text="Reason of the last failure.")

    def __str__(self) -> str:
        return self.url[:200]

    @staticmethod
    def key(url: str) -> str:
        return hashlib.sha256(url.encode("utf-8")).hexdigest()


class FetchState(models.TextChoices):
    PENDING = "pending", "Pending"
    FETCHED = "fetched", "Fetched"
    UNCHANGED = "unchanged", "Unchanged"
    FAILED = "failed", "Failed"


class ImageFetch(models.Model):
    """An image URL a run handed to the workers for one product (``replaces``: the product's image
    from that URL being checked again, replaced if the bytes changed)."""

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="fetches")
    product = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="+")
    url = models.CharField(max_length=2000)
    position = models.PositiveIntegerField(default=0)
    replaces = models.ForeignKey(
        "catalog.ProductImage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=10, choices=FetchState.choices, default=FetchState.PENDING)
    reason = models.CharField(max_length=40, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["run", "state"]), models.Index(fields=["state", "claimed_at"])]

    def __str__(self) -> str:
        return f"{self.url[:120]} ({self.state})"
