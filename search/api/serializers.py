from __future__ import annotations

import base64
import binascii
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog import image_limits
from ml.preprocess import ImageRejected, parse_crop
from search.models import EventKind, ModelKind

# The ways to say what to search for; a request gives exactly one. The first three are a photo.
PHOTO_KINDS = ("image", "image_url", "image_base64")
QUERY_KINDS = (*PHOTO_KINDS, "product_id", "image_id", "sku")


class CommaListField(serializers.ListField):
    """Accept ``category=a&category=b`` or ``category=a,b``."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = [data]
        if not isinstance(data, list | tuple):
            # JSON may send a bool, number or object here; iterating it would be a 500.
            self.fail("not_a_list", input_type=type(data).__name__)
        # Only strings are split; anything else goes to the child field, which rejects non-text.
        items: list[Any] = []
        for value in data:
            if isinstance(value, str):
                items.extend(part.strip() for part in value.split(",") if part.strip())
            else:
                items.append(value)
        return super().to_internal_value(items)


class Base64ImageField(serializers.CharField):
    """An image as base64 text (a ``data:image/...;base64,`` prefix is allowed), decoded to bytes;
    larger than the upload limit once decoded is an ``image_too_large``, as for an upload."""

    # Text on the wire, bytes once validated: that is the field's point, though CharField's stub says str.
    def to_internal_value(self, data: Any) -> bytes:  # type: ignore[override]
        text = super().to_internal_value(data)
        if text.startswith("data:") and "," in text:
            text = text.split(",", 1)[1]
        text = "".join(text.split())  # line breaks from base64 tools
        image_limits.check_size(len(text) * 3 // 4)  # decoded size, before decoding
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise serializers.ValidationError("Not valid base64.") from exc


class SearchInput(serializers.Serializer):
    image = serializers.FileField(
        required=False, allow_empty_file=True, help_text="A photo (JPEG, PNG, WebP, GIF)."
    )
    image_url = serializers.CharField(
        required=False,
        max_length=2000,
        help_text="A photo's http(s) URL, fetched by the server (public addresses only, a few seconds at most).",
    )
    image_base64 = Base64ImageField(
        required=False, help_text="A photo's bytes in base64 (a data: URL prefix is accepted)."
    )
    product_id = serializers.IntegerField(required=False, min_value=1)
    image_id = serializers.UUIDField(required=False)
    sku = serializers.CharField(
        required=False, max_length=64, help_text="More like the product with this SKU."
    )
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, default=12)
    category = CommaListField(child=serializers.CharField(max_length=120), required=False, default=list)
    min_price = serializers.DecimalField(max_digits=12, decimal_places=2, required=False, min_value=0)
    max_price = serializers.DecimalField(max_digits=12, decimal_places=2, required=False, min_value=0)
    in_stock = serializers.BooleanField(required=False, allow_null=True, default=None)
    crop = serializers.CharField(required=False, help_text="x,y,w,h in pixels of the uploaded image.")
    q = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text=(
            "Words to search for (a product's name, brand, size such as '500 ml' or '1,5%'), matched "
            "against each product's title, brand, attributes, description and the text read on its "
            "photos, typos tolerated. Alone, or with one photo, product_id, image_id or sku, whose "
            "answer the words then re-rank. At most 200 characters, with at least one word or number "
            "(else error query_too_long or query_empty)."
        ),
    )

    def validate_crop(self, value: str):
        try:
            return parse_crop(value)
        except ImageRejected as exc:
            raise serializers.ValidationError(exc.message) from exc

    def validate(self, attrs):
        given = [k for k in QUERY_KINDS if attrs.get(k) is not None]
        words = attrs.get("q") is not None
        if len(given) > 1 or (not given and not words):
            raise serializers.ValidationError(
                {"query": [f"Give q, or exactly one of {', '.join(QUERY_KINDS)}, or q with one of them."]}
            )
        if attrs.get("crop") and not (given and given[0] in PHOTO_KINDS):
            raise serializers.ValidationError(
                {"crop": ["crop applies to a photo (image, image_url or image_base64)."]}
            )
        lo, hi = attrs.get("min_price"), attrs.get("max_price")
        if lo is not None and hi is not None and lo > hi:
            raise serializers.ValidationError({"min_price": ["min_price must not exceed max_price."]})
        return attrs


class EventInput(serializers.Serializer):
    search_id = serializers.UUIDField(help_text="The search_id of the search answer.")
    product_id = serializers.IntegerField(min_value=1)
    position = serializers.IntegerField(min_value=1, max_value=100, help_text="1 = the first result.")
    type = serializers.ChoiceField(choices=EventKind.choices)


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
    match = serializers.ChoiceField(
        choices=[("same", "same"), ("similar", "similar")],
        allow_null=True,
        help_text="same: this is the photographed product; similar: it looks alike. Null before the model "
        "is calibrated.",
    )
    image_id = serializers.UUIDField()
    product = ProductHitOutput(source="card")

    def get_score(self, hit) -> float:
        return round(hit.score, 5)


class TimingsOutput(serializers.Serializer):
    decode = serializers.FloatField()
    embed = serializers.FloatField()
    search = serializers.FloatField()
    read_text = serializers.FloatField(
        help_text="Reading the words on the photo and scoring the candidates by them; 0 when not read."
    )
    catalog = serializers.FloatField()
    total = serializers.FloatField()


class SearchOutput(serializers.Serializer):
    search_id = serializers.UUIDField(help_text="Name this search in click events (POST /api/v1/events/).")
    model_version = serializers.IntegerField()
    model_kind = serializers.ChoiceField(
        choices=ModelKind.choices,
        help_text="Which model answered: the pretrained backbone, or one trained on this catalog.",
    )
    no_match = serializers.BooleanField(
        allow_null=True,
        help_text="True when no result is the photographed product (the results are similar items). Null "
        "before the model is calibrated, when its thresholds came from views of a one-photo catalog's "
        "images (they tell a copy of the shop's picture, not a shopper's photo of another product), and "
        "for a search by product, sku or image (more like this: similar products, never a match verdict; "
        "no result carries a match either).",
    )
    reranked_by_text = serializers.BooleanField(
        help_text="True when the words read on the photo changed the order of the results (a photo "
        "search without q whose visual answer was not clear-cut). The match verdict is then null."
    )
    balanced = serializers.BooleanField(
        help_text="True when the catalog's balance offsets (a catalog with one photo per product, fitted on "
        "shoppers' searches) put another product first than similarity alone would. The match verdict is "
        "then null; each result's score is still its similarity."
    )
    words_read = serializers.SerializerMethodField()
    timings_ms = TimingsOutput()
    results = HitOutput(many=True, source="hits")

    @extend_schema_field(
        serializers.ListField(
            child=serializers.CharField(),
            allow_null=True,
            help_text="The lines of text read on the photo (empty: none); null when the photo was not "
            "read (a clear-cut visual answer, the reading off or past its time budget, or no photo).",
        )
    )
    def get_words_read(self, outcome) -> list[str] | None:
        rerank = outcome.text_rerank
        return list(rerank.words) if rerank is not None and rerank.read else None
