"""Parse and vet a URL before anything is resolved or sent. Pure: no DNS, no sockets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from catalog.fetching.addresses import IPAddress, normalise_host_name, parse_ip_literal
from catalog.fetching.errors import FetchError

ALLOWED_SCHEMES = {"http": 80, "https": 443}
MAX_URL_LENGTH = 8192
# Whitespace, control characters and backslashes are where URL parsers disagree with each other
# ("http://a.com\@127.0.0.1/" is one host to Python and another to a browser); none belongs in a URL.
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\]")
# Only what cannot go on a request line as it is (non-ASCII) is percent-encoded: re-encoding
# anything else could change what a signed CDN URL means.
_ASCII_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))


@dataclass(frozen=True)
class ParsedUrl:
    """A URL that passed the syntactic checks. ``host`` is the comparable host name, or the
    canonical text of the address for an IP literal (``ip`` is then set)."""

    url: str
    scheme: str
    host: str
    port: int
    ip: IPAddress | None
    target: str  # what goes on the request line: path and query, percent-encoded

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == ALLOWED_SCHEMES[self.scheme] else f"{host}:{self.port}"


def parse_url(url: str) -> ParsedUrl:
    """Check ``url``'s syntax, scheme, credentials and host; raise FetchError or return its parts."""
    if not isinstance(url, str) or not url:
        raise FetchError("invalid_url", str(url), "the URL is empty or not text")
    if len(url) > MAX_URL_LENGTH:
        raise FetchError("invalid_url", url, f"the URL is longer than {MAX_URL_LENGTH} characters")
    if _FORBIDDEN.search(url):
        raise FetchError("invalid_url", url, "the URL contains whitespace, a control character or '\\'")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchError("invalid_url", url, f"the URL cannot be parsed ({exc})") from exc
    scheme = parts.scheme.lower()
    if not scheme:
        raise FetchError("invalid_url", url, "the URL has no scheme (http:// or https://)")
    if scheme not in ALLOWED_SCHEMES:
        raise FetchError("scheme_not_allowed", url, f"only http and https are fetched, not {scheme}")
    if "@" in parts.netloc:
        raise FetchError("invalid_url", url, "user names and passwords in URLs are refused")
    raw_host = parts.hostname
    if not raw_host:
        raise FetchError("invalid_url", url, "the URL has no host")
    if port == 0:
        raise FetchError("invalid_url", url, "port 0 cannot be connected to")
    try:
        ip = parse_ip_literal(raw_host)
        host = ip.compressed if ip is not None else normalise_host_name(raw_host)
    except ValueError as exc:
        raise FetchError("invalid_url", url, f"the host is invalid ({exc})") from exc
    target = quote(parts.path, safe=_ASCII_PRINTABLE) or "/"
    if parts.query:
        target += "?" + quote(parts.query, safe=_ASCII_PRINTABLE)
    return ParsedUrl(
        url=url,
        scheme=scheme,
        host=host,
        port=port if port is not None else ALLOWED_SCHEMES[scheme],
        ip=ip,
        target=target,
    )
