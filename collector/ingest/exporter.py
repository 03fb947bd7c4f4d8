"""An OpenTelemetry SDK span exporter that writes finished spans straight into a tracemill store.

For scripts, notebooks and tests (``tracemill.init(store=DSN)``): no collector process, the same
rows the collector would write (SDK span → OTLP protobuf → :func:`~tracemill.collector.ingest.rows.request_to_rows`).
Like every exporter it never raises into the traced program: a failed export is logged once
and reported as ``SpanExportResult.FAILURE``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tracemill.collector.ingest.rows import request_to_rows, sdk_spans_to_request
from tracemill.collector.ingest.versions import VersionRecorder, stamp_request_safely
from tracemill.collector.store.dsn import parse_dsn
from tracemill.collector.store.store import Store

__all__ = ["StoreSpanExporter"]

logger = logging.getLogger(__name__)


class StoreSpanExporter(SpanExporter):
    """Export spans into a :class:`Store`.

    ``store`` is a Store (shared: not closed by :meth:`shutdown`) or a DSN string (the exporter
    opens the store on the first export and closes it on shutdown). A bad DSN raises
    :class:`~tracemill.errors.ConfigError` here; everything later is logged, never raised.
    """

    def __init__(self, store: Store | str, *, database: str | None = None) -> None:
        self._lock = threading.Lock()
        self._shutdown = False
        self._failing = False
        self._database = database
        self._versions = VersionRecorder(interval_s=1.0)
        if isinstance(store, Store):
            if database is not None:
                raise ValueError("database applies to a DSN; an open Store already has its database")
            self._store: Store | None = store
            self._dsn: str | None = None
            self._owns_store = False
        elif isinstance(store, str):
            parse_dsn(store, database=database)  # a bad DSN is a bad argument: refuse it now
            self._store = None
            self._dsn = store
            self._owns_store = True
        else:
            raise TypeError(f"store must be a Store or a DSN string (got {type(store).__name__})")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            logger.warning("StoreSpanExporter.export called after shutdown; %d spans dropped", len(spans))
            return SpanExportResult.FAILURE
        if not spans:
            return SpanExportResult.SUCCESS
        # The store's own I/O (e.g. HTTP to a ClickHouse server) must not produce spans itself. The key is
        # private to opentelemetry-api (< 2) but is the one the SDK sets around its own exports and that
        # instrumentations check; tests/tracer/test_otel_private_api.py holds it to that.
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            store = self._open_store()
            request = sdk_spans_to_request(spans)
            stamp_request_safely(request)  # spans of plain OTel instrumentation in this process
            store.insert_spans(request_to_rows(request))
            self._versions.after_insert(store)
        except Exception as exc:  # an exporter never raises into the traced program
            self._report_failure(exc, len(spans))
            return SpanExportResult.FAILURE
        finally:
            detach(token)
        if self._failing:
            self._failing = False
            logger.info("tracemill store export recovered")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
            if self._owns_store and self._store is not None:
                self._store.close()
                self._store = None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        # Nothing is buffered here: every export is written before it returns.
        return True

    def _open_store(self) -> Store:
        store = self._store
        if store is not None:
            return store
        with self._lock:
            if self._store is None:
                assert self._dsn is not None
                self._store = Store.open(self._dsn, database=self._database)
            return self._store

    def _report_failure(self, exc: Exception, count: int) -> None:
        # Once per failure streak: a store that stays down must not flood the program's log.
        if self._failing:
            logger.debug("tracemill store export failed again (%d spans dropped): %s", count, exc)
            return
        self._failing = True
        logger.error("tracemill store export failed; %d spans dropped: %s", count, exc)
