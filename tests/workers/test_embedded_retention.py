"""The embedded default's retention thread: without a broker, expired shoppers' photos are deleted by the
web process itself (with one, Celery beat schedules lookalike.purge_search_photos)."""

from __future__ import annotations

import time
from datetime import timedelta

from django.utils import timezone

from search import photo_storage
from search.models import SearchPhoto
from tests.fixtures.images import image_bytes
from workers import embedded


def test_retention_thread_purges_expired_photos(transactional_db, settings, tmp_path) -> None:
    settings.SEARCH_LOG_PHOTOS_DIR = tmp_path / "search-photos"
    settings.SEARCH_LOG_RETENTION_DAYS = 30
    now = timezone.now()
    kept, expired = image_bytes(color=(10, 10, 10)), image_bytes(color=(200, 10, 10))
    for data, age in ((kept, 1), (expired, 31)):
        sha, name = photo_storage.write_photo(data)
        SearchPhoto.objects.create(
            sha256=sha, file=name, bytes=len(data), last_searched_at=now - timedelta(days=age)
        )
    expired_file = photo_storage.path_of(photo_storage.write_photo(expired)[1])

    assert embedded.start_search_photo_retention(interval_s=3600)
    deadline = time.monotonic() + 20
    while (SearchPhoto.objects.count() != 1 or expired_file.exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert SearchPhoto.objects.get().sha256 == photo_storage.write_photo(kept)[0]
    assert not expired_file.exists()
    assert not embedded.start_search_photo_retention(), "a second thread must not start"
