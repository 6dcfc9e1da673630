"""One error shape for the whole API: ``{"error": {"code", "message", "fields"?}}``, and the one table
that maps every machine-readable code to its HTTP status.

Services raise their app's domain error (catalog.errors.CatalogError, search.errors.SearchError) or
ml.preprocess.ImageRejected, each with a ``code``; they never know about HTTP. The exception handler
below turns them, and DRF's and Django's own errors, into this shape. Views declare the codes they can
answer (``error_codes``) and config/api_schema.py documents them in the OpenAPI schema from this table.
Clients branch on ``code``; ``message`` is for people; ``fields`` maps a request field to its problems.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apikeys.errors import ApiKeyError
from catalog import image_limits
from catalog.errors import CatalogError
from ml.preprocess import ImageRejected
from search.errors import SearchError

# code -> (HTTP status, what it means). Every code a service or view can raise is listed here; the
# tests check that each code raised in the apps' code has a row.
ERRORS: dict[str, tuple[int, str]] = {
    "invalid_request": (400, "The request could not be read (malformed body or too many fields)."),
    "invalid_parameter": (400, "A parameter is missing, of the wrong type or out of range."),
    "invalid_image": (
        400,
        "The file is not a usable image (corrupt, empty, unsupported or too many pixels).",
    ),
    "empty_feed": (400, "The pushed feed has no content."),
    "image_url_refused": (400, "The image URL may not be fetched (its reason is in the message)."),
    "invalid_origin": (400, "An API key's allowed origin is not a web origin (https://host[:port])."),
    "invalid_scope": (400, "An API key scope is unknown, or not allowed for that kind of key."),
    "invalid_rate": (400, "A rate limit is not like 600/min."),
    "search_not_found": (400, "The event names a search this key never made (or one deleted since)."),
    "result_not_shown": (400, "The search did not show that product at that position."),
    "query_empty": (400, "The words (q) hold no word or number to search for."),
    "query_too_long": (400, "The words (q) are longer than a search takes (200 characters)."),
    "job_refused": (
        400,
        "The job cannot be submitted or changed as asked (unknown kind or job, bad parameters).",
    ),
    "not_authenticated": (401, "Credentials are missing or invalid."),
    "invalid_api_key": (401, "The Bearer API key is unknown."),
    "api_key_revoked": (401, "The Bearer API key was revoked."),
    "permission_denied": (403, "The credentials do not allow this."),
    "insufficient_scope": (403, "The API key lacks the scope this needs (e.g. catalog:write)."),
    "origin_not_allowed": (403, "A publishable key was sent from a page (Origin) it does not list."),
    "not_found": (404, "No such endpoint or object."),
    "product_not_found": (404, "No product with this id."),
    "image_not_found": (404, "No image with this id."),
    "sync_run_not_found": (404, "No catalog sync run with this id."),
    "method_not_allowed": (405, "The endpoint does not accept this method."),
    "not_acceptable": (406, "No acceptable response format."),
    "duplicate_sku": (409, "Another product has this sku."),
    "duplicate_image": (409, "The product already has an image with these bytes."),
    "not_indexed": (409, "The product or image has no indexed vector yet."),
    "reindex_refused": (
        409,
        "No reindex or rollback now: no candidate model, it is already active, or nothing to roll back to.",
    ),
    "compact_refused": (
        409,
        "A compact model cannot be made now (compact vectors off, or too few photos to fit it on).",
    ),
    "image_too_large": (413, "The image file is larger than the server accepts."),
    "request_too_large": (413, "The request body is larger than the server accepts."),
    "feed_too_large": (
        413,
        "The pushed feed is larger than the server accepts (CATALOG_SYNC_MAX_PUSH_BYTES).",
    ),
    "unsupported_media_type": (415, "The request's content type is not accepted."),
    # The client's URL, so the client's problem (a 4xx), not a fault of this server (5xx).
    "image_url_unreachable": (
        422,
        "The image URL could not be fetched (no such host, no answer, or an HTTP error).",
    ),
    "throttled": (429, "Too many requests; retry after the Retry-After header's seconds."),
    "model_unavailable": (503, "No model can embed the query right now."),
    "index_unavailable": (503, "The vector index cannot be searched right now."),
    # The server restarting or unreachable: nothing the client sent is wrong, and a retry will do.
    "database_unavailable": (503, "The database cannot be reached right now; retry shortly."),
}
log = logging.getLogger(__name__)
DOMAIN_ERRORS = (CatalogError, SearchError, ApiKeyError)
# DRF's and Django's errors by status, for the codes they do not carry themselves.
_CODE_FOR_STATUS = {
    400: "invalid_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "throttled",
}


def status_for(code: str) -> int:
    return ERRORS[code][0]


def image_error(exc: ImageRejected) -> tuple[str, str, str]:
    """(API code, message, request field) for a rejected image. Every endpoint names its uploaded file
    ``image`` and its crop box ``crop``."""
    message = image_limits.refusal_message(exc)  # the admin's upload form shows the same words
    if exc.code == "image_too_large":
        return "image_too_large", message, "image"
    if exc.code == "invalid_crop":
        return "invalid_parameter", message, "crop"
    return "invalid_image", message, "image"


class ErrorDetailOutput(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    # The API's field name; DRF's metaclass takes declared fields off the class, so Serializer.fields
    # (which the stubs see this shadow) is untouched.
    fields = serializers.DictField(required=False)  # type: ignore[assignment]


class ErrorOutput(serializers.Serializer):
    """The documented body of every 4xx/5xx answer (the OpenAPI schema refers to it)."""

    error = ErrorDetailOutput()


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def _domain_response(code: str, message: str, field: str | None) -> Response:
    fields = {field: [message]} if field else None
    return Response(error_body(code, message, fields), status=status_for(code))


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DOMAIN_ERRORS):
        return _domain_response(exc.code, exc.message, exc.field)
    if isinstance(exc, ImageRejected):
        return _domain_response(*image_error(exc))
    if isinstance(exc, RequestDataTooBig):
        # Raised while DRF reads the body; left alone, Django answers with an HTML 400 page.
        return Response(
            error_body("request_too_large", "The request body is larger than the server accepts."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, OperationalError | InterfaceError):
        # Connection refused, cut, or the server starting up (bench/chaos.py restarts it): the
        # request's transaction rolled back, so the client may simply retry.
        log.warning("database unavailable: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        unavailable = Response(
            error_body("database_unavailable", ERRORS["database_unavailable"][1]),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
        unavailable["Retry-After"] = "5"
        return unavailable
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return Response(error_body("invalid_request", str(exc)), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = _CODE_FOR_STATUS.get(response.status_code, "error")
    if isinstance(exc, exceptions.ValidationError):
        fields = (
            _flatten(exc.detail)
            if isinstance(exc.detail, dict)
            else {"non_field_errors": _flatten(exc.detail)}
        )
        first = next(iter(fields.values()), ["Invalid input."])
        first_msg = first[0] if isinstance(first, list) and first else str(first)
        if isinstance(first_msg, dict):
            first_msg = "Invalid input."
        field_name = next(iter(fields), "")
        message = (
            f"{field_name}: {first_msg}"
            if field_name and field_name != "non_field_errors"
            else str(first_msg)
        )
        response.data = error_body("invalid_parameter", message, fields)
        response.status_code = status.HTTP_400_BAD_REQUEST
        return response
    if isinstance(exc, exceptions.Throttled):
        # Throttled sets .wait in __init__; djangorestframework-stubs leave the attribute out.
        message = f"Too many requests; try again in {int(exc.wait or 1)} s."  # type: ignore[attr-defined]
    else:
        detail = getattr(exc, "detail", None)
        message = str(detail) if detail is not None else "Error."
        detail_code = getattr(detail, "code", None)
        if detail_code not in (None, "error", "invalid"):
            code = {"parse_error": "invalid_request"}.get(str(detail_code), code)
            # A code of ours carried by a DRF exception (apikeys: invalid_api_key, insufficient_scope...).
            if detail_code in ERRORS and status_for(detail_code) == response.status_code:
                code = detail_code
    response.data = error_body(code, message)
    return response


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """``handler404``: a URL no route matches (e.g. ``/api/v1/products/-1/``) still gets the API's JSON
    error shape under ``/api/``; everything else gets Django's page."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", ERRORS["not_found"][1]), status=404)
    return defaults.page_not_found(request, exception)
