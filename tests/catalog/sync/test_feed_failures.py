"""A feed that cannot be read fails its run with one clear line (and an error row); nothing is removed."""

from __future__ import annotations

import gzip

import pytest
from django.core.management import CommandError

from catalog.models import Product, SyncRun
from tests.catalog.sync.conftest import sync
from tests.support.loopback import LoopbackServer

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("path", "body", "content_type", "code", "words"),
    [
        ("/gone.xml", None, None, "http_404", "answered 404"),
        ("/page.html", None, None, "unknown_format", "HTML page"),
        ("/feed.xml.gz", gzip.compress(b"<rss/>"), "application/gzip", "compressed", "compressed"),
        ("/empty.jsonl", b"", "application/x-ndjson", "no_items", "broke"),
    ],
)
def test_unreadable_feeds_fail_their_run_with_one_line(
    feed_server: LoopbackServer, media_root, path, body, content_type, code, words
) -> None:
    url = feed_server.serve(path, body, content_type) if body is not None else feed_server.url(path)
    with pytest.raises(CommandError, match=words) as info:
        sync(url, "--full")
    assert "\n" not in str(info.value)
    run = SyncRun.objects.get()
    assert run.state == "failed" and run.finished_at is not None
    assert [(e.code, e.fatal) for e in run.errors.all()] == [(code, True)]


def test_a_feed_on_a_refused_address_is_never_requested(feed_server: LoopbackServer, media_root) -> None:
    # Redirected to another loopback address: refused before connecting (the fetcher's guard).
    with pytest.raises(CommandError, match="not public"):
        sync(feed_server.url("/to?http://127.0.0.2:9/feed.xml"))
    assert SyncRun.objects.get().errors.get().code == "private_address"


def test_a_missing_file_and_a_wrong_format_are_command_errors(tmp_path, media_root) -> None:
    with pytest.raises(CommandError, match="Feed not found"):
        sync(str(tmp_path / "nope.xml"))
    csv = tmp_path / "products.csv"
    csv.write_text("Handle,Title\nx,X\n")
    with pytest.raises(CommandError, match="not a Merchant Center feed"):
        sync(str(csv), "--format", "merchant")
    assert not Product.objects.exists()
