"""Issuing keys (command, service rules, storage) and what each key may do against the real endpoints."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apikeys import keys, services
from apikeys.models import ApiKey
from catalog import services as catalog_services
from catalog.models import Product
from tests.apikeys.conftest import SHOP

pytestmark = pytest.mark.django_db
PRODUCT = {"sku": "K-1", "title": "Kettle"}


def _code(response) -> str:
    return response.json()["error"]["code"]


def test_command_prints_the_key_once_and_stores_only_its_hmac() -> None:
    out, err = StringIO(), StringIO()
    call_command(
        "create_api_key", "--name", "Shop A", "--origin", "https://Shop.Example:443/", stdout=out, stderr=err
    )
    secret = out.getvalue().strip()
    assert secret.startswith("pk_") and len(secret) > 40
    key = ApiKey.objects.get()
    assert (key.kind, key.scopes, key.allowed_origins) == ("publishable", ["search"], [SHOP])
    assert key.digest == keys.digest(secret) and key.prefix == secret[:8]
    stored = " ".join(str(v) for v in ApiKey.objects.values().get().values())
    assert secret not in stored and secret[8:] not in stored
    assert "shown once" in err.getvalue()

    call_command(
        "create_api_key", "--name", "ERP", "--scope", "catalog:write,search", "--rate", "50/min", stdout=out
    )
    erp = ApiKey.objects.get(name="ERP")
    assert (erp.kind, erp.scopes, erp.rate) == ("secret", ["catalog:write", "search"], "50/min")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scope", "catalog:write", "--origin", SHOP], "search scope only"),
        (["--scope", "root"], "Unknown scope 'root'"),
        (["--scope", "search", "--rate", "lots"], "not like 600/min"),
        (["--origin", "https://shop.example/products"], "no path"),
        (["--origin", "ftp://shop.example"], "not a web origin"),
        ([], "at least one scope"),
    ],
)
def test_command_refuses_bad_settings(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("create_api_key", "--name", "x", *args, stdout=StringIO(), stderr=StringIO())
    assert not ApiKey.objects.exists()


def test_secret_key_with_catalog_write_writes_the_catalog(issue, bearer, media_root) -> None:
    client = bearer(issue(scopes=["catalog:write"]))
    created = client.post("/api/v1/products/", PRODUCT, format="json")
    assert created.status_code == 201, created.content
    assert (
        client.patch(f"/api/v1/products/{created.json()['id']}/", {"title": "K2"}, format="json").status_code
        == 200
    )
    assert (
        bearer(issue(scopes=["admin"])).delete(f"/api/v1/products/{created.json()['id']}/").status_code == 204
    )


def test_publishable_key_cannot_write(pk_key, bearer) -> None:
    from_page = bearer(pk_key, HTTP_ORIGIN=SHOP).post("/api/v1/products/", PRODUCT, format="json")
    assert from_page.status_code == 403 and _code(from_page) == "insufficient_scope"
    from_script = bearer(pk_key).post("/api/v1/products/", PRODUCT, format="json")
    assert from_script.status_code == 403 and _code(from_script) == "origin_not_allowed"
    assert not Product.objects.exists()


def test_a_key_without_the_scope_is_refused(issue, bearer) -> None:
    search_only = bearer(issue(scopes=["search"]))
    refused = search_only.post("/api/v1/products/", PRODUCT, format="json")
    assert refused.status_code == 403 and _code(refused) == "insufficient_scope"
    assert "catalog:write" in refused.json()["error"]["message"]
    writer = bearer(issue(scopes=["catalog:write"]))
    no_search = writer.post("/api/v1/search/", {"product_id": 1}, format="json")
    assert no_search.status_code == 403 and _code(no_search) == "insufficient_scope"
    assert not Product.objects.exists()


def test_revoked_and_unknown_keys_are_refused(issue, bearer) -> None:
    secret = issue(scopes=["catalog:write"])
    services.api_key_revoke(key=ApiKey.objects.get(digest=keys.digest(secret)))
    for key, code in [
        (secret, "api_key_revoked"),
        ("sk_" + "x" * 43, "invalid_api_key"),
        ("abc", "invalid_api_key"),
    ]:
        for method, path in [
            ("post", "/api/v1/products/"),
            ("post", "/api/v1/search/"),
            ("get", "/api/v1/products/"),
        ]:
            response = getattr(bearer(key), method)(path, PRODUCT, format="json")
            assert response.status_code == 401, (key, path, response.content)
            assert _code(response) == code
            assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Product.objects.exists()


def test_signed_in_users_write_only_as_staff_with_the_model_permission(
    api_client, django_user_model, media_root
) -> None:
    from django.contrib.auth.models import Permission

    shopper = django_user_model.objects.create_user("shopper", password="pw-for-tests-only")
    api_client.force_authenticate(shopper)
    refused = api_client.post("/api/v1/products/", PRODUCT, format="json")
    assert refused.status_code == 403 and _code(refused) == "permission_denied"
    assert api_client.get("/api/v1/products/").status_code == 200  # reading stays open

    editor = django_user_model.objects.create_user("editor", password="pw-for-tests-only", is_staff=True)
    api_client.force_authenticate(editor)
    assert api_client.post("/api/v1/products/", PRODUCT, format="json").status_code == 403
    editor.user_permissions.add(Permission.objects.get(codename="add_product"))
    editor = django_user_model.objects.get(pk=editor.pk)  # permissions are cached per user object
    api_client.force_authenticate(editor)
    created = api_client.post("/api/v1/products/", PRODUCT, format="json")
    assert created.status_code == 201
    # Adding is not deleting.
    assert api_client.delete(f"/api/v1/products/{created.json()['id']}/").status_code == 403
    assert Product.objects.count() == 1


def test_last_used_is_written_at_most_once_a_minute(issue, bearer, django_assert_num_queries) -> None:
    secret = issue(scopes=["search"])
    key = ApiKey.objects.get(digest=keys.digest(secret))
    assert key.last_used_at is None
    client = bearer(secret)
    client.post("/api/v1/search/", {}, format="json")
    first = ApiKey.objects.get(pk=key.pk).last_used_at
    assert first is not None
    # The next request within the minute only reads the key: no UPDATE.
    with django_assert_num_queries(1) as captured:
        assert client.post("/api/v1/search/", {}, format="json").status_code == 400
    assert not any("UPDATE" in q["sql"] for q in captured.captured_queries)
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=first - timedelta(minutes=2))
    client.post("/api/v1/search/", {}, format="json")
    assert ApiKey.objects.get(pk=key.pk).last_used_at > first


def test_each_key_has_its_own_rate(issue, bearer) -> None:
    slow, other = issue(scopes=["search"], rate="2/min"), issue(scopes=["search"])
    statuses = [bearer(slow).post("/api/v1/search/", {}, format="json").status_code for _ in range(3)]
    assert statuses == [400, 400, 429]  # 400: the body has no query; the throttle counts it all the same
    throttled = bearer(slow).post("/api/v1/search/", {}, format="json")
    assert _code(throttled) == "throttled" and int(throttled["Retry-After"]) >= 1
    assert bearer(other).post("/api/v1/search/", {}, format="json").status_code == 400


def test_a_publishable_key_is_rated_per_client_address_too(pk_key, bearer, monkeypatch) -> None:
    # A script can copy the key and send the shop's Origin: the Origin check does not stop it, so one
    # address may use only its share of the key's rate, and other shoppers keep theirs.
    from search.api.throttling import SearchThrottle

    rates = {
        **SearchThrottle.THROTTLE_RATES,
        "api_key_publishable": "100/min",
        "api_key_publishable_address": "2/min",
    }
    monkeypatch.setattr(SearchThrottle, "THROTTLE_RATES", rates)
    client = bearer(pk_key, HTTP_ORIGIN=SHOP)
    statuses = [client.post("/api/v1/search/", {}, format="json").status_code for _ in range(3)]
    assert statuses == [400, 400, 429]
    other = client.post("/api/v1/search/", {}, format="json", REMOTE_ADDR="192.0.2.9")
    assert other.status_code == 400  # another address: its own share of the same key


def test_revoking_in_the_admin_and_showing_the_key_once(admin_client) -> None:
    response = admin_client.post(
        "/admin/apikeys/apikey/add/",
        {
            "name": "Shop B",
            "kind": "publishable",
            "allowed_origins": "https://b.example\nhttp://localhost:3000",
            "rate": "",
        },
    )
    assert response.status_code == 200, response.content
    key = ApiKey.objects.get(name="Shop B")
    html = response.content.decode()
    secret = html.split('id="new-api-key"')[0].rsplit('value="', 1)[1].split('"')[0]
    assert secret.startswith("pk_") and keys.digest(secret) == key.digest
    assert key.allowed_origins == ["http://localhost:3000", "https://b.example"] and key.scopes == ["search"]
    # The list never shows the key again.
    assert secret not in admin_client.get("/admin/apikeys/apikey/").content.decode()
    bad = admin_client.post(
        "/admin/apikeys/apikey/add/", {"name": "x", "kind": "publishable", "allowed_origins": ""}
    )
    assert bad.status_code == 200 and "at least one allowed origin" in bad.content.decode()
    admin_client.post(
        "/admin/apikeys/apikey/", {"action": "revoke", "_selected_action": [key.pk]}, follow=True
    )
    key.refresh_from_db()
    assert key.revoked_at is not None and key.revoked_at <= timezone.now()


def test_catalog_writes_by_a_key_announce_like_any_other(issue, bearer, media_root) -> None:
    # The catalog services are the same whoever calls: a key's write is a normal write.
    catalog_services.product_create(sku="EXIST", title="x")
    response = bearer(issue(scopes=["catalog:write"])).post(
        "/api/v1/products/", {"sku": "EXIST", "title": "y"}, format="json"
    )
    assert response.status_code == 409 and _code(response) == "duplicate_sku"
