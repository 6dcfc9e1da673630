"""Merchant Center XML feeds: RSS and Atom, item groups, errors per item, hostile and broken XML."""

from __future__ import annotations

import time
from decimal import Decimal

from catalog.feeds import FeedError, FeedProduct
from tests.catalog.feeds.helpers import FIXTURES, codes, errors, parse_bytes, products

RSS = (FIXTURES / "merchant_rss.xml").read_bytes()


def test_rss_items_map_to_products_with_groups_last_and_errors_per_item():
    records = parse_bytes(RSS, "merchant_xml")
    found = products(records)
    assert list(found) == ["JKT-100", "BAG-1", "CAP-2", "TEE"]
    assert codes(records) == [
        ("MUG-9", "invalid_price"),
        (None, "missing_field"),
        ("TEE-GREY-XL", "invalid_price"),
        ("CAP-2", "invalid_availability"),
        ("CAP-2", "invalid_image"),
    ]
    assert all(e.unit == "item" and not e.fatal for e in errors(records))
    assert [e.position for e in errors(records)] == [5, 6, 8, 9, 9]
    # The group's product comes after everything else: a later item could still have joined it.
    assert isinstance(records[-1], FeedProduct) and records[-1].sku == "TEE"


def test_lone_item_fields_sale_price_and_images():
    jacket = products(parse_bytes(RSS, "merchant_xml"))["JKT-100"]
    assert jacket.title == "Waxed Cotton Field Jacket"
    assert jacket.description == "Hard-wearing waxed cotton & corduroy collar.\nFour pockets\nBrass snaps"
    assert jacket.link == "https://northwind.example/products/field-jacket"
    assert jacket.category == "Apparel > Outerwear > Jackets"
    assert jacket.brand == "Northwind"
    # The sale window (November, Pacific time) contains the parse's clock: the sale price applies.
    assert (jacket.price, jacket.currency, jacket.in_stock) == (Decimal("149.00"), "USD", True)
    assert jacket.attributes["regular_price"] == "189.00"
    assert [i.url_or_path.rsplit("/", 1)[1] for i in jacket.images] == ["front.jpg", "back.jpg", "detail.jpg"]
    assert [i.position for i in jacket.images] == [0, 1, 2]
    assert [i.source for i in jacket.images] == [
        "image_link",
        "additional_image_link",
        "additional_image_link",
    ]
    assert all(i.is_url for i in jacket.images)
    attrs = jacket.attributes
    assert attrs["google_product_category"] == "5598"
    assert attrs["product_type"] == "Apparel > Outerwear > Jackets"
    assert (attrs["condition"], attrs["gtin"], attrs["mpn"]) == ("new", "00012345600012", "NW-JKT-100")
    assert (attrs["custom_label_0"], attrs["custom_label_3"]) == ("autumn", "bestseller")
    assert "variants" not in attrs and "warehouse" not in attrs and "custom_label_1" not in attrs


def test_item_group_becomes_one_product():
    tee = products(parse_bytes(RSS, "merchant_xml"))["TEE"]
    assert tee.title == "Organic Tee - Red / S"  # the first item's
    assert tee.link == "https://northwind.example/products/tee?variant=red-s"
    assert tee.description == "Organic cotton tee."
    assert tee.category == "Apparel > Tops > T-Shirts"
    # Lowest valid variant price: blue's sale price; its regular price kept. The grey variant's "$25"
    # was refused and does not count.
    assert (tee.price, tee.currency) == (Decimal("19.50"), "USD")
    assert tee.attributes["regular_price"] == "25.00"
    assert tee.in_stock is True  # red is out of stock, green a preorder, blue in stock
    assert [i.url_or_path.rsplit("/", 1)[1] for i in tee.images] == [
        "red.jpg",
        "model.jpg",
        "blue.jpg",
        "green.jpg",
    ]
    assert tee.attributes["variants"] == [
        {"sku": "TEE-RED-S", "price": "25.00", "regular_price": None, "in_stock": False,
         "color": "Red", "size": "S", "gtin": "00012345600029", "mpn": None},
        {"sku": "TEE-BLUE-M", "price": "19.50", "regular_price": "25.00", "in_stock": True,
         "color": "Blue", "size": "M", "gtin": None, "mpn": "TEE-B-M"},
        {"sku": "TEE-GREEN-L", "price": "27.00", "regular_price": None, "in_stock": False,
         "color": "Green", "size": "L", "gtin": None, "mpn": None},
    ]  # fmt: skip


