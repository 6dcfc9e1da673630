"""A fetched body as a capped, hashed, file-like stream, and the result of a whole fetch."""

from __future__ import annotations

import hashlib
import http.client
import io
from collections.abc import Iterator
from dataclasses import dataclass, field

from catalog.fetching.connection import Deadline, PinnedConnection, transport_error
from catalog.fetching.errors import FetchError
from catalog.fetching.limits import Lease
from ml.preprocess import ImageInfo

CHUNK_SIZE = 64 * 1024


@dataclass(frozen=True)
class FetchResult:
    """A finished fetch. For ``not_modified`` (a 304) ``content`` is empty, ``sha256`` is None and
    ``etag`` / ``last_modified`` are the server's, or the caller's when the 304 repeated none."""

    url: str
    final_url: str
    status: int
    content: bytes = field(repr=False)
    content_type: str | None
    etag: str | None
    last_modified: str | None
    byte_count: int
    sha256: str | None
    redirects: int
    attempts: int
    image: ImageInfo | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class FetchStream(io.RawIOBase):
    """The body of one response, read as it arrives: ``read()``, ``readinto()``, :meth:`iter_chunks`,
    or wrapped (``io.BufferedReader``, ``io.TextIOWrapper``) for a parser. Reading past ``max_bytes``
    raises FetchError(too_large); a dropped connection or the deadline raises FetchError too (a body
    half read is never retried behind the reader's back). Close it (or use ``with``) to free the
    connection and the host's concurrency slot. ``byte_count`` and ``sha256`` cover what was read;
    ``sha256`` is set once the body has been read to its end."""

    def __init__(
        self,
        *,
        url: str,
        final_url: str,
        response: http.client.HTTPResponse,
        connection: PinnedConnection,
        lease: Lease,
        deadline: Deadline,
        max_bytes: int,
        redirects: int,
        validators: tuple[str | None, str | None],
        timeouts: str,
    ) -> None:
        super().__init__()
        self.url = url
        self.final_url = final_url
        self.status = response.status
        self.reason_phrase = response.reason
        self.content_length = response.length  # as announced; None for chunked or close-delimited
        self.content_type = response.getheader("Content-Type")
        self.etag = response.getheader("ETag") or (validators[0] if self.status == 304 else None)
        self.last_modified = response.getheader("Last-Modified") or (
            validators[1] if self.status == 304 else None
        )
        self.redirects = redirects
        self.attempts = 1
        self.byte_count = 0
        self.sha256: str | None = None
        self._response = response
        self._connection = connection
        self._lease = lease
        self._deadline = deadline
        self._max_bytes = max_bytes
        self._timeouts = timeouts
        self._hash = hashlib.sha256()
        self._finished = self.status == 304

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("I/O operation on closed FetchStream")
        if self._finished or len(buffer) == 0:
            return 0
        # Ask for at most one byte past the cap: that byte is enough to prove the body too large.
        want = min(len(buffer), self._max_bytes - self.byte_count + 1)
        try:
            data = self._response.read1(want)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise self._error(transport_error(exc, self.final_url, self._deadline, self._timeouts)) from exc
        if not data:
            # The deadline's shutdown, and a server hanging up before Content-Length bytes, both look
            # like a clean end of body to read1().
            missing = self._response.length
            if self._deadline.expired or missing:
                self.close()
                cause = TimeoutError() if self._deadline.expired else http.client.IncompleteRead(b"", missing)
                raise self._error(transport_error(cause, self.final_url, self._deadline, self._timeouts))
            self._finished = True
            self.sha256 = self._hash.hexdigest()
            self._release()
            return 0
        self.byte_count += len(data)
        if self.byte_count > self._max_bytes:
            self.close()
            raise self._error(
                FetchError("too_large", self.final_url, f"the body is larger than {self._max_bytes:,} bytes")
            )
        self._hash.update(data)
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        parts = bytearray()
        buffer = bytearray(CHUNK_SIZE)
        view = memoryview(buffer)
        while n := self.readinto(view):
            parts += view[:n]
        return bytes(parts)

    def iter_chunks(self, size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Yield the body in chunks of at most ``size`` bytes as they arrive."""
        while chunk := self.read(size):
            yield chunk

    def result(self, content: bytes = b"") -> FetchResult:
        """This response as a FetchResult (``content`` is what the caller read)."""
        return FetchResult(
            url=self.url,
            final_url=self.final_url,
            status=self.status,
            content=content,
            content_type=self.content_type,
            etag=self.etag,
            last_modified=self.last_modified,
            byte_count=self.byte_count,
            sha256=self.sha256,
            redirects=self.redirects,
            attempts=self.attempts,
        )

    def close(self) -> None:
        if not self.closed:
            self._release()
        super().close()

    def _release(self) -> None:
        self._deadline.cancel()
        self._response.close()
        self._connection.close()
        self._lease.release()

    def _error(self, error: FetchError) -> FetchError:
        # Name the URL the caller asked for; the hop that failed goes into the detail.
        error.attempts = self.attempts
        return rename(error, self.url)


def rename(error: FetchError, url: str) -> FetchError:
    """``error`` re-addressed to ``url`` when a redirect hop failed, the hop named in the detail."""
    if error.url == url:
        return error
    return FetchError(
        error.reason,
        url,
        f"{error.detail} (at {error.url})",
        transient=error.transient,
        status=error.status,
        attempts=error.attempts,
    )
