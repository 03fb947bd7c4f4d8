"""The durable spool between the OTLP receiver and the store: SQLite in WAL mode, one row per batch.

A request is acknowledged once its batch is committed here, so the receiver never waits for
ClickHouse and nothing acknowledged is lost when ClickHouse is down or the process is killed.

Why raw protobuf and not converted rows: the receiver has already parsed and validated the
bytes, so storing them costs one ``INSERT`` of a blob (no re-encoding on the request path),
keeps every field exactly as sent, and leaves the one conversion to rows in the writer, where
several batches are merged into one column-oriented insert.

Exactly-once replays. Batch ids come from ``AUTOINCREMENT`` (never reused, even after deletes)
and the spool has a random id of its own, so ``{spool_id}:{first}-{last}`` names a set of
batches uniquely, for ever, across every collector writing to one ClickHouse. The writer
*records* a group (its batches and that token) in one transaction before inserting it, inserts
it with the token as ClickHouse's ``insert_deduplication_token``, and deletes it only after the
insert is confirmed. A crash anywhere in between leaves the group recorded; on restart the
writer replays exactly that group with the same token, and ClickHouse drops the copy it already
holds. A group of one batch is named by that batch's id.

Concurrency: one connection guarded by a lock. SQLite admits one writer at a time anyway, and
every statement here is short; a second process on the same spool is refused by an ``flock``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from tracemill import config
from tracemill.errors import ConfigError, SpoolError, SpoolFullError, SpoolLockedError

__all__ = ["Batch", "Group", "Spool", "SpoolError", "SpoolFullError", "SpoolLockedError", "SpoolStats"]

SyncMode = Literal["full", "normal"]

logger = logging.getLogger(__name__)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS batches (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at REAL NOT NULL,
        span_count INTEGER NOT NULL,
        size INTEGER NOT NULL,
        payload BLOB NOT NULL
    )""",
    # A group is the id range of the batches it holds. The writer always claims the oldest
    # unclaimed batches and ids only grow, so a range never gains members later, and a batch is
    # unclaimed exactly when its id is above every recorded range. Membership is never written
    # into the batch rows: updating a row would make SQLite rewrite its whole payload.
    """CREATE TABLE IF NOT EXISTS groups (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        token TEXT NOT NULL UNIQUE,
        first_batch INTEGER NOT NULL,
        last_batch INTEGER NOT NULL,
        created_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
    )""",
    # Batches the writer could not turn into rows at all: kept, never retried, reported by status.
    """CREATE TABLE IF NOT EXISTS dead (
        id INTEGER PRIMARY KEY,
        received_at REAL NOT NULL,
        span_count INTEGER NOT NULL,
        payload BLOB NOT NULL,
        reason TEXT NOT NULL,
        failed_at REAL NOT NULL
    )""",
)

_UNCLAIMED = "id > (SELECT COALESCE(MAX(last_batch), 0) FROM groups)"
_SHRINK_INTERVAL_S = 10.0
_SHRINK_FREE_BYTES = 1 << 20


@dataclass(frozen=True)
class Batch:
    """One received request, as spooled."""

    id: int
    span_count: int
    size: int
    received_at: float


@dataclass(frozen=True)
class Group:
    """Batches inserted together under one deduplication token."""

    id: int
    token: str
    batch_ids: tuple[int, ...]
    span_count: int
    attempts: int = 0
    size: int = 0
    """Bytes of its batches' payloads."""


@dataclass(frozen=True)
class SpoolStats:
    batches: int
    spans: int
    bytes: int
    groups: int
    dead_batches: int
    oldest_received_at: float | None
    max_bytes: int


