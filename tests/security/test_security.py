"""Security properties of the deployment: authentication, CSRF, request caps, no SSRF, production
settings and secrets kept out of logs. (Anonymous search throttling is tested in tests/search.)"""

from __future__ import annotations

import importlib
import logging
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from rest_framework.test import APIClient

from catalog import services
from catalog.models import Product, ProductImage
from tests.fixtures.images import image_bytes

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
UUID = "6f1c1e7e-2f0a-4d5e-9a53-1f2d3c4b5a69"


def _error_code(response) -> str:
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    return response.json()["error"]["code"]


@pytest.fixture
def product(media_root) -> Product:
    created = services.product_create(sku="SEC-1", title="Secure lamp", price="10")
    services.product_image_add(product=created, data=image_bytes(pattern=8))
    return created


# --- authentication ---------------------------------------------------------------------------


WRITES = [
    ("post", "/api/v1/products/", {"sku": "NEW", "title": "new"}),
    ("put", "/api/v1/products/{product}/", {"sku": "SEC-1", "title": "changed"}),
    ("patch", "/api/v1/products/{product}/", {"title": "changed"}),
    ("delete", "/api/v1/products/{product}/", None),
    ("post", "/api/v1/products/{product}/images/", "upload"),
    ("delete", "/api/v1/images/{image}/", None),
]


@pytest.mark.parametrize(("method", "path", "payload"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
@pytest.mark.parametrize("credentials", ["none", "bad-token"])
def test_every_catalog_write_needs_a_token(
    api_client: APIClient, product: Product, method: str, path: str, payload, credentials: str
) -> None:
    if credentials == "bad-token":
        api_client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    image = product.images.get()
    url = path.format(product=product.pk, image=image.pk)
    if payload == "upload":
        from django.core.files.uploadedfile import SimpleUploadedFile

        upload = SimpleUploadedFile("p.jpg", image_bytes(pattern=9), content_type="image/jpeg")
        response = api_client.post(url, {"image": upload}, format="multipart")
    else:
        response = getattr(api_client, method)(url, payload, format="json")
    assert response.status_code == 401, response.content
    assert _error_code(response) == "not_authenticated"
    # Nothing changed.
    assert list(Product.objects.values_list("sku", "title")) == [("SEC-1", "Secure lamp")]
    assert list(ProductImage.objects.values_list("pk", flat=True)) == [image.pk]


def test_admin_refuses_a_logged_in_non_staff_user(client: Client, django_user_model) -> None:
    user = django_user_model.objects.create_user("shopper", "s@example.com", "pw-for-tests-only")
    client.force_login(user)
    for path in ("/admin/", "/admin/catalog/product/", "/admin/catalog/product/add/"):
        response = client.get(path)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], path


# --- CSRF ---------------------------------------------------------------------------------------


def test_admin_login_form_enforces_csrf(staff_user) -> None:
    client = Client(enforce_csrf_checks=True)
    credentials = {"username": "admin", "password": "pw-for-tests-only", "next": "/admin/"}
    refused = client.post("/admin/login/", credentials)
    assert refused.status_code == 403
    assert "_auth_user_id" not in client.session

    client.get("/admin/login/")  # sets the csrftoken cookie, as a browser would
    token = client.cookies["csrftoken"].value
    accepted = client.post("/admin/login/", {**credentials, "csrfmiddlewaretoken": token})
    assert accepted.status_code == 302 and accepted["Location"] == "/admin/"


def test_session_authenticated_api_writes_need_the_csrf_token(staff_user, media_root) -> None:
    # A browser that is logged in to the admin must not be usable cross-site to write the catalog.
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(staff_user)
    refused = client.post("/api/v1/products/", {"sku": "X", "title": "x"}, format="json")
    assert refused.status_code == 403, refused.content
    assert _error_code(refused) == "permission_denied"
    assert "CSRF" in refused.json()["error"]["message"]
    assert not Product.objects.exists()

    client.get("/admin/")  # a page with a form (logout) sets the cookie, as in a browser
    token = client.cookies["csrftoken"].value
    accepted = client.post(
        "/api/v1/products/", {"sku": "X", "title": "x"}, format="json", HTTP_X_CSRFTOKEN=token
    )
    assert accepted.status_code == 201, accepted.content


def test_token_authenticated_writes_need_no_csrf_token(api_token) -> None:
    # Tokens are not sent automatically by browsers, so CSRF does not apply (and must not block).
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token}")
    assert client.post("/api/v1/products/", {"sku": "T", "title": "t"}, format="json").status_code == 201


# --- request size caps (uploads over MAX_UPLOAD_BYTES: tests/catalog, tests/search, the corpus) ---


