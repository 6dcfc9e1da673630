"""Dismissing a "possible duplicate" flag: from the product page's button or the list's action, the flag
goes and the pair is never flagged again by the real duplicate check (either way round), while a third
product with the same look still is."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from catalog import services
from catalog.models import DismissedDuplicate, Product
from tests.fixtures.images import image_bytes

pytestmark = pytest.mark.django_db

PHOTO = image_bytes(color=(30, 120, 200), size=(64, 64), pattern=8)


@pytest.fixture
def add_product(active_model, django_capture_on_commit_callbacks):
    def add(sku: str, photo: bytes = PHOTO) -> Product:
        product = services.product_create(sku=sku, title=sku)
        with django_capture_on_commit_callbacks(execute=True):
            services.product_image_add(product=product, data=photo)
        product.refresh_from_db()
        return product

    return add


@pytest.fixture
def pair(add_product) -> tuple[Product, Product]:
    """Two products with the same photo: the second is flagged as a possible duplicate of the first."""
    first, second = add_product("MUG-A"), add_product("MUG-B")
    assert second.possible_duplicate_of_id == first.pk and second.duplicate_score >= 0.97
    return first, second


def _reindex(*products: Product, capture) -> None:
    with capture(execute=True):
        services.product_images_reindex(product_ids=[p.pk for p in products])
    for product in products:
        product.refresh_from_db()


@pytest.fixture
def editor(client, staff_user):
    client.force_login(staff_user)
    return client


def test_the_button_dismisses_the_pair_for_good(
    editor, pair, add_product, django_capture_on_commit_callbacks
) -> None:
    first, second = pair
    page = editor.get(f"/admin/catalog/product/{second.pk}/change/").content.decode()
    dismiss_url = f"/admin/catalog/product/{second.pk}/dismiss-duplicate/"
    assert f'formaction="{dismiss_url}"' in page

    assert editor.get(dismiss_url).status_code == 405  # a change: POST only
    response = editor.post(dismiss_url, follow=True)
    assert response.redirect_chain[-1][0] == f"/admin/catalog/product/{second.pk}/change/"
    assert "are not duplicates" in response.content.decode()
    second.refresh_from_db()
    assert second.possible_duplicate_of is None and second.duplicate_score is None
    assert DismissedDuplicate.objects.filter(product_low=first, product_high=second).count() == 1

    # Indexed again, both ways round: the pair is not flagged again.
    _reindex(second, first, capture=django_capture_on_commit_callbacks)
    assert second.possible_duplicate_of is None and first.possible_duplicate_of is None
    # A third product with the same look is a new pair: flagged.
    third = add_product("MUG-C")
    assert third.possible_duplicate_of_id in (first.pk, second.pk)


def test_the_list_action_dismisses_each_selected_flag(
    editor, pair, add_product, django_capture_on_commit_callbacks
) -> None:
    first, second = pair
    third = add_product("MUG-C")
    response = editor.post(
        "/admin/catalog/product/",
        {"action": "dismiss_duplicate_flags", "_selected_action": [first.pk, second.pk, third.pk]},
        follow=True,
    )
    assert "Dismissed 2 duplicate flag(s)." in response.content.decode()  # B's and C's; A had none
    assert not Product.objects.filter(possible_duplicate_of__isnull=False).exists()
    dismissed = set(DismissedDuplicate.objects.values_list("product_low_id", "product_high_id"))
    assert len(dismissed) == 2

    # Three look-alikes make three pairs: indexed again, only the one nobody dismissed is flagged.
    _reindex(first, second, third, capture=django_capture_on_commit_callbacks)
    everyone = sorted(p.pk for p in (first, second, third))
    all_pairs = {(a, b) for a in everyone for b in everyone if a < b}
    flagged = {
        tuple(sorted(pair))
        for pair in Product.objects.filter(possible_duplicate_of__isnull=False).values_list(
            "pk", "possible_duplicate_of_id"
        )
    }
    assert flagged == all_pairs - dismissed


def test_dismissing_needs_the_change_permission(client, django_user_model, pair) -> None:
    _, second = pair
    viewer = django_user_model.objects.create_user("viewer", password="pw-for-tests-only", is_staff=True)
    client.force_login(viewer)
    response = client.post(f"/admin/catalog/product/{second.pk}/dismiss-duplicate/")
    assert response.status_code == 403
    second.refresh_from_db()
    assert second.possible_duplicate_of is not None


def test_a_pair_is_one_row_whatever_the_order(pair) -> None:
    first, second = pair
    services.duplicate_flag_dismiss(product=second)
    assert services.duplicate_flag_dismiss(product=second) is None  # nothing left to dismiss
    low, high = sorted((first.pk, second.pk))
    for a, b in ((low, high), (high, low)):
        with pytest.raises(IntegrityError), transaction.atomic():
            DismissedDuplicate.objects.create(product_low_id=a, product_high_id=b)
