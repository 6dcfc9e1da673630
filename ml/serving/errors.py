"""The embedders' typed errors: transient (retry) or a fault that retrying cannot fix."""

from __future__ import annotations


class EmbedderError(Exception):
    """Base class of every embedder failure."""


class EmbedderUnavailable(EmbedderError):
    """The model server cannot be reached or did not answer in time (transient: retry later)."""


class ModelNotFound(EmbedderError):
    """The model name or pinned version is not served (configuration: do not retry)."""


class BadEmbedding(EmbedderError):
    """The model answered with the wrong shape, dimension, dtype or non-finite values."""


class InvalidInput(EmbedderError, ValueError):
    """The caller passed images that are not uint8 [N, image_size, image_size, 3]."""
