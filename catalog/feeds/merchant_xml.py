"""Merchant Center XML feeds (RSS 2.0 ``<item>``, Atom 1.0 and 0.3 ``<entry>``), streamed.

defusedxml's iterparse refuses entity declarations (the billion-laughs bomb) and external entities
or DTDs that would make the parser read files or URLs. Each element is dropped from the tree as soon
as it has been read, so memory holds one item's fields, never the document: a child of an item is
turned into (name, text) when it closes; anything nested deeper (``g:shipping`` parts) is skipped.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from catalog.feeds.merchant import Fields, MerchantAssembler, field_name
from catalog.feeds.records import FeedError, FeedRecord

G_NS = "http://base.google.com/ns/1.0"
ATOM_NS = ("http://www.w3.org/2005/Atom", "http://purl.org/atom/ns#")
# Fields of one item kept at most (an item has some 20-60); more is a broken or hostile feed.
MAX_ITEM_VALUES = 1000


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _is_item(tag: str) -> bool:
    ns, local = _split(tag)
    return (ns == "" and local == "item") or (ns in ATOM_NS and local == "entry")


# Tags repeat on every item, so their meaning is worked out once: the per-tag string work was a
# fifth of the parse time. Bounded, since a hostile feed can invent any number of tags.
@functools.lru_cache(maxsize=512)
def _meaning(tag: str) -> tuple[str, str] | None:
    """(where: "g" | "fallback" | "atom_link", canonical field name), or None for tags not read."""
    ns, local = _split(tag)
    if ns in ATOM_NS and local == "link":
        return "atom_link", "link"
    if ns in ATOM_NS and local == "summary":
        return "fallback", "description"
    if ns == G_NS:
        return "g", field_name(local)
    if ns == "" or ns in ATOM_NS:
        return "fallback", field_name(local)
    return None  # another vocabulary (custom "c:" attributes, extensions): not ours to read


def _record(fields: Fields, fallback: Fields, elem: Element) -> None:
    meaning = _meaning(elem.tag)
    if meaning is None:
        return
    where, name = meaning
    if where == "atom_link":
        # Atom: <link href="..." rel="alternate"/>; other rels (enclosure, via) are not the product page.
        if elem.get("rel", "alternate") == "alternate" and elem.get("href"):
            fallback.setdefault("link", []).append(elem.get("href", ""))
        return
    target = fields if where == "g" else fallback
    target.setdefault(name, []).append(elem.text or "")


def parse_merchant_xml(
    stream: BinaryIO, *, default_currency: str | None, now: datetime
) -> Iterator[FeedRecord]:
    assembler = MerchantAssembler(unit="item", default_currency=default_currency, now=now)
    items = 0
    fatal: FeedError | None = None
    stack: list[Element] = []
    item: Element | None = None
    fields: Fields = {}
    fallback: Fields = {}  # RSS/Atom's own title, link, description, id: used where g: gives none
    values = 0
    try:
        for event, elem in iterparse(stream, events=("start", "end")):
            if event == "start":
                if not stack:
                    ns, local = _split(elem.tag)
                    if not ((ns == "" and local == "rss") or (ns in ATOM_NS and local == "feed")):
                        fatal = FeedError(
                            1, "not_a_feed",
                            f"the XML's root element is <{local}>, not an RSS <rss> or Atom <feed> product feed.",
                            fatal=True,
                        )  # fmt: skip
                        break
                if item is None and _is_item(elem.tag):
                    item, fields, fallback, values = elem, {}, {}, 0
                stack.append(elem)
                continue
            stack.pop()
            parent = stack[-1] if stack else None
            if elem is item:
                items += 1
                for name, found in fallback.items():
                    fields.setdefault(name, found)
                yield from assembler.add(fields, items)
                item = None
            elif item is not None and parent is item:
                values += 1
                if values <= MAX_ITEM_VALUES:
                    _record(fields, fallback, elem)
            if parent is not None:
                parent.remove(elem)  # the element is read: keep the tree at one item's size
    except ParseError as exc:
        line, column = exc.position
        reason = str(exc).split(":")[0]
        if "invalid token" in reason:
            # What expat also says for bytes that are not valid in the document's encoding.
            reason += ", or bytes that are not valid UTF-8 (or the encoding the XML declaration names)"
        fatal = FeedError(
            line,
            "invalid_xml",
            f"the XML is broken at line {line}, column {column + 1} ({reason}); "
            f"the {items} item(s) before it were read.",
            fatal=True,
        )
    except DefusedXmlException as exc:
        fatal = FeedError(
            items + 1,
            "forbidden_xml",
            f"the feed declares XML entities or external references ({type(exc).__name__}); refused.",
            unit="item",
            fatal=True,
        )
    except OSError as exc:
        fatal = FeedError(
            items + 1,
            "read_error",
            f"reading the feed failed after {items} item(s): {exc}.",
            unit="item",
            fatal=True,
        )
    if fatal is None and items == 0:
        fatal = FeedError(1, "no_items", "the feed has no <item> or <entry> elements.", fatal=True)
    yield from assembler.finish()
    if fatal is not None:
        yield fatal
