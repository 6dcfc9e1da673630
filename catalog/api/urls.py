from django.urls import path

from catalog.api import views

urlpatterns = [
    path("products/", views.ProductListApi.as_view(), name="product-list"),
    path("products/<int:product_id>/", views.ProductDetailApi.as_view(), name="product-detail"),
    path("products/<int:product_id>/images/", views.ProductImageListApi.as_view(), name="product-images"),
    path("images/<uuid:image_id>/", views.ImageDetailApi.as_view(), name="image-detail"),
]
