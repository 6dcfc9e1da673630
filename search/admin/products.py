"""The catalog's product page extended with its look-alikes (the search app extends the catalog admin;
the catalog never imports search)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from catalog.admin import ProductAdmin
from catalog.models import Product, ProductImage
from search import selectors
from search.api.presenters import present_hits
from search.errors import SearchError
from search.services import searching

SIMILAR_LIMIT = 8


class ProductWithLookalikesAdmin(ProductAdmin):
    """The catalog's product admin plus a "Visually similar products" panel on the change page
    (template: search/templates/admin/catalog/product/change_form.html)."""

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            **self._similar(request, object_id),
            "image_texts": self._texts(object_id),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _texts(self, object_id: str) -> list[tuple[str, object]]:
        """Each photo of the product with the text read on it (None: not read yet)."""
        try:
            ids = [
                str(i)
                for i in ProductImage.objects.filter(product_id=int(object_id)).values_list("id", flat=True)
            ]
        except ValueError:
            return []
        rows = selectors.image_text_of(ids)
        return [(image_id, rows.get(image_id)) for image_id in ids]

    def _similar(self, request: HttpRequest, object_id: str) -> dict:
        try:
            query = searching.SearchQuery(product_id=int(object_id), limit=SIMILAR_LIMIT)
            outcome = searching.search(query)
        except (SearchError, ValueError) as exc:
            return {"similar": [], "similar_problem": getattr(exc, "message", str(exc))}
        return {"similar": present_hits(outcome.hits, request)}


admin.site.unregister(Product)
admin.site.register(Product, ProductWithLookalikesAdmin)
