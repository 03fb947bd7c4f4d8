"""Optional forwarding of received spans to another OTLP/HTTP endpoint (Jaeger, Tempo, Phoenix, Langfuse…).

Best effort by design: forwarding runs in its own thread from a bounded queue, never delays or
fails the acknowledgement of a request (the spool is the durable copy), retries briefly, and
counts what it had to drop. The payload sent is the validated protobuf the spool stores.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Forwarder", "traces_url"]

logger = logging.getLogger(__name__)

_RETRYABLE = {429, 502, 503, 504}


def traces_url(endpoint: str) -> str:
    """``endpoint`` with the OTLP traces path, as the OTel SDKs derive it from a base URL."""
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


class Forwarder:
    """Sends each accepted payload on to ``endpoint``; ``start()`` before use, ``stop()`` at the end."""

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        max_queue: int = 1000,
        max_queue_bytes: int = 64 << 20,
        timeout_s: float = 10.0,
        attempts: int = 3,
        transform: Callable[[bytes], bytes] | None = None,
    ) -> None:
        """``transform`` rewrites each payload before it is sent (e.g. adds OpenInference attributes);
        when it fails the payload goes as received."""
        self.url = traces_url(endpoint)
        self._transform = transform
        self._headers = {"Content-Type": "application/x-protobuf", **dict(headers or {})}
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=max_queue)
        self.max_queue_bytes = max_queue_bytes
        self._queued_bytes = 0
        self._bytes_lock = threading.Lock()
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._thread: threading.Thread | None = None
        self.forwarded = 0
        self.dropped = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tracemill-forwarder", daemon=True)
        self._thread.start()

    def submit(self, payload: bytes) -> None:
        """Queue ``payload`` for sending; when the queue is full (in requests or bytes) it is dropped and counted."""
        with self._bytes_lock:
            if self._queued_bytes and self._queued_bytes + len(payload) > self.max_queue_bytes:
                full = True
            else:
                full = False
                self._queued_bytes += len(payload)
        if full:
            self._drop(f"the forwarding queue holds {self.max_queue_bytes} bytes already")
            return
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            self._sent(len(payload))
            self._drop("the forwarding queue is full")

    def _sent(self, size: int) -> None:
        with self._bytes_lock:
            self._queued_bytes -= size

    def stop(self, *, timeout_s: float = 5.0) -> None:
        """Send what is queued for up to ``timeout_s``, then stop."""
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout_s)
        self._thread.join(timeout_s)
        self._thread = None

    def status(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "forwarded_requests": self.forwarded,
            "dropped_requests": self.dropped,
            "queued_requests": self._queue.qsize(),
            "queued_bytes": self._queued_bytes,
            "last_error": self.last_error,
        }

    def _run(self) -> None:
        while True:
            payload = self._queue.get()
            if payload is None:
                return
            size = len(payload)
            try:
                if self._transform is not None:
                    try:
                        payload = self._transform(payload)
                    except Exception:
                        logger.warning("could not transform a forwarded batch; it is sent as received", exc_info=True)
                self._send(payload)
            finally:
                self._sent(size)

    def _send(self, payload: bytes) -> None:
        delay = 0.5
        for attempt in range(1, self._attempts + 1):
            request = urllib.request.Request(self.url, data=payload, headers=self._headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                    response.read()
                self.forwarded += 1
                if self.last_error is not None:
                    logger.info("forwarding to %s works again", self.url)
                    self.last_error = None
                return
            except urllib.error.HTTPError as exc:
                reason = f"HTTP {exc.code} from {self.url}"
                if exc.code not in _RETRYABLE:
                    self._drop(reason)
                    return
            except (urllib.error.URLError, OSError) as exc:
                reason = f"cannot reach {self.url}: {getattr(exc, 'reason', exc)}"
            except Exception as exc:  # e.g. http.client.BadStatusLine: a broken peer must not kill the thread
                reason = f"bad answer from {self.url}: {type(exc).__name__}: {exc}"
            if attempt < self._attempts:
                time.sleep(delay)
                delay *= 2
        self._drop(reason)

    def _drop(self, reason: str) -> None:
        self.dropped += 1
        if self.last_error is None:  # log the first failure of a streak, not every batch
            logger.warning("forwarding spans failed (%s); this batch is dropped from forwarding only", reason)
        self.last_error = reason
