from __future__ import annotations

import pytest

from tests.fixtures.images import image_bytes

# The real exported model, the embedded store and the broker fixtures, shared by every suite.
pytest_plugins = ["tests.support.model_fixtures"]


@pytest.fixture(autouse=True)
def _fresh_active_model_cache():
    # Each test builds its own model rows; a row cached by an earlier test must not leak into it.
    from search.selectors import forget_active_model

    forget_active_model()
    yield
    forget_active_model()


@pytest.fixture(autouse=True)
def _fresh_throttle_history():
    # Rate-limit history lives in the cache; the suite's anonymous searches all come from one address
    # and, run quickly enough, passed 60 a minute, so later tests got 429s meant for nobody.
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def jpeg() -> bytes:
    return image_bytes()


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "pw-for-tests-only")


@pytest.fixture
def api_token(staff_user):
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=staff_user).key


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def auth_client(api_client, api_token):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {api_token}")
    return api_client
