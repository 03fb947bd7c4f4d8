"""Fixtures of the miner's tests: the corpus helpers (the chDB ``store``, ``new_database`` and
``drop_database`` fixtures are in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


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
