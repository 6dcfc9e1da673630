"""Query photos given by URL: fetched during the search request, through the same guard as every
other download (catalog.fetching: public addresses only, redirects checked, byte and pixel caps, the
body validated as an image), with a tight time limit and no retries, since a shopper is waiting."""

from __future__ import annotations

from django.conf import settings

from catalog.fetching import FetchError, fetch_image, policy_from_settings
from search.errors import SearchError

# Reasons that say the other end did not give us the picture (as opposed to a URL we refuse to
# fetch, or bytes that are not a usable image): a 502 rather than a 400.
_UNREACHABLE = frozenset({"dns_error", "timeout", "connection_error"})


def image_from_url(url: str) -> bytes:
    """The bytes of the image at ``url``, validated; SearchError ``image_url_refused`` (the URL may not
    be fetched, or is not a usable image) or ``image_url_unreachable`` (no answer, an HTTP error)."""
    limit = settings.SEARCH_IMAGE_URL_TIMEOUT_S
    policy = policy_from_settings(
        connect_timeout_s=min(2.0, limit), read_timeout_s=limit, total_timeout_s=limit, retries=0
    )
    try:
        return fetch_image(url, policy).content
    except FetchError as exc:
        unreachable = exc.reason in _UNREACHABLE or exc.reason.startswith("http_")
        code = "image_url_unreachable" if unreachable else "image_url_refused"
        raise SearchError(code, f"{exc.message} ({exc.reason})", "image_url") from exc
