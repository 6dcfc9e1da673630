"""Who may write to the catalog through the API: the one place that decides it.

Today that is an authenticated staff user (a session, or a DRF token of a staff user). API keys with
a ``catalog:write`` scope can replace the check here without touching a view.
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView


class CanWriteCatalog(BasePermission):
    message = "Writing to the catalog needs a staff account or its API token."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff)
