"""The fetch against a real HTTP server on 127.0.0.1: images, caps, timeouts, redirects, retries,
conditional requests, streaming and the per-host limit."""

from __future__ import annotations

import hashlib
import io
import threading
import time

import pytest

from catalog.fetching import FetchError, FetchPolicy, backoff_delay, fetch, fetch_image, open_url
from tests.catalog.fetching.conftest import make_policy
from tests.support.loopback import CAP, ETAG, FEED, IMAGE, LAST_MODIFIED, LoopbackServer, closed_port


def refused(call, *args, **kwargs) -> FetchError:
    with pytest.raises(FetchError) as caught:
        call(*args, **kwargs)
    return caught.value


def test_an_image_is_fetched_validated_and_described(server: LoopbackServer, policy, limiter) -> None:
    result = fetch_image(server.url("/image.jpg"), policy, limiter=limiter)
    assert result.content == IMAGE
    assert result.status == 200 and not result.not_modified
    assert result.sha256 == hashlib.sha256(IMAGE).hexdigest()
    assert result.byte_count == len(IMAGE)
    assert result.content_type == "image/jpeg"
    assert (result.etag, result.last_modified) == (ETAG, LAST_MODIFIED)
    assert result.final_url == result.url == server.url("/image.jpg")
    assert (result.image.format, result.image.width, result.image.height) == ("JPEG", 64, 48)
    assert (result.redirects, result.attempts) == (0, 1)
    _, headers = server.requests[0]
    assert headers["Host"] == f"127.0.0.1:{server.port}"
    assert headers["Accept-Encoding"] == "identity"
    assert limiter.hosts() == 0  # the host's slot was given back


def test_a_slow_answer_times_out_and_is_retried(server, limiter) -> None:
    policy = make_policy(read_timeout_s=0.2, retries=1)
    started = time.monotonic()
    error = refused(fetch, server.url("/slow"), policy, limiter=limiter)
    assert error.reason == "timeout" and error.transient
    assert error.attempts == 2 and server.count("/slow") == 2
    assert time.monotonic() - started < 1.5


def test_a_body_dripping_forever_hits_the_whole_attempt_deadline(server, limiter) -> None:
    # Each byte comes well within the read timeout; only the total bound ends it.
    policy = make_policy(read_timeout_s=0.5, total_timeout_s=0.4, retries=0)
    started = time.monotonic()
    error = refused(fetch, server.url("/drip"), policy, limiter=limiter)
    assert error.reason == "timeout"
    assert time.monotonic() - started < 1.0


def test_the_whole_attempt_deadline_spans_redirects(server, limiter) -> None:
    policy = make_policy(read_timeout_s=0.5, total_timeout_s=0.4, retries=0)
    started = time.monotonic()
    error = refused(fetch, server.url(f"/to?{server.url('/drip')}"), policy, limiter=limiter)
    assert error.reason == "timeout"
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("path", ["/huge-declared", "/huge-unannounced", "/huge-chunked"])
def test_a_body_over_the_cap_is_refused(server, policy, limiter, path: str) -> None:
    error = refused(fetch, server.url(path), policy, limiter=limiter)
    assert error.reason == "too_large" and not error.transient
    assert error.attempts == 1 and server.count(path) == 1
    assert f"{CAP:,}" in error.message


def test_a_content_length_smaller_than_the_body_ends_the_body_there(server, policy, limiter) -> None:
    # The server announces 1000 bytes and sends 4x the cap: only the announced bytes are read.
    result = fetch(server.url("/lying-length"), policy, limiter=limiter)
    assert result.byte_count == len(result.content) == 1000


def test_a_body_cut_short_of_its_content_length_is_a_dropped_connection(server, policy, limiter) -> None:
    error = refused(fetch, server.url("/short-body"), policy, limiter=limiter)
    assert error.reason == "connection_error" and error.transient
    assert error.attempts == 3 and server.count("/short-body") == 3


def test_a_connection_reset_is_retried(server, policy, limiter) -> None:
    error = refused(fetch, server.url("/reset"), policy, limiter=limiter)
    assert error.reason == "connection_error" and error.transient
    assert error.attempts == 3 and server.count("/reset") == 3


