"""`manage.py train` end to end on a tiny catalog: train, evaluate, export, record a candidate."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from catalog import services
from catalog.models import Product
from search.models import Job, JobState, ModelKind, ModelStatus, ModelVersion
from tests.fixtures.images import image_bytes

pytestmark = pytest.mark.django_db

COLOURS = [(220, 30, 30), (30, 200, 40), (30, 60, 220), (230, 210, 20)]


@pytest.fixture
def small_catalog(media_root):
    for n, colour in enumerate(COLOURS):
        product = services.product_create(sku=f"P{n}", title=f"product {n}")
        for k in range(4):
            services.product_image_add(
                product=product, data=image_bytes(color=colour, size=(40, 40), pattern=10 * n + k)
            )


def test_train_records_a_candidate_with_report_plot_and_export(small_catalog, settings, tmp_path) -> None:
    settings.MODELS_DIR = tmp_path / "models"
    out = StringIO()
    call_command(
        "train",
        # Random weights at 32 px: MobileNetV2's ReLU6 still gives non-zero vectors there, which a
        # 32 px EfficientNet-Lite does not always (its metrics would be null, as stored).
        "--backbone",
        "mobilenet_v2_035",
        "--trainable-blocks",
        "5",
        "--weights",
        "none",
        "--image-size",
        "32",
        "--embedding-dim",
        "8",
        "--head-epochs",
        "1",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--batch-p",
        "2",
        "--batch-k",
        "2",
        "--unfreeze-layers",
        "5",
        "--val-fraction",
        "0.25",
        "--output",
        str(tmp_path / "run"),
        stdout=out,
    )
    model = ModelVersion.objects.get()
    assert model.kind == ModelKind.TRAINED and model.status == ModelStatus.CANDIDATE
    assert model.embedding_dim == 8 and model.image_size == 32
    assert Path(model.export_path, "saved_model.pb").is_file()
    assert Path(model.export_path).parent == settings.MODELS_DIR / "lookalike"
    report = json.loads(Path(model.report_path).read_text())
    assert 0.0 <= report["metrics"]["recall@1"] <= 1.0
    assert set(report["baseline"]) >= {"recall@1", "map@r"}
    assert Path(model.plot_path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"recall@1", "recall@5", "map@r", "baseline"} <= set(model.metrics)
    # Whole groups of look-alike photos are held out (ml/holdout.py): every product gives some
    # photos to validation and keeps some for training.
    held = set(model.eval_image_ids)
    for product in Product.objects.all():
        ids = {str(i) for i in product.images.values_list("id", flat=True)}
        assert 0 < len(ids & held) < len(ids)
    assert f"Candidate model v{model.version}" in out.getvalue()
    # Recorded as a job that ran in this process, with its epoch and two more steps as progress (cached
    # mode trains the top in one phase: --head-epochs belongs to the fine-tuning mode).
    job = Job.objects.get()
    assert (job.kind, job.state, job.requested_by) == ("train", JobState.SUCCEEDED, "manage.py train")
    assert (job.done, job.total) == (3, 3) and job.result["model_version"] == model.version
    assert "epoch 1: val Recall@1" in job.log


def test_train_on_an_empty_catalog_is_a_one_line_error(db, tmp_path) -> None:
    with pytest.raises(CommandError, match="no images"):
        call_command("train", "--weights", "none", "--output", str(tmp_path / "run"))


def test_train_with_a_missing_weights_file(small_catalog, tmp_path) -> None:
    with pytest.raises(CommandError) as info:
        call_command(
            "train", "--weights", str(tmp_path / "nope.weights.h5"), "--output", str(tmp_path / "run")
        )
    assert "nope.weights.h5" in str(info.value) and "\n" not in str(info.value)


def test_train_with_one_product(media_root, tmp_path) -> None:
    product = services.product_create(sku="ONLY", title="only")
    services.product_image_add(product=product, data=image_bytes())
    with pytest.raises(CommandError, match="two"):
        call_command("train", "--weights", "none", "--output", str(tmp_path / "run"))


def test_train_with_feedback_reports_the_clicks_it_trusted_and_dropped(
    small_catalog, settings, tmp_path
) -> None:
    import uuid

    from django.utils import timezone

    from search import photo_storage
    from search.models import QueryKind, SearchClick, SearchLog, SearchPhoto

    settings.MODELS_DIR = tmp_path / "models"
    settings.SEARCH_LOG_PHOTOS_DIR = tmp_path / "photos"
    settings.SEARCH_FEEDBACK_MAX_POSITION = 4
    products = list(Product.objects.order_by("sku"))
    data = image_bytes(color=COLOURS[0], size=(40, 40), pattern=99)
    sha256, name = photo_storage.write_photo(data)
    photo = SearchPhoto.objects.create(
        sha256=sha256, file=name, bytes=len(data), last_searched_at=timezone.now()
    )
    results = [{"position": k + 1, "product_id": p.pk, "image_id": str(uuid.uuid4()), "score": 0.5, "match": None}
               for k, p in enumerate(products)]  # fmt: skip
    for client, position in [("addr:a", 1), ("addr:b", 1), ("addr:b", 1), ("addr:c", 9)]:
        log = SearchLog.objects.create(
            id=uuid.uuid4(), created_at=timezone.now(), query_kind=QueryKind.PHOTO, limit=20, latency_ms=5.0,
            results=results + [{**results[0], "position": 9}], result_count=5, photo=photo, client=client,
        )  # fmt: skip
        SearchClick.objects.create(search=log, position=position, product_id=products[0].pk)
    out = StringIO()
    call_command(
        "train", "--with-feedback", "--backbone", "mobilenet_v2_035", "--trainable-blocks", "5", "--weights",
        "none", "--image-size", "32", "--embedding-dim", "8", "--head-epochs", "1", "--epochs", "1",
        "--steps-per-epoch", "1", "--batch-p", "2", "--batch-k", "2", "--unfreeze-layers", "5",
        "--val-fraction", "0.25", "--output", str(tmp_path / "run"), stdout=out,
    )  # fmt: skip
    model = ModelVersion.objects.get()
    assert model.metrics["feedback_photos"] == 2
    assert model.metrics["feedback_clicks"]["trusted"] == 2
    assert (
        model.metrics["feedback_clicks"]["repeat_by_client"],
        model.metrics["feedback_clicks"]["past_shown"],
    ) == (1, 1)
    assert "Shoppers' clicks: 2 trusted, 2 dropped." in out.getvalue()
    assert "Shoppers' clicks: 2 trusted, 2 dropped (1 past position 4" in Job.objects.get().log
