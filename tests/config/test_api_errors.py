"""The one table of error codes: every code the apps can raise has a status, and each kind of error
(domain errors, rejected images, DRF's own) comes out in the one error shape."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from rest_framework import exceptions

from catalog.errors import CatalogError
from config.api_errors import ERRORS, exception_handler, image_error
from ml.preprocess import ImageRejected
from search.errors import SearchError

REPO = Path(__file__).resolve().parents[2]
DOMAIN_ERROR_NAMES = {"CatalogError", "SearchError", "ApiKeyError", "KeyRefused"}
# DRF exceptions raised with a code of ours (``PermissionDenied(..., code="insufficient_scope")``).
DRF_ERROR_NAMES = {"PermissionDenied", "AuthenticationFailed"}


def _raised_codes() -> set[str]:
    """First arguments of every domain error (``CatalogError(...)``, ``SearchError(...)``...) in the apps'
    code, ``code=`` of DRF errors raised there, and every code a view declares in ``error_codes``."""
    codes: set[str] = set()
    for app in ("apikeys", "catalog", "search", "workers"):
        for path in (REPO / app).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", getattr(node.func, "attr", None)) in DOMAIN_ERROR_NAMES
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    codes.add(node.args[0].value)
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", getattr(node.func, "attr", None)) in DRF_ERROR_NAMES
                ):
                    codes.update(
                        k.value.value
                        for k in node.keywords
                        if k.arg == "code" and isinstance(k.value, ast.Constant)
                    )
                if isinstance(node, ast.Assign) and any(
                    getattr(t, "id", None) == "error_codes" for t in node.targets
                ):
                    codes.update(
                        c.value
                        for c in ast.walk(node.value)
                        if isinstance(c, ast.Constant) and isinstance(c.value, str)
                    )
    return codes - {"get", "post", "put", "patch", "delete"}


def test_every_code_in_the_apps_has_a_status() -> None:
    codes = _raised_codes()
    assert {"duplicate_sku", "product_not_found", "not_indexed", "model_unavailable"} <= codes
    missing = sorted(codes - set(ERRORS))
    assert missing == [], f"codes without a row in config/api_errors.ERRORS: {missing}"


@pytest.mark.parametrize(
    ("exc", "status", "body"),
    [
        (
            CatalogError("duplicate_sku", "A product with sku 'X' already exists.", "sku"),
            409,
            {
                "code": "duplicate_sku",
                "message": "A product with sku 'X' already exists.",
                "fields": {"sku": ["A product with sku 'X' already exists."]},
            },
        ),
        (
            SearchError("model_unavailable", "No model."),
            503,
            {"code": "model_unavailable", "message": "No model."},
        ),
        (
            ImageRejected("image_too_large", "Too big."),
            413,
            {"code": "image_too_large", "message": "Too big.", "fields": {"image": ["Too big."]}},
        ),
        (
            ImageRejected("corrupt_image", "Broken."),
            400,
            {
                "code": "invalid_image",
                "message": "Broken. (corrupt_image)",
                "fields": {"image": ["Broken. (corrupt_image)"]},
            },
        ),
        (
            ImageRejected("invalid_crop", "Outside."),
            400,
            {"code": "invalid_parameter", "message": "Outside.", "fields": {"crop": ["Outside."]}},
        ),
        (
            exceptions.NotAuthenticated(),
            401,
            {"code": "not_authenticated", "message": "Authentication credentials were not provided."},
        ),
    ],
)
def test_errors_come_out_in_one_shape(exc, status, body) -> None:
    response = exception_handler(exc, {})
    assert response.status_code == status
    assert response.data == {"error": body}


def test_image_rejections_map_the_same_for_every_endpoint() -> None:
    assert image_error(ImageRejected("too_many_pixels", "Huge.")) == (
        "invalid_image",
        "Huge. (too_many_pixels)",
        "image",
    )
