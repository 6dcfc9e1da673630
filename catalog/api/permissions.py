"""Who may push a catalog feed and read its runs: the one place that decides it.

An API key with the ``catalog:write`` scope (``apikeys``), or a signed-in staff user who may add
products (a push creates and changes them). Unlike the product endpoints, reading a run is not public:
its errors name the shop's URLs and SKUs.
"""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.views import APIView

from apikeys.models import ApiKey
from apikeys.permissions import HasScope

SCOPE = "catalog:write"
STAFF_PERMISSION = "catalog.add_product"


class CanWriteCatalog(HasScope):
    def __init__(self, scope: str = SCOPE) -> None:
        super().__init__(scope)

    def has_permission(self, request: Request, view: APIView) -> bool:
        if isinstance(request.auth, ApiKey):
            return super().has_permission(request, view)
        user = request.user
        if not user or not user.is_authenticated:
            return False  # DRF answers 401 (the API key authentication's challenge)
        if not user.is_staff or not user.has_perm(STAFF_PERMISSION):
            raise exceptions.PermissionDenied(
                f"Catalog syncs need an API key with the {SCOPE!r} scope, or a staff account with the "
                f"{STAFF_PERMISSION!r} permission.",
                code="permission_denied",
            )
        return True
