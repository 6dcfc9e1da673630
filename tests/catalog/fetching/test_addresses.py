"""The address guard as pure functions: every spelling, every special range, both families. No packets."""

from __future__ import annotations

import ipaddress

import pytest

from catalog.fetching import FetchError, address_refusal, classify_address, parse_ip_literal
from catalog.fetching.addresses import host_matches, is_loopback_name, normalise_host_name
from catalog.fetching.urls import parse_url

ip = ipaddress.ip_address
nets = [ipaddress.ip_network("127.0.0.1/32")]


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("127.0.0.2", "127.0.0.2"),
        ("2130706434", "127.0.0.2"),
        ("0x7f000002", "127.0.0.2"),
        ("0X7F000002", "127.0.0.2"),
        ("017700000002", "127.0.0.2"),
        ("127.1", "127.0.0.1"),
        ("127.2", "127.0.0.2"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0x0.0.02", "127.0.0.2"),
        ("10.1.65535", "10.1.255.255"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("3232235777", "192.168.1.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
        ("8.8.8.8", "8.8.8.8"),
    ],
)
def test_every_spelling_of_an_address_is_read(spelling: str, address: str) -> None:
    assert parse_ip_literal(spelling) == ip(address)


@pytest.mark.parametrize(
    "name", ["example.com", "cdn.shop.example", "localhost", "0x7f.example", "0x1g", "a-1.b_c.d"]
)
def test_host_names_are_not_addresses(name: str) -> None:
    assert parse_ip_literal(name) is None


@pytest.mark.parametrize(
    "bad", ["1.2.3.256", "256.1.1.1", "1.2.3.4.5", "08", "1.2.09.1", "4294967296", "1..2", "[fe80::1%eth0]"]
)
def test_numbers_that_are_no_valid_address_are_errors_not_names(bad: str) -> None:
    # A resolver would be asked about these if they counted as names; they are refused instead.
    with pytest.raises(ValueError):
        parse_ip_literal(bad)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "shared"),
        ("100.127.255.254", "shared"),
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("169.254.169.254", "link-local"),  # the cloud metadata endpoint
        ("192.0.0.8", "reserved"),
        ("192.0.2.1", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fe80::1%2", "link-local"),
        ("fec0::1", "site-local"),
        ("fc00::1", "unique local"),
        ("fd12:3456::1", "unique local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("100::1", "discard"),
        ("64:ff9b:1::1", "local-use NAT64"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("::ffff:10.0.0.1", "IPv4-mapped private"),
        ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
        ("::127.0.0.1", "IPv4-compatible"),
        ("::8.8.8.8", "IPv4-compatible"),
        ("2002:7f00:1::1", "6to4 loopback"),
        ("2002:c0a8:101::1", "6to4 private"),
        ("64:ff9b::7f00:1", "NAT64 loopback"),
        ("64:ff9b::a9fe:a9fe", "NAT64 link-local"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo client loopback"),  # client 127.0.0.1
        ("4000::1", "outside global unicast"),
    ],
)
def test_special_addresses_are_refused_with_their_kind(address: str, kind: str) -> None:
    why = classify_address(ip(address))
    assert why is not None and kind in why
    assert address_refusal(ip(address)) == why


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "2002:808:808::1",
        "64:ff9b::808:808",
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert classify_address(ip(address)) is None
    assert address_refusal(ip(address)) is None


def test_allowed_networks_let_exactly_their_addresses_through() -> None:
    assert address_refusal(ip("127.0.0.1"), nets) is None
    assert address_refusal(ip("::ffff:127.0.0.1"), nets) is None  # the same address on the wire
    assert "loopback" in address_refusal(ip("127.0.0.2"), nets)
    assert "loopback" in address_refusal(ip("::1"), nets)
    # An embedding reached through a gateway is not the allowed address itself.
    assert "NAT64" in address_refusal(ip("64:ff9b::7f00:1"), nets)
    private = [ipaddress.ip_network("10.0.5.0/24"), ipaddress.ip_network("fd00::/8")]
    assert address_refusal(ip("10.0.5.7"), private) is None
    assert address_refusal(ip("fd00::7"), private) is None
    assert "private" in address_refusal(ip("10.0.6.7"), private)


def test_host_name_allowlist_matches_exact_names_and_subdomains() -> None:
    patterns = ["cdn.shop.example", "*.images.example"]
    assert host_matches("cdn.shop.example", patterns)
    assert host_matches("a.images.example", patterns)
    assert host_matches("a.b.images.example", patterns)
    assert not host_matches("images.example", patterns)
    assert not host_matches("evilimages.example", patterns)
    assert not host_matches("cdn.shop.example.evil.test", patterns)
    assert not host_matches("x.cdn.shop.example", patterns)


def test_host_names_are_normalised_and_loopback_names_known() -> None:
    assert normalise_host_name("CDN.Shop.Example.") == "cdn.shop.example"
    assert normalise_host_name("bücher.example") == "xn--bcher-kva.example"
    for bad in ("a..b", "-a.example", "a b", "a%2eb", "x" * 64 + ".example"):
        with pytest.raises(ValueError):
            normalise_host_name(bad)
    assert is_loopback_name("localhost") and is_loopback_name("api.localhost")
    assert not is_loopback_name("localhost.example")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "scheme_not_allowed"),
        ("gopher://127.0.0.1:6379/_INFO", "scheme_not_allowed"),
        ("ftp://example.com/a.jpg", "scheme_not_allowed"),
        ("javascript:alert(1)", "scheme_not_allowed"),
        ("//example.com/a.jpg", "invalid_url"),
        ("http://user:secret@example.com/a.jpg", "invalid_url"),
        ("http://example.com@127.0.0.1/a.jpg", "invalid_url"),
        ("http://example.com\\@127.0.0.1/", "invalid_url"),
        ("http://exa mple.com/", "invalid_url"),
        ("http://example.com/a\r\nX-Injected: 1", "invalid_url"),
        ("http:///a.jpg", "invalid_url"),
        ("http://example.com:99999/", "invalid_url"),
        ("http://example.com:0/", "invalid_url"),
        ("http://1.2.3.256/", "invalid_url"),
        ("http://%31%32%37.0.0.1/", "invalid_url"),
        ("http://" + "a" * 9000 + ".example/", "invalid_url"),
        ("", "invalid_url"),
    ],
)
def test_bad_urls_are_refused_before_any_lookup(url: str, reason: str) -> None:
    with pytest.raises(FetchError) as caught:
        parse_url(url)
    assert caught.value.reason == reason
    assert "\n" not in str(caught.value)


def test_urls_are_split_into_what_the_request_needs() -> None:
    parsed = parse_url("HTTP://CDN.Example:8080/p/ä b?q=1#frag".replace(" ", "%20"))
    assert (parsed.scheme, parsed.host, parsed.port, parsed.ip) == ("http", "cdn.example", 8080, None)
    assert parsed.target == "/p/%C3%A4%20b?q=1"
    assert parsed.host_header == "cdn.example:8080"
    v6 = parse_url("https://[::ffff:7f00:1]/")
    assert v6.ip == ip("::ffff:127.0.0.1") and v6.port == 443 and v6.host_header == "[::ffff:7f00:1]"
    assert parse_url("http://0x7f000002/").host == "127.0.0.2"