def test_a_refused_connection_is_not_retried(policy, limiter) -> None:
    error = refused(fetch, f"http://127.0.0.1:{closed_port()}/image.jpg", policy, limiter=limiter)
    assert error.reason == "connection_error" and not error.transient and error.attempts == 1


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/truncated.jpg", "corrupt_image"),
        ("/page.html", "not_an_image"),
        ("/html-as-octets", "unsupported_format"),
    ],
)
def test_what_is_not_a_whole_image_is_refused_by_the_image_check(
    server, policy, limiter, path, reason
) -> None:
    error = refused(fetch_image, server.url(path), policy, limiter=limiter)
    assert error.reason == reason and not error.transient and error.attempts == 1
    assert server.url(path) in error.message


def test_the_image_pixel_cap_comes_from_the_policy(server, limiter) -> None:
    error = refused(
        fetch_image, server.url("/image.jpg"), make_policy(max_pixels=64 * 48 - 1), limiter=limiter
    )
    assert error.reason == "too_many_pixels"


def test_html_is_fine_for_a_plain_fetch(server, policy, limiter) -> None:
    assert fetch(server.url("/page.html"), policy, limiter=limiter).content.startswith(b"<!doctype html>")


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_up_to_three_redirects_are_followed(server, policy, limiter, hops: int) -> None:
    result = fetch_image(server.url(f"/redirect/{hops}"), policy, limiter=limiter)
    assert result.content == IMAGE
    assert result.redirects == hops
    assert result.url == server.url(f"/redirect/{hops}")
    assert result.final_url == server.url("/image.jpg")


def test_a_fourth_redirect_is_refused_without_following_it(server, policy, limiter) -> None:
    error = refused(fetch_image, server.url("/redirect/4"), policy, limiter=limiter)
    assert error.reason == "too_many_redirects"
    assert [path for path, _ in server.requests] == [
        "/redirect/4",
        "/redirect/3",
        "/redirect/2",
        "/redirect/1",
    ]


@pytest.mark.parametrize(
    ("target", "reason"),
    [("file:///etc/passwd", "scheme_not_allowed"), ("http://user:pw@127.0.0.1/", "invalid_url")],
)
def test_every_redirect_target_is_vetted_like_the_first_url(server, policy, limiter, target, reason) -> None:
    error = refused(fetch, server.url(f"/to?{target}"), policy, limiter=limiter)
    assert error.reason == reason
    assert error.url == server.url(f"/to?{target}") and target in error.message


def test_the_host_allowlist_applies_to_redirects(server, limiter) -> None:
    policy = make_policy(allowed_hosts=["127.0.0.1"], allowed_private_networks=["127.0.0.0/8"])
    assert fetch(server.url("/image.jpg"), policy, limiter=limiter).content == IMAGE
    error = refused(
        fetch, server.url(f"/to?http://127.0.0.2:{server.port}/image.jpg"), policy, limiter=limiter
    )
    assert error.reason == "host_not_allowed"


def test_a_404_fails_at_once(server, policy, limiter) -> None:
    error = refused(fetch, server.url("/missing"), policy, limiter=limiter)
    assert (error.reason, error.status, error.transient, error.attempts) == ("http_404", 404, False, 1)
    assert server.count("/missing") == 1


def test_a_500_is_retried_then_fails(server, policy, limiter) -> None:
    error = refused(fetch, server.url("/error"), policy, limiter=limiter)
    assert (error.reason, error.status, error.transient) == ("http_500", 500, True)
    assert error.attempts == policy.retries + 1 == server.count("/error")


def test_a_5xx_that_recovers_on_the_second_attempt_succeeds(server, policy, limiter) -> None:
    result = fetch_image(server.url("/flaky"), policy, limiter=limiter)
    assert result.content == IMAGE and result.attempts == 2 and server.count("/flaky") == 2


