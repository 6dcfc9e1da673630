"""Feed parsing: time and peak memory of ``catalog.feeds.parse_feed`` on a generated Merchant Center feed.

    .venv/bin/python -m bench.feeds                                  # 100,000 items, two group mixes
    .venv/bin/python -m bench.feeds --items 20000 --group-share 0.5
    .venv/bin/python -m bench.feeds --parse-only FEED [--json OUT]   # measure one feed in this process

The default run writes a temporary RSS feed per group mix (``--group-share``: the share of items that
are variants in ``item_group_id`` groups of 2-6, spread over the whole feed, the case that makes the
parser hold groups to the end), then parses each in a fresh child process (``--parse-only``) so the
peak RSS is the parse's alone: interpreter, imports and parse, nothing else. Writes
var/bench/feeds.json and prints a table. ``generate_merchant_feed`` is importable for other
benchmarks (a sync benchmark can feed the same file to the whole import).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from bench.inputs import REPO

WORDS = (
    "organic", "cotton", "linen", "wool", "merino", "recycled", "canvas", "leather", "suede", "denim",
    "waxed", "brushed", "soft", "warm", "light", "durable", "breathable", "classic", "relaxed", "slim",
    "tailored", "everyday", "weekend", "travel", "outdoor", "studio", "heritage",
)  # fmt: skip
COLORS = ("Red", "Navy", "Sand", "Olive", "Black", "White", "Grey", "Rust")
SIZES = ("XS", "S", "M", "L", "XL", "XXL")
CATEGORIES = (
    "Apparel > Tops > T-Shirts",
    "Apparel > Outerwear > Jackets",
    "Home > Kitchen > Cookware",
    "Accessories > Bags > Totes",
    "Footwear > Running",
)


@dataclass(frozen=True)
class GeneratedFeed:
    path: str
    items: int
    grouped_items: int
    groups: int
    bad_prices: int
    bytes: int


def generate_merchant_feed(
    path: Path,
    n: int,
    *,
    group_share: float = 0.33,
    images_per_item: int = 3,
    description_words: int = 45,
    bad_price_share: float = 0.005,
    seed: int = 0,
) -> GeneratedFeed:
    """Write an RSS 2.0 Merchant Center feed of ``n`` items to ``path``, streaming (memory stays small).

    ``group_share`` of the items are variants (colour x size) of groups of 2-6 items whose positions
    are shuffled across the feed; the rest are lone items. ``bad_price_share`` of the items carry an
    unreadable price. Image URLs are on the reserved example.com domain: nothing here is fetchable.
    """
    rng = random.Random(seed)
    slots: list[tuple[int, int] | None] = [None] * n
    grouped = int(n * group_share)
    group_id = 0
    filled = 0
    while filled < grouped:
        size = min(rng.randint(2, 6), grouped - filled)
        for variant in range(size):
            slots[filled + variant] = (group_id, variant)
        filled += size
        group_id += 1
    rng.shuffle(slots)
    bad = 0
    with open(path, "w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        out.write('<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0">\n<channel>\n')
        out.write("<title>Bench shop</title>\n<link>https://shop.example.com</link>\n")
        for index, slot in enumerate(slots):
            item_id = f"ITEM-{index:07d}"
            words = " ".join(rng.choice(WORDS) for _ in range(description_words))
            price = f"{rng.randint(5, 400)}.{rng.randint(0, 99):02d} USD"
            if rng.random() < bad_price_share:
                price, bad = "call us", bad + 1
            parts = [
                f"<g:id>{item_id}</g:id>",
                f"<g:title>{escape(words[:60].title())}</g:title>",
                f"<g:description>{escape(words)}</g:description>",
                f"<g:link>https://shop.example.com/p/{item_id}</g:link>",
                f"<g:image_link>https://img.example.com/{item_id}/0.jpg</g:image_link>",
                *(
                    f"<g:additional_image_link>https://img.example.com/{item_id}/{k}.jpg</g:additional_image_link>"
                    for k in range(1, images_per_item)
                ),
                f"<g:price>{price}</g:price>",
                f"<g:availability>{rng.choice(('in_stock', 'in_stock', 'out_of_stock', 'preorder'))}</g:availability>",
                f"<g:brand>Brand {rng.randint(1, 200)}</g:brand>",
                f"<g:product_type>{escape(rng.choice(CATEGORIES))}</g:product_type>",
                f"<g:gtin>{rng.randint(10**12, 10**13 - 1)}</g:gtin>",
                "<g:condition>new</g:condition>",
                "<g:shipping><g:country>US</g:country><g:price>4.95 USD</g:price></g:shipping>",
            ]
            if slot is not None:
                group, variant = slot
                parts += [
                    f"<g:item_group_id>GROUP-{group:06d}</g:item_group_id>",
                    f"<g:color>{COLORS[variant % len(COLORS)]}</g:color>",
                    f"<g:size>{SIZES[variant % len(SIZES)]}</g:size>",
                ]
            out.write("<item>" + "".join(parts) + "</item>\n")
        out.write("</channel>\n</rss>\n")
    return GeneratedFeed(str(path), n, grouped, group_id, bad, Path(path).stat().st_size)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def parse_only(feed: Path, fmt: str | None = None) -> dict[str, Any]:
    """Parse ``feed`` in this process; time, record counts and peak RSS (whole process, MiB)."""
    from catalog.feeds import FeedError, parse_feed, sniff_format

    baseline = _rss_mb()
    products = errors = variants = images = 0
    fatal: str | None = None
    started, cpu_started = time.perf_counter(), time.process_time()
    with open(feed, "rb") as handle:
        detected, stream = sniff_format(handle, str(feed))
        for record in parse_feed(stream, fmt or detected):  # type: ignore[arg-type]
            if isinstance(record, FeedError):
                errors += 1
                fatal = str(record) if record.fatal else fatal
            else:
                products += 1
                variants += len(record.attributes.get("variants", ()))
                images += len(record.images)
    return {
        "feed": str(feed),
        "format": fmt or detected,
        "bytes": feed.stat().st_size,
        "products": products,
        "errors": errors,
        "variants": variants,
        "images": images,
        "fatal": fatal,
        "wall_s": round(time.perf_counter() - started, 3),
        "cpu_s": round(time.process_time() - cpu_started, 3),
        "rss_before_parse_mb": round(baseline, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
    }


def _measure_in_child(feed: Path) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        result_path = Path(out.name)
    try:
        subprocess.run(
            [sys.executable, "-m", "bench.feeds", "--parse-only", str(feed), "--json", str(result_path)],
            cwd=REPO,
            check=True,
        )
        return json.loads(result_path.read_text())
    finally:
        result_path.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--group-share", default="0.33,1.0", help="comma-separated shares of grouped items")
    parser.add_argument(
        "--parse-only", type=Path, metavar="FEED", help="parse FEED in this process and report"
    )
    parser.add_argument("--format", default=None, help="with --parse-only: skip detection")
    parser.add_argument("--json", type=Path, default=None, help="where to write the JSON result")
    args = parser.parse_args()

    if args.parse_only:
        result = parse_only(args.parse_only, args.format)
        text = json.dumps(result, indent=2)
        if args.json:
            args.json.write_text(text)
        else:
            print(text)
        return

    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-feeds-") as scratch:
        for share in (float(s) for s in args.group_share.split(",")):
            feed_path = Path(scratch) / f"merchant-{share:.2f}.xml"
            started = time.perf_counter()
            generated = generate_merchant_feed(feed_path, args.items, group_share=share)
            generate_s = round(time.perf_counter() - started, 1)
            measured = _measure_in_child(feed_path)
            runs.append({"group_share": share, "generate_s": generate_s, **asdict(generated), **measured})
            feed_path.unlink()
    report = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()},
        "runs": runs,
    }
    out = args.json or REPO / "var" / "bench" / "feeds.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(
        f"{'grouped':>8} {'items':>8} {'MB':>6} {'products':>9} {'errors':>6} {'parse s':>8} {'peak RSS MB':>12}"
    )
    for run in runs:
        print(
            f"{run['group_share']:>8.2f} {run['items']:>8,} {run['bytes'] / 1e6:>6.1f} {run['products']:>9,} "
            f"{run['errors']:>6,} {run['wall_s']:>8.1f} {run['peak_rss_mb']:>12.1f}"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
