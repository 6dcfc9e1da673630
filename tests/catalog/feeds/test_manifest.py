"""The JSON Lines manifest: fields, prices, and local image paths confined to the manifest's folder."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

from catalog.feeds import FeedFormatError, LocalImageRejected, resolve_local_image
from tests.catalog.feeds.helpers import codes, errors, parse_bytes, products


def jsonl(*rows: object) -> bytes:
    return "".join(json.dumps(r) + "\n" if not isinstance(r, str) else r + "\n" for r in rows).encode()


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A manifest folder with images, beside a folder it must not reach."""
    base = tmp_path / "manifest"
    (base / "img" / "sub").mkdir(parents=True)
    (base / "img" / "a.jpg").write_bytes(b"a")
    (base / "img" / "sub" / "b.jpg").write_bytes(b"b")
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"secret")
    (base / "img" / "escape.jpg").symlink_to(outside / "secret.jpg")
    (base / "img" / "outdir").symlink_to(outside, target_is_directory=True)
    (base / "img" / "inside.jpg").symlink_to(base / "img" / "a.jpg")
    return base


def test_fields_prices_and_url_images():
    data = jsonl(
        {
            "sku": "A-1", "title": "Apron", "description": "Heavy canvas.", "category": "Kitchen>Textiles",
            "brand": "Cookwell", "price": 19.99, "currency": "eur", "in_stock": False,
            "attributes": {"material": "canvas", "weight_kg": 0.4}, "link": "https://cook.example/apron",
            "images": ["https://cdn.cook.example/apron.jpg", "https://cdn.cook.example/apron.jpg"],
        },
        {"sku": "A-2", "title": "Spoon", "price": "3,50 EUR"},
        {"sku": "A-3", "title": "Pan", "price": 25},
    )  # fmt: skip
    found = products(parse_bytes(data, "jsonl", default_currency="USD"))
    apron = found["A-1"]
    assert (apron.price, apron.currency, apron.in_stock) == (Decimal("19.99"), "EUR", False)
    assert apron.category == "Kitchen > Textiles"
    assert apron.attributes == {"material": "canvas", "weight_kg": 0.4}
    assert [(i.url_or_path, i.source) for i in apron.images] == [
        ("https://cdn.cook.example/apron.jpg", "manifest")
    ]
    assert (found["A-2"].price, found["A-2"].currency) == (Decimal("3.50"), "EUR")
    assert (found["A-3"].price, found["A-3"].currency) == (Decimal("25.00"), "USD")


def test_bad_lines_are_reported_and_the_rest_is_read():
    data = (
        jsonl(
            {"sku": "OK-1", "title": "Fine"},
            "{not json",
            ["a", "list"],
            {"sku": "X", "title": "Extra", "colour": "red"},
            {"title": "No sku"},
            {"sku": "P1", "title": "Bool price", "price": True},
            {"sku": "P2", "title": "Negative", "price": -1},
            {"sku": "P3", "title": "Words", "price": "cheap"},
            {"sku": "P4", "title": "Two currencies", "price": "5 USD", "currency": "EUR"},
            {"sku": "S1", "title": "Stock", "in_stock": "yes"},
            {"sku": "L1", "title": "Link", "link": "javascript:alert(1)"},
            {"sku": "I1", "title": "Image", "images": ["ftp://files.example/a.jpg"]},
            {"sku": "N1", "title": "NUL", "attributes": {"k": "a\u0000b"}},
            {"sku": "OK-1", "title": "Again"},
        )
        + b'{"sku": "E1", "title": "caf\xe9"}\n'
        + jsonl({"sku": "OK-2", "title": "Still read"})
    )
    records = parse_bytes(data, "jsonl")
    assert list(products(records)) == ["OK-1", "OK-2"]
    assert codes(records) == [
        (None, "invalid_json"),
        (None, "invalid_json"),
        ("X", "unknown_field"),
        (None, "missing_field"),
        ("P1", "invalid_price"),
        ("P2", "invalid_price"),
        ("P3", "invalid_price"),
        ("P4", "invalid_price"),
        ("S1", "invalid_field"),
        ("L1", "invalid_link"),
        ("I1", "invalid_image"),
        ("N1", "invalid_field"),
        ("OK-1", "duplicate_sku"),
        (None, "invalid_encoding"),
    ]
    assert [e.position for e in errors(records)] == list(range(2, 16))


def test_long_fields_are_cut():
    (product,) = parse_bytes(jsonl({"sku": "S" * 70, "title": "T" * 301, "brand": "B" * 121}), "jsonl")
    assert (len(product.sku), len(product.title), len(product.brand)) == (64, 300, 120)


