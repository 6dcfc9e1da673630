"""What a fetch may do: one frozen value, built from Django settings in exactly one place."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from catalog.fetching.addresses import IPNetwork, normalise_host_name
from ml.preprocess import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class FetchPolicy:
    """Limits and allowlists for every fetch. Sequences given as lists or strings are normalised.

    - ``allowed_hosts``: empty means any public host; else only these names, exact or
      ``*.example.com`` (any subdomain, not the bare domain). Checked on every redirect too.
    - ``allowed_private_networks``: CIDRs let through although not public (``127.0.0.1/32`` in tests).
    - ``connect_timeout_s`` bounds each TCP connect and TLS handshake; ``read_timeout_s`` each wait
      for bytes; ``total_timeout_s`` (None: no bound) one whole attempt, redirects and body included,
      so a server dripping one byte per ``read_timeout_s`` cannot hold a worker for hours.
    - ``max_bytes``: the body cap; ``max_pixels``: the image cap handed to ml.preprocess.
    - ``retries``: extra attempts after a timeout, a dropped connection or a 5xx, waiting
      ``backoff_s * 2**n`` (capped at ``backoff_max_s``, half of it random jitter).
    - ``per_host_concurrency``: at most this many connections to one host name at once, per process.
    - ``ca_file``: a PEM bundle to trust for https instead of the system's (tests; private CAs).
    """

    allowed_hosts: tuple[str, ...] = ()
    allowed_private_networks: tuple[IPNetwork, ...] = ()
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 10.0
    # 20 MiB (the default cap) at 1 MB/s takes 20 s; three times that is still a bound.
    total_timeout_s: float | None = 60.0
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_redirects: int = 3
    retries: int = 2
    backoff_s: float = 0.25
    backoff_max_s: float = 4.0
    # Browsers open 6 connections per host; 4 keeps a shop's CDN friendly to a worker pool.
    per_host_concurrency: int = 4
    user_agent: str = "Lookalike-Fetcher/1.0"
    ca_file: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_hosts", _host_patterns(self.allowed_hosts))
        object.__setattr__(self, "allowed_private_networks", _networks(self.allowed_private_networks))
        for name in ("connect_timeout_s", "read_timeout_s", "backoff_max_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.total_timeout_s is not None and not self.total_timeout_s > 0:
            raise ValueError(f"total_timeout_s must be positive or None, got {self.total_timeout_s!r}")
        for name in ("max_bytes", "max_pixels", "per_host_concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        for name in ("max_redirects", "retries"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)!r}")
        if self.backoff_s < 0:
            raise ValueError(f"backoff_s must not be negative, got {self.backoff_s!r}")


def _items(value: Iterable[Any] | str) -> list[Any]:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return list(value)


def _host_patterns(value: Iterable[str] | str) -> tuple[str, ...]:
    patterns = []
    for item in _items(value):
        wildcard = item.startswith("*.")
        try:
            name = normalise_host_name(item[2:] if wildcard else item)
        except ValueError as exc:
            raise ValueError(f"allowed host {item!r} is neither a host name nor *.domain") from exc
        patterns.append(f"*.{name}" if wildcard else name)
    return tuple(patterns)


def _networks(value: Iterable[str | IPNetwork] | str) -> tuple[IPNetwork, ...]:
    networks = []
    for item in _items(value):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"allowed private network {item!r} is not a CIDR ({exc})") from exc
    return tuple(networks)


def policy_from_settings(**overrides: Any) -> FetchPolicy:
    """The policy the settings describe; ``overrides`` (any FetchPolicy field) win.

    The only reader of Django settings in catalog.fetching: IMAGE_FETCH_ALLOWED_HOSTS,
    IMAGE_FETCH_ALLOW_PRIVATE_NETWORKS, MAX_UPLOAD_BYTES and MAX_IMAGE_PIXELS.
    """
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    values: dict[str, Any] = {
        "allowed_hosts": settings.IMAGE_FETCH_ALLOWED_HOSTS,
        "allowed_private_networks": settings.IMAGE_FETCH_ALLOW_PRIVATE_NETWORKS,
        "max_bytes": settings.MAX_UPLOAD_BYTES,
        "max_pixels": settings.MAX_IMAGE_PIXELS,
        **overrides,
    }
    try:
        return FetchPolicy(**values)
    except ValueError as exc:
        raise ImproperlyConfigured(f"Image fetch settings are invalid: {exc}.") from exc
