"""Ingesting the outbox: spans that zero-config tracing kept on disk because no collector answered.

The tracer writes the files (:mod:`tracemill.tracer.outbox`, standard library only); this module
reads them into a store (the CLI commands that open the store themselves) or into a running
server's spool (``tracemill serve`` on the port zero-config tracing targets). Every file goes
through the receiver's own checks (:func:`~tracemill.collector.ingest.otlp.decode_request`), so the
outbox stores exactly what a POST to ``/v1/traces`` would have. A file the checks refuse is set
aside under ``rejected/`` with the reason; one that cannot be stored now (store down, spool
full) stays for the next reader.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from tracemill.tracer import outbox

if TYPE_CHECKING:
    from tracemill.collector.ingest.forward import Forwarder
    from tracemill.collector.ingest.spool import Spool
    from tracemill.collector.ingest.writer import SpoolWriter
    from tracemill.collector.store.store import Store

__all__ = ["IngestResult", "Intake", "OutboxWatcher", "ingest_into_server", "ingest_into_store"]

logger = logging.getLogger("tracemill.collector.ingest.outbox")

_MAX_FILE_BYTES = 256 << 20  # far above any batch the SDK exports; bounds what one file may cost
_LOCK = threading.Lock()  # one pass at a time per process: claims of this process are re-taken on the next pass


class Intake(Protocol):
    """What taking the outbox into a running server needs of it: where a received request goes."""

    @property
    def spool(self) -> Spool: ...

    @property
    def writer(self) -> SpoolWriter: ...

    @property
    def forwarder(self) -> Forwarder | None: ...


@dataclass
class IngestResult:
    """What one pass over the outbox did."""

    files: int = 0
    spans: int = 0
    rejected_files: int = 0
    left: int = 0
    """Files still waiting because the store or spool could not take them now."""


def ingest_into_store(store: Store, directory: str) -> IngestResult:
    """Insert every outbox file into ``store``; each file's name is its insert deduplication token."""
    from tracemill.collector.ingest.rows import request_to_rows
    from tracemill.errors import StoreError

    def store_one(payload: bytes, accepted: int, token: str) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        request = ExportTraceServiceRequest.FromString(payload)
        store.insert_spans(request_to_rows(request), dedup_token=f"outbox-{token}")

    return _ingest(directory, store_one, (StoreError,))


def ingest_into_server(server: Intake, directory: str) -> IngestResult:
    """Append every outbox file to the server's spool, as if it had been POSTed to ``/v1/traces``."""
    from tracemill.errors import SpoolError

    def spool_one(payload: bytes, accepted: int, token: str) -> None:
        server.spool.append(payload, accepted)
        server.writer.wake()
        if server.forwarder is not None:
            server.forwarder.submit(payload)

    return _ingest(directory, spool_one, (SpoolError,))


def _ingest(
    directory: str, store_one: Callable[[bytes, int, str], None], retry_later: tuple[type[Exception], ...]
) -> IngestResult:
    from tracemill.collector.ingest.otlp import decode_request
    from tracemill.errors import PayloadError

    result = IngestResult()
    with _LOCK:
        claims = outbox.claim_all(directory)
        for claimed, token, payload in claims:
            try:
                decoded = decode_request(payload, content_type="application/x-protobuf", max_bytes=_MAX_FILE_BYTES)
            except PayloadError as exc:
                where = outbox.set_aside(claimed, str(exc))
                result.rejected_files += 1
                logger.warning("outbox file %s is not a valid OTLP request and was set aside: %s", where, exc)
                continue
            try:
                if decoded.accepted_spans:
                    store_one(decoded.payload, decoded.accepted_spans, token)
            except retry_later as exc:
                outbox.release(claimed)
                result.left = len(outbox.pending(directory))
                logger.warning("%d outbox file(s) in %s wait for the next try: %s", result.left, directory, exc)
                claims.close()
                break
            except BaseException:
                outbox.release(claimed)
                raise
            outbox.finish(claimed)
            result.files += 1
            result.spans += decoded.accepted_spans
    if result.files:
        logger.info("took %d span(s) from %d outbox file(s) in %s", result.spans, result.files, directory)
    return result


def ingest_for_command(store: Store, store_given: str | None, env: Mapping[str, str] | None = None) -> None:
    """Before a command reads the store it opened itself: take the outbox in, when it is the default store.

    The outbox holds spans meant for the local default collector, so only the default store takes them.
    A failure here never stops the command: the files stay for the next try.
    """
    from tracemill.collector.store.dsn import default_store_dsn, parse_dsn
    from tracemill.paths import outbox_dir

    env = os.environ if env is None else env
    default = parse_dsn(default_store_dsn(env))
    if store_given is not None:
        given = parse_dsn(store_given)
        if (given.location, given.database) != (default.location, default.database):
            return
    directory = outbox_dir(env)
    if not outbox.pending(directory):
        return
    try:
        ingest_into_store(store, directory)
    except Exception:  # reading what is already stored must still work
        logger.warning("the outbox %s could not be ingested", directory, exc_info=True)


class OutboxWatcher:
    """Takes the outbox into a running server's spool at start and every ``interval_s`` after."""

    def __init__(self, server: Intake, directory: str, *, interval_s: float = 2.0) -> None:
        self.server = server
        self.directory = directory
        self.interval_s = interval_s
        self.ingested_spans = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._pass()
        self._thread = threading.Thread(target=self._run, name="tracemill-outbox", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._pass()

    def _pass(self) -> None:
        try:
            if outbox.pending(self.directory):
                self.ingested_spans += ingest_into_server(self.server, self.directory).spans
        except Exception:
            logger.warning("taking in the outbox %s failed", self.directory, exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def status(self) -> dict[str, object]:
        return {"directory": self.directory, "waiting_files": len(outbox.pending(self.directory)),
                "ingested_spans": self.ingested_spans}
