"""Absolute URLs in search results: each hit's product page and matched image, built once per request.

Django's ``build_absolute_uri`` validates the host and ``storage.url`` URL-joins on every call; a
dozen hits paid that a dozen times (a tenth of the search view's own time), so both are done once.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from django.core.files.storage import FileSystemStorage
from django.http import HttpRequest
from django.urls import reverse
from django.utils.encoding import filepath_to_uri

from catalog.models import ProductImage

_SENTINEL = 987654321987


def url_builder(request: HttpRequest) -> Callable[[str], str]:
    """Absolute URLs for (already URL-quoted) paths, with the host validated once per request, not per hit."""
    origin = request.build_absolute_uri("/")[:-1]
    scheme = request.scheme

    def build(path: str) -> str:
        if path.startswith("//"):  # protocol-relative, e.g. a MEDIA_URL on a CDN
            return f"{scheme}:{path}"
        return path if "://" in path else origin + path

    return build


def media_url_function() -> Callable[[str], str]:
    """``name -> URL`` for image files: ``storage.url``, minus its per-call ``urljoin`` on local disk.

    On a FileSystemStorage the URL is MEDIA_URL (which Django requires to end in "/") plus the
    URL-quoted name.
    """
    storage = ProductImage._meta.get_field("file").storage
    if isinstance(storage, FileSystemStorage) and storage.base_url and storage.base_url.endswith("/"):
        base = storage.base_url
        return lambda name: base + filepath_to_uri(name).lstrip("/")
    return storage.url


@lru_cache(maxsize=1)
def _product_path_parts() -> tuple[str, str]:
    # reverse() once, with a sentinel id, instead of once per hit; URL patterns do not change at runtime.
    path = reverse("product-page", kwargs={"product_id": _SENTINEL})
    prefix, suffix = path.split(str(_SENTINEL))
    return prefix, suffix


class HitLinks:
    """The URLs one request's results need; the hit serializers take it from their context."""

    def __init__(self, request: HttpRequest) -> None:
        self._build = url_builder(request)
        self._file_url = media_url_function()
        self._prefix, self._suffix = _product_path_parts()

    def product(self, product_id: int) -> str:
        return self._build(f"{self._prefix}{product_id}{self._suffix}")

    def image(self, name: str) -> str | None:
        return self._build(self._file_url(name)) if name else None
