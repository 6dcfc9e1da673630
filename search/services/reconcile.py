"""Compare the database with the vector store and repair both ways: points missing for indexed
images, orphan points for images that no longer exist, payloads that drifted from the catalog."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from catalog import selectors as catalog_selectors
from catalog.services import index_state
from search import selectors
from search.models import ModelStatus
from search.payloads import product_facts
from search.services.indexing import repair_missing
from search.vector_store import vector_store


@dataclass
class ReconcileReport:
    collection: str = ""
    points: int = 0
    images: int = 0
    missing: int = 0
    orphans: int = 0
    stale_payloads: int = 0
    reindexed: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"{self.collection}: {self.points} points, {self.images} images; missing {self.missing} "
            f"(re-indexed {self.reindexed}), orphans {self.orphans} removed, stale payloads "
            f"{self.stale_payloads} fixed"
        )


def reconcile(*, dry_run: bool = False) -> list[ReconcileReport]:
    reports = []
    store = vector_store()
    for model in selectors.write_targets():
        report = ReconcileReport(collection=model.collection)
        store.ensure_collection(model.collection, model.embedding_dim)
        images = selectors.image_labels()
        report.images = len(images)
        products = catalog_selectors.products_by_id(product_ids=images.values())
        seen: set[str] = set()
        orphans: list[str] = []
        stale: dict[int, dict[str, Any]] = {}
        for point_id, payload in store.scroll_ids(model.collection):
            report.points += 1
            if point_id not in images:
                orphans.append(point_id)
                continue
            seen.add(point_id)
            product_id = images[point_id]
            expected = product_facts(products[product_id])
            if any(payload.get(k) != v for k, v in expected.items()):
                stale[product_id] = expected
        missing = [i for i in images if i not in seen]
        report.missing, report.orphans, report.stale_payloads = len(missing), len(orphans), len(stale)
        if not dry_run:
            if orphans:
                store.delete(model.collection, orphans)
            for product_id, expected in stale.items():
                store.set_payload_by_product(model.collection, product_id, expected)
            if missing:  # repair_missing cuts them into indexing's batches
                outcome = repair_missing(missing, model)
                report.reindexed += len(outcome.indexed)
                report.failed.update(outcome.failed)
            if model.status == ModelStatus.ACTIVE:
                # Rows that claim "indexed" but had no point were just repaired; rows that claim
                # pending while their point exists are marked indexed.
                index_state.images_confirm_indexed(image_ids=seen, model_label=str(model.version))
        reports.append(report)
    return reports
