"""One key's rate limit holds across processes that share the cache through Redis (CACHE_URL).

The test process and a second Python process (its own Django, its own connections) both call the
search endpoint with the same secret key; Redis database 4 (CACHE_TEST_REDIS_URL) holds the counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from django.db import connection
from django.test import Client

from tests.support.model_fixtures import empty_redis_db

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
LIMIT = 6

# Run in the second process: Django with the test settings on the test database and the shared cache.
CLIENT_SCRIPT = """
import json, os, sys
import django
django.setup()
from django.test import Client
key, count = sys.argv[1], int(sys.argv[2])
client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
print(json.dumps([client.post("/api/v1/search/", {}, content_type="application/json").status_code
                  for _ in range(count)]))
"""


@pytest.fixture
def shared_cache(settings) -> str:
    url = empty_redis_db(os.environ.get("CACHE_TEST_REDIS_URL", "redis://127.0.0.1:6379/4"))
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}}
    yield url
    redis.Redis.from_url(url).flushdb()


def _other_process(key: str, count: int, cache_url: str) -> list[int]:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "TEST_CACHE_URL": cache_url,
    }
    done = subprocess.run(
        [sys.executable, "-c", CLIENT_SCRIPT, key, str(count)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_keys_limit_is_shared_by_two_processes(transactional_db, shared_cache) -> None:
    from apikeys import services

    key = services.api_key_create(name="shop server", kind="secret", scopes=["search"], rate=f"{LIMIT}/min")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key.secret}")
    here = [client.post("/api/v1/search/", {}, content_type="application/json").status_code for _ in range(4)]
    there = _other_process(key.secret, 4, shared_cache)
    # 400 = let through (the empty body has no query), 429 = throttled. Each process alone stayed under
    # the limit of 6; together they went over it.
    assert here == [400] * 4
    assert there == [400, 400, 429, 429], there
    assert client.post("/api/v1/search/", {}, content_type="application/json").status_code == 429
    # Another key has its own count, in either process.
    other = services.api_key_create(name="other", kind="secret", scopes=["search"], rate=f"{LIMIT}/min")
    assert _other_process(other.secret, 1, shared_cache) == [400]
