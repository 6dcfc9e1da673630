"""Image references in feeds: web URLs, and a manifest's local files confined to its folder."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from catalog.feeds.errors import LocalImageRejected
from catalog.feeds.records import MAX_IMAGES, FeedImage
from catalog.field_limits import URL_MAX


def web_url(value: str) -> str | None:
    """The value if it is an absolute http(s) URL with a host, else None. Feeds from shops name their
    images only this way; any other scheme (file:, data:, ftp:) or a bare path is refused."""
    value = value.strip()
    if not value or len(value) > URL_MAX or " " in value or not value.isprintable():
        return None
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # a malformed host or port
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or not port_ok:
        return None
    return value


def looks_like_url(value: str) -> bool:
    """Whether a manifest entry means to be a URL (any scheme), as opposed to a file path."""
    if "://" in value:
        return True
    try:
        return bool(urlsplit(value).scheme)
    except ValueError:
        return True


def resolve_local_image(base_dir: Path, rel: str) -> Path:
    """The absolute, symlink-free path of the file ``rel`` names inside ``base_dir``.

    ``rel`` is a relative, forward-slash path with no ``..`` segment. The result is resolved (every
    symlink followed) and must still lie inside the resolved ``base_dir`` and be a regular file.
    Raises ``LocalImageRejected`` with the reason's code. The check holds when it is made: where others
    can write into the folder, the reader should open the returned path with O_NOFOLLOW.
    """
    if not rel or not rel.strip():
        raise LocalImageRejected("invalid_path", "the image path is empty.")
    if "\x00" in rel:
        raise LocalImageRejected("invalid_path", f"{rel!r}: the path contains a NUL character.")
    if "\\" in rel:
        raise LocalImageRejected("invalid_path", f"{rel}: use forward slashes in image paths.")
    if looks_like_url(rel):
        raise LocalImageRejected("invalid_path", f"{rel}: not a relative file path (it has a scheme).")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or rel.startswith("~"):
        raise LocalImageRejected(
            "absolute_path", f"{rel}: image paths must be relative to the manifest's folder."
        )
    if ".." in pure.parts:
        raise LocalImageRejected("parent_segment", f"{rel}: image paths may not contain '..'.")
    try:
        base = base_dir.resolve(strict=True)
        target = (base / pure).resolve(strict=True)
    except FileNotFoundError as exc:
        raise LocalImageRejected("missing_file", f"{rel}: no such file.") from exc
    except (OSError, RuntimeError) as exc:  # a symlink loop, a component that is not a folder
        raise LocalImageRejected("invalid_path", f"{rel}: cannot be resolved ({exc}).") from exc
    if not target.is_relative_to(base):
        raise LocalImageRejected("outside_base", f"{rel}: resolves outside the manifest's folder.")
    if not target.is_file():
        raise LocalImageRejected("not_a_file", f"{rel}: not a regular file.")
    return target


class ImageCollector:
    """A product's images in feed order, each URL once, at most ``limit`` (more are left out).

    ``rank`` orders images whose feed gives an explicit position (Shopify's Image Position); images
    without one keep their arrival order after them. Held per group until a feed ends, so it keeps
    parallel lists (and alt texts and ranks only where given) instead of an object per image.
    """

    __slots__ = ("_alts", "_limit", "_ranks", "_sources", "_urls")

    def __init__(self, limit: int = MAX_IMAGES) -> None:
        self._limit = limit
        self._urls: list[str] = []
        self._sources: list[str] = []
        self._alts: dict[int, str] = {}
        self._ranks: dict[int, int] = {}

    def add(self, url_or_path: str, *, source: str, alt: str = "", rank: int | None = None) -> None:
        # A linear search: a few hundred entries at most, and no set to keep beside the list.
        if url_or_path in self._urls:  # seen before (a variant's image, say): fill in what it lacked
            index = self._urls.index(url_or_path)
            if alt:
                self._alts.setdefault(index, alt)
            if rank is not None:
                self._ranks.setdefault(index, rank)
            return
        if len(self._urls) >= self._limit:
            return
        if alt:
            self._alts[len(self._urls)] = alt
        if rank is not None:
            self._ranks[len(self._urls)] = rank
        self._urls.append(url_or_path)
        self._sources.append(source)

    def __len__(self) -> int:
        return len(self._urls)

    def build(self) -> tuple[FeedImage, ...]:
        unranked = 1 << 62
        order = sorted(range(len(self._urls)), key=lambda i: (self._ranks.get(i, unranked), i))
        return tuple(
            FeedImage(
                url_or_path=self._urls[i],
                position=position,
                alt=self._alts.get(i, ""),
                source=self._sources[i],
            )
            for position, i in enumerate(order)
        )
