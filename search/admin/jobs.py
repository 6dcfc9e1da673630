"""Jobs in the admin: the list with state and progress, and each job's page, which follows the job live
(search/static/search/admin_job.js polls the staff-only JSON status below) and, for a reindex, shows the
evaluation gate's verdict and the candidate's Recall@K plot once it has ended."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from ml.evaluate import METRIC_LABELS
from search import selectors
from search.admin.model_versions import KIND_LABELS, PROMOTABLE, requested_by
from search.jobs.records import job_cancel
from search.jobs.registry import job_kinds
from search.models import Job, JobState, ModelVersion
from search.services.gate import gate_queries_label, gate_verdict

GATE_ROWS = tuple((label, name) for name, label in METRIC_LABELS.items())


def _label(kind: str) -> str:
    spec = job_kinds().get(kind)
    return spec.label if spec else kind


def _elapsed(job: Job) -> float | None:
    if job.started_at is None:
        return None
    return round(((job.finished_at or timezone.now()) - job.started_at).total_seconds(), 1)


def serving_now() -> dict[str, Any] | None:
    model = selectors.active_model()
    if model is None:
        return None
    return {"version": model.version, "kind": model.kind, "label": KIND_LABELS.get(model.kind, model.kind)}


def gate_table(job: Job) -> dict[str, Any] | None:
    """A reindex job's gate verdict (the word the job's log says too) and its numbers as table rows
    (candidate vs active on what the gate compared them on)."""
    gate = job.result.get("gate") if job.kind == "reindex" else None
    if not gate:
        return None

    def fmt(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, int | float) else "—"

    candidate, active = gate.get("candidate") or {}, gate.get("active") or {}
    return {
        "queries": gate.get("queries", 0),
        "queries_label": gate_queries_label(gate),
        "advice": gate.get("advice_only", ""),
        "passed": bool(gate.get("passed")),
        "verdict": gate_verdict(gate),
        "compared": bool(candidate),
        "status": job.result.get("status", ""),
        "forced": bool(job.params.get("force")) and not gate.get("passed"),
        "rows": [(name, fmt(candidate.get(key)), fmt(active.get(key))) for name, key in GATE_ROWS],
        "candidate_version": job.result.get("model_version"),
        "active_version": job.result.get("previous_version"),
    }


def job_status(job: Job) -> dict[str, Any]:
    """What the job page shows, as the JSON its script polls."""
    return {
        "id": job.pk,
        "kind": job.kind,
        "label": _label(job.kind),
        "state": job.state,
        "state_label": job.get_state_display(),
        "finished": job.finished,
        "done": job.done,
        "total": job.total,
        "percent": round(job.progress * 100),
        "log": job.log,
        "log_lines": job.log_lines,
        "error": job.error,
        "summary": job.result.get("summary", ""),
        "elapsed_s": _elapsed(job),
        "cancel_requested": job.cancel_requested,
        "serving": serving_now(),
        "verdict": gate_table(job),
    }


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    change_form_template = "admin/search/job/change_form.html"
    list_display = ["id", "kind_label", "state", "progress_bar", "requested_by", "created_at", "elapsed"]
    list_filter = ["state", "kind"]
    list_display_links = ["id", "kind_label"]
    readonly_fields = [
        "kind",
        "state",
        "params",
        "result",
        "error",
        "requested_by",
        "runner",
        "attempts",
        "cancel_requested",
        "created_at",
        "started_at",
        "finished_at",
        "heartbeat_at",
    ]
    exclude = ["log", "log_lines", "done", "total"]

    @admin.display(description="job")
    def kind_label(self, obj: Job) -> str:
        return _label(obj.kind)

    @admin.display(description="progress")
    def progress_bar(self, obj: Job) -> str:
        pct = round(obj.progress * 100)
        return format_html('<progress max="100" value="{}"></progress> {}/{}', pct, obj.done, obj.total)

    @admin.display(description="time (s)")
    def elapsed(self, obj: Job) -> str:
        value = _elapsed(obj)
        return "—" if value is None else f"{value:.0f}"

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/status.json", view(self.status_view), name="search_job_status"),
            path("<int:pk>/cancel/", view(self.cancel_view), name="search_job_cancel"),
            *super().get_urls(),
        ]

    def _may_run_jobs(self, request: HttpRequest) -> bool:
        return request.user.has_perm("search.change_job")

    def status_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return JsonResponse(job_status(get_object_or_404(Job, pk=pk)))

    def cancel_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self._may_run_jobs(request):
            raise PermissionDenied
        job = job_cancel(job_id=get_object_or_404(Job, pk=pk).pk, by=requested_by(request))
        self.message_user(
            request,
            "Cancelled." if job.state == JobState.CANCELLED else "Asked to stop; it stops at its next step.",
            messages.INFO,
        )
        return HttpResponseRedirect(reverse("admin:search_job_change", args=[pk]))

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        job = self.get_object(request, object_id)
        extra: dict[str, Any] = {}
        if job is not None:
            extra = {
                "job": job,
                "status": job_status(job),
                "can_cancel": self._may_run_jobs(request) and not job.finished,
                "plot_url": self._candidate_plot(job),
                "promote_url": self._promote_url(job),
            }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def _promote_url(self, job: Job) -> str | None:
        """After a training that was not told to promote: the way to its candidate's promotion."""
        if job.kind != "train" or job.state != JobState.SUCCEEDED or job.result.get("promote_job"):
            return None
        model = ModelVersion.objects.filter(version=job.result.get("model_version")).first()
        if model is None or model.status not in PROMOTABLE:
            return None
        return reverse("admin:search_modelversion_promote", args=[model.pk])

    def _candidate_plot(self, job: Job) -> str | None:
        version = job.result.get("model_version") or job.params.get("model")
        model = ModelVersion.objects.filter(version=version).first() if version else None
        if model is None or not model.plot_path or not Path(model.plot_path).is_file():
            return None
        return reverse("admin:search_modelversion_plot", args=[model.pk])

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return False  # a job is changed by running it (or cancelling it), not by editing its row

    def has_delete_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or obj.finished)
