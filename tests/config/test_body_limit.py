"""Oversized request bodies are refused before they are read: by their Content-Length in Django
(WSGI, as the embedded default's gunicorn serves it, and ASGI alike), and as they arrive on ASGI, where
a chunked body says no length. No proxy is involved."""

from __future__ import annotations

import asyncio
import io
import json

import pytest

from config.asgi import application as asgi_application

pytestmark = pytest.mark.django_db

LIMIT = 4096


class Untouchable(io.RawIOBase):
    """A request body nobody may read: a 10 GB upload the server must refuse unread."""

    reads = 0

    def read(self, size: int = -1) -> bytes:
        Untouchable.reads += 1
        raise AssertionError("the oversized body was read")

    readline = read


@pytest.fixture(autouse=True)
def _small_caps(settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = LIMIT
    settings.CATALOG_SYNC_MAX_PUSH_BYTES = 2 * LIMIT
    Untouchable.reads = 0


@pytest.mark.parametrize(
    ("path", "content_type", "code"),
    [
        ("/api/v1/search/", "multipart/form-data; boundary=xyz", "request_too_large"),
        ("/api/v1/search/", "application/json", "request_too_large"),
        ("/search/", "multipart/form-data; boundary=xyz", "request_too_large"),
        ("/api/v1/catalog/sync/", "application/x-ndjson", "feed_too_large"),
    ],
)
def test_a_body_declared_over_the_cap_is_refused_unread(client, path, content_type, code) -> None:
    response = client.generic(
        "POST",
        path,
        content_type=content_type,
        CONTENT_LENGTH=str(10 * 1024**3),
        **{"wsgi.input": Untouchable()},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == code
    assert Untouchable.reads == 0


def test_a_body_within_the_cap_still_gets_through(client) -> None:
    # The cap is on the body: an ordinary request under it reaches the view (a 400 for no query).
    response = client.post("/api/v1/search/", {"limit": 3}, content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_parameter"


def _asgi(app, path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, dict, int]:
    """POST ``chunks`` to an ASGI app; (status, JSON body, chunks the app took)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    taken = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal taken
        if taken < len(chunks):
            taken += 1
            return {"type": "http.request", "body": chunks[taken - 1], "more_body": taken < len(chunks)}
        await asyncio.sleep(3600)  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(asyncio.wait_for(app(scope, receive, send), 30))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), taken


def test_a_chunked_body_over_the_cap_is_cut_off_as_it_arrives_on_asgi() -> None:
    # 1,000 chunks of 1 KiB and no Content-Length: refused at the cap, the rest never taken.
    app = asgi_application  # as config/asgi.py serves it
    chunk = b"x" * 1024
    status, body, taken = _asgi(
        app, "/api/v1/search/", [chunk] * 1000, [(b"content-type", b"application/octet-stream")]
    )
    assert status == 413 and body["error"]["code"] == "request_too_large"
    assert taken == LIMIT // 1024 + 1


def test_a_declared_length_over_the_cap_is_refused_unread_on_asgi() -> None:
    app = asgi_application  # as config/asgi.py serves it
    headers = [(b"content-type", b"application/x-ndjson"), (b"content-length", str(10 * 1024**3).encode())]
    status, body, taken = _asgi(app, "/api/v1/catalog/sync/", [b"{}\n"] * 10, headers)
    assert status == 413 and body["error"]["code"] == "feed_too_large" and taken == 0


def test_a_body_longer_than_it_declared_is_cut_off_by_the_middleware_too() -> None:
    # Django's own ASGI handler, without config.asgi's wrapper, takes in a body of any length whatever
    # its Content-Length says, and the multipart parser reads the stream to its end (a file's bytes
    # count against no Django setting); the middleware's capped stream hands it no more than the cap.
    from django.core.asgi import get_asgi_application

    body = (
        b"--xyz\r\n"
        b'Content-Disposition: form-data; name="image"; filename="q.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + b"\xff" * (2 * LIMIT) + b"\r\n--xyz--\r\n"
    )
    chunks = [body[i : i + 1024] for i in range(0, len(body), 1024)]
    headers = [(b"content-type", b"multipart/form-data; boundary=xyz"), (b"content-length", b"1000")]
    status, answer, _ = _asgi(get_asgi_application(), "/api/v1/search/", chunks, headers)
    assert status == 413 and answer["error"]["code"] == "request_too_large", answer
