"""Request bodies are refused past their cap before they are read, with no proxy needed.

Django reads a body only when a view asks for it, and a multipart upload is then spooled to disk in
full before the view can compare the photo's size with MAX_UPLOAD_BYTES; DATA_UPLOAD_MAX_MEMORY_SIZE
does not count files. nginx's client_max_body_size stops that in the production stack, but the
embedded default (gunicorn alone) and anything reaching gunicorn directly have no proxy. So:

- ``BodyLimitMiddleware`` (Django, WSGI and ASGI) answers 413 when the declared Content-Length is over
  the path's cap, before anything reads the body; and it caps the stream Django's parsers read from,
  so a body longer than it said is cut off at the cap (RequestDataTooBig, a 413 from the API) too.
- ``asgi_body_limit`` wraps the ASGI application: Django's ASGI handler reads the whole body into a
  spooled file before any middleware runs, so a chunked body (no Content-Length) is counted as it
  arrives and refused at the cap there.

The caps: MAX_UPLOAD_BYTES plus 1 MiB for the rest of a multipart form (DATA_UPLOAD_MAX_MEMORY_SIZE,
the total nginx allows too), and CATALOG_SYNC_MAX_PUSH_BYTES for the pushed feed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

SYNC_PUSH_PATH = "/api/v1/catalog/sync/"


def body_limit(path: str) -> tuple[int, str]:
    """(largest body in bytes, the error code past it) for a request to ``path``."""
    if path == SYNC_PUSH_PATH:
        return settings.CATALOG_SYNC_MAX_PUSH_BYTES, "feed_too_large"
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "request_too_large"


def _refusal(code: str, limit: int) -> tuple[bytes, str]:
    message = f"The request body is larger than the server accepts ({limit:,} bytes)."
    return json.dumps({"error": {"code": code, "message": message}}).encode(), "application/json"


def _declared_length(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None  # Django reads such a body as empty


class _CappedStream:
    """The request's body stream, refusing to give more than ``limit`` bytes in all."""

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream, self._limit, self._read = stream, limit, 0

    def _count(self, data: bytes) -> bytes:
        self._read += len(data)
        if self._read > self._limit:
            raise RequestDataTooBig(f"The request body is larger than {self._limit} bytes.")
        return data

    def read(self, size: int = -1) -> bytes:
        # One byte past the cap is enough to know it is over; never more.
        room = self._limit - self._read + 1
        return self._count(self._stream.read(room if size is None or size < 0 else min(size, room)))

    def readline(self, size: int = -1) -> bytes:
        room = self._limit - self._read + 1
        return self._count(self._stream.readline(room if size is None or size < 0 else min(size, room)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class BodyLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit, code = body_limit(request.path)
        length = _declared_length(request.META.get("CONTENT_LENGTH"))
        if length is not None and length > limit:
            body, content_type = _refusal(code, limit)
            return HttpResponse(body, content_type=content_type, status=413)
        # Django's own body readers (request.body, read(), the multipart parser) all read _stream.
        stream = getattr(request, "_stream", None)
        if stream is not None:
            # Django reads _stream (private, typed BinaryIO in the stubs) only through read() and
            # readline(), which _CappedStream provides.
            request._stream = _CappedStream(stream, limit)  # type: ignore[assignment]
        return self.get_response(request)


Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


class _BodyTooLarge(Exception):
    pass


def asgi_body_limit(app: ASGIApp) -> ASGIApp:
    async def limited(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            return await app(scope, receive, send)
        limit, code = body_limit(scope.get("path", ""))
        headers = dict(scope.get("headers") or [])
        length = _declared_length((headers.get(b"content-length") or b"").decode("latin-1") or None)
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message.get("type") == "http.response.start"
            await send(message)

        try:
            if length is not None and length > limit:
                raise _BodyTooLarge
            await app(scope, counted_receive, tracked_send)
        except _BodyTooLarge:
            if started:
                raise
            body, content_type = _refusal(code, limit)
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [
                        (b"content-type", content_type.encode()),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})

    return limited
