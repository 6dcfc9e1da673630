"""The catalog sync's tests: a loopback server (tests/support/loopback.py) serves the feeds and their
images; the real model, store and tasks (in-process, as in the embedded default) do the rest.

Tests that run a whole sync use ``django_db(transaction=True)``: every write commits, so what the
sync announces (image downloads, indexing, payload updates) runs when it would in production.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import StringIO

import pytest
from django.core.management import call_command

from catalog.models import SyncRun
from tests.fixtures.images import image_bytes
from tests.support.loopback import LoopbackServer

CDN = "/cdn"


@pytest.fixture
def feed_server() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def loopback_allowed(settings) -> None:
    # The only network the tests use: the loopback server they start. Any other host is refused
    # before a name lookup (the fetcher checks the host list first), so no test reaches a resolver.
    settings.IMAGE_FETCH_ALLOW_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    settings.IMAGE_FETCH_ALLOWED_HOSTS = ["127.0.0.1", "127.0.0.2"]


@dataclass
class Shop:
    """A shop's CDN on the loopback server: each published picture is distinct and has an ETag."""

    server: LoopbackServer
    pictures: dict[str, bytes] = field(default_factory=dict)
    _numbers: dict[str, int] = field(default_factory=dict)

    def picture(self, path: str, *, version: int = 1) -> str:
        """Publish (or, with a new ``version``, change) the picture at ``path``; returns its URL."""
        n = self._numbers.setdefault(path, len(self._numbers) + 1)
        data = image_bytes(
            color=((37 * n) % 256, (91 * n) % 256, (53 * n) % 256),
            size=(64, 64),
            pattern=n * 10 + version,
        )
        self.pictures[path] = data
        return self.server.serve(path, data, "image/jpeg", etag=f'"{path}-v{version}"')

    def host(self, text: str, origin: str) -> str:
        """``text`` with every URL under ``origin`` moved to this CDN, each picture published."""
        text = text.replace(origin, self.server.url(CDN))
        for path in sorted(set(re.findall(re.escape(self.server.url(CDN)) + r"(/[^\s<\",]+)", text))):
            self.picture(CDN + path)
        return text

    def image_requests(self) -> int:
        return sum(1 for path, _ in self.server.requests if path.startswith(CDN))


@pytest.fixture
def shop(feed_server: LoopbackServer) -> Shop:
    return Shop(feed_server)


@dataclass
class Synced:
    run: SyncRun
    out: str
    err: str


def sync(location: str, *args: str) -> Synced:
    """``manage.py sync_catalog LOCATION ARGS``; the run it recorded and what it printed."""
    out, err = StringIO(), StringIO()
    call_command("sync_catalog", location, *args, stdout=out, stderr=err)
    return Synced(SyncRun.objects.order_by("-pk").first(), out.getvalue(), err.getvalue())
