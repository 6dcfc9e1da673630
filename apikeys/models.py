"""API keys: publishable keys for shops' web pages (search only, bound to origins) and secret keys for
servers (scoped). Only an HMAC of each key is stored (apikeys/keys.py says why not a password hash)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class KeyKind(models.TextChoices):
    PUBLISHABLE = "publishable", "Publishable (pk_…): search from the shop's web pages"
    SECRET = "secret", "Secret (sk_…): servers only"


class Scope(models.TextChoices):
    SEARCH = "search", "search: search and report clicks"
    CATALOG_WRITE = "catalog:write", "catalog:write: create, change and delete products and images"
    ADMIN = "admin", "admin: every scope"


class ApiKey(models.Model):
    name = models.CharField(max_length=100, help_text="Who or what uses the key, e.g. the shop's name.")
    kind = models.CharField(max_length=12, choices=KeyKind.choices)
    # The first characters of the key (e.g. "pk_Ab3dE"), enough to recognise it in lists and logs.
    prefix = models.CharField(max_length=16)
    # HMAC-SHA256 of the whole key (hex): what a request's key is looked up by.
    digest = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    # Publishable keys only: the web origins ("https://shop.example") whose pages may use the key.
    allowed_origins = models.JSONField(default=list, blank=True)
    # "600/min" and the like; blank takes the kind's default (settings REST_FRAMEWORK throttle rates).
    rate = models.CharField(max_length=20, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Updated at most once a minute per key (services.api_key_touch), not on every request.
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def is_publishable(self) -> bool:
        return self.kind == KeyKind.PUBLISHABLE

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes
