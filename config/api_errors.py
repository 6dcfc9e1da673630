"""One error shape for the whole API: ``{"error": {"code", "message", "fields"?}}``.

Clients branch on ``code``; ``message`` is for people; ``fields`` maps a request field to its problems.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApiError(exceptions.APIException):
    """A domain error with its own HTTP status and machine-readable code."""

    def __init__(self, status_code: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.message = message
        self.field = field


class ErrorDetailOutput(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(required=False)


class ErrorOutput(serializers.Serializer):
    """The documented body of every 4xx/5xx answer (the OpenAPI schema refers to it)."""

    error = ErrorDetailOutput()


def error_responses(*status_codes: int) -> dict[int, type[ErrorOutput]]:
    """``extend_schema(responses=...)`` entries for the error statuses an operation can answer."""
    return dict.fromkeys(status_codes, ErrorOutput)


_DEFAULT_CODES = {
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


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApiError):
        fields = {exc.field: [exc.message]} if exc.field else None
        return Response(error_body(exc.error_code, exc.message, fields), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        # Raised while DRF reads the body; left alone, Django answers with an HTML 400 page.
        return Response(
            error_body("request_too_large", "The request body is larger than the server accepts."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return Response(error_body("invalid_request", str(exc)), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = _DEFAULT_CODES.get(response.status_code, "error")
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
        message = f"Too many requests; try again in {int(exc.wait or 1)} s."
    else:
        detail = getattr(exc, "detail", None)
        message = str(detail) if detail is not None else "Error."
        if hasattr(detail, "code") and detail.code not in (None, "error", "invalid"):
            code = {"parse_error": "invalid_request"}.get(str(detail.code), code)
    response.data = error_body(code, message)
    return response


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """``handler404``: a URL no route matches (e.g. ``/api/v1/products/-1/``) still gets the API's JSON
    error shape under ``/api/``; everything else gets Django's page."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", "No such endpoint or object."), status=404)
    return defaults.page_not_found(request, exception)
