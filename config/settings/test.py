"""Tests: the machine's PostgreSQL (DATABASE_URL, or the local trust-auth default), eager tasks
unless a test starts a real worker, and everything written under a per-run temporary folder."""

import os
import tempfile
from pathlib import Path

import dj_database_url

# The float model whatever the CPU (EMBEDDING_PRECISION=auto would quantize every export on a CPU with
# VNNI, a minute each): a test of the int8 path asks for it. Set before base reads it, and inherited by
# the worker and server processes tests start.
os.environ.setdefault("EMBEDDING_PRECISION", "float")

from config.settings.base import *  # noqa: E402, F403
from config.settings.env import cache_from_url, env_str  # noqa: E402

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lookalike"), conn_max_age=0
    )
}
_TMP = Path(tempfile.mkdtemp(prefix="lookalike-test-"))
STATIC_ROOT = _TMP / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_ROOT = Path(os.environ.get("TEST_MEDIA_ROOT", _TMP / "media"))
VECTOR_STORE_PATH = _TMP / "qdrant"
MODELS_DIR = _TMP / "models"
SEARCH_LOG_PHOTOS_DIR = _TMP / "search-photos"
CELERY_BROKER_URL = "memory://localhost/"
CELERY_TASK_ALWAYS_EAGER = True
QDRANT_URL = None
TF_SERVING_TARGET = None
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
REST_FRAMEWORK = {**REST_FRAMEWORK}  # noqa: F405
# Tests flush the cache between tests (tests/conftest.py): never a developer's CACHE_URL. A test that
# needs Redis sets its own database (tests/apikeys/test_throttle_processes.py).
CACHES = {"default": cache_from_url(env_str("TEST_CACHE_URL"))}
LOG_LEVEL = "WARNING"
# Tests talk to servers they start on loopback, nothing else: any other host is refused before a name
# lookup (a test that needs more sets its own list). 127.0.0.2 is for the address-guard tests.
IMAGE_FETCH_ALLOWED_HOSTS = ["127.0.0.1", "127.0.0.2"]
IMAGE_FETCH_ALLOW_PRIVATE_NETWORKS = ["127.0.0.1/32"]
SEARCH_IMAGE_URL_ALLOW_PRIVATE_NETWORKS = ["127.0.0.1/32"]
# The pretrained backbone would be downloaded; tests that cover the first import's bootstrap turn this
# on with random weights at 32 px.
AUTO_BOOTSTRAP_MODEL = False
# Reading text (about 1 s per image on a background thread) only where a test asks for it
# (tests/search/test_image_text.py): elsewhere the reader thread would outlive the test that uploaded.
OCR_ENABLED = False
# Reading a search photo's words costs a few hundred ms: the tests of the re-ranking turn it on.
SEARCH_TEXT_RERANK = False
