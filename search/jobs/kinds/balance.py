"""The "balance" kind: fit the active model's balanced answers now (search/services/balance.py)."""

from __future__ import annotations

from typing import Any

from search.jobs.registry import JobContext, job_kind
from search.models import Job


@job_kind("balance", label="Balance the answers (one photo per product)", resumable=True, unit="searches")
def run_balance(job: Job, ctx: JobContext) -> dict[str, Any]:
    from search import selectors
    from search.services.balance import SKIPPED, balance_fit

    model = selectors.active_model()
    if model is None:
        return {"summary": "No active model: nothing to balance."}
    outcome = balance_fit(model)
    if outcome.skipped:
        summary = f"Not balanced: {SKIPPED[outcome.skipped]} ({outcome.queries} searches)."
    else:
        summary = (
            f"Balanced v{model.version}: {outcome.products} product(s) on {outcome.queries} photo searches."
        )
    return {"queries": outcome.queries, "products": outcome.products, "skipped": outcome.skipped,
            "summary": summary}  # fmt: skip
