"""What the admin's menu calls each model: Django's default plural only adds an "s" ("Searchs")."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin


def test_every_model_in_the_admin_has_a_proper_plural() -> None:
    naive = [
        f"{model._meta.app_label}.{model.__name__}: {model._meta.verbose_name_plural}"
        for model in admin.site._registry
        if re.search(r"(s|sh|ch|x|z)$", str(model._meta.verbose_name))
        and str(model._meta.verbose_name_plural) == f"{model._meta.verbose_name}s"
    ]
    assert naive == []


@pytest.mark.django_db
def test_the_menu_says_searches(admin_client) -> None:
    page = admin_client.get("/admin/").content.decode()
    assert ">Searches<" in page and "Searchs" not in page
