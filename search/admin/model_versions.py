"""Model versions and their life cycle in the admin: the list says which model serves now and how each
one scored (R@1, mAP@R, calibration thresholds); "Train a candidate", "Reindex and promote" and "Roll
back" each submit a job (search/jobs/) and land on the job's page, which follows it live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from ml.evaluate import MAP_AT_R, METRIC_LABELS, RECALL_AT_1
from search import selectors
from search.jobs.records import job_submit
from search.jobs.registry import JobError
from search.models import ModelKind, ModelStatus, ModelVersion
from search.services.balance import SKIPPED

# How the admin (and the search page) name a model's kind.
KIND_LABELS: dict[str, str] = {
    ModelKind.BOOTSTRAP: "pretrained",
    ModelKind.TRAINED: "trained on your catalog",
}
PROMOTABLE = (ModelStatus.CANDIDATE, ModelStatus.REJECTED, ModelStatus.RETIRED)


def _metric(model: ModelVersion, key: str) -> str:
    value = (model.metrics or {}).get(key)
    return f"{value:.3f}" if isinstance(value, int | float) else "—"


def index_line(model: ModelVersion) -> str:
    """How a model's collection is searched, in a few words: its graph beam and the recall it bought."""
    from search.services.index_building import beam_text

    index, beam = model.index, model.search_beam
    if not index:
        return "exact (no index built)"
    if beam is not None:
        return (
            f"{beam_text(beam)} · recall@10 {index['recall_at_10']:.3f} · "
            f"{index.get('indexed', 0)}/{index.get('points', 0)} points"
        )
    if index.get("indexed"):
        return f"exact (graph recall@10 at best {index.get('recall_at_10') or 0:.3f})"
    return f"exact ({index.get('points', 0)} points: too few for a graph)"


def requested_by(request: HttpRequest) -> str:
    return f"{request.user.get_username()} (admin)"


