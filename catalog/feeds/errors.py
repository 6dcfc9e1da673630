"""Exceptions of the feed parsers. Problems inside a feed are not exceptions: they are ``FeedError``
records in the parse's output. These are for what stops a parse before it starts."""

from __future__ import annotations


class FeedFormatError(ValueError):
    """The feed cannot be parsed as asked: unknown or unsupported format, encoding, or option.

    ``code`` is one of ``unknown_format``, ``unsupported_encoding``, ``compressed``, ``invalid_option``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class LocalImageRejected(ValueError):
    """A manifest's local image path that may not be read.

    ``code`` is one of ``invalid_path`` (empty, a URL or scheme, backslashes, NUL), ``absolute_path``,
    ``parent_segment`` (a ``..`` segment), ``outside_base`` (resolves, through a symlink, outside the
    manifest's folder), ``missing_file``, ``not_a_file``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
