"""The zero-config exporter: send to the local ``tracemill serve`` if it answers, else keep spans in the outbox.

With nothing configured, a decorated program should exit at once and lose nothing, whether or
not a server runs. The OTLP exporter retries a refused connection for about seven seconds at
exit and then drops the spans; this exporter makes one attempt per batch (a refused loopback
connection fails in well under a millisecond) and, when no collector takes the batch, writes it
to the outbox (:mod:`tracemill.tracer.outbox`), which ``tracemill serve`` and the commands that
read the store ingest. The payload is the same OTLP protobuf either way.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections.abc import Mapping, Sequence

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tracemill.tracer import outbox
from tracemill.tracer.logs import logger

__all__ = ["LocalExporter"]


class LocalExporter(SpanExporter):
    """POST each batch once to ``url`` (an OTLP/HTTP traces URL); on any failure write it to ``outbox_dir``."""

    def __init__(
        self, url: str, outbox_dir: str, *, headers: Mapping[str, str] | None = None, timeout_s: float = 5.0
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        self.url = url
        self.outbox_dir = outbox_dir
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._https else 80)
        self._path = parts.path or "/v1/traces"
        self._headers = {"Content-Type": "application/x-protobuf", **dict(headers or {})}
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._told_outbox = False
        self.sent_batches = 0
        self.outbox_batches = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        # The exporter's own HTTP call must not be traced by any instrumentation of the program.
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

            payload = encode_spans(spans).SerializeToString()
            problem = self._post(payload)
            if problem is None:
                self.sent_batches += 1
                return SpanExportResult.SUCCESS
            return self._keep(payload, len(spans), problem)
        except Exception:  # an exporter never raises into the traced program
            logger.warning("tracemill: exporting %d spans failed", len(spans), exc_info=True)
            return SpanExportResult.FAILURE
        finally:
            detach(token)

    def _post(self, payload: bytes) -> str | None:
        """None when the collector took the batch, else why not."""
        factory = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = factory(self._host, self._port, timeout=self._timeout_s)
        try:
            connection.request("POST", self._path, body=payload, headers=self._headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            return f"no collector answers at {self.url} ({exc.__class__.__name__}: {exc})"
        finally:
            connection.close()
        if 200 <= response.status < 300:
            return None
        return f"the collector at {self.url} answered {response.status} {response.reason}"

    def _keep(self, payload: bytes, count: int, problem: str) -> SpanExportResult:
        try:
            with self._lock:
                outbox.write(self.outbox_dir, payload)
                self.outbox_batches += 1
                first = not self._told_outbox
                self._told_outbox = True
        except OSError as exc:
            logger.warning("tracemill: %s, and the outbox %s cannot be written (%s); %d spans dropped",
                           problem, self.outbox_dir, exc, count)
            return SpanExportResult.FAILURE
        if first:  # info, not warning: this is the expected zero-config path, and it loses nothing
            logger.info("tracemill: %s; spans are kept in %s until `tracemill serve` or `tracemill traces` "
                        "takes them", problem, self.outbox_dir)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass  # each export opens and closes its own connection

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # nothing is buffered here
