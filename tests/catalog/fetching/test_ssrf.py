"""End to end on loopback, with only 127.0.0.1/32 allowed: every other way to name a loopback address
is refused before a connection is made, redirects included, and a name is resolved exactly once."""

from __future__ import annotations

import pytest

from catalog.fetching import FetchError, fetch, fetch_image
from tests.catalog.fetching.conftest import Aliases, make_policy
from tests.support.loopback import IMAGE

OTHER_LOOPBACK_HOSTS = [
    "127.0.0.2",
    "127.2",
    "0x7f000002",
    "2130706434",
    "017700000002",
    "0x7f.0.0.2",
    "localhost",
    "api.localhost",
    "[::ffff:127.0.0.2]",
    "[::127.0.0.2]",
    "[64:ff9b::7f00:2]",
]


def test_other_loopback_spellings_are_refused_without_a_connection(
    aliases: Aliases, fake_dns, limiter
) -> None:
    policy = make_policy()
    looked_up = fake_dns({})  # any lookup would fail the test's intent: these need no DNS
    port = aliases.server.port
    assert fetch(aliases.server.url("/image.jpg"), policy, limiter=limiter).content == IMAGE
    for host in OTHER_LOOPBACK_HOSTS:
        url = f"http://{host}:{port}/image.jpg"
        with pytest.raises(FetchError) as caught:
            fetch_image(url, policy, limiter=limiter)
        assert caught.value.reason == "private_address", url
        assert url in caught.value.message
    assert looked_up == []
    assert aliases.connections() == []
    assert [path for path, _ in aliases.server.requests] == ["/image.jpg"]


def test_a_redirect_to_another_loopback_address_is_refused_without_a_connection(
    aliases: Aliases, limiter
) -> None:
    policy = make_policy()
    port = aliases.server.port
    for target in [f"http://127.0.0.2:{port}/image.jpg", f"http://2130706434:{port}/image.jpg"]:
        with pytest.raises(FetchError) as caught:
            fetch_image(aliases.server.url(f"/to?{target}"), policy, limiter=limiter)
        assert caught.value.reason == "private_address"
        assert target in caught.value.message
    assert aliases.connections() == []


def test_ipv6_loopback_is_refused_without_a_connection(aliases: Aliases, limiter) -> None:
    if aliases.v6 is None:
        pytest.skip("this machine has no IPv6 loopback (::1 cannot be bound), so nothing listens there")
    policy = make_policy()
    direct = f"http://[::1]:{aliases.server.port}/image.jpg"
    for url in [direct, aliases.server.url(f"/to?{direct}")]:
        with pytest.raises(FetchError) as caught:
            fetch_image(url, policy, limiter=limiter)
        assert caught.value.reason == "private_address"
        assert "loopback" in caught.value.message
    assert aliases.connections() == []


def test_without_the_allowance_even_127_0_0_1_is_refused(aliases: Aliases, limiter) -> None:
    with pytest.raises(FetchError) as caught:
        fetch(aliases.server.url("/image.jpg"), make_policy(allowed_private_networks=[]), limiter=limiter)
    assert caught.value.reason == "private_address" and "loopback" in caught.value.message
    assert aliases.server.requests == []


def test_a_name_is_resolved_once_and_connected_to_as_checked(aliases: Aliases, fake_dns, limiter) -> None:
    # DNS rebinding: the first answer passes the check, a second lookup would point elsewhere.
    looked_up = fake_dns({"images.test": [["127.0.0.1"], ["127.0.0.2"]]})
    url = f"http://images.test:{aliases.server.port}/image.jpg"
    result = fetch_image(url, make_policy(), limiter=limiter)
    assert result.content == IMAGE
    assert looked_up == ["images.test"]
    assert aliases.connections() == []
    _, headers = aliases.server.requests[0]
    assert headers["Host"] == f"images.test:{aliases.server.port}"


def test_the_rebound_answer_itself_would_have_been_refused(aliases: Aliases, fake_dns, limiter) -> None:
    # The other half of the rebinding test: had the second answer been used, it was a refusal.
    fake_dns({"images.test": [["127.0.0.2"]]})
    with pytest.raises(FetchError) as caught:
        fetch_image(f"http://images.test:{aliases.server.port}/image.jpg", make_policy(), limiter=limiter)
    assert caught.value.reason == "private_address" and "resolves to 127.0.0.2" in caught.value.message
    assert aliases.connections() == []


def test_every_address_of_a_name_must_pass(aliases: Aliases, fake_dns, limiter) -> None:
    # One allowed and one private answer: refused as a whole, nothing connected, not even the allowed one.
    fake_dns({"mixed.test": [["127.0.0.1", "10.0.0.1"]]})
    with pytest.raises(FetchError) as caught:
        fetch(f"http://mixed.test:{aliases.server.port}/image.jpg", make_policy(), limiter=limiter)
    assert caught.value.reason == "private_address" and "10.0.0.1" in caught.value.message
    assert aliases.server.requests == []


def test_a_name_that_does_not_resolve_is_a_dns_error(fake_dns, limiter) -> None:
    fake_dns({})
    with pytest.raises(FetchError) as caught:
        fetch("http://nowhere.test/image.jpg", make_policy(), limiter=limiter)
    assert caught.value.reason == "dns_error" and caught.value.attempts == 1


def test_a_host_outside_the_allowlist_is_refused_before_any_lookup(fake_dns, limiter) -> None:
    looked_up = fake_dns({"images.test": [["127.0.0.1"]]})
    policy = make_policy(allowed_hosts=["*.cdn.test"])
    with pytest.raises(FetchError) as caught:
        fetch("http://images.test/image.jpg", policy, limiter=limiter)
    assert caught.value.reason == "host_not_allowed"
    assert looked_up == []
