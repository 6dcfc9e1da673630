"""The catalog editor's admin. Writes go through catalog.services so indexing follows every change.

Photos are added ("Add a photo") and replaced (an image row's "replace with") on the product page,
checked by the same code as an API upload (catalog.image_limits) while the form is validated: a
refused file is a form error with the API's message, and nothing is saved. Once saved, they are
indexed after commit like any upload. A "possible duplicate" flag is dismissed with the list's action
or the product page's button; the pair is then never flagged again.

The search app extends the product page with its look-alikes (search/admin.py); the catalog does not
know about vectors."""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import UploadedFile
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from catalog import image_limits, selectors, services
from catalog.models import IndexStatus, Product, ProductImage
from catalog.storage import sha256_of
from ml.preprocess import ImageInfo, ImageRejected

PHOTO_HELP = "JPEG, PNG, WebP or GIF, checked like an API upload; indexed once saved."
ALREADY_THERE = "This product already has this photo."


@dataclass(frozen=True)
class CheckedPhoto:
    """An uploaded photo that passed the upload checks, ready for the image services."""

    data: bytes
    info: ImageInfo
    name: str


def check_photo(upload: UploadedFile) -> CheckedPhoto:
    """Validate an uploaded photo exactly as the API does (size first, then a full decode under the
    limits); a refusal is a form error worded as the API's error message."""
    try:
        image_limits.check_size(upload.size)
        data = upload.read()
        info = image_limits.validate(data)
    except ImageRejected as exc:
        raise forms.ValidationError(image_limits.refusal_message(exc), code=exc.code) from exc
    return CheckedPhoto(data, info, upload.name or "")


class ProductForm(forms.ModelForm):
    # No Meta: ProductAdmin builds the form's model fields itself (with its formfield_overrides).
    add_photo = forms.FileField(required=False, label="Add a photo", help_text=PHOTO_HELP)

    def clean_add_photo(self) -> CheckedPhoto | None:
        upload = self.cleaned_data.get("add_photo")
        if not upload:
            return None
        photo = check_photo(upload)
        if self.instance.pk and self.instance.images.filter(sha256=sha256_of(photo.data)).exists():
            raise forms.ValidationError(ALREADY_THERE, code="duplicate_image")
        return photo


class ProductImageForm(forms.ModelForm):
    replace_with = forms.FileField(required=False, label="replace with", help_text=PHOTO_HELP)

    class Meta:
        model = ProductImage
        fields = ["display_order"]

    def clean_replace_with(self) -> CheckedPhoto | None:
        upload = self.cleaned_data.get("replace_with")
        if not upload:
            return None
        photo = check_photo(upload)
        image = self.instance
        twins = ProductImage.objects.filter(product_id=image.product_id, sha256=sha256_of(photo.data))
        if twins.exclude(pk=image.pk).exists():
            raise forms.ValidationError(ALREADY_THERE, code="duplicate_image")
        return photo


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
    form = ProductImageForm
    extra = 0
    can_delete = True
    fields = [
        "thumbnail",
        "replace_with",
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
        return False  # new photos come through the product form's "Add a photo" (or the API, an import)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    form = ProductForm
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
    actions = ["reindex_selected", "dismiss_duplicate_flags"]
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

    @admin.action(description="Not duplicates: dismiss the selected products' duplicate flags")
    def dismiss_duplicate_flags(self, request: HttpRequest, queryset: QuerySet[Product]) -> None:
        dismissed = sum(
            services.duplicate_flag_dismiss(product=p) is not None
            for p in queryset.filter(possible_duplicate_of__isnull=False)
        )
        self.message_user(request, f"Dismissed {dismissed} duplicate flag(s).", messages.SUCCESS)

    def get_urls(self):
        return [
            path(
                "<int:object_id>/dismiss-duplicate/",
                self.admin_site.admin_view(self.dismiss_duplicate_view),
                name="catalog_product_dismiss_duplicate",
            ),
            *super().get_urls(),
        ]

    def dismiss_duplicate_view(self, request: HttpRequest, object_id: int) -> HttpResponseRedirect:
        """The product page's "Not a duplicate" button (a POST of the change form to this URL)."""
        return require_POST(self._dismiss_duplicate)(request, object_id)

    def _dismiss_duplicate(self, request: HttpRequest, object_id: int) -> HttpResponseRedirect:
        product = get_object_or_404(Product, pk=object_id)
        if not self.has_change_permission(request, product):
            raise PermissionDenied
        other = services.duplicate_flag_dismiss(product=product)
        if other is None:
            self.message_user(request, f"{product.sku} has no duplicate flag.", messages.INFO)
        else:
            self.message_user(
                request,
                f"{product.sku} and {other.sku} are not duplicates; the pair will not be flagged again.",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(reverse("admin:catalog_product_change", args=[product.pk]))

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
        # the only editable inline field is the display order, then a replacement takes that order.
        instances = formset.save(commit=False)
        for image in formset.deleted_objects:
            services.product_image_delete(image=image)
        for instance in instances:
            instance.save(update_fields=["display_order", "updated_at"])
        if formset.model is not ProductImage:
            return
        for image_form in formset.forms:
            photo = image_form.cleaned_data.get("replace_with")
            if photo is None or image_form in formset.deleted_forms or image_form.instance.pk is None:
                continue
            result = services.product_image_replace(
                image=image_form.instance, data=photo.data, original_name=photo.name, info=photo.info
            )
            if result.created:
                self.message_user(
                    request, f"Replaced the photo with {photo.name}; indexing follows.", messages.SUCCESS
                )

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        photo = form.cleaned_data.get("add_photo")
        if photo is not None:
            services.product_image_add(
                product=form.instance, data=photo.data, original_name=photo.name, info=photo.info
            )
            self.message_user(request, f"Added the photo {photo.name}; indexing follows.", messages.SUCCESS)


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
