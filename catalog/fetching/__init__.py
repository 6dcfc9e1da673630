"""Fetch images and feeds from URLs that shops and shoppers give us, without letting a URL reach
inside our network (SSRF). Django-free: the caller passes a :class:`FetchPolicy`;
:func:`policy_from_settings` builds one from the settings.

Every fetch, and every redirect hop (at most ``max_redirects``), goes through the same guard:
http/https only, no user names in URLs, the host allowlist, then ONE name lookup whose every
address must be public (or inside ``allowed_private_networks``), then a connection to one of
exactly those addresses, so a name that answers differently the second time (DNS rebinding) is
never asked a second time. Host header, TLS SNI and certificate check use the URL's host name.

The HTTP layer is the standard library's ``http.client``. The one thing SSRF safety needs from an
HTTP client is control over which address the socket connects to, and there the socket is made
by a single overridable ``connect()`` (connection.py). urllib3 (installed here through requests
and qdrant-client) could be pinned the same way (a pool per address with ``server_hostname`` and
``assert_hostname``), but only after switching off its redirects and retries, which must be
ours to check each hop, leaving just its response parsing, which http.client has too, with no
new direct dependency. httpx would need a custom httpcore network backend to pin addresses.
The cost: no keep-alive, one TCP (and TLS) handshake per fetch.

Public API::

    policy = policy_from_settings()                         # or FetchPolicy(...)
    result = fetch_image(url, policy, etag=..., last_modified=...)   # FetchResult, .image set
    result = fetch(url, policy, accept="application/xml")            # FetchResult, any content
    with open_url(url, policy) as stream:                            # FetchStream (file-like)
        for chunk in stream.iter_chunks(): ...

Everything refused or failed raises :class:`FetchError` with a ``reason``.
"""

from catalog.fetching.addresses import address_refusal, classify_address, parse_ip_literal
from catalog.fetching.client import DEFAULT_LIMITER, backoff_delay, fetch, fetch_image, open_url
from catalog.fetching.errors import FetchError
from catalog.fetching.limits import HostLimiter
from catalog.fetching.policy import FetchPolicy, policy_from_settings
from catalog.fetching.stream import FetchResult, FetchStream

__all__ = [
    "DEFAULT_LIMITER",
    "FetchError",
    "FetchPolicy",
    "FetchResult",
    "FetchStream",
    "HostLimiter",
    "address_refusal",
    "backoff_delay",
    "classify_address",
    "fetch",
    "fetch_image",
    "open_url",
    "parse_ip_literal",
    "policy_from_settings",
]
