"""Bulk import from a JSON Lines manifest. Each line is all-or-nothing; bad lines are reported, the
rest import. Re-running a manifest is a no-op: products match by sku, images by sha256."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction

from catalog import events, image_limits
from catalog.errors import CatalogError
from catalog.models import Product
from catalog.services.images import product_image_add
from catalog.services.products import product_create, product_update
from catalog.storage import delete_if_unreferenced, path_for, sha256_of
from ml.preprocess import ImageInfo, ImageRejected

MANIFEST_FIELDS = (*Product.EDITABLE_FIELDS, "images")


@dataclass(frozen=True)
class LineError:
    line: int
    code: str
    message: str
    sku: str | None = None

    def __str__(self) -> str:
        who = f" (sku {self.sku})" if self.sku else ""
        return f"line {self.line}{who}: {self.code}: {self.message}"


@dataclass
class ImportReport:
    lines: int = 0
    products_created: int = 0
    products_updated: int = 0
    products_unchanged: int = 0
    images_added: int = 0
    images_existing: int = 0
    errors: list[LineError] = field(default_factory=list)
    added_image_ids: list[str] = field(default_factory=list)

    def add_counts(self, other: ImportReport) -> None:
        self.products_created += other.products_created
        self.products_updated += other.products_updated
        self.products_unchanged += other.products_unchanged
        self.images_added += other.images_added
        self.images_existing += other.images_existing
        self.added_image_ids += other.added_image_ids

    @property
    def ok_lines(self) -> int:
        return self.lines - len(self.errors)

    def summary(self) -> str:
        return (
            f"{self.lines} line(s): {self.ok_lines} imported, {len(self.errors)} rejected; products "
            f"{self.products_created} created, {self.products_updated} updated, {self.products_unchanged} unchanged; "
            f"images {self.images_added} added, {self.images_existing} already present."
        )


class LineRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _read_lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield number, "\x00invalid-utf8"
                continue
            if text.strip():
                yield number, text


def count_lines(path: Path) -> int:
    return sum(1 for _ in _read_lines(path))


def _parse(text: str) -> dict[str, Any]:
    if text == "\x00invalid-utf8":
        raise LineRejected("invalid_encoding", "The line is not valid UTF-8.")
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LineRejected("invalid_json", f"Not valid JSON ({exc.msg} at column {exc.colno}).") from exc
    if not isinstance(row, dict):
        raise LineRejected("invalid_json", "Each line must be a JSON object.")
    unknown = set(row) - set(MANIFEST_FIELDS)
    if unknown:
        raise LineRejected("unknown_field", f"Unknown field(s): {', '.join(sorted(unknown))}.")
    for required in ("sku", "title"):
        if not isinstance(row.get(required), str) or not row[required].strip():
            raise LineRejected("missing_field", f"{required} is required and must be a non-empty string.")
    images = row.get("images", [])
    if not isinstance(images, list) or not all(isinstance(p, str) and p for p in images):
        raise LineRejected("invalid_field", "images must be a list of file paths.")
    return row


def _load_images(row: dict[str, Any], base: Path) -> list[tuple[str, bytes, ImageInfo]]:
    loaded = []
    for rel in row.get("images", []):
        if Path(rel).is_absolute():
            raise LineRejected(
                "invalid_path", f"{rel}: image paths must be relative to the manifest's folder."
            )
        path = base / rel
        try:
            image_limits.check_size(path.stat().st_size)
            data = path.read_bytes()
        except ImageRejected as exc:
            raise LineRejected(exc.code, f"{rel}: {exc.message}") from exc
        except FileNotFoundError as exc:
            raise LineRejected("missing_file", f"{rel}: no such file.") from exc
        except (IsADirectoryError, PermissionError, OSError) as exc:
            raise LineRejected("unreadable_file", f"{rel}: cannot be read ({exc.strerror or exc}).") from exc
        try:
            info = image_limits.validate(data)
        except ImageRejected as exc:
            raise LineRejected(exc.code, f"{rel}: {exc.message}") from exc
        loaded.append((rel, data, info))
    return loaded


def _import_line(
    row: dict[str, Any], images: list[tuple[str, bytes, ImageInfo]], report: ImportReport
) -> None:
    fields = {k: row[k] for k in MANIFEST_FIELDS if k in row and k not in ("sku", "images")}
    product = Product.objects.filter(sku=row["sku"].strip()).first()
    if product is None:
        product = product_create(sku=row["sku"], **fields)
        report.products_created += 1
    else:
        before = product.updated_at
        product = product_update(product=product, **fields)
        if product.updated_at != before:
            report.products_updated += 1
        else:
            report.products_unchanged += 1
    added = []
    for order, (rel, data, info) in enumerate(images):
        result = product_image_add(
            product=product,
            data=data,
            original_name=Path(rel).name,
            display_order=order,
            info=info,
            announce=False,
        )
        if result.created:
            report.images_added += 1
            added.append(result.image.pk)
        else:
            report.images_existing += 1
    # One announcement per line: the embedder works on a batch instead of one photo at a time.
    if added:
        report.added_image_ids += events.ids(added)
        events.announce(events.images_added, image_ids=events.ids(added))


def import_manifest(path: Path, *, on_line: Callable[[], None] | None = None) -> ImportReport:
    base = path.resolve().parent
    report = ImportReport()
    for number, text in _read_lines(path):
        report.lines += 1
        sku = None
        written: list[str] = []
        try:
            row = _parse(text)
            sku = row["sku"]
            images = _load_images(row, base)
            written = [path_for(sha256_of(data), info.format) for _, data, info in images]
            line = ImportReport()  # counted apart, and added only once the line has committed
            with transaction.atomic():
                _import_line(row, images, line)
            report.add_counts(line)
        except LineRejected as exc:
            report.errors.append(LineError(number, exc.code, exc.message, sku))
        except (CatalogError, ImageRejected) as exc:
            report.errors.append(LineError(number, exc.code, exc.message, sku))
            _release(written)
        except Exception:
            _release(written)
            raise
        finally:
            if on_line is not None:
                on_line()
    return report


def _release(names: list[str]) -> None:
    # The line's transaction rolled back; files it wrote that no row references are orphans.
    for name in names:
        delete_if_unreferenced(name)
