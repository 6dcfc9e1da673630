"""Text read on catalog images (OCR) with the real engine: stored per image with confidences and
boxes, read on the background reader (never in the upload request), read again when the photo
changes, and refreshed for an existing catalog by ``manage.py read_image_text``."""

from __future__ import annotations

import threading
from io import StringIO
from pathlib import Path

import pytest
from celery.signals import task_prerun
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from catalog import services
from search import selectors
from search.models import ImageText, TextStatus
from search.services.image_text import images_text_read
from tests.fixtures.text_images import text_jpeg
from tests.support.realdata import data_missing
from workers import embedded

REPO = Path(__file__).resolve().parents[2]
GROCERY = REPO / ".." / "shared" / "data" / "grocery-store" / "dataset"

pytestmark = pytest.mark.slow


@pytest.fixture
def readers():
    """The thread each read_image_text task ran on."""
    seen: list[str] = []

    def record(sender=None, task=None, **_):
        if task.name == "lookalike.read_image_text":
            seen.append(threading.current_thread().name)

    task_prerun.connect(record, weak=False)
    yield seen
    task_prerun.disconnect(record)


@pytest.mark.django_db
def test_words_confidence_and_boxes_are_stored_and_a_second_read_is_a_no_op(media_root) -> None:
    product = services.product_create(sku="OAT-1", title="Oat drink")
    image = services.product_image_add(product=product, data=text_jpeg(["OAT MILK 1,5%"])).image
    outcome = images_text_read([str(image.pk)])
    assert outcome.read == [str(image.pk)] and outcome.with_words == 1
    row = ImageText.objects.get(image=image)
    assert row.status == TextStatus.READ and row.sha256 == image.sha256
    assert {"oat", "milk", "1.5%"} <= set(row.tokens)
    word = row.words[0]
    assert set(word) == {"text", "confidence", "box"} and 0 < word["confidence"] <= 1
    assert len(word["box"]) == 4
    assert selectors.images_needing_text() == []
    again = images_text_read([str(image.pk)])
    assert again.skipped == [str(image.pk)] and not again.read


