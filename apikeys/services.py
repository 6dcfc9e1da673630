"""Every write of API keys: create (the only moment the whole key exists), revoke, note its use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apikeys import keys, selectors
from apikeys.models import ApiKey

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser

# last_used_at is for people ("is this key still used?"): one write a minute per key at most keeps a
# busy key from costing an UPDATE per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str  # the whole key: show it once, it is not stored anywhere


@transaction.atomic
def api_key_create(
    *,
    name: str,
    kind: str,
    scopes: list[str] | None = None,
    origins: list[str] | None = None,
    rate: str = "",
    created_by: AbstractBaseUser | AnonymousUser | None = None,
) -> IssuedKey:
    scopes, origins, rate = keys.check_key_settings(kind=kind, scopes=scopes, origins=origins, rate=rate)
    secret = keys.new_key(kind)
    key = ApiKey.objects.create(
        name=name.strip() or "unnamed",
        kind=kind,
        prefix=secret[: keys.SHOWN_PREFIX_CHARS],
        digest=keys.digest(secret),
        scopes=scopes,
        allowed_origins=origins,
        rate=rate,
        created_by=created_by if isinstance(created_by, get_user_model()) else None,  # anonymous: nobody
    )
    transaction.on_commit(selectors.forget_publishable_origins)
    return IssuedKey(key=key, secret=secret)


@transaction.atomic
def api_key_update(
    *, key: ApiKey, name: str, scopes: list[str] | None, origins: list[str] | None, rate: str
) -> ApiKey:
    """Change what a key may do; its kind and the key itself never change (issue a new key instead)."""
    scopes, origins, rate = keys.check_key_settings(kind=key.kind, scopes=scopes, origins=origins, rate=rate)
    key.name, key.scopes, key.allowed_origins, key.rate = name, scopes, origins, rate
    key.save(update_fields=["name", "scopes", "allowed_origins", "rate"])
    transaction.on_commit(selectors.forget_publishable_origins)
    return key


@transaction.atomic
def api_key_revoke(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        transaction.on_commit(selectors.forget_publishable_origins)
    return key


def api_key_touch(*, key: ApiKey, now: datetime | None = None) -> bool:
    """Record that the key was used, unless that was recorded less than a minute ago; True if written.

    The row in hand says when it was last written, so a fresh one costs nothing; the conditional
    UPDATE keeps concurrent requests of one key to a single write.
    """
    now = now or timezone.now()
    stale = now - LAST_USED_RESOLUTION
    if key.last_used_at is not None and key.last_used_at > stale:
        return False
    written = (
        ApiKey.objects.filter(pk=key.pk)
        .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale))
        .update(last_used_at=now)
    )
    key.last_used_at = now
    return bool(written)