def test_local_images_resolve_inside_the_folder(shop: Path):
    data = jsonl(
        {"sku": "L", "title": "Local", "images": ["img/a.jpg", "img/sub/b.jpg", "https://x.example/c.jpg"]}
    )
    (product,) = parse_bytes(data, "jsonl", base_dir=shop, allow_local_images=True)
    assert [i.url_or_path for i in product.images] == [
        str((shop / "img" / "a.jpg").resolve()),
        str((shop / "img" / "sub" / "b.jpg").resolve()),
        "https://x.example/c.jpg",
    ]
    assert [i.is_url for i in product.images] == [False, False, True]


@pytest.mark.parametrize(
    ("reference", "code"),
    [
        ("../private/secret.jpg", "parent_segment"),
        ("img/../../private/secret.jpg", "parent_segment"),
        ("img/sub/../a.jpg", "parent_segment"),
        ("/etc/passwd", "absolute_path"),
        ("~/secret.jpg", "absolute_path"),
        ("img/escape.jpg", "outside_base"),
        ("img/outdir/secret.jpg", "outside_base"),
        ("img\\a.jpg", "invalid_path"),
        ("file:///etc/passwd", "invalid_path"),
        ("C:/Windows/win.ini", "invalid_path"),
        ("img/missing.jpg", "missing_file"),
        ("img/sub", "not_a_file"),
        ("", "invalid_path"),
    ],
)
def test_resolve_local_image_refuses_paths_that_leave_the_folder(shop: Path, reference: str, code: str):
    with pytest.raises(LocalImageRejected) as caught:
        resolve_local_image(shop, reference)
    assert caught.value.code == code


def test_resolve_local_image_follows_symlinks_that_stay_inside(shop: Path):
    assert resolve_local_image(shop, "img/inside.jpg") == (shop / "img" / "a.jpg").resolve()
    # The folder itself may be reached through a symlink.
    alias = shop.parent / "alias"
    alias.symlink_to(shop, target_is_directory=True)
    assert resolve_local_image(alias, "img/a.jpg") == (shop / "img" / "a.jpg").resolve()


def test_an_escaping_image_rejects_the_whole_line(shop: Path):
    data = jsonl(
        {"sku": "BAD", "title": "Escape", "images": ["img/a.jpg", "img/escape.jpg"]},
        {"sku": "GOOD", "title": "Fine", "images": ["img/a.jpg"]},
    )
    records = parse_bytes(data, "jsonl", base_dir=shop, allow_local_images=True)
    assert list(products(records)) == ["GOOD"]
    assert codes(records) == [("BAD", "outside_base")]
    assert "private" not in repr(records)  # the outside path is never named, let alone read


def test_url_only_mode_refuses_every_local_path(shop: Path):
    data = jsonl(
        {"sku": "LOCAL", "title": "Local", "images": ["img/a.jpg"]},
        {"sku": "URL", "title": "By URL", "images": ["https://cdn.example/a.jpg"]},
    )
    for options in ({}, {"base_dir": shop}):  # allow_local_images defaults to False
        records = parse_bytes(data, "jsonl", **options)
        assert list(products(records)) == ["URL"]
        assert codes(records) == [("LOCAL", "local_images_disabled")]


def test_local_images_need_a_folder():
    with pytest.raises(FeedFormatError) as caught:
        parse_bytes(jsonl({"sku": "A", "title": "B"}), "jsonl", allow_local_images=True)
    assert caught.value.code == "invalid_option"


def test_fifo_is_not_a_file(shop: Path):
    os.mkfifo(shop / "img" / "pipe.jpg")
    with pytest.raises(LocalImageRejected) as caught:
        resolve_local_image(shop, "img/pipe.jpg")
    assert caught.value.code == "not_a_file"


def test_a_manifest_carries_a_shops_whole_photo_set_up_to_its_own_cap():
    # Our manifest lists every photo a shop has of a product (the Grocery catalog: up to 71), past the
    # 50 a Merchant feed may name; beyond MANIFEST_MAX_IMAGES the line is refused, never cut silently.
    from catalog.feeds.records import MANIFEST_MAX_IMAGES

    many = [f"https://cdn.shop.example/p/{n}.jpg" for n in range(71)]
    too_many = [f"https://cdn.shop.example/q/{n}.jpg" for n in range(MANIFEST_MAX_IMAGES + 1)]
    records = parse_bytes(
        jsonl(
            {"sku": "P", "title": "pears", "images": many},
            {"sku": "Q", "title": "quinces", "images": too_many},
        ),
        "jsonl",
    )
    assert [i.url_or_path for i in products(records)["P"].images] == many
    assert "Q" not in products(records)
    assert [(e.code, e.message) for e in errors(records)] == [
        ("invalid_field", f"at most {MANIFEST_MAX_IMAGES} images per product.")
    ]
