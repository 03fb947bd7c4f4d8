"""Fixtures shared by every test package.

``spans`` gives a tracing pipeline that exports synchronously into the OTel SDK's own
in-memory exporter, so a test can read back exactly the spans a call produced.

``store`` is a migrated store backed by real chDB. chDB runs one engine per process on one directory:
while any client is open, opening a second directory raises. So the whole pytest process shares one
directory (``chdb_dir``) and each test gets its own database in it, dropped and closed afterwards. A test
that needs another directory (the lock test) must run with no Store open.

``servers`` collects the ``tracemill serve`` processes a test starts (see ``tests/servers.py``) and stops them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tracemill
from tracemill.collector.store.store import Store
from tracemill.tracer.causality import TOOL_CALLS
from tracemill.tracer.logs import reset_log_once

from .servers import ServerProcess

_counter = itertools.count()


class SpanRecorder:
    """The finished spans of one test, with lookups by name."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter

    @property
    def finished(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> ReadableSpan:
        matches = [s for s in self.finished if s.name == name]
        assert len(matches) == 1, f"expected one span named {name!r}, got {[s.name for s in self.finished]}"
        return matches[0]

    def names(self) -> list[str]:
        return [s.name for s in self.finished]

    def clear(self) -> None:
        self.exporter.clear()

    def reinit(self, **settings) -> None:
        """Re-initialize tracing with ``settings`` (a fresh exporter: shutdown stops the old one)."""
        self.exporter = InMemorySpanExporter()
        tracemill.init(processor=SimpleSpanProcessor(self.exporter), service_name="tracemill-tests", env={},
                       **settings)


@pytest.fixture
def spans() -> Iterator[SpanRecorder]:
    exporter = InMemorySpanExporter()
    tracemill.init(processor=SimpleSpanProcessor(exporter), service_name="tracemill-tests", env={})
    try:
        yield SpanRecorder(exporter)
    finally:
        tracemill.shutdown()
        TOOL_CALLS.clear()
        reset_log_once()


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one chDB directory of this pytest process."""
    return tmp_path_factory.mktemp("chdb") / "store"


@pytest.fixture(scope="session")
def chdb_dsn(chdb_dir: Path) -> str:
    return f"chdb://{chdb_dir}"


def _database_name(name: str) -> str:
    """A database name unique to this process, readable in failure output."""
    return f"t{next(_counter)}_" + re.sub(r"[^A-Za-z0-9_]", "_", name)[:40]


def _drop(store: Store) -> None:
    if not store.closed:
        store.command(f"DROP DATABASE IF EXISTS `{store.database}`")
        store.close()


@pytest.fixture
def database_name(request: pytest.FixtureRequest) -> str:
    """A database name unique to this test."""
    return _database_name(request.node.name)


@pytest.fixture
def store(chdb_dsn: str, database_name: str) -> Iterator[Store]:
    """A migrated Store on the shared chDB directory, in a fresh database of its own."""
    opened = Store.open(chdb_dsn, database=database_name)
    try:
        yield opened
    finally:
        _drop(opened)


@pytest.fixture(scope="session")
def new_database(chdb_dsn: str) -> Callable[[str], Store]:
    """``new_database(name)`` opens a fresh database; the caller drops it with ``drop_database(store)``."""
    return lambda name: Store.open(chdb_dsn, database=_database_name(name))


@pytest.fixture(scope="session")
def drop_database() -> Callable[[Store], None]:
    return _drop


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    """Collects the servers a test starts and stops them afterwards, whatever happened."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        if server.alive():
            server.stop()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's chromium, driven by Playwright's Python package, shared by every browser test of the session
    (Playwright's sync API runs one instance per process)."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run scripts/setup.sh (apt-get install chromium)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
