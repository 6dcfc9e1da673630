"""What an API key may do: ``HasScope("catalog:write")``, and the read-for-all / write-with-a-scope rule
the catalog's endpoints use."""

from __future__ import annotations

from django.db.models import Model
from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from apikeys.models import ApiKey

_ACTIONS = {"POST": "add", "PUT": "change", "PATCH": "change", "DELETE": "delete"}


def _missing_scope(key: ApiKey, scope: str) -> exceptions.PermissionDenied:
    return exceptions.PermissionDenied(
        f"The API key {key.prefix}… lacks the {scope!r} scope.", code="insufficient_scope"
    )


class HasScope(BasePermission):
    """Only requests made with an API key that holds ``scope`` (``admin`` holds every scope).

    Used as an instance, ``permission_classes = [HasScope("search")]``: DRF calls each entry to make
    the request's permission object, and calling an instance gives a fresh copy.
    """

    def __init__(self, scope: str) -> None:
        self.scope = scope

    def __call__(self) -> HasScope:
        return type(self)(self.scope)

    def has_permission(self, request: Request, view: APIView) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return False  # DRF answers 401 when nothing authenticated the request, else 403
        if not key.allows(self.scope):
            raise _missing_scope(key, self.scope)
        return True


class ReadOrWriteScope(HasScope):
    """Reads for everyone. Writes with an API key that holds ``scope``, or by a signed-in staff user who
    holds Django's model permission for the method (add / change / delete) on the view's
    ``write_model``. Signed-in users who are not staff cannot write."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method in SAFE_METHODS:
            return True
        if isinstance(request.auth, ApiKey):
            return super().has_permission(request, view)
        user = request.user
        if not user or not user.is_authenticated:
            return False
        model: type[Model] | None = getattr(view, "write_model", None)
        if model is None:  # a view that writes without naming its model: no user may write through it
            return False
        action = _ACTIONS.get(request.method or "", "change")
        permission = f"{model._meta.app_label}.{action}_{model._meta.model_name}"
        if not user.is_staff or not user.has_perm(permission):
            raise exceptions.PermissionDenied(
                f"Writing needs an API key with the {self.scope!r} scope, or a staff account with the "
                f"{permission!r} permission.",
                code="permission_denied",
            )
        return True


class ScopeIfKey(HasScope):
    """Anyone, but a request made with an API key needs ``scope`` (an sk_ key for catalog:write only
    cannot search)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if isinstance(request.auth, ApiKey):
            return super().has_permission(request, view)
        return True
