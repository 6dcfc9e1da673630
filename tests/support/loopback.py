"""Servers the tests start on loopback (shared by the fetcher's tests and the catalog sync's): an
HTTP(S) server with one route per behaviour (slow, dripping, huge, truncated, wrong type, redirects,
404, 500, ETags and 304s), plus files a test publishes at any path (``serve``), with ETag and
Last-Modified answered by 304; and a listener that only records who connected (to prove a refused URL
opened no connection). Every request is counted per path (``count``)."""

from __future__ import annotations

import contextlib
import http.server
import select
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from tests.fixtures.images import image_bytes, truncated_jpeg

IMAGE = image_bytes(size=(64, 48), pattern=1)
ETAG = '"img-v1"'
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
CAP = 64 * 1024  # the body cap the tests give their policies
FEED = "sku,image\n" + "".join(f"sku-{i},/image.jpg\n" for i in range(2000))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = urlsplit(self.path).path
        self.server.record(path, dict(self.headers.items()))
        try:
            if path in self.server.files:
                route = self.route_published
            else:
                route = getattr(
                    self, "route_" + path.strip("/").split("/")[0].replace("-", "_").replace(".", "_")
                )
        except AttributeError:
            route = self.route_missing
        try:
            route(path)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up on purpose (a cap, a deadline)
        finally:
            self.server.leave()

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def route_published(self, path: str) -> None:
        published = self.server.files[path]
        etag, modified = published.etag, published.last_modified
        if (etag and self.headers.get("If-None-Match") == etag) or (
            modified and self.headers.get("If-Modified-Since") == modified
        ):
            self.send_response(304)
            if etag:
                self.send_header("ETag", etag)
            self.end_headers()
            return
        headers = {}
        if etag:
            headers["ETag"] = etag
        if modified:
            headers["Last_Modified"] = modified
        self._send(published.status, published.body, published.content_type, **headers)

    def route_image_jpg(self, path: str) -> None:
        if (
            self.headers.get("If-None-Match") == ETAG
            or self.headers.get("If-Modified-Since") == LAST_MODIFIED
        ):
            self.send_response(304)
            self.send_header("ETag", ETAG)
            self.end_headers()
            return
        self._send(200, IMAGE, "image/jpeg", ETag=ETAG, Last_Modified=LAST_MODIFIED)

    def route_slow_image(self, path: str) -> None:
        # Counted while slow, not until the handler ends: a client frees its slot once it has the
        # whole answer, which can be before this thread gets to its bookkeeping after the write.
        with self.server.slow_phase():
            time.sleep(0.2)
        self._send(200, IMAGE, "image/jpeg")

    def route_slow(self, path: str) -> None:
        time.sleep(1.0)
        self._send(200, IMAGE, "image/jpeg")

    def route_drip(self, path: str) -> None:
        # Headers at once, then a byte every 0.1 s: each read is quick, the whole never ends.
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(10_000))
        self.end_headers()
        for _ in range(100):
            if self.server.stopping.is_set():
                return
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(0.1)

    def route_truncated_jpg(self, path: str) -> None:
        self._send(200, truncated_jpeg(), "image/jpeg")

    def route_page_html(self, path: str) -> None:
        self._send(200, b"<!doctype html><title>not a picture</title>", "text/html; charset=utf-8")

    def route_html_as_octets(self, path: str) -> None:
        self._send(200, b"<!doctype html><title>not a picture</title>", "application/octet-stream")

    def route_feed_csv(self, path: str) -> None:
        self._send(200, FEED.encode(), "text/csv")

    def route_huge_declared(self, path: str) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(10**9))
        self.end_headers()
        self.wfile.write(b"x" * 1024)

    def route_huge_unannounced(self, path: str) -> None:
        # No Content-Length: the body ends when the connection closes.
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self._write_many(4 * CAP)

    def route_huge_chunked(self, path: str) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"y" * 4096
        for _ in range(4 * CAP // len(chunk)):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def route_lying_length(self, path: str) -> None:
        # Announces 1000 bytes and sends far more than the cap.
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self._write_many(4 * CAP)

    def route_short_body(self, path: str) -> None:
        # Announces 5000 bytes, sends 100, hangs up.
        self.send_response(200)
        self.send_header("Content-Length", "5000")
        self.end_headers()
        self.wfile.write(b"z" * 100)
        self.close_connection = True

    def route_reset(self, path: str) -> None:
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.connection.close()  # SO_LINGER 0: an RST instead of an answer

    def route_redirect(self, path: str) -> None:
        # /redirect/N: N more redirects, then the image.
        left = int(path.rsplit("/", 1)[1])
        target = "/image.jpg" if left <= 1 else f"/redirect/{left - 1}"
        self._send(302, b"", "text/plain", Location=target)

    def route_to(self, path: str) -> None:
        # /to?<absolute URL>: one redirect anywhere.
        self._send(302, b"", "text/plain", Location=urlsplit(self.path).query)

    def route_error(self, path: str) -> None:
        self._send(500, b"broken", "text/plain")

    def route_flaky(self, path: str) -> None:
        if self.server.count(path) == 1:
            self._send(503, b"try again", "text/plain")
        else:
            self._send(200, IMAGE, "image/jpeg")

    def route_missing(self, path: str) -> None:
        self._send(404, b"no such thing", "text/plain")

    def _write_many(self, total: int) -> None:
        block = b"w" * 4096
        for _ in range(total // len(block)):
            self.wfile.write(block)


@dataclass(frozen=True)
class Published:
    body: bytes
    content_type: str
    etag: str | None = None
    last_modified: str | None = None
    status: int = 200


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], family: int = socket.AF_INET) -> None:
        self.address_family = family
        super().__init__(address, _Handler)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.counts: Counter[str] = Counter()
        self.active = 0
        self.max_active = 0
        self.slow_active = 0
        self.max_slow_active = 0
        self.sni: list[str | None] = []
        self.files: dict[str, Published] = {}

    def record(self, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append((path, headers))
            self.counts[path] += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def leave(self) -> None:
        with self._lock:
            self.active -= 1

    @contextlib.contextmanager
    def slow_phase(self) -> Iterator[None]:
        with self._lock:
            self.slow_active += 1
            self.max_slow_active = max(self.max_slow_active, self.slow_active)
        try:
            yield
        finally:
            with self._lock:
                self.slow_active -= 1

    def count(self, path: str) -> int:
        with self._lock:
            return self.counts[path]

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up mid-answer are what several tests do on purpose


class LoopbackServer:
    """A threaded HTTP server on ``host`` (a loopback address), port 0 unless given; optional TLS."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.httpd = _Server((host, port), family)
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.httpd.sni.append(name)
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.host = host
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()

    def url(self, path: str, host: str | None = None, scheme: str = "http") -> str:
        name = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{scheme}://{name}:{self.port}{path}"

    def serve(
        self,
        path: str,
        body: bytes,
        content_type: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        status: int = 200,
    ) -> str:
        """Publish ``body`` at ``path`` (replacing what was there); returns its URL. With ``etag`` or
        ``last_modified``, a request that repeats it gets a 304."""
        self.httpd.files[path] = Published(body, content_type, etag, last_modified, status)
        return self.url(path)

    def unpublish(self, path: str) -> None:
        self.httpd.files.pop(path, None)

    @property
    def requests(self) -> list[tuple[str, dict[str, str]]]:
        return list(self.httpd.requests)

    def count(self, path: str) -> int:
        return self.httpd.count(path)

    def close(self) -> None:
        self.httpd.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class ConnectionRecorder:
    """Listens on ``(host, port)`` and records every connection it accepts, then drops it."""

    def __init__(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(16)
        self._accepted: list[object] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self._sock], [], [], 0.02)
            if readable:
                conn, peer = self._sock.accept()
                self._accepted.append(peer)
                conn.close()

    def accepted(self) -> list[object]:
        """Every connection so far; a connection a refused fetch made would be in the backlog by now,
        so one more poll of the socket settles it."""
        time.sleep(0.05)
        return list(self._accepted)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        self._sock.close()


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
