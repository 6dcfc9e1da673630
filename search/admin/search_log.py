"""The search log in the admin: searches (read-only, with their clicks) and the dashboard page."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path

from search import dashboard, log_selectors
from search.models import SearchClick, SearchLog

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    class _ClickCount(TypedDict):
        n_clicks: int  # SearchLogAdmin.get_queryset's annotation


DASHBOARD_DAYS = (7, 30, 90)


class SearchClickInline(admin.TabularInline):
    model = SearchClick
    fields = readonly_fields = ("position", "product", "kind", "created_at")
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(SearchLog)
class SearchLogAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "query_kind",
        "api_key",
        "result_count",
        "no_match",
        "latency_ms",
        "clicks_count",
    ]
    list_filter = ["query_kind", "no_match", "api_key"]
    date_hierarchy = "created_at"
    inlines = [SearchClickInline]
    change_list_template = "admin/search/searchlog/change_list.html"

    def get_queryset(self, request: HttpRequest):
        from django.db.models import Count

        return super().get_queryset(request).select_related("api_key").annotate(n_clicks=Count("clicks"))

    @admin.display(description="clicks", ordering="n_clicks")
    def clicks_count(self, obj: WithAnnotations[SearchLog, _ClickCount]) -> int:
        return obj.n_clicks

    # The query vector (balanced answers' input) is bytes nobody can read on a page.
    exclude = ["query_vector"]

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return [f.name for f in SearchLog._meta.fields if f.name != "query_vector"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_urls(self):
        return [
            path(
                "dashboard/",
                self.admin_site.admin_view(self.dashboard_view),
                name="search_searchlog_dashboard",
            ),
            *super().get_urls(),
        ]

    def dashboard_view(self, request: HttpRequest) -> TemplateResponse:
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        try:
            days = int(request.GET.get("days", 30))
        except ValueError:
            days = 30
        days = days if days in DASHBOARD_DAYS else 30
        stats = log_selectors.daily_stats(days)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Search dashboard: last {days} days",
            "days": days,
            "day_choices": DASHBOARD_DAYS,
            "charts": dashboard.charts(days),
            "total": sum(s.searches for s in stats),
            "clicked": log_selectors.most_clicked_products(days),
            "missed": log_selectors.most_missed_products(days),
            "positions": [p for p in log_selectors.click_through_by_position(days) if p.shown],
        }
        return TemplateResponse(request, "admin/search/searchlog/dashboard.html", context)
