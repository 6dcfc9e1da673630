"""https to a pinned address: SNI, the Host header and the certificate check all use the URL's host
name, never the address connected to. A throwaway certificate for images.test, on 127.0.0.1."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog.fetching import FetchError, fetch, fetch_image
from tests.catalog.fetching.conftest import make_policy
from tests.support.loopback import IMAGE, LoopbackServer


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=images.test"]
        + ["-addext", "subjectAltName=DNS:images.test"],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[LoopbackServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = LoopbackServer(tls=context)
    yield server
    server.close()


def test_https_names_the_host_in_sni_host_and_certificate(tls_server, certificate, fake_dns, limiter) -> None:
    looked_up = fake_dns({"images.test": [["127.0.0.1"]]})
    policy = make_policy(ca_file=str(certificate[0]))
    result = fetch_image(
        tls_server.url("/image.jpg", host="images.test", scheme="https"), policy, limiter=limiter
    )
    assert result.content == IMAGE
    assert looked_up == ["images.test"]
    assert tls_server.httpd.sni == ["images.test"]
    _, headers = tls_server.requests[0]
    assert headers["Host"] == f"images.test:{tls_server.port}"


@pytest.mark.parametrize(
    ("host", "ca"),
    [
        ("other.test", True),  # the certificate is for another name
        ("127.0.0.1", True),  # ... and has no IP address in it
        ("images.test", False),  # the system trust store does not know this certificate
    ],
)
def test_a_certificate_that_does_not_verify_is_refused(
    tls_server, certificate, fake_dns, limiter, host: str, ca: bool
) -> None:
    fake_dns({"images.test": [["127.0.0.1"]], "other.test": [["127.0.0.1"]]})
    policy = make_policy(ca_file=str(certificate[0]) if ca else None)
    with pytest.raises(FetchError) as caught:
        fetch(tls_server.url("/image.jpg", host=host, scheme="https"), policy, limiter=limiter)
    error = caught.value
    assert error.reason == "connection_error" and "certificate" in error.message
    assert not error.transient and error.attempts == 1
    assert tls_server.requests == []
