"""Input and output shapes of the catalog API."""

from __future__ import annotations

from rest_framework import serializers

from catalog.field_limits import BRAND_MAX, CATEGORY_MAX, SKU_MAX, TITLE_MAX, URL_MAX
from catalog.models import Product, ProductImage


class ImageOutput(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    product_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = ProductImage
        fields = [
            "id",
            "product_id",
            "url",
            "sha256",
            "format",
            "width",
            "height",
            "bytes",
            "display_order",
            "original_name",
            "index_status",
            "indexed_model_version",
            "indexed_at",
            "last_error",
            "created_at",
        ]

    def get_url(self, obj: ProductImage) -> str:
        request = self.context.get("request")
        url = obj.file.url
        return request.build_absolute_uri(url) if request else url


class ProductOutput(serializers.ModelSerializer):
    images = ImageOutput(many=True, read_only=True)
    price = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True, coerce_to_string=False)

    class Meta:
        model = Product
        fields = [
            "id",
            *Product.EDITABLE_FIELDS,
            "active",
            "deactivated_at",
            "images",
            "created_at",
            "updated_at",
        ]


# Validation of each editable field (Product.EDITABLE_FIELDS; tests/catalog/test_fields.py keeps the two
# in step). No docstring: it would become the schema component's public description.
class ProductInput(serializers.Serializer):
    sku = serializers.CharField(max_length=SKU_MAX)
    title = serializers.CharField(max_length=TITLE_MAX)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    category = serializers.CharField(required=False, allow_blank=True, max_length=CATEGORY_MAX, default="")
    brand = serializers.CharField(required=False, allow_blank=True, max_length=BRAND_MAX, default="")
    price = serializers.DecimalField(
        max_digits=12, decimal_places=2, required=False, allow_null=True, min_value=0, default=None
    )
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False, default="EUR")
    in_stock = serializers.BooleanField(required=False, default=True)
    attributes = serializers.DictField(required=False, default=dict)
    link = serializers.URLField(
        required=False,
        allow_blank=True,
        max_length=URL_MAX,
        default="",
        help_text="The product's page in the shop.",
    )


class ProductPatchInput(ProductInput):
    """Every field optional: only what is sent changes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, partial=True, **kwargs)


class ImageUploadInput(serializers.Serializer):
    image = serializers.FileField(allow_empty_file=True, help_text="JPEG, PNG, WebP or GIF (first frame).")
    display_order = serializers.IntegerField(required=False, min_value=0, max_value=10_000)


# The longest an upload may wait for its indexing: a request holds a server thread while it waits.
MAX_UPLOAD_WAIT_S = 5.0


class ImageUploadQuery(serializers.Serializer):
    wait = serializers.FloatField(
        required=False,
        default=0.0,
        min_value=0.0,
        max_value=MAX_UPLOAD_WAIT_S,
        help_text=(
            "Seconds (0 to 5) to wait for the image to be indexed, or to fail, before answering; the "
            "body's index_status is then where it ended up (still pending if the time ran out). "
            "0 answers at once."
        ),
    )


class ProductListQuery(serializers.Serializer):
    search = serializers.CharField(required=False, max_length=200)
    category = serializers.CharField(required=False, max_length=CATEGORY_MAX)
    in_stock = serializers.BooleanField(required=False, allow_null=True, default=None)
