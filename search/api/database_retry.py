"""A search that meets the database going away is tried again for a few seconds before it fails.

A search only reads the database (the active model, the products' cards); its log is written after
the answer has gone out. A PostgreSQL restart or fail-over drops every open connection and refuses
new ones for a second or two: without a retry each search in that window answers 503 and every
shopper's widget shows an error for a blip the operator never noticed. So the search is run again,
on a fresh connection, until ``SEARCH_DATABASE_RETRY_S`` has passed; an outage longer than that
still answers 503 ``database_unavailable`` (config/api_errors.py), which clients retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections

log = logging.getLogger(__name__)

T = TypeVar("T")
PAUSE_S = 0.25  # between tries: a restarting server takes about a second to accept connections


def read_through_restarts(read: Callable[[], T]) -> T:
    """``read()``, tried again on a fresh connection while the database is unreachable, for up to
    SEARCH_DATABASE_RETRY_S seconds; then the last error goes up. ``read`` must only read."""
    deadline = time.monotonic() + settings.SEARCH_DATABASE_RETRY_S
    tries = 0
    while True:
        try:
            return read()
        except (OperationalError, InterfaceError) as exc:
            tries += 1
            if time.monotonic() + PAUSE_S > deadline:
                raise
            log.info("database unreachable during a search (try %d): %s", tries, str(exc).split("\n")[0])
            # The broken connection cannot be reused; the next query opens a new one.
            for conn in connections.all(initialized_only=True):
                conn.close()
            time.sleep(PAUSE_S)
