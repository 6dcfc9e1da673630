"""``product_images_add_many``: the downloads' batch form of ``product_image_add``."""

from __future__ import annotations

import pytest

from catalog import image_limits
from catalog.models import Product, ProductImage
from catalog.services import product_create, product_image_add
from catalog.services.images import NewImage, product_images_add_many
from tests.fixtures.images import image_bytes

pytestmark = pytest.mark.django_db


def _new(product: Product, data: bytes, order: int = 0, url: str = "") -> NewImage:
    return NewImage(
        product=product, data=data, info=image_limits.validate(data), display_order=order, source_url=url
    )


def test_a_batch_adds_what_is_new_once_and_returns_what_exists(media_root) -> None:
    a, b = product_create(sku="A", title="a"), product_create(sku="B", title="b")
    one, two = image_bytes(pattern=1), image_bytes(pattern=2)
    existing = product_image_add(product=a, data=one).image
    results = product_images_add_many(
        images=[_new(a, one), _new(a, two, 1, "https://shop.test/2.jpg"), _new(a, two, 2), _new(b, one)]
    )
    assert [r.created for r in results] == [False, True, False, True]
    assert results[0].image.pk == existing.pk and results[2].image.pk == results[1].image.pk
    assert ProductImage.objects.count() == 3
    stored = ProductImage.objects.get(pk=results[1].image.pk)
    assert (stored.source_url, stored.display_order, stored.format) == ("https://shop.test/2.jpg", 1, "JPEG")
    # a and b share the bytes of `one`: one file on disk.
    files = {p for p in (media_root / "images").rglob("*") if p.is_file()}
    assert len(files) == 2


@pytest.mark.django_db(transaction=True)  # foreign keys are checked at commit: let it commit
def test_a_deleted_product_is_none_and_leaves_no_file(media_root) -> None:
    kept, gone = product_create(sku="K", title="k"), product_create(sku="G", title="g")
    batch = [_new(kept, image_bytes(pattern=3)), _new(gone, image_bytes(pattern=4))]
    Product.objects.filter(pk=gone.pk).delete()
    results = product_images_add_many(images=batch)
    assert results[0] is not None and results[0].created and results[1] is None
    assert list(ProductImage.objects.values_list("product__sku", flat=True)) == ["K"]
    files = {str(p.relative_to(media_root)) for p in (media_root / "images").rglob("*") if p.is_file()}
    assert files == set(ProductImage.objects.values_list("file", flat=True))
