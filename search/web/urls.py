from django.urls import path

from search.web import views, widget

urlpatterns = [
    path("", views.search_page, name="search-page"),
    path("products/<int:product_id>/", views.product_page, name="product-page"),
    # Versioned: pages embed this URL; a change that breaks docs/widget.md gets /widget/v2/.
    path("widget/v1/lookalike.js", widget.widget_js, name="widget-v1"),
]
