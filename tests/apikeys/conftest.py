from __future__ import annotations

import pytest

SHOP = "https://shop.example"
OTHER_SHOP = "http://127.0.0.1:8123"


@pytest.fixture
def issue(db):
    """Issue a key through the service, as the admin and the command do; returns the whole key."""
    from apikeys import services

    def make(kind: str = "secret", **kwargs) -> str:
        kwargs.setdefault("name", f"test {kind}")
        return services.api_key_create(kind=kind, **kwargs).secret

    return make


@pytest.fixture
def pk_key(issue) -> str:
    return issue("publishable", origins=[SHOP, OTHER_SHOP])


@pytest.fixture
def bearer(api_client):
    def use(key: str, **headers: str):
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}", **headers)
        return api_client

    return use