def test_old_availability_decimal_comma_ended_sale_and_bad_image():
    found = products(parse_bytes(RSS, "merchant_xml"))
    bag = found["BAG-1"]
    assert (bag.price, bag.currency, bag.in_stock) == (Decimal("15.00"), "EUR", True)
    assert bag.attributes["availability"] == "in_stock"
    # No product_type: the Google category path is the category.
    assert bag.category == "Apparel & Accessories > Handbags, Wallets & Cases > Handbags"
    cap = found["CAP-2"]
    # The October sale has ended: the regular price applies and no regular_price is claimed.
    assert (cap.price, cap.in_stock) == (Decimal("30.00"), False)
    assert "regular_price" not in cap.attributes
    assert [i.url_or_path for i in cap.images] == ["https://cdn.northwind.example/cap.jpg"]


def test_a_sale_window_is_judged_at_the_given_clock():
    from datetime import UTC, datetime

    december = datetime(2026, 12, 5, tzinfo=UTC)
    jacket = products(parse_bytes(RSS, "merchant_xml", now=december))["JKT-100"]
    assert jacket.price == Decimal("189.00") and "regular_price" not in jacket.attributes


def test_item_with_only_id_and_title():
    xml = (
        b'<rss xmlns:g="http://base.google.com/ns/1.0"><channel>'
        b"<item><g:id>X1</g:id><title>Plain thing</title></item></channel></rss>"
    )
    (record,) = parse_bytes(xml, "merchant_xml")
    assert record == FeedProduct(sku="X1", title="Plain thing")


def test_atom_feed_with_bom():
    atom = """\ufeff<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:g="http://base.google.com/ns/1.0">
  <title>Shop</title>
  <link href="https://shop.example" rel="alternate" type="text/html"/>
  <id>tag:shop.example,2026:/products</id>
  <entry>
    <title>Red wool jumper — größe M</title>
    <link rel="enclosure" href="https://shop.example/jumper.pdf"/>
    <link href="https://shop.example/jumper" rel="alternate"/>
    <summary>Warm &amp; soft.</summary>
    <id>tag:shop.example,2026:/products/1</id>
    <g:id>JUMPER-1</g:id>
    <g:price>25.00 GBP</g:price>
    <g:image_link>https://shop.example/jumper.jpg</g:image_link>
  </entry>
</feed>""".encode()
    (jumper,) = parse_bytes(atom, "merchant_xml")
    assert jumper.sku == "JUMPER-1" and jumper.title == "Red wool jumper — größe M"
    assert (jumper.link, jumper.description) == ("https://shop.example/jumper", "Warm & soft.")
    assert (jumper.price, jumper.currency) == (Decimal("25.00"), "GBP")


def test_entity_bomb_is_refused_without_expanding_it():
    bomb = b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "aaaaaaaaaa">\n'
    for n in range(1, 10):
        bomb += f'<!ENTITY {"a" * (n + 1)} "{("&" + "a" * n + ";") * 10}">\n'.encode()
    bomb += b'<rss xmlns:g="http://base.google.com/ns/1.0"><channel><item><g:id>&aaaaaaaaaa;</g:id>'
    bomb += b"<g:title>t</g:title></item></channel></rss>"
    started = time.perf_counter()
    records = parse_bytes(bomb, "merchant_xml")
    assert time.perf_counter() - started < 1.0  # 10**10 characters if it were expanded
    (error,) = records
    assert isinstance(error, FeedError)
    assert (error.code, error.fatal) == ("forbidden_xml", True)


def test_external_entity_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xml = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY leak SYSTEM "{secret.as_uri()}">]>'
        '<rss xmlns:g="http://base.google.com/ns/1.0"><channel><item><g:id>A</g:id>'
        "<g:title>&leak;</g:title></item></channel></rss>"
    ).encode()
    records = parse_bytes(xml, "merchant_xml")
    assert [(r.code, r.fatal) for r in errors(records)] == [("forbidden_xml", True)]
    assert not products(records)
    assert "TOP-SECRET" not in repr(records)


