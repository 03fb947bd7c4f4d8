"""The batch writer: drains the spool into the store in large column-oriented inserts.

One background thread. It keeps a short pipeline of groups: each is either a group recorded
before a crash (replayed exactly as recorded, with its token) or the oldest waiting batches, up
to ``batch_spans`` spans and ``batch_bytes`` bytes (a batch larger than that alone), claimed once
enough have arrived or the oldest has waited ``flush_interval_s``. Converting a group costs
several times its bytes, so the groups in the pipeline hold at most ``batch_bytes`` together (or
one larger batch alone): large spans make groups smaller, not memory larger. A group is recorded
in the spool before its insert and deleted after it (see :mod:`tracemill.collector.ingest.spool` for why
that makes replays exactly-once). The thread never waits on an insert the store converts: an
ending insert, like an arriving batch, wakes it, so a new group is claimed and its insert started
as soon as the pipeline has room and enough spans wait.

A span that cannot be stored never holds up the others: the conversion sets such spans aside
as dead letters (:mod:`tracemill.collector.ingest.deadletter`), and a group the store refuses for its
values (not for being down) is halved until the refused spans are found.

How a group becomes rows: on the embedded store ClickHouse converts the spooled OTLP requests
itself (:mod:`tracemill.collector.ingest.rows_sql`), in C++ and outside the GIL. A group it refuses
(values it does not convert exactly), and every group on a ClickHouse server, takes the reference
conversion instead (:mod:`tracemill.collector.ingest.rows` and :mod:`tracemill.collector.ingest.blocks`), encoded
in an encoder thread or worker processes (:mod:`tracemill.collector.ingest.encoder_pool`) while the
writer inserts the group ahead of it. Both write a group as one block under its token, and the
refusal happens before anything is written, so either way a group is stored exactly once.

When the store fails, the head group is retried with exponential backoff while the receiver
keeps filling the spool; the receiver reads :attr:`SpoolWriter.healthy` and
:meth:`SpoolWriter.retry_after_s` to answer 503 with ``Retry-After`` once the spool is full.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tracemill.collector.ingest.blocks import EncodedBlock, RowsRefusedError, insert_block, span_column_types
from tracemill.collector.ingest.deadletter import DeadSpan, dead_span, insert_dead_letters
from tracemill.collector.ingest.encoder_pool import BlockEncoder, BrokenProcessPool
from tracemill.collector.ingest.rows_sql import NeedsReferenceConversion, insert_requests, supports_sql_conversion
from tracemill.collector.ingest.spool import Group, Spool
from tracemill.collector.ingest.versions import VersionRecorder
from tracemill.collector.store.connection import StoreLink
from tracemill.errors import StoreError

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["SpoolWriter"]

logger = logging.getLogger(__name__)


@dataclass
class _InFlight:
    group: Group
    future: Future[EncodedBlock] | None = None
    """The reference conversion's block (None while the group is converted in the store)."""
    insert: Future[float] | None = None
    """The group's insert with the conversion in the store, running on an inserter thread."""
    buried: bool = False
    errors: int = 0
    """Times its conversion raised (a bug, not a value: values are isolated by the conversion)."""
    set_aside: bool = False
    """Its dead letters are stored (an insert retried after a store failure does not count them again)."""


_CONVERSION_ATTEMPTS = 3


