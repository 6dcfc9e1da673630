from django.urls import path

from catalog.api import sync_views, views

urlpatterns = [
    path("products/", views.ProductListApi.as_view(), name="product-list"),
    path("products/<int:product_id>/", views.ProductDetailApi.as_view(), name="product-detail"),
    path("products/<int:product_id>/images/", views.ProductImageListApi.as_view(), name="product-images"),
    path("images/<uuid:image_id>/", views.ImageDetailApi.as_view(), name="image-detail"),
    path("catalog/sync/", sync_views.SyncPushApi.as_view(), name="catalog-sync"),
    path("catalog/sync/<int:run_id>/", sync_views.SyncRunApi.as_view(), name="catalog-sync-run"),
]
