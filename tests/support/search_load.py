"""Searches sent continuously through the HTTP API from a thread, every answer counted: the load a
model swap must serve without a single failure."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from collections import Counter


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, (filename, data) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class SearchLoad:
    """POST /api/v1/search/ with a photo, again and again, until ``stop``; ``statuses`` counts the answers,
    ``versions`` the model versions that answered, ``failures`` keeps the bodies of non-200 answers."""

    def __init__(self, base_url: str, photo: bytes, *, pause_s: float = 0.01) -> None:
        self.url = f"{base_url}/api/v1/search/"
        self.body, self.content_type = multipart({"limit": "3"}, {"image": ("q.jpg", photo)})
        self.pause_s = pause_s
        self.statuses: Counter[int] = Counter()
        self.versions: Counter[int] = Counter()
        self.kinds: Counter[str] = Counter()
        self.failures: list[str] = []
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="search-load", daemon=True)

    def start(self) -> SearchLoad:
        self._thread.start()
        return self

    def stop(self) -> SearchLoad:
        self._halt.set()
        self._thread.join(timeout=30)
        return self

    def _loop(self) -> None:
        while not self._halt.is_set():
            request = urllib.request.Request(
                self.url, data=self.body, headers={"Content-Type": self.content_type}, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    body = json.loads(response.read())
                    self.statuses[response.status] += 1
                    self.versions[body["model_version"]] += 1
                    self.kinds[body.get("model_kind", "")] += 1
            except urllib.error.HTTPError as exc:
                self.statuses[exc.code] += 1
                self.failures.append(exc.read().decode(errors="replace")[:300])
            except OSError as exc:  # refused, reset, timed out: a failed search all the same
                self.statuses[0] += 1
                self.failures.append(repr(exc))
            self._halt.wait(self.pause_s)
