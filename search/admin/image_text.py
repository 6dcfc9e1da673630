"""The text read on catalog images (OCR): per image, what was read, how sure the engine was, and
where on the photo. Read-only: the text is derived from the photo (re-read when it changes, or by
``manage.py read_image_text``)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from search.models import ImageText, TextStatus


class StatusFilter(admin.SimpleListFilter):
    title = "text"
    parameter_name = "text"

    def lookups(self, request, model_admin):
        return [("words", "Words read"), ("none", "No words"), ("failed", "Failed")]

    def queryset(self, request, queryset):
        if self.value() == "words":
            return queryset.filter(status=TextStatus.READ).exclude(words=[])
        if self.value() == "none":
            return queryset.filter(status=TextStatus.READ, words=[])
        if self.value() == "failed":
            return queryset.filter(status=TextStatus.FAILED)
        return queryset


@admin.register(ImageText)
class ImageTextAdmin(admin.ModelAdmin):
    list_display = ["image", "product", "status", "word_count", "preview", "seconds", "read_at"]
    list_filter = [StatusFilter]
    list_select_related = ["image__product"]
    search_fields = ["text", "image__product__sku", "image__product__title"]
    fields = readonly_fields = (
        "image",
        "product",
        "status",
        "thumbnail",
        "word_table",
        "tokens",
        "engine",
        "sha256",
        "seconds",
        "attempts",
        "error",
        "read_at",
    )
    ordering = ["-read_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="product")
    def product(self, obj: ImageText):
        return obj.image.product

    @admin.display(description="words")
    def word_count(self, obj: ImageText) -> int:
        return len(obj.words)

    @admin.display(description="text")
    def preview(self, obj: ImageText) -> str:
        text = " · ".join(word["text"] for word in obj.words)
        return text[:80] + ("…" if len(text) > 80 else "")

    @admin.display(description="photo")
    def thumbnail(self, obj: ImageText):
        if not obj.image.file:
            return "-"
        return format_html('<img src="{}" style="max-height:240px">', obj.image.file.url)

    @admin.display(description="words read")
    def word_table(self, obj: ImageText):
        if not obj.words:
            return "no text found" if obj.status == TextStatus.READ else "-"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    word["text"],
                    f"{word['confidence']:.2f}",
                    " ".join(f"({x:.0f},{y:.0f})" for x, y in word["box"]),
                )
                for word in obj.words
            ),
        )
        return format_html(
            "<table><thead><tr><th>text</th><th>confidence</th><th>box (x, y)</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )
