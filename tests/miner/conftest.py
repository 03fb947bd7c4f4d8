"""Store fixtures for the miner's tests: real chDB, one directory per pytest process, a database per test
(or per module, for the corpus that several tests read)."""

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
    return tmp_path_factory.mktemp("chdb") / "store"


@pytest.fixture(scope="session")
def chdb_dsn(chdb_dir: Path) -> str:
    return f"chdb://{chdb_dir}"


def open_database(dsn: str, name: str) -> Store:
    slug = re.sub(r"[^A-Za-z0-9_]", "_", name)[:40]
    return Store.open(dsn, database=f"m{next(_counter)}_{slug}")


def drop(store: Store) -> None:
    if not store.closed:
        store.command(f"DROP DATABASE IF EXISTS `{store.database}`")
        store.close()


@pytest.fixture
def store(chdb_dsn: str, request: pytest.FixtureRequest) -> Iterator[Store]:
    opened = open_database(chdb_dsn, request.node.name)
    try:
        yield opened
    finally:
        drop(opened)


@pytest.fixture(scope="session")
def corpus():
    """The corpus helpers of ``corpus.py`` (loaded by path: tests are not a package)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("tracemill_miner_corpus", Path(__file__).with_name("corpus.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def new_database(chdb_dsn: str):
    """``new_database(name)`` opens a fresh database; the caller drops it with ``drop_database(store)``."""
    return lambda name: open_database(chdb_dsn, name)


@pytest.fixture(scope="session")
def drop_database():
    return drop


@pytest.fixture(scope="session")
def support():
    """The customer-service corpus of ``support_corpus.py``."""
    import importlib.util
    import sys

    path = Path(__file__).with_name("support_corpus.py")
    spec = importlib.util.spec_from_file_location("tracemill_miner_support_corpus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
