"""The search app's one domain error. Services raise it with a machine-readable code; they never
know about HTTP (config/api_errors.py maps each code to a status for the API)."""

from __future__ import annotations


class SearchError(Exception):
    """A search, indexing or model operation that cannot be done as asked; ``code`` is machine-readable,
    ``field`` names the input at fault when there is one."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class NoActiveModel(SearchError):
    """No model version is active, so nothing can be embedded or searched yet (transient for tasks)."""

    def __init__(self) -> None:
        super().__init__(
            "model_unavailable",
            "No active model version; the first import or upload makes one (or run `manage.py bootstrap_model`).",
        )
