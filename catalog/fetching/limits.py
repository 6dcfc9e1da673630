"""At most N connections to one host at a time, per process."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class _Slot:
    semaphore: threading.BoundedSemaphore
    users: int = 0


@dataclass
class Lease:
    """A held place in a host's queue; ``release()`` may be called more than once."""

    _limiter: HostLimiter
    _key: tuple[str, int]
    _slot: _Slot
    _released: bool = field(default=False)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._slot.semaphore.release()
            self._limiter._leave(self._key, self._slot)


class HostLimiter:
    """A bounded semaphore per host name (and limit), created on first use and dropped when no
    fetch holds or waits for it, so a process that meets many hosts keeps no state for them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[tuple[str, int], _Slot] = {}

    def acquire(self, host: str, limit: int, timeout: float | None) -> Lease | None:
        """Wait up to ``timeout`` seconds (None: as long as it takes) for a place; None if none came."""
        key = (host, limit)
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot(threading.BoundedSemaphore(limit))
            slot.users += 1
        if slot.semaphore.acquire(timeout=timeout):
            return Lease(self, key, slot)
        self._leave(key, slot)
        return None

    def _leave(self, key: tuple[str, int], slot: _Slot) -> None:
        with self._lock:
            slot.users -= 1
            if slot.users == 0 and self._slots.get(key) is slot:
                del self._slots[key]

    def hosts(self) -> int:
        """How many hosts have a fetch holding or waiting for a place (for tests and metrics)."""
        with self._lock:
            return len(self._slots)
