from django.urls import path

from search.web import views

urlpatterns = [
    path("", views.search_page, name="search-page"),
    path("products/<int:product_id>/", views.product_page, name="product-page"),
]
