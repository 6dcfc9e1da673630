"""Dismissing a "possible duplicate" flag (set by the search app's duplicate check): the flag goes,
and the pair is remembered so the check never raises it again."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q

from catalog.models import DismissedDuplicate, Product


@transaction.atomic
def duplicate_flag_dismiss(*, product: Product) -> Product | None:
    """Clear ``product``'s "possible duplicate of" flag, and the other product's if it points back, and
    record the pair as not duplicates. Returns the other product, or None when there was no flag."""
    product = Product.objects.select_for_update().get(pk=product.pk)
    other = product.possible_duplicate_of
    if other is None:
        return None
    low, high = sorted((product.pk, other.pk))
    DismissedDuplicate.objects.get_or_create(product_low_id=low, product_high_id=high)
    Product.objects.filter(
        Q(pk=product.pk, possible_duplicate_of=other) | Q(pk=other.pk, possible_duplicate_of=product)
    ).update(possible_duplicate_of=None, duplicate_score=None)
    return other
