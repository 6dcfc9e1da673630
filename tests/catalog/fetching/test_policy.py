"""The policy value, the one function that reads it from Django settings, and a Django-free core."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from catalog.fetching import FetchPolicy, policy_from_settings

REPO = Path(__file__).resolve().parents[3]


def test_the_policy_normalises_hosts_and_networks() -> None:
    policy = FetchPolicy(
        allowed_hosts="CDN.Shop.Example., *.Images.Example", allowed_private_networks=["10.0.5.9/24"]
    )
    assert policy.allowed_hosts == ("cdn.shop.example", "*.images.example")
    assert policy.allowed_private_networks == (ipaddress.ip_network("10.0.5.0/24"),)
    assert FetchPolicy().allowed_hosts == () and FetchPolicy().allowed_private_networks == ()


@pytest.mark.parametrize(
    "fields",
    [
        {"allowed_hosts": ["http://cdn.example"]},
        {"allowed_hosts": ["*"]},
        {"allowed_private_networks": ["10.0.0.0/33"]},
        {"allowed_private_networks": ["intranet"]},
        {"connect_timeout_s": 0},
        {"total_timeout_s": -1},
        {"max_bytes": 0},
        {"retries": -1},
        {"per_host_concurrency": 0},
    ],
)
def test_an_impossible_policy_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FetchPolicy(**fields)  # type: ignore[arg-type]


def test_the_policy_comes_from_settings_with_overrides(settings) -> None:
    settings.IMAGE_FETCH_ALLOWED_HOSTS = ["*.cdn.example"]
    settings.IMAGE_FETCH_ALLOW_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    settings.MAX_UPLOAD_BYTES = 1234
    settings.MAX_IMAGE_PIXELS = 5678
    policy = policy_from_settings(read_timeout_s=2.5, retries=0)
    assert policy.allowed_hosts == ("*.cdn.example",)
    assert policy.allowed_private_networks == (ipaddress.ip_network("127.0.0.1/32"),)
    assert (policy.max_bytes, policy.max_pixels, policy.read_timeout_s, policy.retries) == (
        1234,
        5678,
        2.5,
        0,
    )


def test_the_defaults_allow_any_public_host_and_no_private_network(settings) -> None:
    from config.settings import base  # the environment-free defaults (test settings narrow them)

    settings.IMAGE_FETCH_ALLOWED_HOSTS = base.IMAGE_FETCH_ALLOWED_HOSTS
    settings.IMAGE_FETCH_ALLOW_PRIVATE_NETWORKS = base.IMAGE_FETCH_ALLOW_PRIVATE_NETWORKS
    policy = policy_from_settings()
    assert policy.allowed_hosts == () and policy.allowed_private_networks == ()


def test_bad_settings_are_a_configuration_error_naming_the_value(settings) -> None:
    settings.IMAGE_FETCH_ALLOW_PRIVATE_NETWORKS = ["10.0.0.0/99"]
    with pytest.raises(ImproperlyConfigured, match="10.0.0.0/99"):
        policy_from_settings()


def test_the_fetching_core_does_not_import_django() -> None:
    code = (
        "import sys, catalog.fetching; print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