class TrainForm(forms.Form):
    """The main training options; defaults from TrainConfig (through the command line's definitions)."""

    mode = forms.ChoiceField(
        help_text="cached: train the top blocks on cached features (the CPU default); "
        "finetune: train through the whole network (for a GPU)."
    )
    backbone = forms.ChoiceField()
    weights = forms.CharField(
        help_text="A local weights file, 'imagenet' (download) or 'none' (random: a quick trial only)."
    )
    loss = forms.ChoiceField()
    image_size = forms.IntegerField(min_value=32, max_value=1024, help_text="Input size in pixels.")
    trainable_blocks = forms.IntegerField(
        min_value=0, max_value=20, help_text="cached mode: backbone blocks trained above the cached features."
    )
    head_epochs = forms.IntegerField(
        min_value=0, max_value=100, help_text="finetune mode: epochs of the new head alone first."
    )
    epochs = forms.IntegerField(
        min_value=0,
        max_value=500,
        help_text="Training epochs (an upper bound: early stopping may end sooner).",
    )
    steps_per_epoch = forms.IntegerField(
        min_value=1, required=False, help_text="Empty: one pass over the catalog's photos per epoch."
    )
    then_promote = forms.BooleanField(
        required=False, initial=True, help_text="Then reindex and promote it if the evaluation gate passes."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from ml.backbones import backbone_names
        from ml.losses import LOSSES
        from ml.train_config import MODES
        from search.jobs.training import train_defaults

        super().__init__(*args, **kwargs)
        defaults = train_defaults()
        for field_name, names in (("mode", MODES), ("backbone", backbone_names()), ("loss", sorted(LOSSES))):
            choice_field = self.fields[field_name]
            if not isinstance(choice_field, forms.ChoiceField):
                raise TypeError(f"{field_name} must be a choice field")
            choice_field.choices = [(name, name) for name in names]
        for name, field in self.fields.items():
            if name in defaults and defaults[name] is not None:
                field.initial = defaults[name]

    def options(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {name: data[name] for name in self.fields if name != "then_promote" and data[name] is not None}


def _share(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, int | float) else "?"


def balance_line(balance: dict[str, Any]) -> str:
    """What search/services/balance.py fitted for a model, in words."""

    def minute(key: str) -> str:  # an ISO time to the minute
        return str(balance.get(key, ""))[:16].replace("T", " ")

    offsets = list((balance.get("offsets") or {}).values())
    if balance.get("skipped"):
        reason = SKIPPED.get(balance["skipped"], balance["skipped"])
        return f"not balanced: {reason} (looked at {minute('checked_at')} UTC)"
    if not offsets:
        return "not fitted (a catalog with one photo per product is, once 200 photo searches are logged)"
    return (
        f"fitted {minute('fitted_at')} UTC on {balance.get('queries')} photo searches: {len(offsets)} "
        f"products, offsets {min(offsets):+.3f} to {max(offsets):+.3f}"
    )


def calibration_line(calibration: dict[str, Any]) -> str:
    """The model list's calibration column, in words: from what score a hit is called “same”, how often
    that was right and for how many queries, and how often an unknown product got “no match”
    (ml.calibration.Calibration's fields, measured when the thresholds were fitted)."""
    same = calibration.get("same")
    if not isinstance(same, int | float) or isinstance(same, bool):
        return "not calibrated"
    margin = calibration.get("margin")
    lead = f", {margin:.2f} ahead of the next" if isinstance(margin, int | float) and margin > 0 else ""
    line = (
        f"“same” at score ≥ {same:.2f}{lead}: right {_share(calibration.get('precision'))}, "
        f"said for {_share(calibration.get('coverage'))} of queries; unknown products get “no match” "
        f"{_share(calibration.get('no_match_unseen'))}"
    )
    if calibration.get("queries"):
        line += f" (on {calibration['queries']} queries)"
    if calibration.get("met") is False:
        line += "; targets not met"
    return line


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    change_list_template = "admin/search/modelversion/change_list.html"
    change_form_template = "admin/search/modelversion/change_form.html"
    list_display = [
        "version",
        "kind_label",
        "serving",
        "status",
        "backbone",
        "image_size",
        "recall_at_1",
        "map_at_r",
        "calibration_thresholds",
        "index_summary",
        "created_at",
        "promoted_at",
        "lifecycle",
    ]
    list_filter = ["status", "kind"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields if f.name != "balance"] + [
        "index_summary",
        "balance_summary",
        "precision",
        "plot",
        "calibration_plot",
    ]
    # The balance's offsets (one per product) are summed up in a line instead.
    exclude = ["eval_image_ids", "balance"]

    @admin.display(description="kind")
    def kind_label(self, obj: ModelVersion) -> str:
        return KIND_LABELS.get(obj.kind, obj.kind)

    @admin.display(description="serving")
    def serving(self, obj: ModelVersion) -> str:
        if obj.status != ModelStatus.ACTIVE:
            return ""
        return format_html('<strong class="lookalike-serving">{}</strong>', "● serving now")

    @admin.display(description=METRIC_LABELS[RECALL_AT_1])
    def recall_at_1(self, obj: ModelVersion) -> str:
        return _metric(obj, RECALL_AT_1)

    @admin.display(description=METRIC_LABELS[MAP_AT_R])
    def map_at_r(self, obj: ModelVersion) -> str:
        return _metric(obj, MAP_AT_R)

    @admin.display(description="calibration")
    def calibration_thresholds(self, obj: ModelVersion) -> str:
        return calibration_line(obj.calibration or {})

    @admin.display(description="index")
    def index_summary(self, obj: ModelVersion) -> str:
        return index_line(obj)

    @admin.display(description="balanced answers")
    def balance_summary(self, obj: ModelVersion) -> str:
        return balance_line(obj.balance or {})

    @admin.display(description="embeds with")
    def precision(self, obj: ModelVersion) -> str:
        from search.embedders import serving_precision

        return serving_precision(obj)

    @admin.display(description="")
    def lifecycle(self, obj: ModelVersion) -> str:
        if obj.status not in PROMOTABLE or not obj.collection:
            return ""
        url = reverse("admin:search_modelversion_promote", args=[obj.pk])
        return format_html('<a class="button" href="{}">Reindex and promote…</a>', url)

    def _image(self, obj: ModelVersion, file: str, view: str, alt: str) -> str:
        if not file or not Path(file).is_file():
            return "—"
        url = reverse(f"admin:{view}", args=[obj.pk])
        return format_html('<img src="{}" style="max-width:900px" alt="{}">', url, alt)

    @admin.display(description="evaluation plot (Recall@K)")
    def plot(self, obj: ModelVersion) -> str:
        return self._image(obj, obj.plot_path, "search_modelversion_plot", "evaluation plot")

    @admin.display(description="calibration plot")
    def calibration_plot(self, obj: ModelVersion) -> str:
        return self._image(
            obj, obj.calibration_plot_path, "search_modelversion_calibration", "calibration plot"
        )

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("train/", view(self.train_view), name="search_modelversion_train"),
            path("rollback/", view(self.rollback_view), name="search_modelversion_rollback"),
            path("<int:pk>/promote/", view(self.promote_view), name="search_modelversion_promote"),
            path("<int:pk>/optimize/", view(self.optimize_view), name="search_modelversion_optimize"),
            path("<int:pk>/plot.png", view(self.plot_view), name="search_modelversion_plot"),
            path(
                "<int:pk>/calibration.png",
                view(self.calibration_view),
                name="search_modelversion_calibration",
            ),
            *super().get_urls(),
        ]

    # --- pages ---------------------------------------------------------------------------------

    def changelist_view(self, request: HttpRequest, extra_context=None):
        active = selectors.active_model()
        extra = {
            "serving_now": active,
            "serving_kind": KIND_LABELS.get(active.kind, active.kind) if active else "",
            "rollback_to": selectors.previous_model() if active else None,
            "open_jobs": list(selectors.open_jobs()[:5]),
        }
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        model = self.get_object(request, object_id)
        extra = {"promotable": model is not None and model.status in PROMOTABLE and bool(model.collection)}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def _page(self, request: HttpRequest, template: str, title: str, **context: Any) -> TemplateResponse:
        # The action pages (train, promote, optimize, roll back) are forms that change models: the
        # admin_view wrapper only asks for is_staff, so they ask for the model permission themselves.
        if not self.has_change_permission(request):
            raise PermissionDenied
        return TemplateResponse(
            request,
            f"admin/search/modelversion/{template}",
            {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title, **context},
        )

    def _submit(self, request: HttpRequest, kind: str, params: dict[str, Any]) -> HttpResponse | None:
        """Submit a job and go to its page; None (with an error message shown) when it was refused."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        try:
            job = job_submit(kind=kind, params=params, requested_by=requested_by(request))
        except JobError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return None
        return HttpResponseRedirect(reverse("admin:search_job_change", args=[job.pk]))

    def train_view(self, request: HttpRequest) -> HttpResponse:
        form = TrainForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            params = {"options": form.options(), "then_promote": form.cleaned_data["then_promote"]}
            done = self._submit(request, "train", params)
            if done is not None:
                return done
        return self._page(
            request,
            "train.html",
            "Train a candidate",
            form=form,
            catalog_images=selectors.image_count(),
        )

    def promote_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        model = get_object_or_404(ModelVersion, pk=pk)
        if request.method == "POST":
            params = {"model": model.version, "force": request.POST.get("force") == "on"}
            done = self._submit(request, "reindex", params)
            if done is not None:
                return done
        return self._page(
            request,
            "promote.html",
            f"Reindex and promote v{model.version}",
            model=model,
            model_kind=KIND_LABELS.get(model.kind, model.kind),
            active=selectors.active_model(),
            catalog_images=selectors.image_count(),
        )

    def optimize_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        from search.services import index_building
        from search.vector_store import INDEX_SPEC, VectorStoreError, vector_store

        model = get_object_or_404(ModelVersion, pk=pk)
        if request.method == "POST":
            done = self._submit(request, index_building.JOB_KIND, {"model": model.version})
            if done is not None:
                return done
        try:
            state = vector_store().index_state(model.collection)
        except VectorStoreError as exc:
            self.message_user(request, f"The vector store cannot say: {exc}", messages.WARNING)
            state = None
        return self._page(
            request,
            "optimize.html",
            f"Optimize the index of v{model.version}",
            model=model,
            state=state,
            spec=INDEX_SPEC,
            current=index_line(model),
            queries=index_building.SAMPLE_QUERIES,
            target=index_building.RECALL_TARGET,
        )

    def rollback_view(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST":
            done = self._submit(request, "rollback", {})
            if done is not None:
                return done
        return self._page(
            request,
            "rollback.html",
            "Roll back",
            active=selectors.active_model(),
            previous=selectors.previous_model(),
        )

    def _file(self, request: HttpRequest, pk: int, attribute: str) -> FileResponse:
        # The plots belong to the change page, which needs the view permission; admin_view alone
        # lets any staff user in, whatever their permissions.
        if not self.has_view_permission(request):
            raise PermissionDenied
        model = ModelVersion.objects.filter(pk=pk).first()
        file = getattr(model, attribute, "") if model else ""
        if not file or not Path(file).is_file():
            raise Http404("No such plot for this model version.")
        return FileResponse(open(file, "rb"), content_type="image/png")

    def plot_view(self, request: HttpRequest, pk: int) -> FileResponse:
        return self._file(request, pk, "plot_path")

    def calibration_view(self, request: HttpRequest, pk: int) -> FileResponse:
        return self._file(request, pk, "calibration_plot_path")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
