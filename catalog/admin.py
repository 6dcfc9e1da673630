"""The catalog editor's admin. Writes go through catalog.services so indexing follows every change.

The search app extends the product page with its look-alikes (search/admin.py); the catalog does not
know about vectors."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from catalog import selectors, services
from catalog.models import IndexStatus, Product, ProductImage


def _thumb(image: ProductImage | None, size: int = 64) -> str:
    if image is None or not image.file:
        return "—"
    return format_html(
        '<img src="{}" alt="" loading="lazy" style="width:{}px;height:{}px;object-fit:contain;'
        'background:#fff;border:1px solid #ddd;border-radius:4px">',
        image.file.url,
        size,
        size,
    )


class ImageIndexStatusFilter(admin.SimpleListFilter):
    title = "image index status"
    parameter_name = "index_status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin):
        return IndexStatus.choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Product]) -> QuerySet[Product]:
        if self.value():
            return queryset.filter(images__index_status=self.value()).distinct()
        return queryset


class PossibleDuplicateFilter(admin.SimpleListFilter):
    title = "possible duplicate"
    parameter_name = "possible_duplicate"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Product]) -> QuerySet[Product]:
        if self.value() == "yes":
            return queryset.filter(possible_duplicate_of__isnull=False)
        if self.value() == "no":
            return queryset.filter(possible_duplicate_of__isnull=True)
        return queryset


class ProductImageInline(admin.TabularInline):
    model = ProductImage
    extra = 0
    can_delete = True
    fields = [
        "thumbnail",
        "display_order",
        "width",
        "height",
        "index_status",
        "indexed_model_version",
        "indexed_at",
        "last_error",
    ]
    readonly_fields = [
        "thumbnail",
        "width",
        "height",
        "index_status",
        "indexed_model_version",
        "indexed_at",
        "last_error",
    ]
    ordering = ["display_order", "created_at"]

    @admin.display(description="image")
    def thumbnail(self, obj: ProductImage) -> str:
        return _thumb(obj, 96)

    def has_add_permission(self, request: HttpRequest, obj: Product | None = None) -> bool:
        return False  # uploads go through the API or import, which validate and deduplicate


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = [
        "thumbnail",
        "sku",
        "title",
        "category",
        "price",
        "currency",
        "in_stock",
        "image_count",
        "duplicate_flag",
        "updated_at",
    ]
    list_display_links = ["thumbnail", "sku", "title"]
    list_filter = ["category", "in_stock", "active", ImageIndexStatusFilter, PossibleDuplicateFilter]
    search_fields = ["sku", "title", "brand", "description"]
    # active / deactivated_at / source belong to the catalog sync (catalog/services/sync/).
    readonly_fields = [
        "created_at",
        "updated_at",
        "possible_duplicate_of",
        "duplicate_score",
        "active",
        "deactivated_at",
        "source",
    ]
    inlines = [ProductImageInline]
    actions = ["reindex_selected"]
    list_per_page = 50
    # A shop link typed without a scheme is read as https:// (Django 6's default; 5.2 warns otherwise).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Product]:
        return (
            super().get_queryset(request).prefetch_related("images").select_related("possible_duplicate_of")
        )

    @admin.display(description="image")
    def thumbnail(self, obj: Product) -> str:
        return _thumb(selectors.primary_image(obj))

    @admin.display(description="images")
    def image_count(self, obj: Product) -> int:
        return len(obj.images.all())

    @admin.display(description="possible duplicate of")
    def duplicate_flag(self, obj: Product) -> str:
        other = obj.possible_duplicate_of
        if other is None:
            return "—"
        return format_html(
            '<a href="../product/{}/change/">{}</a> ({})',
            other.pk,
            other.sku,
            f"{obj.duplicate_score or 0:.3f}",
        )

    @admin.action(description="Re-index the selected products' images")
    def reindex_selected(self, request: HttpRequest, queryset: QuerySet[Product]) -> None:
        count = services.product_images_reindex(product_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Queued {count} image(s) for indexing.", messages.SUCCESS)

    def save_model(self, request: HttpRequest, obj: Product, form, change: bool) -> None:
        fields = {
            name: form.cleaned_data[name] for name in Product.EDITABLE_FIELDS if name in form.cleaned_data
        }
        if change:
            original = Product.objects.get(pk=obj.pk)
            services.product_update(product=original, **fields)
            obj.refresh_from_db()
        else:
            created = services.product_create(**fields)
            obj.pk = created.pk
            obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Product) -> None:
        services.product_delete(product=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Product]) -> None:
        for product in queryset:
            services.product_delete(product=product)

    def save_formset(self, request, form, formset, change) -> None:
        # Inline image deletions must release files and vectors, so they go through the service;
        # the only editable inline field is the display order.
        instances = formset.save(commit=False)
        for image in formset.deleted_objects:
            services.product_image_delete(image=image)
        for instance in instances:
            instance.save(update_fields=["display_order", "updated_at"])


@admin.register(ProductImage)
class ProductImageAdmin(admin.ModelAdmin):
    list_display = [
        "thumbnail",
        "product",
        "display_order",
        "index_status",
        "indexed_model_version",
        "indexed_at",
        "width",
        "height",
    ]
    list_filter = ["index_status", "indexed_model_version", "format"]
    search_fields = ["product__sku", "product__title", "sha256"]
    readonly_fields = [f.name for f in ProductImage._meta.fields] + ["thumbnail"]
    list_select_related = ["product"]

    @admin.display(description="image")
    def thumbnail(self, obj: ProductImage) -> str:
        return _thumb(obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: ProductImage) -> None:
        services.product_image_delete(image=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ProductImage]) -> None:
        for image in queryset:
            services.product_image_delete(image=image)


# The catalog sync's sources and runs (catalog/sync_admin.py).
from catalog import sync_admin  # noqa: E402, F401
