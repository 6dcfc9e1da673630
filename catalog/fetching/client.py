"""The guarded fetch: vet the URL, resolve once, check every address, connect to a checked one,
follow at most N redirects the same way, retry what is transient, cap and hash the body."""

from __future__ import annotations

import http.client
import ipaddress
import random
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar, cast
from urllib.parse import urljoin

from catalog.fetching.addresses import address_refusal, host_matches, is_loopback_name
from catalog.fetching.connection import (
    Deadline,
    PinnedConnection,
    SockAddr,
    send_get,
    tls_context,
    transport_error,
)
from catalog.fetching.errors import FetchError
from catalog.fetching.limits import HostLimiter
from catalog.fetching.policy import FetchPolicy
from catalog.fetching.stream import FetchResult, FetchStream, rename
from catalog.fetching.urls import ParsedUrl, parse_url
from ml.preprocess import ImageRejected, validate_image

T = TypeVar("T")
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_FAMILIES = (socket.AF_INET, socket.AF_INET6)
IMAGE_ACCEPT = "image/jpeg, image/png, image/webp, image/gif;q=0.9, */*;q=0.1"
# Declared types a valid image may come with: CDNs and object stores label uploads these ways.
_IMAGE_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")
# The process-wide per-host limit; pass your own HostLimiter to keep a test or a pool apart.
DEFAULT_LIMITER = HostLimiter()


def fetch(
    url: str,
    policy: FetchPolicy,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    accept: str = "*/*",
    limiter: HostLimiter | None = None,
) -> FetchResult:
    """GET ``url`` into memory under ``policy``. A 304 to the given ETag / Last-Modified returns a
    result with ``not_modified`` true and no content. Raises FetchError."""
    return _fetch(url, policy, etag, last_modified, accept, limiter, expect_image=False)


def fetch_image(
    url: str,
    policy: FetchPolicy,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    limiter: HostLimiter | None = None,
) -> FetchResult:
    """:func:`fetch` for a picture: a declared non-image type is refused before the body is read
    (``not_an_image``), and the body must pass ``ml.preprocess.validate_image`` with the policy's
    ``max_bytes`` / ``max_pixels`` (else the ImageRejected code is the reason). ``result.image``
    holds the format and size."""
    result = _fetch(url, policy, etag, last_modified, IMAGE_ACCEPT, limiter, expect_image=True)
    if result.not_modified:
        return result
    try:
        info = validate_image(result.content, max_bytes=policy.max_bytes, max_pixels=policy.max_pixels)
    except ImageRejected as exc:
        raise FetchError(exc.code, url, exc.message, attempts=result.attempts) from exc
    return replace(result, image=info)


def open_url(
    url: str,
    policy: FetchPolicy,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    accept: str = "*/*",
    limiter: HostLimiter | None = None,
) -> FetchStream:
    """Open ``url`` for streaming (a feed): the same checks, redirects and retries as :func:`fetch`
    up to the response's headers, then a :class:`FetchStream` to read and close (``with``)."""

    def attempt() -> FetchStream:
        return _open(url, policy, etag, last_modified, accept, limiter or DEFAULT_LIMITER)

    stream, attempts = _with_retries(policy, attempt)
    stream.attempts = attempts
    return stream


def _fetch(
    url: str,
    policy: FetchPolicy,
    etag: str | None,
    last_modified: str | None,
    accept: str,
    limiter: HostLimiter | None,
    *,
    expect_image: bool,
) -> FetchResult:
    def attempt() -> FetchResult:
        with _open(url, policy, etag, last_modified, accept, limiter or DEFAULT_LIMITER) as stream:
            if expect_image and not stream.not_modified:
                _check_image_type(stream)
            content = stream.read()
            return stream.result(content)

    result, attempts = _with_retries(policy, attempt)
    return replace(result, attempts=attempts)


def _check_image_type(stream: FetchStream) -> None:
    declared = (stream.content_type or "").split(";")[0].strip().lower()
    if declared and not declared.startswith(_IMAGE_TYPES):
        raise FetchError("not_an_image", stream.url, f"the server sent {declared}, not an image")


def _with_retries(policy: FetchPolicy, attempt: Callable[[], T]) -> tuple[T, int]:
    """Run ``attempt`` until it succeeds, fails for good, or the retries are spent."""
    attempts = 0
    while True:
        attempts += 1
        try:
            return attempt(), attempts
        except FetchError as exc:
            exc.attempts = attempts
            if not exc.transient or attempts > policy.retries:
                raise
        time.sleep(backoff_delay(policy, attempts))


