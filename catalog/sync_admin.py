"""The catalog sync in the admin: catalog sources (URL, format, schedule, enabled; "sync now") with
their recent runs, and each run with its counts, duration and every error it kept.

Registered from catalog/admin.py. Runs are written only by the sync itself, so they are read-only here.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from catalog.models import CatalogSource, SyncProblem, SyncRun
from catalog.services.sync import source_sync_start

RECENT_RUNS = 20


def _run_link(run: SyncRun) -> str:
    return format_html('<a href="{}">#{}</a>', reverse("admin:catalog_syncrun_change", args=[run.pk]), run.pk)


def _duration(run: SyncRun) -> str:
    seconds = run.duration_s
    return "—" if seconds is None else f"{seconds:.1f} s"


@admin.register(CatalogSource)
class CatalogSourceAdmin(admin.ModelAdmin):
    list_display = ["name", "url", "format", "full", "enabled", "interval_minutes", "next_run_at", "last_run"]
    list_filter = ["enabled", "format", "full"]
    search_fields = ["name", "url"]
    readonly_fields = [
        "next_run_at",
        "feed_etag",
        "feed_last_modified",
        "recent_runs",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["name", "url", "format", "full", "enabled", "interval_minutes"]}),
        ("Parsing", {"fields": ["store_url", "default_currency"]}),
        ("State", {"fields": ["next_run_at", "feed_etag", "feed_last_modified", "created_at", "updated_at"]}),
        ("Runs", {"fields": ["recent_runs"]}),
    ]
    actions = ["sync_now"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    @admin.display(description="last run")
    def last_run(self, source: CatalogSource) -> str:
        run = source.runs.first()
        if run is None:
            return "—"
        return format_html("{} {} ({} errors)", _run_link(run), run.get_state_display(), run.error_count)

    @admin.display(description=f"last {RECENT_RUNS} runs")
    def recent_runs(self, source: CatalogSource) -> str:
        runs = list(source.runs.all()[:RECENT_RUNS])
        if not runs:
            return "No run yet."
        head = mark_safe(  # a constant: nothing from the database goes into it
            "<tr><th>run</th><th>started</th><th>state</th><th>duration</th><th>products created / updated / "
            "unchanged / removed / reactivated</th><th>images fetched / unchanged / failed</th><th>errors</th></tr>"
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {} / {} / {} / {}</td><td>{} / {} / {}</td>"
            "<td>{}</td></tr>",
            (
                (
                    _run_link(r),
                    r.started_at or r.created_at,
                    r.get_state_display(),
                    _duration(r),
                    r.products_created,
                    r.products_updated,
                    r.products_unchanged,
                    r.products_removed,
                    r.products_reactivated,
                    r.images_fetched,
                    r.images_unchanged,
                    r.images_failed,
                    r.error_count,
                )
                for r in runs
            ),
        )
        return format_html("<table>{}{}</table>", head, rows)

    @admin.action(description="Sync the selected sources now")
    def sync_now(self, request: HttpRequest, queryset: QuerySet[CatalogSource]) -> None:
        started = [source_sync_start(source=source).pk for source in queryset]
        self.message_user(
            request,
            f"Queued {len(started)} sync run(s): {', '.join(f'#{i}' for i in started)}.",
            messages.SUCCESS,
        )


class SyncProblemInline(admin.TabularInline):
    model = SyncProblem
    extra = 0
    can_delete = False
    fields = readonly_fields = ("position", "unit", "sku", "url", "code", "message", "fatal")

    def has_add_permission(self, request: HttpRequest, obj: SyncRun | None = None) -> bool:
        return False


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "source",
        "origin",
        "location_short",
        "state",
        "created_at",
        "duration",
        "products_created",
        "products_updated",
        "products_unchanged",
        "products_removed",
        "images_fetched",
        "images_unchanged",
        "images_failed",
        "error_count",
    ]
    list_filter = ["state", "origin", "source"]
    list_select_related = ["source"]
    search_fields = ["location"]
    inlines = [SyncProblemInline]

    def get_readonly_fields(self, request: HttpRequest, obj: SyncRun | None = None) -> list[str]:
        return [f.name for f in SyncRun._meta.concrete_fields] + ["duration"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SyncRun | None = None) -> bool:
        return False

    @admin.display(description="location")
    def location_short(self, run: SyncRun) -> str:
        return run.location if len(run.location) <= 60 else run.location[:57] + "..."

    @admin.display(description="duration")
    def duration(self, run: SyncRun) -> str:
        return _duration(run)
