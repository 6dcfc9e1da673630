"""One owner per embedded store: a second process gets one line naming the fix, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from search.vector_store import vector_store

pytestmark = pytest.mark.django_db(transaction=True)


def _manage(*args: str, env_extra: dict[str, str], db_url: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_URL": db_url,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        **env_extra,
    }
    env.pop("CELERY_BROKER_URL", None)
    root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_second_process_gets_a_one_line_error(active_model, vector_store_path, media_root) -> None:
    from django.db import connection

    vector_store()  # this process owns the store now
    db = connection.settings_dict
    db_url = (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    env = {"VECTOR_STORE_PATH": str(vector_store_path), "MEDIA_ROOT": str(media_root)}
    for command in (["index_pending"], ["reconcile_index"]):
        result = _manage(*command, env_extra=env, db_url=db_url)
        assert result.returncode != 0
        err = result.stderr.strip()
        assert "Traceback" not in err, err
        assert "in use by another process" in err and "QDRANT_URL" in err
        assert len(err.splitlines()) == 1, err