def test_truncated_xml_yields_what_it_could_then_one_fatal_error():
    cut = RSS.index(b"<g:id>MUG-9</g:id>") + 10
    records = parse_bytes(RSS[:cut], "merchant_xml")
    found = products(records)
    # Read before the break: the jacket and the tote, and the two tee variants seen so far.
    assert list(found) == ["JKT-100", "BAG-1", "TEE"]
    assert [v["sku"] for v in found["TEE"].attributes["variants"]] == ["TEE-RED-S", "TEE-BLUE-M"]
    last = records[-1]
    assert isinstance(last, FeedError) and last.fatal and last.code == "invalid_xml"
    assert last.unit == "line" and last.position == RSS[:cut].count(b"\n") + 1
    assert sum(1 for e in errors(records) if e.fatal) == 1


def test_not_xml_at_all_and_not_a_feed():
    (error,) = parse_bytes(b"id,title\n1,shirt\n", "merchant_xml")
    assert (error.code, error.fatal, error.position) == ("invalid_xml", True, 1)
    (error,) = parse_bytes(b"<html><body><p>Error 500</p></body></html>", "merchant_xml")
    assert (error.code, error.fatal) == ("not_a_feed", True)
    (error,) = parse_bytes(
        b'<rss version="2.0"><channel><title>empty</title></channel></rss>', "merchant_xml"
    )
    assert (error.code, error.fatal) == ("no_items", True)


def test_duplicate_ids_and_group_id_clashing_with_a_lone_item():
    xml = b"""<rss xmlns:g="http://base.google.com/ns/1.0"><channel>
<item><g:id>P</g:id><g:title>Lone P</g:title></item>
<item><g:id>A</g:id><g:item_group_id>P</g:item_group_id><g:title>Variant A</g:title></item>
<item><g:id>B</g:id><g:title>B</g:title></item>
<item><g:id>B</g:id><g:title>B again</g:title></item>
<item><g:id>C</g:id><g:item_group_id>G2</g:item_group_id><g:price>5 USD</g:price></item>
<item><g:id>D</g:id><g:item_group_id>G2</g:item_group_id><g:price>4 EUR</g:price></item>
</channel></rss>"""
    records = parse_bytes(xml, "merchant_xml")
    assert list(products(records)) == ["P", "B"]
    assert codes(records) == [
        ("B", "duplicate_id"),
        ("D", "currency_mismatch"),
        ("P", "duplicate_sku"),
        ("G2", "missing_field"),  # no item of the group has a title
    ]


def test_bytes_that_are_not_utf8_break_the_xml_where_they_are():
    xml = (
        b'<rss xmlns:g="http://base.google.com/ns/1.0"><channel>\n'
        b"<item><g:id>A</g:id><g:title>Fine</g:title></item>\n"
        b"<item><g:id>B</g:id><g:title>Caf\xe9</g:title></item>\n"
        b"</channel></rss>"
    )
    product, error = parse_bytes(xml, "merchant_xml")
    assert isinstance(product, FeedProduct) and product.sku == "A"
    assert isinstance(error, FeedError) and (error.code, error.position, error.fatal) == (
        "invalid_xml",
        3,
        True,
    )
    assert "UTF-8" in error.message
    # A declared encoding is honoured.
    latin = b'<?xml version="1.0" encoding="ISO-8859-1"?>' + xml.replace(
        b"<item><g:id>A</g:id>", b"<item><g:id>C</g:id>"
    )
    assert [p.title for p in products(parse_bytes(latin, "merchant_xml")).values()] == ["Fine", "Café"]


def test_an_item_with_thousands_of_elements_is_bounded():
    links = b"".join(
        b"<g:additional_image_link>https://img.example/%d.jpg</g:additional_image_link>" % n
        for n in range(5000)
    )
    xml = (
        b'<rss xmlns:g="http://base.google.com/ns/1.0"><channel><item><g:id>BIG</g:id><g:title>Big</g:title>'
        + links
        + b"</item><item><g:id>NEXT</g:id><g:title>Next</g:title></item></channel></rss>"
    )
    found = products(parse_bytes(xml, "merchant_xml"))
    assert list(found) == ["BIG", "NEXT"]
    assert len(found["BIG"].images) == 50  # MAX_IMAGES
