"""The trace store: one clickhouse-connect client over an embedded chDB directory or a ClickHouse server.

Both forms speak the same SQL through the same client API, so everything above this module
(receiver, miner, trainer, CLI) has one code path. The seam is small on purpose: ``query``,
``command``, ``insert``, ``insert_spans`` and ``close``.

chDB rules this module turns into clear errors:

- one process per store directory (another process holding it raises :class:`StoreLockedError`);
- one store directory per process (opening a second one while the first is open raises
  :class:`StoreError`; tests share one directory and isolate themselves by database).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tracemill.collector.store import schema
from tracemill.collector.store.columns import SPAN_COLUMNS
from tracemill.collector.store.dsn import StoreDsn, default_store_dsn, parse_dsn
from tracemill.deps import require
from tracemill.errors import SchemaError, StoreError, StoreLockedError

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client
    from clickhouse_connect.driver.query import QueryResult
    from clickhouse_connect.driver.summary import QuerySummary

__all__ = ["Store", "using_store"]

logger = logging.getLogger(__name__)


class Store:
    """A connection to the trace store. Open it with :meth:`Store.open`; close it (or use ``with``).

    Safe to share between threads: clickhouse-connect serializes calls on a chDB handle, and the
    server client is opened without an HTTP session so concurrent queries do not collide.
    """

    def __init__(self, client: Client, dsn: StoreDsn) -> None:
        self._client = client
        self._dsn = dsn
        self._closed = False
        self._span_types: list[str] | None = None
        self._span_types_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        dsn: str | None = None,
        *,
        database: str | None = None,
        cluster: str | None = None,
        migrate: bool = True,
        ttl_days: int | None = None,
    ) -> Store:
        """Connect to the store named by ``dsn`` (default: :func:`default_store_dsn`) and migrate its schema.

        ``database`` overrides the DSN's database. ``cluster`` and ``ttl_days`` shape the tables
        when they are created (see :mod:`tracemill.collector.store.schema`). With ``migrate=False`` the
        schema is neither created nor migrated, and the database must exist.
        """
        parsed = parse_dsn(default_store_dsn() if dsn is None else dsn, database=database)
        client = _connect(parsed)
        store = cls(client, parsed)
        try:
            if migrate:
                # The database must exist before the client selects it (chDB applies USE per query).
                options = schema.SchemaOptions(database=parsed.database, cluster=cluster, ttl_days=ttl_days)
                store.command(schema.bootstrap_statements(options)[0])
            elif not store.query(
                "SELECT count() FROM system.databases WHERE name = {db:String}", {"db": parsed.database}
            ).result_rows[0][0]:
                raise SchemaError(
                    f"database {parsed.database!r} does not exist in {parsed.location}; "
                    "open the store with migrate=True to create it"
                )
            client.database = parsed.database
            if migrate:
                schema.migrate(store, cluster=cluster, ttl_days=ttl_days)
        except BaseException:
            store.close()
            raise
        return store

    # -- what the store is ----------------------------------------------------------------------

    @property
    def dsn(self) -> StoreDsn:
        return self._dsn

    @property
    def database(self) -> str:
        return self._dsn.database

    @property
    def location(self) -> str:
        """The directory or server URL (password hidden), for messages."""
        return self._dsn.location

    @property
    def embedded(self) -> bool:
        return self._dsn.embedded

    @property
    def client(self) -> Client:
        """The underlying clickhouse-connect client, for what the small seam does not cover (DataFrames, Arrow)."""
        self._check_open()
        return self._client

    def another_connection(self) -> Store:
        """A second client of the same store and database, schema untouched.

        A client runs one call at a time (chDB serializes the calls on its handle), so a thread that
        must not wait behind the others' queries, like each of the writer's inserters, takes its own.
        """
        self._check_open()
        client = _connect(self._dsn)
        client.database = self.database
        return Store(client, self._dsn)

    def release_free_memory(self) -> None:
        """Hand the embedded engine's freed memory back to the system (a no-op for a server).

        chDB's allocator keeps what a query freed for reuse, so after a burst of large inserts the
        process would stay at the size of the largest ones put together. The writer calls this when
        it has caught up, not after every insert: under sustained load the memory is reused anyway,
        and handing it back only to fault it in again slowed the collector benchmark.
        """
        if not self.embedded:
            return
        try:
            self.command("SYSTEM JEMALLOC PURGE")
        except StoreError as exc:  # an engine built without jemalloc: nothing to hand back
            logger.debug("the store cannot purge its allocator: %s", exc)

    # -- the seam -------------------------------------------------------------------------------

    def query(self, sql: str, parameters: dict[str, Any] | Sequence[Any] | None = None) -> QueryResult:
        """Run a SELECT; ``{name:Type}`` placeholders are bound server-side from ``parameters``."""
        self._check_open()
        try:
            return self._client.query(sql, parameters=parameters)
        except _driver_errors() as exc:
            raise StoreError(f"query failed in {self.location}: {exc}") from exc

    def query_arrow(self, sql: str, parameters: dict[str, Any] | Sequence[Any] | None = None) -> Any:
        """Run a SELECT and return a ``pyarrow.Table``: array and numeric columns arrive as contiguous buffers, not
        one Python object per value."""
        self._check_open()
        try:
            return self._client.query_arrow(sql, parameters=parameters)
        except _driver_errors() as exc:
            raise StoreError(f"query failed in {self.location}: {exc}") from exc

    def command(self, sql: str, parameters: dict[str, Any] | Sequence[Any] | None = None) -> Any:
        """Run a statement that returns no rows (DDL, ALTER, DELETE) or a single value."""
        self._check_open()
        try:
            return self._client.command(sql, parameters=parameters)
        except _driver_errors() as exc:
            raise StoreError(f"command failed in {self.location}: {exc}") from exc

    def insert(
        self,
        table: str,
        data: Sequence[Sequence[Any]],
        column_names: Sequence[str],
        *,
        column_oriented: bool = False,
        settings: dict[str, Any] | None = None,
    ) -> QuerySummary:
        """Insert rows (or columns, with ``column_oriented=True``) into ``table`` of the store's database."""
        self._check_open()
        try:
            return self._client.insert(
                table,
                data,
                column_names=list(column_names),
                database=self.database,
                column_oriented=column_oriented,
                settings=settings,
            )
        except _driver_errors() as exc:
            raise StoreError(f"insert into {table} failed in {self.location}: {exc}") from exc

    def insert_spans(self, columns: Sequence[Sequence[Any]], *, dedup_token: str | None = None) -> int:
        """Insert span rows built by :mod:`tracemill.collector.ingest.rows` (column-oriented, ``SPAN_COLUMNS`` order).

        With ``dedup_token``, inserting the same batch again under the same token stores nothing,
        so a replay after a crash never doubles spans. Returns the number of rows sent.
        """
        self._check_open()
        if len(columns) != len(SPAN_COLUMNS):
            raise ValueError(
                f"insert_spans takes {len(SPAN_COLUMNS)} columns in SPAN_COLUMNS order (got {len(columns)})"
            )
        count = len(columns[0])
        if count == 0:
            return 0
        settings = {"insert_deduplication_token": dedup_token} if dedup_token else None
        try:
            self._client.insert(
                schema.SPANS_TABLE,
                columns,
                column_names=SPAN_COLUMNS,
                database=self.database,
                column_type_names=self._span_column_types(),
                column_oriented=True,
                settings=settings,
            )
        except _driver_errors() as exc:
            raise StoreError(f"insert of {count} spans failed in {self.location}: {exc}") from exc
        return count

    def close(self) -> None:
        """Release the client; for chDB this releases the directory for other processes once no Store holds it."""
        if self._closed:
            return
        self._closed = True
        try:
            self._client.close()
        except Exception as exc:  # closing must not mask the error that led here
            logger.debug("closing the store client failed: %s", exc)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Store {self.location} database={self.database} {state}>"

    # -- internals ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store {self.location} is closed; open it again with Store.open()")

    def _span_column_types(self) -> list[str]:
        # Read once, so each batch skips a DESCRIBE round trip; taken from the live table, so a table
        # created by an older exporter (Duration Int64) is written with its own types.
        if self._span_types is None:
            with self._span_types_lock:
                if self._span_types is None:
                    rows = self.query(
                        "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}",
                        {"db": self.database, "t": schema.SPANS_TABLE},
                    ).result_rows
                    types: dict[str, str] = {name: type_ for name, type_ in rows}
                    missing = [c for c in SPAN_COLUMNS if c not in types]
                    if missing:
                        table = f"{self.database}.{schema.SPANS_TABLE}"
                        raise StoreError(
                            f"table {table} in {self.location} lacks column(s) {', '.join(missing)}; "
                            "open the store with migrate=True to create it"
                        )
                    self._span_types = [types[c] for c in SPAN_COLUMNS]
        return self._span_types


