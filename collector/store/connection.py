"""The server's one link to its store, opened lazily and reopened after it could not be opened.

The receiver must keep acknowledging into the spool while the store is unreachable (a ClickHouse
server that is down, an embedded directory another process holds), so opening the store is not
a startup step that can fail the server: the writer and the API ask this link for the store,
and get either the open :class:`~tracemill.collector.store.store.Store` or the reason it is unavailable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from tracemill.collector.store.store import Store
from tracemill.errors import StoreError, StoreUnavailableError

__all__ = ["StoreLink", "StoreUnavailableError"]

logger = logging.getLogger(__name__)


class StoreLink:
    """Opens the store on first use and shares it between threads.

    After a failed open, further calls fail fast with the same reason until ``retry_interval_s``
    has passed, so a burst of API calls does not hammer an unreachable server.
    """

    def __init__(
        self,
        opener: Callable[[], Store],
        *,
        location: str,
        retry_interval_s: float = 2.0,
    ) -> None:
        self._opener = opener
        self.location = location
        self._retry_interval_s = retry_interval_s
        self._store: Store | None = None
        self._lock = threading.Lock()
        self._last_error: str | None = None
        self._next_attempt = 0.0
        self._closed = False

    def get(self) -> Store:
        """The open store, or :class:`StoreUnavailableError` naming why it is not open."""
        store = self._store
        if store is not None:
            return store
        with self._lock:
            if self._store is not None:
                return self._store
            if self._closed:
                raise StoreUnavailableError(f"the store {self.location} is closed: the server is shutting down")
            now = time.monotonic()
            if self._last_error is not None and now < self._next_attempt:
                raise StoreUnavailableError(self._last_error)
            try:
                self._store = self._opener()
            except StoreError as exc:
                first = self._last_error is None
                self._last_error = f"the store {self.location} is unavailable: {exc}"
                self._next_attempt = now + self._retry_interval_s
                if first:
                    logger.warning("%s; received spans wait in the spool until it can be opened", self._last_error)
                raise StoreUnavailableError(self._last_error) from exc
            if self._last_error is not None:
                logger.info("the store %s is available again", self.location)
            self._last_error = None
            return self._store

    @property
    def is_open(self) -> bool:
        return self._store is not None

    @property
    def last_error(self) -> str | None:
        """Why the last attempt to open the store failed; None once it is open."""
        return self._last_error

    def close(self) -> None:
        with self._lock:
            self._closed = True
            store, self._store = self._store, None
        if store is not None:
            store.close()
