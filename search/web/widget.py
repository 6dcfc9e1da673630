"""The storefront widget's script at /widget/v1/lookalike.js, for shops' pages on any origin.

Served by the app itself (not a CDN, not whitenoise's hashed /static/ name) because the URL is part of
the copy-paste contract in docs/widget.md and must stay the same across releases. The file is read
and gzipped once per change (by mtime), and revalidated by ETag.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotModified
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_safe

WIDGET_FILE = Path(__file__).resolve().parents[1] / "static" / "lookalike-widget" / "v1" / "lookalike.js"
# Shops cannot bust the cache (the URL is fixed in their pages): five minutes fresh, then a day of
# serving the cached copy while it revalidates, so a fix reaches every page within minutes.
CACHE_CONTROL = "public, max-age=300, stale-while-revalidate=86400"


@dataclass(frozen=True)
class _Asset:
    stamp: tuple[int, int]
    body: bytes
    gzipped: bytes
    etag: str


_cached: _Asset | None = None


def _asset() -> _Asset:
    global _cached
    stat = WIDGET_FILE.stat()
    stamp = (stat.st_mtime_ns, stat.st_size)
    if _cached is None or _cached.stamp != stamp:
        body = WIDGET_FILE.read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:20]
        _cached = _Asset(stamp, body, gzip.compress(body, compresslevel=9, mtime=0), digest)
    return _cached


def _accepts_gzip(request: HttpRequest) -> bool:
    for part in request.headers.get("accept-encoding", "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() == "gzip":
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


@require_safe
def widget_js(request: HttpRequest) -> HttpResponseBase:
    asset = _asset()
    gzipped = _accepts_gzip(request)
    etag = f'"{asset.etag}-gzip"' if gzipped else f'"{asset.etag}"'
    if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
        response: HttpResponseBase = HttpResponseNotModified()
    else:
        response = HttpResponse(
            asset.gzipped if gzipped else asset.body, content_type="text/javascript; charset=utf-8"
        )
        if gzipped:
            response["Content-Encoding"] = "gzip"
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    # Any page may load it, from any origin, including pages that isolate themselves (COEP).
    response["Access-Control-Allow-Origin"] = "*"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    patch_vary_headers(response, ("Accept-Encoding",))
    return response
