"""Model versions and jobs (which model embeds queries, and which collection it searches), and the
search log: searches answered, shoppers' photos when kept, and the results they clicked."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from search.vector_store.base import Beam


class ModelStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"
    REJECTED = "rejected", "Rejected"


class ModelKind(models.TextChoices):
    BOOTSTRAP = "bootstrap", "Pretrained backbone (no training)"
    TRAINED = "trained", "Trained on the catalog"


class ModelVersion(models.Model):
    # The TF Serving version number: exports live at MODELS_DIR/<name>/<version>/.
    version = models.PositiveIntegerField(unique=True)
    name = models.CharField(max_length=64, default="lookalike")
    kind = models.CharField(max_length=10, choices=ModelKind.choices)
    status = models.CharField(
        max_length=10, choices=ModelStatus.choices, default=ModelStatus.CANDIDATE, db_index=True
    )
    backbone = models.CharField(max_length=64)
    embedding_dim = models.PositiveIntegerField()
    image_size = models.PositiveIntegerField()
    export_path = models.CharField(max_length=500)
    keras_path = models.CharField(max_length=500, blank=True, default="")
    report_path = models.CharField(max_length=500, blank=True, default="")
    plot_path = models.CharField(max_length=500, blank=True, default="")
    metrics = models.JSONField(default=dict, blank=True)
    # Score thresholds fitted on held-out data: {"same": float, "similar": float, ...}; a hit scoring at
    # least "same" is labelled "this is the product". Empty until the model is calibrated.
    calibration = models.JSONField(default=dict, blank=True)
    calibration_plot_path = models.CharField(max_length=500, blank=True, default="")
    config = models.JSONField(default=dict, blank=True)
    # Image ids held out from training, used by the promotion gate to compare models fairly.
    eval_image_ids = models.JSONField(default=list, blank=True)
    collection = models.CharField(max_length=100, blank=True, default="")
    # How the collection is indexed, written by search/services/index_building.py: the beam searches
    # use ("hnsw_ef" and "oversampling"; no hnsw_ef: exact), the recall@10 it measured, points, build time.
    index = models.JSONField(default=dict, blank=True)
    # Balanced answers for a catalog with one photo per product (search/services/balance.py): an offset
    # per product added to its similarity, fitted on shoppers' query vectors. A fit: {"offsets": {product
    # id: float}, "queries", "products", "temperature", "fitted_at", "checked_at"}; a catalog that did
    # not qualify: {"skipped", "queries", "checked_at"}; empty: never looked at. Only offsets are added.
    balance = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-version"]
        constraints = [
            # At most one active model: queries are embedded by it and searched in its collection.
            models.UniqueConstraint(
                fields=["status"], condition=models.Q(status="active"), name="one_active_model_version"
            )
        ]

    def __str__(self) -> str:
        return f"v{self.version} ({self.kind}, {self.status})"

    @property
    def label(self) -> str:
        return str(self.version)

    @property
    def search_beam(self) -> Beam | None:
        """The graph beam this model's collection is searched with; None: exactly (no graph yet)."""
        return Beam.from_dict(self.index or {})


# A reindex is a Job of this kind; its state (target and previous model, cursor, counts, gate verdict, and
# this status) is the job's result (search/services/reindex.py). The job's own state says whether it is
# still going: these say where it got to.
REINDEX_KIND = "reindex"