def test_backoff_grows_exponentially_within_its_cap_and_jitters() -> None:
    policy = FetchPolicy(backoff_s=0.1, backoff_max_s=0.5)
    for retry, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (9, 0.5)]:
        delays = {backoff_delay(policy, retry) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1


@pytest.mark.parametrize("validator", ["etag", "last_modified"])
def test_a_stored_validator_makes_a_resync_download_nothing(server, policy, limiter, validator) -> None:
    first = fetch_image(server.url("/image.jpg"), policy, limiter=limiter)
    stored = {"etag": first.etag} if validator == "etag" else {"last_modified": first.last_modified}
    again = fetch_image(server.url("/image.jpg"), policy, limiter=limiter, **stored)
    assert again.not_modified and again.status == 304
    assert (again.content, again.byte_count, again.sha256, again.image) == (b"", 0, None, None)
    assert again.etag == ETAG  # the validators come back, to be stored again
    _, headers = server.requests[1]
    sent = headers.get("If-None-Match") if validator == "etag" else headers.get("If-Modified-Since")
    assert sent == (ETAG if validator == "etag" else LAST_MODIFIED)


def test_a_changed_resource_is_downloaded_despite_an_old_validator(server, policy, limiter) -> None:
    result = fetch_image(server.url("/image.jpg"), policy, etag='"old"', limiter=limiter)
    assert result.status == 200 and result.content == IMAGE


def test_a_feed_streams_in_chunks_with_its_hash(server, policy, limiter) -> None:
    with open_url(server.url("/feed.csv"), policy, limiter=limiter) as stream:
        assert stream.content_type == "text/csv" and limiter.hosts() == 1
        chunks = list(stream.iter_chunks(4096))
    assert all(len(chunk) <= 4096 for chunk in chunks) and len(chunks) > 1
    assert b"".join(chunks) == FEED.encode()
    assert stream.sha256 == hashlib.sha256(FEED.encode()).hexdigest()
    assert stream.byte_count == len(FEED)
    assert limiter.hosts() == 0


def test_a_feed_reads_as_a_text_file(server, policy, limiter) -> None:
    with open_url(server.url("/feed.csv"), policy, limiter=limiter) as stream:
        lines = list(io.TextIOWrapper(io.BufferedReader(stream), encoding="utf-8"))
    assert len(lines) == 2001 and lines[1] == "sku-0,/image.jpg\n"


def test_a_stream_over_the_cap_stops_at_the_cap(server, policy, limiter) -> None:
    received = 0
    stream = open_url(server.url("/huge-chunked"), policy, limiter=limiter)
    with stream, pytest.raises(FetchError) as caught:
        for chunk in stream.iter_chunks():
            received += len(chunk)
    assert caught.value.reason == "too_large"
    assert received <= CAP
    assert limiter.hosts() == 0


def test_a_stream_is_opened_with_retries(server, policy, limiter) -> None:
    with open_url(server.url("/flaky"), policy, limiter=limiter) as stream:
        assert stream.attempts == 2 and stream.read() == IMAGE


def test_at_most_n_connections_per_host_at_once(server, limiter) -> None:
    policy = make_policy(per_host_concurrency=2, total_timeout_s=5.0)
    results: list[bytes] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            results.append(fetch(server.url("/slow-image"), policy, limiter=limiter).content)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(6)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert not errors and results == [IMAGE] * 6
    assert server.httpd.max_slow_active == 2
    assert time.monotonic() - started >= 3 * 0.2  # three rounds of two
    assert limiter.hosts() == 0


def test_a_fetch_waiting_for_a_busy_host_gives_up_at_its_deadline(server, limiter) -> None:
    policy = make_policy(per_host_concurrency=1, total_timeout_s=0.3, retries=0)
    with open_url(server.url("/feed.csv"), make_policy(per_host_concurrency=1), limiter=limiter):
        error = refused(fetch, server.url("/image.jpg"), policy, limiter=limiter)
    assert error.reason == "timeout" and "slot" in error.message
    assert server.count("/image.jpg") == 0


def test_a_malformed_stored_validator_is_a_caller_error_that_frees_the_slot(server, policy, limiter) -> None:
    with pytest.raises(ValueError):
        fetch(server.url("/image.jpg"), policy, etag='"v1"\r\nX-Injected: 1', limiter=limiter)
    assert limiter.hosts() == 0
    assert server.requests == []
