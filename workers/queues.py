"""Every queue name, in one place. Indexing new uploads never waits behind a bulk reindex."""

from enum import StrEnum


class Queue(StrEnum):
    INDEX = "index"  # new and changed images: latency-sensitive
    REINDEX = "reindex"  # bulk backfills of a new model version
    DEFAULT = "default"  # payload syncs, deletes, sweeps
