"""The embedded default's threads (text reader, sweeper, retention, syncs) run their tasks in-process:
a pass must count as done, and its result come back, even while another thread of the process is
inside an eager task (an upload's indexing)."""

from __future__ import annotations

import io

import pytest
from celery.result import denied_join_result

from catalog import services
from search.models import ImageText, TextStatus
from tests.fixtures.text_images import text_image
from workers.embedded import run_here
from workers.tasks import read_image_text, sweep_index

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_reading_is_done_while_another_thread_runs_an_eager_task(settings, media_root) -> None:
    settings.OCR_ENABLED = False  # nothing read when the image is added: the reader below does it
    product = services.product_create(sku="OAT-1", title="Oat drink")
    buffer = io.BytesIO()
    text_image(["OAT MILK"]).convert("RGB").save(buffer, "JPEG", quality=92)
    image = services.product_image_add(product=product, data=buffer.getvalue()).image
    # What Celery's Task.apply sets, process-wide, while any thread runs an eager task: fetching an
    # eager result then raises "Never call result.get() within a task!".
    with denied_join_result():
        run_here(read_image_text, [str(image.pk)])
    row = ImageText.objects.get(image_id=image.pk)
    assert row.status != TextStatus.FAILED
    assert "oat" in row.text.lower()


def test_a_task_run_here_returns_its_result_while_another_thread_runs_an_eager_task(media_root) -> None:
    with denied_join_result():
        assert run_here(sweep_index) == 0  # nothing to re-queue in an empty catalog
