from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ml.preprocess import ImageRejected, parse_crop
from search.api.links import HitLinks
from search.models import ModelKind


class CommaListField(serializers.ListField):
    """Accept ``category=a&category=b`` or ``category=a,b``."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = [data]
        if not isinstance(data, list | tuple):
            # JSON may send a bool, number or object here; iterating it would be a 500.
            self.fail("not_a_list", input_type=type(data).__name__)
        # Only strings are split; anything else goes to the child field, which rejects non-text.
        items = []
        for value in data:
            if isinstance(value, str):
                items.extend(part.strip() for part in value.split(",") if part.strip())
            else:
                items.append(value)
        return super().to_internal_value(items)


class SearchInput(serializers.Serializer):
    image = serializers.FileField(
        required=False, allow_empty_file=True, help_text="A photo (JPEG, PNG, WebP, GIF)."
    )
    product_id = serializers.IntegerField(required=False, min_value=1)
    image_id = serializers.UUIDField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, default=12)
    category = CommaListField(child=serializers.CharField(max_length=120), required=False, default=list)
    min_price = serializers.DecimalField(max_digits=12, decimal_places=2, required=False, min_value=0)
    max_price = serializers.DecimalField(max_digits=12, decimal_places=2, required=False, min_value=0)
    in_stock = serializers.BooleanField(required=False, allow_null=True, default=None)
    crop = serializers.CharField(required=False, help_text="x,y,w,h in pixels of the uploaded image.")

    def validate_crop(self, value: str):
        try:
            return parse_crop(value)
        except ImageRejected as exc:
            raise serializers.ValidationError(exc.message) from exc

    def validate(self, attrs):
        given = [k for k in ("image", "product_id", "image_id") if attrs.get(k) is not None]
        if len(given) != 1:
            raise serializers.ValidationError(
                {"query": ["Give exactly one of image, product_id or image_id."]}
            )
        if attrs.get("crop") and "image" not in given:
            raise serializers.ValidationError({"crop": ["crop applies to an uploaded image only."]})
        lo, hi = attrs.get("min_price"), attrs.get("max_price")
        if lo is not None and hi is not None and lo > hi:
            raise serializers.ValidationError({"min_price": ["min_price must not exceed max_price."]})
        return attrs


# A hit's product: its id, Product.CARD_FIELDS and two absolute URLs (our product page and the matched
# image), from a card of catalog.selectors.image_cards. (A docstring here would show in the API docs.)
class ProductHitOutput(serializers.Serializer):
    id = serializers.IntegerField(source="product_id")
    sku = serializers.CharField()
    title = serializers.CharField()
    category = serializers.CharField()
    price = serializers.FloatField(allow_null=True)
    currency = serializers.CharField()
    in_stock = serializers.BooleanField()
    link = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField()

    @extend_schema_field(serializers.URLField(allow_null=True, help_text="The product's page in the shop."))
    def get_link(self, card: dict) -> str | None:
        return card["link"] or None

    def get_url(self, card: dict) -> str:
        return self.context["links"].product(card["product_id"])

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_image_url(self, card: dict) -> str | None:
        return self.context["links"].image(card["file"])


class HitOutput(serializers.Serializer):
    score = serializers.SerializerMethodField()
    image_id = serializers.UUIDField()
    product = ProductHitOutput(source="card")

    def get_score(self, hit) -> float:
        return round(hit.score, 5)


class TimingsOutput(serializers.Serializer):
    decode = serializers.FloatField()
    embed = serializers.FloatField()
    search = serializers.FloatField()
    catalog = serializers.FloatField()
    total = serializers.FloatField()


class SearchOutput(serializers.Serializer):
    model_version = serializers.IntegerField()
    model_kind = serializers.ChoiceField(
        choices=ModelKind.choices,
        help_text="Which model answered: the pretrained backbone, or one trained on this catalog.",
    )
    timings_ms = TimingsOutput()
    results = HitOutput(many=True, source="hits")


def present_hits(hits: list, request) -> list[dict]:
    """Hits as the API shows them (the pages render the same dicts)."""
    return HitOutput(hits, many=True, context={"links": HitLinks(request)}).data