@pytest.mark.django_db
def test_the_admin_shows_what_was_read(media_root, admin_client) -> None:
    product = services.product_create(sku="TEA-1", title="Tea")
    image = services.product_image_add(product=product, data=text_jpeg(["GREEN TEA"])).image
    images_text_read([str(image.pk)])
    listing = admin_client.get("/admin/search/imagetext/?text=words")
    assert listing.status_code == 200
    assert b"TEA-1" in listing.content and b"GREEN" in listing.content
    page = admin_client.get(f"/admin/search/imagetext/{image.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "GREEN" in body and "<th>confidence</th>" in body and "box (x, y)" in body
    assert admin_client.get("/admin/search/imagetext/?text=failed").content.count(b"TEA-1") == 0
    services.product_image_add(product=product, data=text_jpeg(["UNREAD"]))
    product_page = admin_client.get(f"/admin/catalog/product/{product.pk}/change/").content.decode()
    panel = product_page[product_page.index('id="image-texts"') :]
    assert "GREEN" in panel and "photo 2: not read yet" in panel


@pytest.mark.django_db(transaction=True)
def test_an_upload_is_read_on_the_background_reader_and_a_replaced_photo_read_again(
    auth_client, media_root, settings, readers
) -> None:
    settings.OCR_ENABLED = True
    product = services.product_create(sku="JUICE-1", title="Juice")
    upload = SimpleUploadedFile("apple.jpg", text_jpeg(["APPLE JUICE"]), content_type="image/jpeg")
    response = auth_client.post(
        f"/api/v1/products/{product.pk}/images/", {"image": upload}, format="multipart"
    )
    assert response.status_code == 201, response.content
    request_thread = threading.current_thread().name
    assert embedded.text_reader_idle(timeout_s=60)
    assert readers and request_thread not in readers
    assert set(readers) == {"lookalike-ocr-reader"}
    first = ImageText.objects.get(image_id=response.json()["id"])
    assert {"apple", "juice"} <= set(first.tokens)

    old = first.image
    replaced = services.product_image_replace(image=old, data=text_jpeg(["ORANGE JUICE"])).image
    assert embedded.text_reader_idle(timeout_s=60)
    assert not ImageText.objects.filter(image_id=first.image_id).exists()  # gone with its photo
    second = ImageText.objects.get(image=replaced)
    assert "orange" in second.tokens and "apple" not in second.tokens
    assert second.sha256 == replaced.sha256


@pytest.mark.django_db
def test_the_command_reads_an_existing_catalog_and_what_changed(media_root) -> None:
    product = services.product_create(sku="MILK-1", title="Milk")
    # Added with reading off (as a catalog from before text was read): nothing read yet.
    images = [
        services.product_image_add(product=product, data=text_jpeg([line])).image
        for line in ("MILK 3%", "FETT 1,5 %")
    ]
    assert set(selectors.images_needing_text()) == {str(i.pk) for i in images}
    out = StringIO()
    call_command("read_image_text", stdout=out)
    text = out.getvalue()
    assert "Reading the text on 2 image(s)" in text and "2/2 images" in text
    assert "Read 2 image(s)" in text and "2 with text" in text
    assert {"milk", "3%"} <= set(ImageText.objects.get(image=images[0]).tokens)
    assert "1.5%" in ImageText.objects.get(image=images[1]).tokens

    out = StringIO()
    call_command("read_image_text", stdout=out)
    assert "nothing to do" in out.getvalue()

    # A row read from other bytes (or by another engine) is stale: the command reads it again.
    ImageText.objects.filter(image=images[0]).update(sha256="0" * 64, tokens=[])
    out = StringIO()
    call_command("read_image_text", stdout=out)
    assert "Read 1 image(s)" in out.getvalue()
    assert "milk" in ImageText.objects.get(image=images[0]).tokens


@pytest.mark.django_db
def test_store_photos_from_the_grocery_dataset(media_root) -> None:
    photos = {
        "Arla-Standard-Milk": GROCERY / "test/Packages/Milk/Arla-Standard-Milk/Arla-Standard-Milk_001.jpg",
        "Oatly-Natural-Oatghurt": GROCERY
        / "test/Packages/Oatghurt/Oatly-Natural-Oatghurt/Oatly-Natural-Oatghurt_001.jpg",
    }
    if not all(path.is_file() for path in photos.values()):
        data_missing("the Grocery Store Dataset is not in ../shared")
    ids = {}
    for sku, path in photos.items():
        product = services.product_create(sku=sku, title=sku.replace("-", " "))
        ids[sku] = services.product_image_add(product=product, data=path.read_bytes()).image.pk
    outcome = images_text_read([str(i) for i in ids.values()])
    assert len(outcome.read) == 2 and outcome.with_words == 2
    milk = ImageText.objects.get(image_id=ids["Arla-Standard-Milk"])
    oat = ImageText.objects.get(image_id=ids["Oatly-Natural-Oatghurt"])
    assert {"arla", "1.0%"} <= set(milk.tokens)  # the fat percentage kept as one token
    assert "havre" in oat.tokens
    assert all(0.0 < word["confidence"] <= 1.0 for word in milk.words + oat.words)


@pytest.mark.django_db
def test_the_sweep_reads_what_the_fast_path_missed_and_gives_up_on_a_broken_image(
    media_root, settings
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from catalog.models import ProductImage
    from search.services import image_text
    from workers.tasks import sweep_image_text

    product = services.product_create(sku="SWEEP-1", title="Sweep")
    missed = services.product_image_add(product=product, data=text_jpeg(["RYE BREAD"])).image
    fresh = services.product_image_add(product=product, data=text_jpeg(["FRESH"])).image
    ProductImage.objects.filter(pk=missed.pk).update(created_at=timezone.now() - timedelta(hours=1))
    settings.OCR_ENABLED = True
    assert sweep_image_text.apply().get() == 1  # the fresh one is still the fast path's
    assert {"rye", "bread"} <= set(ImageText.objects.get(image=missed).tokens)
    assert not ImageText.objects.filter(image=fresh).exists()

    # A failed image is tried again after a while, a few times, then left to the command.
    ImageText.objects.filter(image=missed).update(
        status=TextStatus.FAILED, read_at=timezone.now() - timedelta(days=1), attempts=1
    )
    assert image_text.images_due_for_text() == [str(missed.pk)]
    ImageText.objects.filter(image=missed).update(attempts=image_text.SWEEP_MAX_ATTEMPTS)
    assert image_text.images_due_for_text() == []
    settings.OCR_ENABLED = False
    ImageText.objects.filter(image=missed).delete()
    assert sweep_image_text.apply().get() == 0


@pytest.mark.django_db(transaction=True)
def test_the_embedded_reader_sweeps_on_its_own(media_root, settings, readers) -> None:
    import time
    from datetime import timedelta

    from django.utils import timezone

    from catalog.models import ProductImage

    product = services.product_create(sku="SWEEP-2", title="Sweep")
    image = services.product_image_add(product=product, data=text_jpeg(["OAT FLAKES"])).image
    ProductImage.objects.filter(pk=image.pk).update(created_at=timezone.now() - timedelta(hours=1))
    settings.OCR_ENABLED = True
    assert embedded.start_text_sweep(interval_s=0.2)
    try:
        deadline = time.monotonic() + 60
        while not ImageText.objects.filter(image=image).exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        embedded.stop_text_sweep()
    assert "oat" in ImageText.objects.get(image=image).tokens
    assert set(readers) == {"lookalike-ocr-reader"}


@pytest.mark.django_db
def test_an_unreadable_file_is_recorded_as_failed_with_its_reason(media_root) -> None:
    from django.core.files.storage import default_storage

    product = services.product_create(sku="BAD-1", title="Bad")
    image = services.product_image_add(product=product, data=text_jpeg(["BROKEN"])).image
    with default_storage.open(image.file.name, "wb") as handle:  # the stored file damaged since
        handle.write(b"\xff\xd8\xff not a jpeg any more")
    outcome = images_text_read([str(image.pk), "00000000-0000-0000-0000-000000000000"])
    assert outcome.failed == [str(image.pk)] and outcome.missing == ["00000000-0000-0000-0000-000000000000"]
    row = ImageText.objects.get(image=image)
    assert row.status == TextStatus.FAILED and row.attempts == 1 and "ImageRejected" in row.error
    assert row.words == [] and row.tokens == []


@pytest.mark.django_db
def test_the_command_refuses_a_negative_limit_in_one_line() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--limit must be 0"):
        call_command("read_image_text", "--limit", "-1", stdout=StringIO())
