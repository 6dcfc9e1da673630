"""The one exception every refused or failed fetch raises, with a machine-readable reason."""

from __future__ import annotations


class FetchError(Exception):
    """A URL that could not be fetched.

    ``reason`` is one of: ``invalid_url``, ``scheme_not_allowed``, ``host_not_allowed``,
    ``private_address``, ``dns_error``, ``too_many_redirects``, ``too_large``, ``timeout``,
    ``connection_error``, ``http_<status>`` (``http_404``), ``not_an_image``, or for images the
    :class:`ml.preprocess.ImageRejected` code (``corrupt_image``, ``unsupported_format``,
    ``too_many_pixels``, ``empty_file``, ``image_too_large``).

    ``transient`` is true for what a later try may cure (timeouts, dropped connections, 5xx): the
    client has already retried those ``attempts - 1`` times. ``status`` is the HTTP status where
    there was one.
    """

    def __init__(
        self,
        reason: str,
        url: str,
        detail: str,
        *,
        transient: bool = False,
        status: int | None = None,
        attempts: int = 1,
    ) -> None:
        self.reason = reason
        self.url = url
        self.detail = detail
        self.transient = transient
        self.status = status
        self.attempts = attempts
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """One line for a person: the URL and what is wrong with it."""
        return f"Cannot fetch {_shorten(self.url)}: {self.detail}"

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def _shorten(url: str, limit: int = 200) -> str:
    # A hostile URL may be megabytes long or hold line breaks; the message stays one short line.
    flat = url.replace("\r", "\\r").replace("\n", "\\n")
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
