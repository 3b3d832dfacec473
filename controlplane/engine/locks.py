"""In-process per-site locks that are dropped as soon as nobody holds or waits for them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class SiteLocks:
    """One lock per site id, reference-counted so the table never grows with old sites."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, site_id: str) -> Iterator[None]:
        """Hold the site's lock for the block (waiting while another thread holds it)."""
        with self._guard:
            lock, users = self._locks.get(site_id, (threading.Lock(), 0))
            self._locks[site_id] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[site_id]
                if users == 1:
                    del self._locks[site_id]
                else:
                    self._locks[site_id] = (lock, users - 1)

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)
