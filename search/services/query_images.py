"""Query photos given by URL: fetched during the search request, through the same guard as every
other download (catalog.fetching: redirects checked, byte and pixel caps, the body validated as an
image), with a tight time limit and no retries, since a shopper is waiting.

Queries get a stricter policy than the catalog's: anyone may send one, so they reach public
addresses only. The catalog's host allowlist (IMAGE_FETCH_ALLOWED_HOSTS, a restriction) applies to
them too; its private networks (IMAGE_FETCH_ALLOW_PRIVATE_NETWORKS, an exception an operator makes
for their own feeds and mirrors) never do. SEARCH_IMAGE_URL_ALLOW_PRIVATE_NETWORKS is the queries'
own exception, empty unless set (the tests' loopback photo server)."""

from __future__ import annotations

from django.conf import settings

from catalog.fetching import FetchError, FetchPolicy, fetch_image, policy_from_settings
from search.errors import SearchError

# What the shopper is told, per fetch failure. Fixed sentences: the fetcher's own detail can carry
# what our resolver answered (an internal address a name resolves to, the resolver's error text),
# which is no business of whoever sent the URL. The reason stays, in parentheses, for clients.
_PUBLIC_MESSAGES = {
    "dns_error": "The image URL's host name could not be found.",
    "timeout": "The image URL did not answer in time.",
    "connection_error": "The image URL's server could not be reached.",
    "private_address": "The image URL points to an address that is not public.",
    "host_not_allowed": "The image URL's host is not one images may be fetched from.",
    "too_many_redirects": "The image URL redirects too many times.",
    "too_large": "The image at the URL is larger than the server accepts.",
}


def query_policy() -> FetchPolicy:
    """The fetch policy of search photos given by URL (see the module's docstring)."""
    limit = settings.SEARCH_IMAGE_URL_TIMEOUT_S
    return policy_from_settings(
        allowed_private_networks=settings.SEARCH_IMAGE_URL_ALLOW_PRIVATE_NETWORKS,
        connect_timeout_s=min(2.0, limit),
        read_timeout_s=limit,
        total_timeout_s=limit,
        retries=0,
    )


def image_from_url(url: str) -> bytes:
    """The bytes of the image at ``url``, validated; SearchError ``image_url_refused`` (the URL may not
    be fetched, or is not a usable image) or ``image_url_unreachable`` (no answer, no such host, an
    HTTP error). Both are the client's to fix (a 4xx): the URL is theirs."""
    try:
        return fetch_image(url, query_policy()).content
    except FetchError as exc:
        unreachable = exc.reason in ("dns_error", "timeout", "connection_error") or exc.reason.startswith(
            "http_"
        )
        code = "image_url_unreachable" if unreachable else "image_url_refused"
        if exc.reason.startswith("http_"):
            message = f"The image URL's server answered {exc.status}."
        else:
            # Image problems (not_an_image, corrupt_image, ...) describe the bytes, not our network.
            message = _PUBLIC_MESSAGES.get(exc.reason, exc.message)
        raise SearchError(code, f"{message} ({exc.reason})", "image_url") from exc
