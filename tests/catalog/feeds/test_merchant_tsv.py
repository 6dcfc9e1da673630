"""Merchant Center tab-separated feeds: header spellings, comma lists, groups, bad rows and encodings."""

from __future__ import annotations

from decimal import Decimal

from tests.catalog.feeds.helpers import codes, errors, parse_bytes, products

HEADER = [
    "g:id", "title", "description", "link", "image link", "g:additional_image_link", "price",
    "sale_price", "availability", "brand", "g:item_group_id", "color", "size", "gtin", "product_type",
    "google_product_category",
]  # fmt: skip


def tsv(*rows: list[str], header: list[str] = HEADER) -> bytes:
    lines = ["\t".join(header)] + ["\t".join(row) for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode()


def row(**values: str) -> list[str]:
    names = [h.removeprefix("g:").replace(" ", "_") for h in HEADER]
    return [values.get(name, "") for name in names]


def test_rows_with_mixed_header_spellings_comma_lists_and_a_group():
    data = b"\xef\xbb\xbf" + tsv(
        row(id="SHOE-1", title="Trail Runner", description='"Grippy sole.\nLight upper."',
            link="https://shoes.example/trail", image_link="https://img.example/trail.jpg",
            additional_image_link=(
                "https://res.cloudinary.example/image/upload/w_800,h_800,c_fill/trail-side.jpg, "
                "https://img.example/trail-top.jpg"
            ),
            price="USD 120.00", availability="in_stock", brand="Peak", gtin="0123456789012",
            product_type="Shoes>Running", google_product_category="187"),
        row(id="SOCK-S", item_group_id="SOCK", title="Wool Sock S", price="12 USD", size="S",
            availability="out_of_stock", image_link="https://img.example/sock.jpg"),
        row(id="SOCK-L", item_group_id="SOCK", title="Wool Sock L", price="1,299.00 USD",
            sale_price="9.00 USD", size="L", availability="backorder",
            image_link="https://img.example/sock.jpg"),
    )  # fmt: skip
    records = parse_bytes(data, "merchant_tsv")
    assert not errors(records)
    shoe, sock = products(records).values()
    assert (shoe.sku, shoe.title, shoe.price, shoe.currency) == (
        "SHOE-1",
        "Trail Runner",
        Decimal("120.00"),
        "USD",
    )
    assert shoe.description == "Grippy sole.\nLight upper."
    assert shoe.category == "Shoes > Running"
    assert shoe.attributes["google_product_category"] == "187"
    assert [i.url_or_path for i in shoe.images] == [
        "https://img.example/trail.jpg",
        "https://res.cloudinary.example/image/upload/w_800,h_800,c_fill/trail-side.jpg",
        "https://img.example/trail-top.jpg",
    ]
    assert sock.sku == "SOCK" and sock.title == "Wool Sock S"
    assert (sock.price, sock.in_stock) == (Decimal("9.00"), False)
    assert sock.attributes["regular_price"] == "1299.00"
    assert [(v["sku"], v["size"], v["price"]) for v in sock.attributes["variants"]] == [
        ("SOCK-S", "S", "12.00"),
        ("SOCK-L", "L", "9.00"),
    ]
    assert len(sock.images) == 1


def test_bad_rows_are_reported_and_the_rest_is_read():
    good = row(id="OK-1", title="Fine", price="15,00 EUR")
    data = (
        tsv(good, row(id="BAD-PRICE", title="Broken", price="15.00.00 EUR"))
        + "OK-2\tT\u00e9l\u00e9\t\t\t\t\t3 EUR\n".encode("latin-1")  # not UTF-8
        + b"OK-3\tToo many\t\t\t\t\t4 EUR\t\t\t\t\t\t\t\t\t\tSURPLUS\n"
        + b'"OK-4"\t"Quoted\ttab"\t\t\t\t\t5 EUR\n'
        + b"\n\t\t\n"  # blank rows are skipped
        + "\t".join(row(title="No id")).encode()
        + b"\n"
    )
    records = parse_bytes(data, "merchant_tsv")
    found = products(records)
    assert list(found) == ["OK-1", "OK-4"]
    assert found["OK-1"].price == Decimal("15.00")
    assert found["OK-4"].title == "Quoted tab"
    assert codes(records) == [
        ("BAD-PRICE", "invalid_price"),
        (None, "invalid_encoding"),
        (None, "bad_row"),
        (None, "missing_field"),
    ]
    assert [e.position for e in errors(records)] == [3, 4, 5, 9]
    assert "0xe9" in errors(records)[1].message


def test_utf16_file_is_refused_with_one_clear_error():
    data = "\ufeffid\ttitle\r\nA\tB\r\n".encode("utf-16-le")
    (error,) = parse_bytes(b"\xff\xfe" + data[2:], "merchant_tsv")
    assert (error.code, error.fatal) == ("unsupported_encoding", True)
    assert "UTF-8" in error.message


def test_header_without_id_is_fatal():
    (error,) = parse_bytes(b"sku\ttitle\nA\tB\n", "merchant_tsv")
    assert (error.code, error.fatal, error.position) == ("missing_column", True, 1)


def test_header_only_is_no_items():
    (error,) = parse_bytes(tsv(), "merchant_tsv")
    assert (error.code, error.fatal) == ("no_items", True)


def test_long_values_are_cut_to_the_catalog_limits():
    long_path = " > ".join(f"Department number {n}" for n in range(12))
    data = tsv(row(id="L" * 80, title="T" * 400, brand="B" * 200, product_type=long_path, price="1 EUR"))
    (product,) = parse_bytes(data, "merchant_tsv")
    assert (len(product.sku), len(product.title), len(product.brand)) == (64, 300, 120)
    assert len(product.category) <= 120 and product.category.endswith("Department number 11")
    assert not product.category.startswith("Department number 0 ")
    assert product.attributes["product_type"] == long_path
