"""The Qdrant server's snapshot path, against a loopback stand-in that speaks the snapshot API's
HTTP (no Qdrant server can be installed on the machines the suite runs on): which calls are made,
with the API key, and that the bytes arrive whole both ways. Edge snapshots are tested for real in
test_vector_store.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from search.vector_store import QdrantClientVectorStore, VectorStoreError

SNAPSHOT = bytes(range(256)) * 4096  # 1 MB the stand-in serves as the collection's snapshot
KEY = "test-api-key"

# qdrant-client warns that an API key travels over plain HTTP: true, and fine on loopback.
pytestmark = pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")


class _Qdrant(BaseHTTPRequestHandler):
    calls: list[tuple[str, str, str | None]]
    uploaded: bytes
    exists: bool

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, result: object, status: int = 200) -> None:
        body = json.dumps({"result": result, "status": "ok", "time": 0.0}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self) -> str:
        self.calls.append((self.command, self.path, self.headers.get("api-key")))
        return self.path.split("?")[0]

    def do_GET(self) -> None:
        path = self._record()
        if path == "/aliases":
            self._answer({"aliases": [{"alias_name": "images", "collection_name": "images_3"}]})
        elif path.endswith("/exists"):
            self._answer({"exists": self.exists})
        elif path == "/collections/images_3/snapshots/images_3-1.snapshot":
            self.send_response(200)
            self.send_header("Content-Length", str(len(SNAPSHOT)))
            self.end_headers()
            self.wfile.write(SNAPSHOT)
        else:
            self._answer(None, 404)

    def do_POST(self) -> None:
        path = self._record()
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        if path == "/collections/images_3/snapshots":
            self._answer({"name": "images_3-1.snapshot", "creation_time": None, "size": len(SNAPSHOT)})
        elif path == "/collections/images_9/snapshots/upload":
            type(self).uploaded = body
            self._answer(True)
        else:
            self._answer(None, 404)

    def do_DELETE(self) -> None:
        self._record()
        self._answer(True)


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Qdrant]]]:
    handler = type("Handler", (_Qdrant,), {"calls": [], "uploaded": b"", "exists": False})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def test_a_snapshot_is_made_downloaded_and_deleted_on_the_server(server, tmp_path: Path) -> None:
    url, handler = server
    with QdrantClientVectorStore(url=url, api_key=KEY) as store:
        path = store.snapshot("images", tmp_path)  # the alias names its collection
    assert path == tmp_path / "images_3.snapshot" and path.read_bytes() == SNAPSHOT
    assert not list(tmp_path.glob("*.partial"))
    made = [(m, p.split("?")[0]) for m, p, _ in handler.calls]
    assert ("POST", "/collections/images_3/snapshots") in made
    assert ("GET", "/collections/images_3/snapshots/images_3-1.snapshot") in made
    # Removed from the server's disk once it is here.
    assert ("DELETE", "/collections/images_3/snapshots/images_3-1.snapshot") in made
    assert {key for *_, key in handler.calls} == {KEY}


def test_a_restore_uploads_the_snapshot_and_refuses_an_existing_collection(server, tmp_path: Path) -> None:
    url, handler = server
    snapshot = tmp_path / "images_9.snapshot"
    snapshot.write_bytes(SNAPSHOT)
    with QdrantClientVectorStore(url=url, api_key=KEY) as store:
        store.restore_snapshot("images_9", snapshot)
        upload = [p for m, p, _ in handler.calls if m == "POST"]
        assert upload == ["/collections/images_9/snapshots/upload?priority=snapshot&wait=true"]
        assert SNAPSHOT in handler.uploaded  # the multipart body carries the file whole
        handler.exists = True
        with pytest.raises(VectorStoreError, match="exists already"):
            store.restore_snapshot("images_9", snapshot)
