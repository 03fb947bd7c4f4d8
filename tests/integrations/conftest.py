"""Fixtures for the integration tests: a real local OpenAI-compatible server, instrumentation."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import tracemill

# The helper modules next to this file (the local server) are imported by name.
sys.path.insert(0, str(Path(__file__).parent))

from openai_server import OpenAIServer


@pytest.fixture(scope="session")
def _server_process() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def openai_server(_server_process: OpenAIServer) -> Iterator[OpenAIServer]:
    _server_process.reset()
    yield _server_process
    _server_process.reset()


@pytest.fixture
def instrument() -> Iterator[Callable[..., list[str]]]:
    """``tracemill.instrument``, undone after the test."""
    try:
        yield tracemill.instrument
    finally:
        tracemill.uninstrument()


@pytest.fixture(autouse=True)
def _no_instrumentation_failures(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test whose run logged a tracemill failure or an OTel context error ("Failed to detach context")."""
    caplog.set_level(logging.WARNING)
    yield
    bad = [f"{r.name}: {r.getMessage()}" for r in caplog.records
           if (r.name == "tracemill" and r.levelno >= logging.WARNING)
           or (r.name.startswith("opentelemetry.context") and r.levelno >= logging.ERROR)]
    assert not bad, bad
