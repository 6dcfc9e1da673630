"""The catalog's one domain error. Services raise it with a machine-readable code; they never
know about HTTP (config/api_errors.py maps each code to a status for the API)."""

from __future__ import annotations


class CatalogError(ValueError):
    """A catalog write that cannot be done as asked; ``code`` is machine-readable, ``field`` names the
    input at fault when there is one."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