class SpoolWriter:
    """Moves spooled batches into the store. ``start()`` it; ``stop()`` drains what it can, then ends."""

    def __init__(
        self,
        spool: Spool,
        link: StoreLink,
        *,
        batch_spans: int = 20_000,
        batch_bytes: int = 16 << 20,
        flush_interval_s: float = 1.0,
        max_backoff_s: float = 10.0,
        encoder_processes: int = 0,
        convert_in_store: bool = True,
    ) -> None:
        self._spool = spool
        self._link = link
        self.batch_spans = batch_spans
        self.batch_bytes = batch_bytes
        self.flush_interval_s = flush_interval_s
        self.max_backoff_s = max_backoff_s
        self._encoder = BlockEncoder(encoder_processes)
        self._depth = encoder_processes + 2  # groups encoded, or inserted by the store, at once
        self._inserters: ThreadPoolExecutor | None = None
        self._spare_stores: queue.SimpleQueue[Store] = queue.SimpleQueue()
        self._opened_stores: list[Store] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._drain_deadline = 0.0
        self._thread: threading.Thread | None = None
        self._replay: deque[Group] = deque()
        self._recovered: set[int] = set()  # groups found recorded at start: a stop interrupted them
        self._inflight: deque[_InFlight] = deque()
        self._column_types: tuple[str, ...] | None = None
        self._convert_in_store = convert_in_store
        self._in_store: bool | None = None  # decided once the store is open
        self._idle = threading.Condition()
        self._versions = VersionRecorder()
        self._purge_due = False
        # What status reports.
        self.inserted_spans = 0
        self.inserted_groups = 0
        self.replayed_groups = 0
        self.buried_batches = 0
        self.dead_spans = 0  # spans set aside as dead letters since start
        self.reference_groups = 0  # groups the store refused to convert
        self.last_insert_at: float | None = None
        self.last_error: str | None = None
        self.failing_since: float | None = None
        self._backoff_s = 0.0
        self._retry_at = 0.0

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the writer is already started")
        self._replay.extend(self._spool.recorded_groups())
        self._recovered = {group.id for group in self._replay}
        if self._replay:
            logger.info("replaying %d spooled group(s) recorded before the last stop", len(self._replay))
        self._encoder.warm_up()
        self._thread = threading.Thread(target=self._run, name="tracemill-spool-writer", daemon=True)
        self._thread.start()

    def stop(self, *, drain_timeout_s: float = 10.0) -> None:
        """Insert what is waiting (for up to ``drain_timeout_s``), then stop; the rest stays spooled."""
        if self._thread is not None:
            self._drain_deadline = time.monotonic() + drain_timeout_s
            self._stopping.set()
            self._wake.set()
            self._thread.join(drain_timeout_s + 30.0)
            self._thread = None
        self._encoder.close()
        if self._inserters is not None:
            self._inserters.shutdown(wait=True, cancel_futures=True)
            self._inserters = None
        for store in self._opened_stores:
            store.close()
        self._opened_stores.clear()

    def wake(self) -> None:
        """A batch arrived: look at the spool now rather than at the next tick."""
        self._wake.set()

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until the spool is empty (True) or ``timeout_s`` passes (False)."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while not self._drained():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.2))
        return True

    # -- what the receiver and status ask ---------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """False while the store cannot be opened or refuses inserts."""
        return self.last_error is None

    def retry_after_s(self) -> int:
        """Seconds a client should wait before sending again when the spool is full."""
        if self.healthy:
            return 1
        return max(1, min(int(self._retry_at - time.monotonic()) + 1, int(self.max_backoff_s)))

    def status(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "last_error": self.last_error,
            "failing_since": self.failing_since,
            "inserted_spans": self.inserted_spans,
            "inserted_groups": self.inserted_groups,
            "replayed_groups": self.replayed_groups,
            "buried_batches": self.buried_batches,
            "dead_spans": self.dead_spans,
            "last_insert_at": self.last_insert_at,
            "batch_spans": self.batch_spans,
            "batch_bytes": self.batch_bytes,
            "flush_interval_s": self.flush_interval_s,
            "encoder_processes": self._encoder.processes,
            "conversion": "pending" if self._in_store is None else "clickhouse" if self._in_store else "python",
            "reference_groups": self.reference_groups,
        }

    # -- the loop ---------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            stopping = self._stopping.is_set()
            if stopping and (time.monotonic() >= self._drain_deadline or self._drained()):
                break
            self._wake.clear()  # before the round: a wake-up during it makes the sleep after it return at once
            try:
                worked = self._round(draining=stopping)
            except Exception as exc:  # the writer thread must survive anything and retry
                logger.exception("the spool writer failed unexpectedly; retrying")
                self._failed(f"unexpected writer error: {type(exc).__name__}: {exc}")
                worked = False
            if stopping and not self.healthy:
                break  # the store is failing: what is left stays spooled for the next start
            if not worked:
                self._sleep(stopping)
        self._notify_idle()

    def _drained(self) -> bool:
        return self._spool.pending_spans == 0 and not self._replay and not self._inflight

    def _sleep(self, stopping: bool) -> None:
        if not self.healthy:
            # Backing off: only stop interrupts, new batches do not.
            self._stopping.wait(max(0.0, self._retry_at - time.monotonic()))
            return
        if stopping:
            self._wake.wait(0.05)  # an insert in flight wakes it when it ends
            return
        if len(self._inflight) >= self._depth:
            # Only an ending insert makes room, and it wakes the loop: no need to poll for due batches.
            self._wake.wait(self.flush_interval_s)
            return
        self._wake.wait(self._next_flush_in())

    def _next_flush_in(self) -> float:
        pending, oldest = self._spool.oldest_unclaimed()
        if not pending or oldest is None:
            return self.flush_interval_s
        return max(0.01, min(self.flush_interval_s, oldest + self.flush_interval_s - time.time()))

    def _round(self, *, draining: bool) -> bool:
        """Insert the head of the pipeline if it is ready; True when something was done."""
        if not self.healthy and time.monotonic() < self._retry_at:
            return False
        try:
            store = self._link.get()
            if self._column_types is None:
                self._column_types = span_column_types(store)
            if self._in_store is None:
                self._in_store = self._convert_in_store and supports_sql_conversion(store)
        except StoreError as exc:
            self._failed(str(exc))
            return False
        self._fill(store, draining=draining)
        if not self._inflight:
            if self._purge_due:  # caught up: hand what the inserts freed back to the system
                self._purge_due = False
                store.release_free_memory()
            self._notify_idle()
            return False
        head = self._inflight[0]
        if head.future is None:
            return self._insert_in_store(store, head, draining=draining)
        try:
            block = head.future.result()
        except BrokenProcessPool:
            self._encoder.restart()
            self._resubmit_all()
            return True
        except Exception as exc:  # a bug in the conversion: retry, and never let it hold up the groups behind
            return self._conversion_failed(head, exc)
        if not head.buried:
            for batch_id, reason in block.failed:
                logger.error("spooled batch %d cannot be converted to rows and is set aside: %s", batch_id, reason)
                self._spool.bury(batch_id, reason)
                self.buried_batches += 1
            head.buried = True
        started = time.monotonic()
        try:
            if not head.set_aside:
                self._set_aside(store, head.group.token, block.dead, token=f"{head.group.token}:dead")
                head.set_aside = True
            try:
                insert_block(store, block, dedup_token=head.group.token)
                stored = block.rows
            except RowsRefusedError as exc:
                logger.warning("the store refused group %s (%s); splitting it to find the spans", head.group.token, exc)
                stored = self._insert_rows(store, head.group, 0, block.rows)
        except StoreError as exc:
            return self._not_stored(head.group, exc)
        return self._stored(store, stored, time.monotonic() - started, draining=draining)

    def _set_aside(self, store: Store, source: str, spans: list[DeadSpan], *, token: str) -> None:
        """Store spans that cannot go into otel_traces as dead letters (raises StoreError when the store fails)."""
        if not spans:
            return
        insert_dead_letters(store, source, spans, token=token)
        for span in spans[:3]:
            logger.error("span %s of spooled batch %d is set aside as a dead letter: %s",
                         span.span_id or "?", span.batch_id, span.reason)
        self.dead_spans += len(spans)

    def _insert_rows(self, store: Store, group: Group, first: int, end: int) -> int:
        """Insert rows ``[first, end)`` of a group the store refused, halving ranges it refuses down to
        single spans, which become dead letters. Returns the rows stored; raises StoreError when the store fails.

        Each range is inserted under a token of its own derived from the group's, and the halving
        depends only on the rows, so a replay after a crash splits the same way and stores nothing twice.
        """
        assert self._column_types is not None
        payloads = self._spool.payloads(group.batch_ids)
        block = self._encoder.submit(payloads, self._column_types, (first, end)).result()
        token = f"{group.token}/{first}-{end}"
        self._set_aside(store, group.token, block.dead, token=f"{token}:dead")
        try:
            insert_block(store, block, dedup_token=token)
            return block.rows
        except RowsRefusedError as exc:
            if end - first > 1:
                middle = (first + end) // 2
                return self._insert_rows(store, group, first, middle) + self._insert_rows(store, group, middle, end)
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

            batch_id, ordinal = block.origins[0]
            request = ExportTraceServiceRequest.FromString(dict(payloads)[batch_id])
            reason = f"the store refused the span: {exc.__cause__ or exc}"
            self._set_aside(store, group.token, [dead_span(request, batch_id, ordinal, reason)], token=f"{token}:dead")
            return 0

    def _conversion_failed(self, head: _InFlight, exc: Exception) -> bool:
        """The conversion itself raised: try it again a few times, then set the group's batches aside."""
        head.errors += 1
        logger.exception("converting spooled group %s failed (attempt %d)", head.group.token, head.errors,
                         exc_info=exc)
        if head.errors < _CONVERSION_ATTEMPTS:
            head.future = self._submit(head.group)
            return False
        reason = f"the conversion failed {head.errors} times: {type(exc).__name__}: {exc}"
        for batch_id in head.group.batch_ids:
            self._spool.bury(batch_id, reason)
            self.buried_batches += 1
        self._spool.forget_group(head.group)
        self._inflight.popleft()
        return True

    def _insert_in_store(self, store: Store, head: _InFlight, *, draining: bool) -> bool:
        """Settle the head group's insert (converted by ClickHouse) once it has ended; on a refusal,
        queue the reference conversion.

        Never waits for the insert: while it runs, the loop goes on claiming groups as batches
        arrive, so the inserters are never idle while enough spans wait. The insert's end wakes the loop.
        """
        if head.insert is None:  # its last attempt failed: try again
            head.insert = self._submit_insert(store, head.group)
        if not head.insert.done():
            return False
        try:
            elapsed_s = head.insert.result()
        except NeedsReferenceConversion as exc:
            # A refusal is expected (values the SQL leaves to Python); any other error is worth a look.
            level = logging.DEBUG if exc.expected else logging.WARNING
            logger.log(level, "group %s goes through the Python conversion: %s", head.group.token, exc)
            self.reference_groups += 1
            head.insert = None
            head.future = self._submit(head.group)
            return True
        except StoreError as exc:
            head.insert = None
            return self._not_stored(head.group, exc)
        except BaseException:
            head.insert = None  # the next round tries the insert again, not the same failed future
            raise
        return self._stored(store, head.group.span_count, elapsed_s, draining=draining)

    def _stored(self, store: Store, rows: int, elapsed_s: float, *, draining: bool) -> bool:
        """The head group is in the store: forget it in the spool and move the pipeline on."""
        head = self._inflight[0]
        self._spool.confirm(head.group)
        self._succeeded(head.group, rows, elapsed_s)
        self._versions.after_insert(store)
        self._purge_due = True
        self._inflight.popleft()
        self._fill(store, draining=draining)
        return True

    def _not_stored(self, group: Group, exc: StoreError) -> bool:
        self._spool.note_attempt(group)
        self._failed(str(exc))
        return False

    def _submit_insert(self, store: Store, group: Group) -> Future[float]:
        if self._inserters is None:
            self._inserters = ThreadPoolExecutor(self._depth, thread_name_prefix="tracemill-inserter")
        insert = self._inserters.submit(self._insert_group, store, group)
        insert.add_done_callback(lambda _: self._wake.set())
        return insert

    def _insert_group(self, store: Store, group: Group) -> float:
        """On an inserter thread: the group's spooled requests into the store, on a connection of its own.
        Returns the seconds it took."""
        started = time.monotonic()
        try:
            connection = self._spare_stores.get_nowait()
        except queue.Empty:
            connection = store.another_connection()
            self._opened_stores.append(connection)
        try:
            insert_requests(connection, self._spool.iter_payloads(group.batch_ids), dedup_token=group.token)
        finally:
            self._spare_stores.put(connection)
        return time.monotonic() - started

    def _fill(self, store: Store, *, draining: bool) -> None:
        """Start encoding groups until the pipeline is full: replays first, then due new batches."""
        assert self._column_types is not None
        while len(self._inflight) < self._depth:
            # Converting a group takes several times its bytes: the groups in flight hold at most
            # batch_bytes together (or one larger batch alone), however large the spans are.
            room = self.batch_bytes - sum(entry.group.size for entry in self._inflight)
            if self._inflight and room <= 0:
                return
            if self._replay:
                group = self._replay.popleft()
            else:
                claimed = self._claim(draining=draining, max_bytes=room, alone_if_larger=not self._inflight)
                if claimed is None:
                    return
                group = claimed
            if self._in_store:
                self._inflight.append(_InFlight(group, insert=self._submit_insert(store, group)))
            else:
                self._inflight.append(_InFlight(group, future=self._submit(group)))

    def _submit(self, group: Group) -> Future[EncodedBlock]:
        assert self._column_types is not None
        return self._encoder.submit(self._spool.payloads(group.batch_ids), self._column_types)

    def _resubmit_all(self) -> None:
        for entry in self._inflight:
            if entry.future is not None:
                entry.future = self._submit(entry.group)

    def _claim(self, *, draining: bool, max_bytes: int, alone_if_larger: bool) -> Group | None:
        """Record the oldest waiting batches as a group once they are due: up to ``batch_spans`` spans
        and ``max_bytes`` bytes, or one larger batch when ``alone_if_larger``."""
        pending, size, oldest = self._spool.waiting()
        if not pending:
            return None
        waited_s = time.time() - oldest if oldest is not None else 0.0
        due = pending >= self.batch_spans or size >= self.batch_bytes or waited_s >= self.flush_interval_s or draining
        if not due:
            return None
        batches = self._spool.unclaimed(max_spans=self.batch_spans, max_bytes=max_bytes)
        if not batches or (batches[0].size > max_bytes and not alone_if_larger):
            return None
        return self._spool.record_group(batches)

    def _failed(self, message: str) -> None:
        now = time.monotonic()
        if self.last_error is None:
            logger.warning("spooled spans cannot be written yet: %s", message)
            self.failing_since = time.time()
            self._backoff_s = 0.5
        else:
            self._backoff_s = min(self.max_backoff_s, max(0.5, self._backoff_s * 2))
        self.last_error = message
        self._retry_at = now + self._backoff_s

    def _succeeded(self, group: Group, spans: int, elapsed_s: float) -> None:
        if self.last_error is not None:
            logger.info("the store accepts spans again; draining the spool")
        self.last_error = None
        self.failing_since = None
        self._backoff_s = 0.0
        self.inserted_spans += spans
        self.inserted_groups += 1
        if group.id in self._recovered:
            self.replayed_groups += 1
        self.last_insert_at = time.time()
        logger.debug("inserted %d spans (group %s) in %.3fs", spans, group.token, elapsed_s)
        self._notify_idle()

    def _notify_idle(self) -> None:
        with self._idle:
            self._idle.notify_all()