@pytest.mark.parametrize("path", ["/api/v1/products/", "/api/v1/search/"])
def test_json_body_over_the_cap_is_refused(auth_client: APIClient, settings, path: str) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    body = {"sku": "BIG", "title": "big", "description": "x" * 4096, "product_id": 1}
    response = auth_client.post(path, body, format="json")
    assert response.status_code == 413, response.content
    assert _error_code(response) == "request_too_large"
    assert not Product.objects.filter(sku="BIG").exists()


# --- no server-side fetches of client URLs (SSRF) -----------------------------------------------


@pytest.fixture
def outbound_connections(monkeypatch) -> list:
    """Record (and refuse) every socket connection a request makes: there must be none."""
    attempts: list = []
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address) -> None:
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        attempts.append(address)
        raise ConnectionRefusedError(f"test forbids outbound connections (to {address!r})")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, address: attempts.append(address) or 111)
    return attempts


@pytest.mark.parametrize(
    ("payload", "fmt"),
    [
        ({"image": "http://127.0.0.1:1/x"}, "json"),
        ({"image": "http://127.0.0.1:1/x"}, "multipart"),  # a text field named image, not a file
        ({"image": "file:///etc/passwd"}, "multipart"),
        ({"image": {"url": "http://127.0.0.1:1/x"}}, "json"),
    ],
    ids=["image-json-string", "image-form-string", "file-url", "image-object"],
)
def test_search_never_fetches_a_url_given_as_the_photo(
    api_client: APIClient,
    active_model,  # noqa: F811
    outbound_connections: list,
    payload: dict,
    fmt: str,
) -> None:
    response = api_client.post("/api/v1/search/", payload, format=fmt)
    assert response.status_code == 400, response.content
    assert _error_code(response) == "invalid_parameter"
    assert outbound_connections == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata: link-local
        "http://10.0.0.1/x",  # a private network
        "http://[::1]/x",  # loopback by IPv6
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/x",
    ],
)
def test_image_url_is_fetched_only_through_the_address_guard(
    api_client: APIClient,
    active_model,  # noqa: F811
    outbound_connections: list,
    url: str,
) -> None:
    # image_url is a feature: the server fetches it, but only through catalog.fetching's guard, which
    # refuses these before connecting (and before any name lookup).
    response = api_client.post("/api/v1/search/", {"image_url": url, "limit": 3}, format="json")
    assert response.status_code == 400, response.content
    assert _error_code(response) in ("image_url_refused", "invalid_parameter")
    assert outbound_connections == []


# --- production settings ------------------------------------------------------------------------


def _production_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECRET_KEY"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY=secrets.token_urlsafe(60),  # 80 characters, high entropy: what check --deploy wants
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/lookalike",
        ALLOWED_HOSTS="example.com",
    )
    env.update(overrides)
    return env


def test_check_deploy_is_clean_with_production_settings() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=_production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DATABASE_URL"])
def test_production_settings_without_a_secret_refuse_to_load(monkeypatch, missing: str) -> None:
    for key, value in _production_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv(missing)
    monkeypatch.delitem(sys.modules, "config.settings.production", raising=False)
    with pytest.raises(ImproperlyConfigured) as info:
        importlib.import_module("config.settings.production")
    message = str(info.value)
    assert missing in message and "\n" not in message
    monkeypatch.delitem(sys.modules, "config.settings.production", raising=False)


# --- secrets stay out of logs -------------------------------------------------------------------


def test_secrets_never_reach_the_logs(
    caplog: pytest.LogCaptureFixture, settings, api_token: str, monkeypatch, product: Product
) -> None:
    settings.SECRET_KEY = "test-secret-" + secrets.token_hex(24)
    client = APIClient()
    client.raise_request_exception = False  # let Django log the 500 the way production does
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token}")

    def explode(**_kwargs):
        raise RuntimeError("database on fire")

    with caplog.at_level(logging.DEBUG):
        assert client.get(f"/api/v1/products/{product.pk}/").status_code == 200
        assert client.post("/api/v1/products/", {"sku": ""}, format="json").status_code == 400
        assert client.get("/api/v1/products/999999/").status_code == 404
        monkeypatch.setattr("catalog.selectors.product_list", explode)
        crashed = client.get("/api/v1/products/")
    assert crashed.status_code == 500
    assert settings.SECRET_KEY.encode() not in crashed.content and api_token.encode() not in crashed.content

    assert any(r.levelno >= logging.ERROR for r in caplog.records), "the 500 must be logged"
    logged = caplog.text + "".join(
        f"{r.getMessage()} {r.args!r} {vars(r).get('request')!r} {r.exc_text or ''}" for r in caplog.records
    )
    for secret in (api_token, settings.SECRET_KEY):
        assert secret not in logged
