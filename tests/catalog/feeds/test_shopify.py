"""Shopify product CSV exports: one product per handle, variants, images, drafts, HTML bodies."""

from __future__ import annotations

from decimal import Decimal

from tests.catalog.feeds.helpers import FIXTURES, codes, errors, parse_bytes, products

EXPORT = (FIXTURES / "shopify_products.csv").read_bytes()


def test_export_gives_one_product_per_handle():
    records = parse_bytes(
        EXPORT, "shopify_csv", store_url="https://fieldhouse.example/", default_currency="eur"
    )
    found = products(records)
    assert list(found) == ["linen-shirt", "ceramic-vase", "winter-parka", "old-scarf"]
    assert codes(records) == [("LS-NAVY-L", "invalid_price"), ("no-title", "missing_field")]
    # Line numbers count physical lines: the first product's body spans five of them.
    assert [e.position for e in errors(records)] == [9, 14]


def test_variants_prices_stock_and_images():
    shirt = products(
        parse_bytes(EXPORT, "shopify_csv", store_url="https://fieldhouse.example", default_currency="EUR")
    )["linen-shirt"]
    assert shirt.title == "Linen Shirt" and shirt.brand == "Fieldhouse"
    assert shirt.link == "https://fieldhouse.example/products/linen-shirt"
    assert shirt.description == (
        "Breathable linen\nCut from European flax \u2014 softens with every wash.\nMother-of-pearl buttons\nRelaxed fit"
    )
    assert shirt.category == "Shirts"
    assert shirt.attributes["product_category"] == "Apparel & Accessories > Clothing > Clothing Tops > Shirts"
    assert shirt.attributes["tags"] == ["linen", "summer", "shirts"]
    assert (shirt.attributes["status"], shirt.attributes["published"]) == ("active", True)
    # Lowest valid price is navy M at 55.00 (not on sale); the "fifty" row is refused.
    assert (shirt.price, shirt.currency, shirt.in_stock) == (Decimal("55.00"), "EUR", True)
    assert "regular_price" not in shirt.attributes
    variants = shirt.attributes["variants"]
    assert [(v["sku"], v["price"], v["regular_price"], v["in_stock"]) for v in variants] == [
        ("LS-SAND-M", "59.00", "79.00", True),  # 4 in stock
        ("LS-SAND-L", "59.00", "79.00", False),  # 0 left, policy deny
        ("LS-NAVY-M", "55.00", None, True),  # 0 left, policy continue: still sold
    ]
    assert variants[0]["options"] == {"Color": "Sand", "Size": "M"}
    assert (variants[0]["color"], variants[0]["size"], variants[0]["gtin"]) == ("Sand", "M", "5901234123457")
    # Image Src rows by Image Position, then the variant images not already listed.
    assert [(i.url_or_path.rsplit("/", 1)[1], i.alt, i.source) for i in shirt.images] == [
        ("linen-front.jpg?v=1", "Linen shirt front", "image_src"),
        ("linen-back.jpg?v=1", "Linen shirt back", "image_src"),
        ("linen-detail.jpg?v=1", "Collar detail", "image_src"),
        ("linen-sand.jpg?v=1", "", "variant_image"),
        ("linen-navy.jpg?v=1", "", "variant_image"),
    ]
    assert [i.position for i in shirt.images] == [0, 1, 2, 3, 4]


def test_single_variant_untracked_inventory_and_thousands_separator():
    vase = products(parse_bytes(EXPORT, "shopify_csv"))["ceramic-vase"]
    assert (vase.price, vase.currency, vase.in_stock) == (Decimal("1250.00"), None, True)
    assert vase.link == ""  # no store_url: the export has no address
    (variant,) = vase.attributes["variants"]
    assert "options" not in variant  # Shopify's "Title: Default Title" placeholder


def test_drafts_and_archived_products_are_kept_out_of_stock():
    found = products(parse_bytes(EXPORT, "shopify_csv"))
    parka, scarf = found["winter-parka"], found["old-scarf"]
    assert parka.in_stock is False and parka.attributes["status"] == "draft"
    assert parka.attributes["published"] is False
    assert parka.attributes["variants"][0]["in_stock"] is True  # the variant has stock; the product is hidden
    assert scarf.in_stock is False and scarf.attributes["status"] == "archived"


def test_rows_of_a_handle_that_come_back_later_are_refused():
    data = (
        b"Handle,Title,Variant SKU,Variant Price\n"
        b"mug,Mug,M-1,5.00\n"
        b"cup,Cup,C-1,4.00\n"
        b"mug,Mug again,M-2,6.00\n"
        b"mug,,M-3,7.00\n"
        b",Orphan,O-1,1.00\n"
        b"plate,Plate,P-1,3.00\n"
    )
    records = parse_bytes(data, "shopify_csv")
    assert list(products(records)) == ["mug", "cup", "plate"]
    assert [v["sku"] for v in products(records)["mug"].attributes["variants"]] == ["M-1"]
    assert codes(records) == [("mug", "duplicate_product"), (None, "missing_field")]


def test_not_a_shopify_export():
    (error,) = parse_bytes(b"sku,title\nA,B\n", "shopify_csv")
    assert (error.code, error.fatal) == ("missing_column", True)
