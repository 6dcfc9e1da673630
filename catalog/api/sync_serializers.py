"""The catalog sync's API shapes: a queued run's answer, and a run's progress."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog.models import SyncProblem, SyncRun

# Error rows shown with a run; every error is counted in ``error_count`` and kept in the admin.
ERRORS_SHOWN = 100


class SyncPushQuery(serializers.Serializer):
    full = serializers.BooleanField(
        required=False,
        default=False,
        help_text="The body is the whole catalog: products missing from it leave search (deactivated).",
    )


class SyncErrorOutput(serializers.ModelSerializer):
    class Meta:
        model = SyncProblem
        fields = ["position", "unit", "sku", "url", "code", "message", "fatal"]


class SyncCountsOutput(serializers.Serializer):
    records = serializers.IntegerField()
    products_created = serializers.IntegerField()
    products_updated = serializers.IntegerField()
    products_unchanged = serializers.IntegerField()
    products_removed = serializers.IntegerField()
    products_reactivated = serializers.IntegerField()
    images_queued = serializers.IntegerField()
    images_fetched = serializers.IntegerField()
    images_unchanged = serializers.IntegerField()
    images_failed = serializers.IntegerField()
    images_added = serializers.IntegerField()
    images_removed = serializers.IntegerField()
    # The API's field name; DRF's metaclass takes declared fields off the class, so Serializer.errors
    # (which the stubs see this shadow) is untouched.
    errors = serializers.IntegerField(source="error_count")  # type: ignore[assignment]


class SyncRunOutput(serializers.ModelSerializer):
    counts = serializers.SerializerMethodField()
    errors = serializers.SerializerMethodField()  # type: ignore[assignment]  # as SyncCountsOutput.errors
    duration_s = serializers.FloatField(allow_null=True, read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = SyncRun
        fields = [
            "id",
            "url",
            "state",
            "origin",
            "format",
            "full",
            "feed_not_modified",
            "message",
            "counts",
            "errors",
            "created_at",
            "started_at",
            "finished_at",
            "duration_s",
        ]

    @extend_schema_field(SyncCountsOutput)
    def get_counts(self, run: SyncRun) -> dict:
        return SyncCountsOutput(run).data

    @extend_schema_field(SyncErrorOutput(many=True))
    def get_errors(self, run: SyncRun) -> list[Any]:
        # many=True data is a ReturnList; the stubs type every serializer's data as a ReturnDict.
        return list(SyncErrorOutput(run.errors.all()[:ERRORS_SHOWN], many=True).data)

    def get_url(self, run: SyncRun) -> str:
        path = reverse("catalog-sync-run", kwargs={"run_id": run.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path
