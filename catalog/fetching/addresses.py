"""Which addresses and host names a fetch may reach. Pure functions: no DNS, no sockets.

A host in a URL may spell an IPv4 address in ways glibc's resolver (and every browser) accepts:
``2130706434``, ``0x7f000002``, ``017700000002``, ``127.1``, ``0x7f.0.0.2``. :func:`parse_ip_literal`
reads all of them, following the WHATWG URL standard's IPv4 parser (a host whose last label is a
number IS an address, or is invalid), so they are refused without ever asking DNS.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NUMBER = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)$")
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


def _nets(*pairs: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), what) for cidr, what in pairs)


# IANA's special-purpose registries; the first match names the refusal. Anything else that the
# standard library does not call global is refused too (see classify_address).
_V4_SPECIAL = _nets(
    ("0.0.0.0/8", "unspecified ('this network')"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
    ("192.0.2.0/24", "reserved (documentation)"),
    ("192.88.99.0/24", "reserved (6to4 relay anycast)"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved (benchmarking)"),
    ("198.51.100.0/24", "reserved (documentation)"),
    ("203.0.113.0/24", "reserved (documentation)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved (including broadcast)"),
)
_V6_SPECIAL = _nets(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "private (local-use NAT64)"),
    ("100::/64", "reserved (discard-only)"),
    ("2001:2::/48", "reserved (benchmarking)"),
    ("2001:10::/28", "reserved (ORCHID)"),
    ("2001:20::/28", "reserved (ORCHIDv2)"),
    ("2001:db8::/32", "reserved (documentation)"),
    ("3fff::/20", "reserved (documentation)"),
    ("5f00::/16", "reserved (SRv6 SIDs)"),
    ("fc00::/7", "private (unique local)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a URL host spells, in any accepted spelling; None for a host name.

    Raises ValueError for a host that is an address but not a valid one (``1.2.3.256``,
    ``0x1.2.3.4.5``, ``[::g]``), which no resolver should be asked about.
    """
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        if "%" in host:
            raise ValueError("IPv6 zone identifiers are not allowed in URLs")
        return ipaddress.IPv6Address(host)
    labels = host.split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()  # one trailing dot is the root of the DNS tree, not a fifth number
    if not labels or not _NUMBER.match(labels[-1]):
        return None
    if len(labels) > 4 or not all(_NUMBER.match(label) for label in labels):
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    try:
        numbers = [_parse_ipv4_number(label) for label in labels]
    except ValueError as exc:
        raise ValueError(f"{host!r} is not a valid IPv4 address") from exc
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    value = last
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _parse_ipv4_number(label: str) -> int:
    if label[:2].lower() == "0x":
        return int(label[2:] or "0", 16)
    if len(label) > 1 and label.startswith("0"):
        return int(label, 8)  # ValueError for an 8 or 9: "08" is not an address
    return int(label)


def classify_address(address: IPAddress) -> str | None:
    """Why ``address`` must not be fetched from (a short phrase), or None for a public address.

    IPv6 addresses that carry an IPv4 address (IPv4-mapped, 6to4, NAT64, Teredo) are judged by the
    IPv4 address inside; IPv4-compatible addresses (``::a.b.c.d``) are deprecated and refused.
    """
    if isinstance(address, ipaddress.IPv4Address):
        for network, what in _V4_SPECIAL:
            if address in network:
                return what
        return None if address.is_global else "reserved"
    return _classify_v6(address)


def _classify_v6(address: ipaddress.IPv6Address) -> str | None:
    plain = _without_zone(address)
    if plain in _MAPPED:
        return _embedded("IPv4-mapped", ipaddress.IPv4Address(int(plain) & 0xFFFFFFFF))
    for network, what in _V6_SPECIAL:
        if plain in network:
            return what
    if plain in _COMPATIBLE:
        return f"IPv4-compatible (deprecated), embedding {ipaddress.IPv4Address(int(plain) & 0xFFFFFFFF)}"
    if plain in _NAT64:
        return _embedded("NAT64", ipaddress.IPv4Address(int(plain) & 0xFFFFFFFF))
    if plain.sixtofour is not None:
        return _embedded("6to4", plain.sixtofour)
    if plain.teredo is not None:
        server, client = plain.teredo
        return _embedded("Teredo server", server) or _embedded("Teredo client", client)
    if plain not in _GLOBAL_UNICAST:
        return "reserved (outside global unicast 2000::/3)"
    return None


def _without_zone(address: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    # getaddrinfo answers link-local addresses with a %zone; membership tests want the bare address.
    return ipaddress.IPv6Address(int(address))


def _embedded(kind: str, inner: ipaddress.IPv4Address) -> str | None:
    what = classify_address(inner)
    return None if what is None else f"{kind} {what} address {inner}"


def address_refusal(address: IPAddress, allowed_networks: Iterable[IPNetwork] = ()) -> str | None:
    """Why a connection to ``address`` is refused, or None when it may go ahead.

    ``allowed_networks`` lets chosen non-public ranges through (a test server on 127.0.0.1, a
    shop's CDN mirror on a private network). An IPv4-mapped IPv6 address is the IPv4 address on
    the wire, so the IPv4 address inside it is matched too; other embeddings go through a gateway
    and only match as themselves.
    """
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        candidates = [_without_zone(address)]
        if address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
    for network in allowed_networks:
        if any(c.version == network.version and c in network for c in candidates):
            return None
    return classify_address(address)


def normalise_host_name(host: str) -> str:
    """A DNS host name in its comparable form (lower case, IDNA, no trailing dot); ValueError if invalid."""
    name = host[:-1] if host.endswith(".") else host
    try:
        name = name.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ValueError(f"{host!r} is not a valid host name") from exc
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{host!r} is not a valid host name")
    return name


def is_loopback_name(name: str) -> bool:
    """``localhost`` and every ``*.localhost`` name are loopback by definition (RFC 6761)."""
    return name == "localhost" or name.endswith(".localhost")


def host_matches(name: str, patterns: Iterable[str]) -> bool:
    """Whether ``name`` is one of ``patterns``: exact names, or ``*.example.com`` for any subdomain
    (at any depth, not the bare domain itself)."""
    for pattern in patterns:
        if pattern.startswith("*."):
            if name.endswith(pattern[1:]):
                return True
        elif name == pattern:
            return True
    return False
