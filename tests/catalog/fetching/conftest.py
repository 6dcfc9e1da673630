from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from catalog.fetching import FetchPolicy, HostLimiter
from tests.support.loopback import (
    CAP,
    ConnectionRecorder,
    LoopbackServer,
    ipv6_loopback_available,
)


def make_policy(**overrides: object) -> FetchPolicy:
    """The tests' policy: 127.0.0.1 allowed, short timeouts, quick retries, a 64 KiB cap."""
    values: dict[str, object] = {
        "allowed_private_networks": ["127.0.0.1/32"],
        "connect_timeout_s": 0.5,
        "read_timeout_s": 0.5,
        "total_timeout_s": 1.0,
        "max_bytes": CAP,
        "retries": 2,
        "backoff_s": 0.01,
        "backoff_max_s": 0.05,
        **overrides,
    }
    return FetchPolicy(**values)  # type: ignore[arg-type]


@pytest.fixture
def policy() -> FetchPolicy:
    return make_policy()


@pytest.fixture
def limiter() -> HostLimiter:
    # Each test its own per-host slots, so a test that leaks one cannot slow the next.
    return HostLimiter()


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer()
    yield srv
    srv.close()


@dataclass
class Aliases:
    """The allowed server on 127.0.0.1:P, and recorders on the other loopback addresses, same port."""

    server: LoopbackServer
    v4: ConnectionRecorder
    v6: ConnectionRecorder | None

    def connections(self) -> list[object]:
        return self.v4.accepted() + (self.v6.accepted() if self.v6 else [])


@pytest.fixture
def aliases() -> Iterator[Aliases]:
    for _ in range(5):  # the port the server got may be taken on 127.0.0.2 or ::1: try another
        srv = LoopbackServer()
        try:
            v4 = ConnectionRecorder("127.0.0.2", srv.port)
            v6 = ConnectionRecorder("::1", srv.port) if ipv6_loopback_available() else None
        except OSError as exc:
            srv.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            continue
        yield Aliases(srv, v4, v6)
        v4.close()
        if v6:
            v6.close()
        srv.close()
        return
    pytest.fail("no port free on 127.0.0.1, 127.0.0.2 and ::1 at once")


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[str]]:
    """Replace socket.getaddrinfo: ``fake_dns({"images.test": [["127.0.0.1"], ["127.0.0.2"]]})`` answers
    the first lookup of images.test with 127.0.0.1, later ones with 127.0.0.2. Any other name fails
    (no test may reach a real resolver). Returns the list of names looked up."""
    looked_up: list[str] = []

    def install(answers: dict[str, list[list[str]]]) -> list[str]:
        def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002 - socket's names
            looked_up.append(host)
            if host not in answers:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            rounds = answers[host]
            addresses = rounds[min(looked_up.count(host), len(rounds)) - 1]
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    socket.IPPROTO_TCP,
                    "",
                    (a, port, 0, 0) if ":" in a else (a, port),
                )
                for a in addresses
            ]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        return looked_up

    return install
