"""Keys in the admin: create (the key is shown once, on the page that follows), edit what a key may do,
revoke. Every write goes through apikeys.services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import NON_FIELD_ERRORS
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from apikeys import keys, services
from apikeys.errors import ApiKeyError
from apikeys.models import ApiKey, KeyKind, Scope

_NEW_SECRET_ATTR = "_lookalike_new_api_key"


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Publishable keys always get search only.",
    )
    allowed_origins = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="Publishable keys: one origin per line, e.g. https://shop.example (no path).",
    )

    class Meta:
        model = ApiKey
        fields = ["name", "kind", "scopes", "allowed_origins", "rate"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["kind"].disabled = True  # a key's kind is in the key itself
            self.initial["allowed_origins"] = "\n".join(self.instance.allowed_origins or [])

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        kind = data.get("kind") or self.instance.kind
        origins = (data.get("allowed_origins") or "").split()
        try:
            scopes, origins, rate = keys.check_key_settings(
                kind=kind, scopes=data.get("scopes") or None, origins=origins, rate=data.get("rate") or ""
            )
        except ApiKeyError as exc:
            field = {"origins": "allowed_origins"}.get(exc.field or "", exc.field)
            # An error about no field of this form goes above the form (a None key would make Django
            # raise ValueError: the form has no field named None).
            key = field if field is not None and field in self.fields else NON_FIELD_ERRORS
            raise forms.ValidationError({key: exc.message}) from exc
        data.update(scopes=scopes, allowed_origins=origins, rate=rate)
        return data


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["name", "prefix_shown", "kind", "scope_list", "origin_list", "rate_shown", "last_used_at",
                    "created_at", "state"]  # fmt: skip
    list_filter = ["kind", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    actions = ["revoke"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        shown = ["prefix_shown", "created_at", "created_by", "last_used_at", "revoked_at"]
        return shown if obj is not None else []

    @admin.display(description="key")
    def prefix_shown(self, obj: ApiKey) -> str:
        return f"{obj.prefix}…"

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    @admin.display(description="origins")
    def origin_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.allowed_origins) or "—"

    @admin.display(description="rate")
    def rate_shown(self, obj: ApiKey) -> str:
        return obj.rate or "default"

    @admin.display(description="state")
    def state(self, obj: ApiKey) -> str:
        return "active" if obj.is_active else f"revoked {obj.revoked_at:%Y-%m-%d %H:%M}"

    def save_model(self, request: HttpRequest, obj: ApiKey, form: ApiKeyForm, change: bool) -> None:
        data = form.cleaned_data
        if change:
            services.api_key_update(
                key=obj,
                name=data["name"],
                scopes=data["scopes"],
                origins=data["allowed_origins"],
                rate=data["rate"],
            )
            return
        issued = services.api_key_create(
            name=data["name"],
            kind=data["kind"],
            scopes=data["scopes"],
            origins=data["allowed_origins"],
            rate=data["rate"],
            created_by=request.user,
        )
        # The admin goes on with `obj` (log entry, redirect): make it the saved row.
        for field in ApiKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(issued.key, field.attname))
        obj._state.adding = False
        setattr(request, _NEW_SECRET_ATTR, issued.secret)

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue=None) -> HttpResponse:
        # Shown on this one page and never stored: no redirect, no session message holding the key.
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "key": obj,
            "secret": getattr(request, _NEW_SECRET_ATTR),
            "publishable": obj.kind == KeyKind.PUBLISHABLE,
            "title": "API key created",
        }
        return TemplateResponse(request, "admin/apikeys/created.html", context)

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            services.api_key_revoke(key=key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False  # revoke instead: the row keeps the key's history (searches reference it)
