"""Tests: the machine's PostgreSQL (DATABASE_URL, or the local trust-auth default), eager tasks
unless a test starts a real worker, and everything written under a per-run temporary folder."""

import os
import tempfile
from pathlib import Path

import dj_database_url

from config.settings.base import *  # noqa: F403
from config.settings.env import env_str

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
LOG_LEVEL = "WARNING"
# The pretrained backbone would be downloaded; tests that cover the first import's bootstrap turn this
# on with random weights at 32 px.
AUTO_BOOTSTRAP_MODEL = False
