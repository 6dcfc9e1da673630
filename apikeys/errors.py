"""The API keys app's one domain error: a key that cannot be created or used as asked. ``code`` is
machine-readable (config/api_errors.py maps it to an HTTP status)."""

from __future__ import annotations


class ApiKeyError(ValueError):
    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
