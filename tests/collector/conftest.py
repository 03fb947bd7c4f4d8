"""Store fixtures backed by real chDB.

chDB runs one engine per process on one directory: while any client is open, opening a second
directory raises. So the whole pytest process shares one directory (``chdb_dir``) and each test
gets its own database in it (``store``), dropped afterwards. A test that needs another
directory (the lock test) must run with no Store open.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracemill.collector.store import Store

_counter = itertools.count()


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one chDB directory of this pytest process."""
    return tmp_path_factory.mktemp("chdb") / "store"


@pytest.fixture
def chdb_dsn(chdb_dir: Path) -> str:
    return f"chdb://{chdb_dir}"


@pytest.fixture
def database_name(request: pytest.FixtureRequest) -> str:
    """A database name unique to this test, readable in failure output."""
    slug = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:40]
    return f"t{next(_counter)}_{slug}"


@pytest.fixture
def store(chdb_dsn: str, database_name: str) -> Iterator[Store]:
    """A migrated Store on the shared chDB directory, in a fresh database of its own."""
    opened = Store.open(chdb_dsn, database=database_name)
    try:
        yield opened
    finally:
        if not opened.closed:
            opened.command(f"DROP DATABASE IF EXISTS `{database_name}`")
            opened.close()