class ReindexStatus(models.TextChoices):
    RUNNING = "running", "Filling the collection"
    EVALUATING = "evaluating", "Evaluating"
    PROMOTED = "promoted", "Promoted"
    REJECTED = "rejected", "Rejected by the evaluation gate"


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Job(models.Model):
    """A piece of long work (train, reindex, rollback, import, ...) run by whoever may run it: the
    process that owns the vector store, a Celery worker, or the command that asked. Each kind is a
    module of search/jobs/kinds/; the record's life cycle is search/jobs/records.py."""

    kind = models.CharField(max_length=32)
    state = models.CharField(max_length=10, choices=JobState.choices, default=JobState.QUEUED)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    # The last lines only (search/jobs/records.py LOG_LINES); log_lines counts every line ever added (a progress
    # bar's refresh replaces its line and adds none), so a follower knows how many of the tail it has not
    # printed yet.
    log = models.TextField(blank=True, default="")
    log_lines = models.PositiveIntegerField(default=0)
    requested_by = models.CharField(max_length=150, blank=True, default="")
    # host:pid:thread of the process running it; with heartbeat_at, how a dead runner is detected.
    runner = models.CharField(max_length=200, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # Runners poll "the oldest queued job" about once a second: one index range scan.
        indexes = [models.Index(fields=["state", "created_at"], name="search_job_state_created")]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.kind}, {self.state})"

    @property
    def finished(self) -> bool:
        return self.state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)

    @property
    def progress(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


class JobRunnerBeat(models.Model):
    """A live job runner (the embedded web process's threads), beating every few seconds: how a command
    that hands a job over knows within seconds whether any process will run it."""

    runner = models.CharField(max_length=200, unique=True)  # host:pid
    beat_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"job runner {self.runner} (beat {self.beat_at:%H:%M:%S})"


# --- What shoppers do: searches, the photos they sent (when kept) and the results they clicked ---------


class QueryKind(models.TextChoices):
    PHOTO = "photo", "Photo"
    PRODUCT = "product", "More like a product"
    SKU = "sku", "More like a SKU"
    IMAGE = "image", "More like an image"
    TEXT = "text", "Words"


class SearchPhoto(models.Model):
    """A shopper's photo, kept only with SEARCH_LOG_PHOTOS=true: content-addressed (one file and one row
    per distinct photo) in its own storage, never under MEDIA_ROOT, which the proxy serves publicly.
    Deleted, file and row, SEARCH_LOG_RETENTION_DAYS after the last search that sent it."""

    sha256 = models.CharField(max_length=64, unique=True)
    file = models.CharField(max_length=200)  # name in search.photo_storage
    bytes = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    last_searched_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.file


class SearchLog(models.Model):
    """One search answered by the API. Its id is the ``search_id`` the answer carries and click events
    name. Written with one INSERT after the search (two more writes when the photo is kept)."""

    id = models.UUIDField(primary_key=True)
    created_at = models.DateTimeField(db_index=True)
    api_key = models.ForeignKey(
        "apikeys.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    query_kind = models.CharField(max_length=10, choices=QueryKind.choices)
    # The product a "more like this" query (product, sku or image) started from.
    query_product_id = models.BigIntegerField(null=True, blank=True)
    filters = models.JSONField(default=dict, blank=True)
    crop = models.JSONField(null=True, blank=True)  # [x, y, w, h] of the photo, when the shopper cropped
    limit = models.PositiveSmallIntegerField()
    model_version = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField()
    # What was shown, in order: [{"position", "product_id", "image_id", "score", "match"}]; "match" is
    # null until the model is calibrated.
    results = models.JSONField(default=list, blank=True)
    result_count = models.PositiveSmallIntegerField(default=0)
    top_product_id = models.BigIntegerField(null=True, blank=True)
    # null: the answer carried no no_match verdict (an uncalibrated model).
    no_match = models.BooleanField(null=True, blank=True)
    photo = models.ForeignKey(
        SearchPhoto, null=True, blank=True, on_delete=models.SET_NULL, related_name="searches"
    )
    # Who searched, as far as training on clicks needs to tell clients apart: "user:<id>" for a
    # signed-in user, else a keyed hash of the client address (never the address itself). Blank on
    # searches logged before it was recorded.
    client = models.CharField(max_length=40, blank=True, default="")
    # A photo search's query vector (float16), which balanced answers are fitted on; a fit drops those
    # older than its pool (the entry stays). Null for other queries, with SEARCH_BALANCE off, and for
    # searches logged before it was recorded.
    query_vector = models.BinaryField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "search"
        verbose_name_plural = "searches"  # Django's default adds an "s": "Searchs" in the admin's menu
        indexes = [
            # The balance's counts and reads (search/services/balance.py, every sweeper pass) touch only
            # the entries that still hold a vector: at most two pools of them, however long the log.
            models.Index(
                fields=["model_version", "created_at"],
                name="searchlog_with_vector",
                condition=models.Q(query_vector__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return f"{self.query_kind} search {self.id} ({self.result_count} results)"


class EventKind(models.TextChoices):
    CLICK = "click", "Click"


class SearchClick(models.Model):
    search = models.ForeignKey(SearchLog, on_delete=models.CASCADE, related_name="clicks")
    product = models.ForeignKey(
        "catalog.Product", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    position = models.PositiveSmallIntegerField()  # 1 = the first result
    kind = models.CharField(max_length=10, choices=EventKind.choices, default=EventKind.CLICK)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A repeated report (a retry, a second click on the same result) is one click.
            models.UniqueConstraint(fields=["search", "position", "kind"], name="one_event_per_result")
        ]

    def __str__(self) -> str:
        return f"{self.kind} on #{self.position} of {self.search_id}"


class TextStatus(models.TextChoices):
    READ = "read", "Read"
    FAILED = "failed", "Failed"


class ImageText(models.Model):
    """The text read on one catalog image (search/services/image_text.py, in the background after the
    image is added). Derived state, so search's to write: the catalog's image row is never touched.
    A row whose ``sha256`` or ``engine`` differs from the image's bytes or the engine in use is stale
    and read again. No row: not read yet."""

    image = models.OneToOneField(
        "catalog.ProductImage", primary_key=True, on_delete=models.CASCADE, related_name="text"
    )
    sha256 = models.CharField(max_length=64)  # the bytes that were read
    engine = models.CharField(max_length=60)  # ml.ocr.ENGINE at the time
    status = models.CharField(max_length=10, choices=TextStatus.choices, db_index=True)
    # In the engine's reading order: [{"text", "confidence", "box": [[x, y] * 4]}], box in the image's
    # upright pixels.
    words = models.JSONField(default=list, blank=True)
    # The read lines joined, and their tokens (ml.text_tokens), for matching and the text index.
    text = models.TextField(blank=True, default="")
    tokens = models.JSONField(default=list, blank=True)
    seconds = models.FloatField(default=0.0)
    error = models.CharField(max_length=500, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    read_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "image text"
        verbose_name_plural = "image texts"

    def __str__(self) -> str:
        return f"text of image {self.image_id} ({self.status}, {len(self.words)} words)"