class Spool:
    """The spool in one directory. Open with :meth:`open`; thread-safe."""

    def __init__(self, directory: str, connection: sqlite3.Connection, lock_fd: int, *, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._db = connection
        self._lock_fd = lock_fd
        self._lock = threading.Lock()
        self._closed = False
        self._shrunk_at = -_SHRINK_INTERVAL_S
        self.spool_id = self._meta_value("spool_id", lambda: uuid.uuid4().hex)
        # Kept in memory so the receiver's bound check costs nothing; the rows are the truth on open.
        row = self._db.execute("SELECT COALESCE(SUM(size), 0), COALESCE(SUM(span_count), 0) FROM batches").fetchone()
        self._pending_bytes = int(row[0])
        self._pending_spans = int(row[1])

    @classmethod
    def open(cls, directory: str, *, max_bytes: int = 1 << 30, synchronous: SyncMode = "full") -> Spool:
        """Open (creating if needed) the spool in ``directory`` and lock it for this process.

        ``synchronous="full"`` makes every acknowledged batch survive a power loss; ``"normal"``
        survives a crash of the process but not of the machine, and commits faster.
        """
        if max_bytes < 1:
            raise ConfigError(f"spool max_bytes must be a positive number of bytes (got {max_bytes!r})")
        if synchronous not in ("full", "normal"):
            raise ConfigError(f"spool synchronous must be 'full' or 'normal' (got {synchronous!r})")
        directory = os.path.abspath(directory)
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"cannot create the spool directory {directory}: {exc}") from exc
        lock_fd = _lock_directory(directory)
        try:
            connection = sqlite3.connect(
                os.path.join(directory, "spool.sqlite3"),
                isolation_level=None,  # transactions are explicit: BEGIN IMMEDIATE ... COMMIT
                check_same_thread=False,
                timeout=30.0,
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={synchronous.upper()}")
            for statement in _SCHEMA:
                connection.execute(statement)
        except sqlite3.Error as exc:
            os.close(lock_fd)
            raise SpoolError(f"cannot open the spool database in {directory}: {exc}") from exc
        return cls(directory, connection, lock_fd, max_bytes=max_bytes)

    # -- the receiver's side ----------------------------------------------------------------------

    def append(self, payload: bytes, span_count: int) -> int:
        """Store one batch durably and return its id; raise :class:`SpoolFullError` when over the bound."""
        size = len(payload)
        with self._lock:
            self._check_open()
            if self._pending_bytes and self._pending_bytes + size > self.max_bytes:
                raise SpoolFullError(
                    f"the spool holds {self._pending_bytes} bytes of its {self.max_bytes}-byte bound"
                )
            try:
                cursor = self._db.execute(
                    "INSERT INTO batches (received_at, span_count, size, payload) VALUES (?, ?, ?, ?)",
                    (time.time(), span_count, size, payload),
                )
            except sqlite3.Error as exc:
                raise SpoolError(f"cannot write to the spool in {self.directory}: {exc}") from exc
            self._pending_bytes += size
            self._pending_spans += span_count
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def pending_spans(self) -> int:
        return self._pending_spans

    # -- the writer's side ------------------------------------------------------------------------

    def recorded_groups(self) -> list[Group]:
        """Groups recorded but not confirmed, oldest first: the writer replays these before anything new."""
        with self._lock:
            self._check_open()
            groups = self._db.execute(
                "SELECT id, token, first_batch, last_batch, attempts FROM groups ORDER BY id"
            ).fetchall()
            result = []
            for group_id, token, first, last, attempts in groups:
                members = self._db.execute(
                    "SELECT id, span_count, size FROM batches WHERE id BETWEEN ? AND ? ORDER BY id", (first, last)
                ).fetchall()
                result.append(
                    Group(
                        id=group_id,
                        token=token,
                        batch_ids=tuple(m[0] for m in members),
                        span_count=sum(m[1] for m in members),
                        attempts=attempts,
                        size=sum(m[2] for m in members),
                    )
                )
            return result

    def unclaimed(self, *, max_spans: int, max_bytes: int | None = None) -> list[Batch]:
        """The oldest batches not yet in a group, up to ``max_spans`` spans and ``max_bytes`` bytes
        (always at least one batch)."""
        with self._lock:
            self._check_open()
            rows = self._db.execute(
                f"SELECT id, span_count, size, received_at FROM batches WHERE {_UNCLAIMED} ORDER BY id LIMIT 10000"
            ).fetchall()
        batches: list[Batch] = []
        spans = total = 0
        for batch_id, span_count, size, received_at in rows:
            if batches and (spans + span_count > max_spans or (max_bytes is not None and total + size > max_bytes)):
                break
            batches.append(Batch(batch_id, span_count, size, received_at))
            spans += span_count
            total += size
        return batches

    def oldest_unclaimed(self) -> tuple[int, float | None]:
        """How many spans wait outside any group, and when the oldest of them arrived."""
        count, _, oldest = self.waiting()
        return count, oldest

    def waiting(self) -> tuple[int, int, float | None]:
        """Spans and bytes waiting outside any group, and when the oldest of them arrived."""
        with self._lock:
            self._check_open()
            count, size, oldest = self._db.execute(
                "SELECT COALESCE(SUM(span_count), 0), COALESCE(SUM(size), 0), MIN(received_at) "
                f"FROM batches WHERE {_UNCLAIMED}"
            ).fetchone()
        return int(count), int(size), oldest

    def payloads(self, batch_ids: Sequence[int]) -> list[tuple[int, bytes]]:
        """The stored payloads of ``batch_ids``, in id order."""
        with self._lock:
            self._check_open()
            out: list[tuple[int, bytes]] = []
            for chunk in _chunks(batch_ids, 500):
                marks = ",".join("?" * len(chunk))
                out += self._db.execute(
                    f"SELECT id, payload FROM batches WHERE id IN ({marks}) ORDER BY id", tuple(chunk)
                ).fetchall()
            return out

    def iter_payloads(self, batch_ids: Sequence[int]) -> Iterator[bytes]:
        """The stored payloads of ``batch_ids`` in id order, read one at a time (one in memory at a time)."""
        for batch_id in sorted(batch_ids):
            with self._lock:
                self._check_open()
                row = self._db.execute("SELECT payload FROM batches WHERE id = ?", (batch_id,)).fetchone()
            if row is not None:
                yield row[0]

    def record_group(self, batches: Sequence[Batch]) -> Group:
        """Durably tie ``batches`` (the oldest unclaimed, from :meth:`unclaimed`) together under one token.

        Called before inserting them; the token is ``{spool_id}:{first id}-{last id}``.
        """
        if not batches:
            raise ValueError("a group needs at least one batch")
        ids = [b.id for b in batches]
        first, last = min(ids), max(ids)
        token = f"tracemill:{self.spool_id}:{first}-{last}"
        with self._lock, self._transaction():
            claimed_through = self._db.execute("SELECT COALESCE(MAX(last_batch), 0) FROM groups").fetchone()[0]
            if first <= claimed_through:
                raise SpoolError(f"batch {first} is already in a group; claim batches with unclaimed()")
            cursor = self._db.execute(
                "INSERT INTO groups (token, first_batch, last_batch, created_at) VALUES (?, ?, ?, ?)",
                (token, first, last, time.time()),
            )
            group_id = cursor.lastrowid
            assert group_id is not None
        return Group(
            id=group_id,
            token=token,
            batch_ids=tuple(ids),
            span_count=sum(b.span_count for b in batches),
            size=sum(b.size for b in batches),
        )

    def note_attempt(self, group: Group) -> None:
        """Count a failed insert of ``group`` (shown by status; the group stays for the next attempt)."""
        with self._lock:
            self._check_open()
            self._db.execute("UPDATE groups SET attempts = attempts + 1 WHERE id = ?", (group.id,))

    def confirm(self, group: Group) -> None:
        """The group is in the store: forget it and its batches."""
        with self._lock, self._transaction():
            first, last = self._db.execute(
                "SELECT first_batch, last_batch FROM groups WHERE id = ?", (group.id,)
            ).fetchone()
            size, spans = self._db.execute(
                "SELECT COALESCE(SUM(size), 0), COALESCE(SUM(span_count), 0) FROM batches WHERE id BETWEEN ? AND ?",
                (first, last),
            ).fetchone()
            self._db.execute("DELETE FROM batches WHERE id BETWEEN ? AND ?", (first, last))
            self._db.execute("DELETE FROM groups WHERE id = ?", (group.id,))
        self._pending_bytes -= int(size)
        self._pending_spans -= int(spans)
        with self._lock:
            self._shrink_if_empty()

    def bury(self, batch_id: int, reason: str) -> None:
        """Move a batch that can never become rows out of the way, keeping its bytes for inspection."""
        with self._lock, self._transaction():
            row = self._db.execute(
                "SELECT received_at, span_count, size, payload FROM batches WHERE id = ?", (batch_id,)
            ).fetchone()
            if row is None:
                return
            received_at, span_count, size, payload = row
            self._db.execute(
                "INSERT OR REPLACE INTO dead (id, received_at, span_count, payload, reason, failed_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (batch_id, received_at, span_count, payload, reason[:2000], time.time()),
            )
            self._db.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
        self._pending_bytes -= int(size)
        self._pending_spans -= int(span_count)
        with self._lock:
            self._shrink_if_empty()

    def forget_group(self, group: Group) -> None:
        """Drop the record of a group whose batches were all buried."""
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM groups WHERE id = ?", (group.id,))

    # -- what is in it ----------------------------------------------------------------------------

    def stats(self) -> SpoolStats:
        with self._lock:
            self._check_open()
            batches, oldest = self._db.execute("SELECT COUNT(*), MIN(received_at) FROM batches").fetchone()
            groups = self._db.execute("SELECT COUNT(*) FROM groups").fetchone()[0]
            dead = self._db.execute("SELECT COUNT(*) FROM dead").fetchone()[0]
        return SpoolStats(
            batches=int(batches),
            spans=self._pending_spans,
            bytes=self._pending_bytes,
            groups=int(groups),
            dead_batches=int(dead),
            oldest_received_at=oldest,
            max_bytes=self.max_bytes,
        )

    def close(self) -> None:
        """Close the database and release the lock; the lock file no longer names this process."""
        with self._lock:
            if self._closed:
                return
            self._shrink_if_empty(force=True)
            self._closed = True
            try:
                self._db.close()
            finally:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._lock_fd, 0)
                os.close(self._lock_fd)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise SpoolError(f"the spool in {self.directory} is closed")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._check_open()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _shrink_if_empty(self, *, force: bool = False) -> None:
        """Give the disk back once the spool is empty (call holding ``self._lock``).

        SQLite keeps the pages of deleted batches for reuse, and the WAL keeps its size, so a spool
        that once held a burst stays that large on disk. When no batch waits, the WAL is checkpointed
        and truncated and, if at least 1 MiB and half the file are free, the file is rewritten
        (``VACUUM``). At most every ``_SHRINK_INTERVAL_S`` unless ``force``.
        """
        if self._pending_spans or self._closed:
            return
        now = time.monotonic()
        if not force and now - self._shrunk_at < _SHRINK_INTERVAL_S:
            return
        try:
            if self._db.execute("SELECT EXISTS (SELECT 1 FROM batches)").fetchone()[0]:
                return
            page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
            pages = self._db.execute("PRAGMA page_count").fetchone()[0]
            free_pages = self._db.execute("PRAGMA freelist_count").fetchone()[0]
            # Rewriting costs the size of what stays (set-aside batches): only when most of the file is free.
            if free_pages * page_size >= _SHRINK_FREE_BYTES and free_pages * 2 >= pages:
                self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:  # only disk space is at stake: say so, go on
            logger.warning("could not shrink the empty spool in %s: %s", self.directory, exc)
        self._shrunk_at = now

    def _meta_value(self, key: str, default: object) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is not None:
            return str(row[0])
        value = default() if callable(default) else str(default)
        self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
        return str(self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])


def _chunks(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _lock_directory(directory: str) -> int:
    path = os.path.join(directory, "lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process guard
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        os.close(fd)
        who = f"process {holder}" if holder else "another process"
        raise SpoolLockedError(
            f"the spool {directory} is in use by {who}; each `tracemill serve` needs a spool of its own. "
            f"Stop that server, or give this one another directory with --spool ({config.SPOOL.name})."
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
    return fd
