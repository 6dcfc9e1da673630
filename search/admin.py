"""Model versions (with their evaluation report and plot), reindex jobs (with progress), and the
catalog's product page extended with its look-alikes (the search app extends the catalog admin; the
catalog never imports search)."""

from __future__ import annotations

from pathlib import Path

from django.contrib import admin
from django.http import FileResponse, Http404, HttpRequest
from django.urls import path
from django.utils.html import format_html

from catalog.admin import ProductAdmin
from catalog.models import Product
from search.api.serializers import present_hits
from search.errors import SearchError
from search.models import ModelVersion, ReindexJob
from search.services import searching

SIMILAR_LIMIT = 8


class ProductWithLookalikesAdmin(ProductAdmin):
    """The catalog's product admin plus a "Visually similar products" panel on the change page
    (template: search/templates/admin/catalog/product/change_form.html)."""

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        extra_context = {**(extra_context or {}), **self._similar(request, object_id)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _similar(self, request: HttpRequest, object_id: str) -> dict:
        try:
            query = searching.SearchQuery(product_id=int(object_id), limit=SIMILAR_LIMIT)
            outcome = searching.search(query)
        except (SearchError, ValueError) as exc:
            return {"similar": [], "similar_problem": getattr(exc, "message", str(exc))}
        return {"similar": present_hits(outcome.hits, request)}


admin.site.unregister(Product)
admin.site.register(Product, ProductWithLookalikesAdmin)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "version",
        "kind",
        "status",
        "backbone",
        "embedding_dim",
        "image_size",
        "recall_at_1",
        "created_at",
        "promoted_at",
    ]
    list_filter = ["status", "kind"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields] + ["plot"]
    exclude = ["eval_image_ids"]

    @admin.display(description="R@1")
    def recall_at_1(self, obj: ModelVersion) -> str:
        value = (obj.metrics or {}).get("recall@1")
        return f"{value:.3f}" if isinstance(value, int | float) else "—"

    @admin.display(description="evaluation plot")
    def plot(self, obj: ModelVersion) -> str:
        if not obj.plot_path or not Path(obj.plot_path).is_file():
            return "—"
        return format_html(
            '<img src="{}" style="max-width:900px" alt="evaluation plot">', f"../../{obj.pk}/plot.png"
        )

    def get_urls(self):
        return [
            path(
                "<int:pk>/plot.png",
                self.admin_site.admin_view(self.plot_view),
                name="search_modelversion_plot",
            ),
            *super().get_urls(),
        ]

    def plot_view(self, request: HttpRequest, pk: int) -> FileResponse:
        model = ModelVersion.objects.filter(pk=pk).first()
        if model is None or not model.plot_path or not Path(model.plot_path).is_file():
            raise Http404("No plot for this model version.")
        return FileResponse(open(model.plot_path, "rb"), content_type="image/png")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ReindexJob)
class ReindexJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "model_version",
        "previous_version",
        "status",
        "progress_bar",
        "done",
        "failed",
        "total",
        "started_at",
        "finished_at",
    ]
    list_filter = ["status"]
    readonly_fields = [f.name for f in ReindexJob._meta.fields] + ["progress_bar"]

    @admin.display(description="progress")
    def progress_bar(self, obj: ReindexJob) -> str:
        pct = round(obj.progress * 100)
        return format_html('<progress max="100" value="{}"></progress> {}%', pct, pct)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


# The search log and its dashboard (registered on import).
from search import log_admin  # noqa: E402, F401