@contextmanager
def using_store(store: Store | str | None) -> Iterator[Store]:
    """``store`` as is when it is open, else the store at that DSN (None: the default) for the block, closed after.

    Library entry points (mining, feedback, export) take either, so a caller holding a Store reuses it.
    """
    if isinstance(store, Store):
        yield store
        return
    opened = Store.open(store)
    try:
        yield opened
    finally:
        opened.close()


def _driver_errors() -> type[Exception]:
    from clickhouse_connect.driver.exceptions import ClickHouseError

    return ClickHouseError


def _connect(dsn: StoreDsn) -> Client:
    cc = require("clickhouse_connect", extra="server", feature="the trace store")
    if dsn.embedded:
        require("chdb", extra="server", feature="the embedded (chDB) store")
        assert dsn.path is not None
        try:
            os.makedirs(dsn.path, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store directory {dsn.path}: {exc}") from exc
        try:
            return cc.get_client(interface="chdb", path=dsn.path)
        except Exception as exc:
            raise _embedded_open_error(dsn.path, exc) from exc
    assert dsn.url is not None
    scheme = dsn.url.partition(":")[0]
    try:
        # No HTTP session: a session admits one query at a time, and the store is shared by threads.
        return cc.get_client(dsn=dsn.url, interface=scheme, autogenerate_session_id=False)
    except Exception as exc:
        raise StoreError(f"cannot connect to the ClickHouse server at {dsn.location}: {exc}") from exc


def _embedded_open_error(path: str, exc: Exception) -> StoreError:
    message = str(exc)
    holder = _lock_holder(path)
    if holder is not None or "Cannot lock file" in message:
        who = f"another process (pid {holder})" if holder else "another process"
        return StoreLockedError(
            f"the embedded store {path} is in use by {who}; chDB lets one process open a store "
            "directory at a time. Stop that process, or, if it is `tracemill serve`, send this "
            "work to that server instead of opening the store directly."
        )
    other = re.search(r"initialized with path '([^']*)'", message)
    if other:
        return StoreError(
            f"cannot open the embedded store {path}: this process already has the embedded store "
            f"{other.group(1)} open, and chDB allows one store directory per process. Close every "
            "Store on that directory first, or use the same DSN."
        )
    return StoreError(f"cannot open the embedded store {path}: {message}")


def _lock_holder(path: str) -> str | None:
    """The pid holding the chDB directory lock, '' if held but unknown, None if not held.

    ClickHouse keeps an flock on ``<dir>/status`` while the engine runs and writes its pid there.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: fall back on the error text
        return None
    status = os.path.join(path, "status")
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            with open(status, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if line.startswith("PID:"):
                        return line[4:].strip()
            return ""
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