def backoff_delay(policy: FetchPolicy, retry: int) -> float:
    """Wait before retry number ``retry`` (1, 2, ...): exponential, capped, half of it jitter so
    that workers that failed together do not come back together."""
    ceiling = min(policy.backoff_max_s, policy.backoff_s * 2 ** (retry - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _open(
    url: str,
    policy: FetchPolicy,
    etag: str | None,
    last_modified: str | None,
    accept: str,
    limiter: HostLimiter,
) -> FetchStream:
    """One attempt: follow redirects to a final response, its headers read, its body not yet."""
    headers = {"User-Agent": policy.user_agent, "Accept": accept, "Accept-Encoding": "identity"}
    headers["Connection"] = "close"
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    timeouts = f"connect {policy.connect_timeout_s:g} s, read {policy.read_timeout_s:g} s" + (
        f", whole attempt {policy.total_timeout_s:g} s" if policy.total_timeout_s is not None else ""
    )
    deadline = Deadline(policy.total_timeout_s)
    current = url
    try:
        for redirects in range(policy.max_redirects + 1):
            parsed = parse_url(current)
            sockaddrs = _checked_addresses(parsed, policy)
            lease = limiter.acquire(parsed.host, policy.per_host_concurrency, deadline.remaining())
            if lease is None:
                raise FetchError(
                    "timeout", current, f"no free connection slot in time ({timeouts})", transient=True
                )
            conn = PinnedConnection(
                parsed,
                sockaddrs,
                connect_timeout_s=policy.connect_timeout_s,
                read_timeout_s=policy.read_timeout_s,
                deadline=deadline,
                tls=tls_context(policy.ca_file) if parsed.scheme == "https" else None,
            )
            try:
                response = send_get(conn, parsed, headers)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                lease.release()
                raise transport_error(exc, current, deadline, timeouts) from exc
            except BaseException:
                # Anything else (a caller's malformed ETag, an interrupt) must not keep the host's slot.
                conn.close()
                lease.release()
                deadline.cancel()
                raise
            location = response.getheader("Location") if response.status in REDIRECTS else None
            if location is not None:
                # Closing the connection discards the redirect's body unread; the deadline runs on.
                response.close()
                conn.close()
                lease.release()
                current = urljoin(current, location)
                continue
            stream = FetchStream(
                url=url,
                final_url=current,
                response=response,
                connection=conn,
                lease=lease,
                deadline=deadline,
                max_bytes=policy.max_bytes,
                redirects=redirects,
                validators=(etag, last_modified),
                timeouts=timeouts,
            )
            _check_status(stream, policy, conditional=bool(etag or last_modified))
            return stream
        raise FetchError(
            "too_many_redirects",
            current,
            f"more than {policy.max_redirects} redirects; the next is {current}",
        )
    except FetchError as exc:
        deadline.cancel()
        raise rename(exc, url) from exc.__cause__


def _check_status(stream: FetchStream, policy: FetchPolicy, *, conditional: bool) -> None:
    status = stream.status
    if status in (200, 203) or (status == 304 and conditional):
        declared = stream.content_length
        if declared is not None and declared > policy.max_bytes:
            stream.close()
            raise FetchError(
                "too_large",
                stream.final_url,
                f"the server announces {declared:,} bytes; the limit is {policy.max_bytes:,}",
            )
        return
    stream.close()
    raise FetchError(
        f"http_{status}",
        stream.final_url,
        f"the server answered {status} {stream.reason_phrase}".rstrip(),
        transient=status >= 500,
        status=status,
    )


def _checked_addresses(parsed: ParsedUrl, policy: FetchPolicy) -> list[SockAddr]:
    """Every address ``parsed.host`` stands for, from one lookup, each one allowed by ``policy``."""
    if policy.allowed_hosts and not host_matches(parsed.host, policy.allowed_hosts):
        raise FetchError("host_not_allowed", parsed.url, f"{parsed.host} is not an allowed image host")
    if parsed.ip is not None:
        family = socket.AF_INET if parsed.ip.version == 4 else socket.AF_INET6
        sockaddr = (
            (parsed.host, parsed.port) if family == socket.AF_INET else (parsed.host, parsed.port, 0, 0)
        )
        candidates = [(family, sockaddr)]
    elif is_loopback_name(parsed.host):
        raise FetchError("private_address", parsed.url, f"{parsed.host} is a loopback name")
    else:
        try:
            infos = socket.getaddrinfo(
                parsed.host, parsed.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (OSError, UnicodeError) as exc:
            raise FetchError("dns_error", parsed.url, f"{parsed.host} cannot be resolved ({exc})") from exc
        # Only AF_INET and AF_INET6 entries are kept, whose addresses are (host, port[, flow, scope]);
        # getaddrinfo's type also covers other families' address shapes.
        candidates = [
            (family, cast(tuple[str, int] | tuple[str, int, int, int], sockaddr))
            for family, _, _, _, sockaddr in infos
            if family in _FAMILIES
        ]
        if not candidates:
            raise FetchError("dns_error", parsed.url, f"{parsed.host} has no IPv4 or IPv6 address")
    checked: list[SockAddr] = []
    for family, sockaddr in candidates:
        address = ipaddress.ip_address(sockaddr[0])
        why = address_refusal(address, policy.allowed_private_networks)
        if why is not None:
            shown = parsed.host if parsed.ip is not None else f"{parsed.host} resolves to {address}, which"
            raise FetchError("private_address", parsed.url, f"{shown} is not public: {why}")
        if (family, sockaddr) not in checked:
            checked.append((family, sockaddr))
    return checked
