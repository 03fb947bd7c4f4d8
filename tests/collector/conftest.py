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


@pytest.fixture
def sdk_spans() -> list:
    """Finished SDK spans covering what the conversion must keep: a parent and a child, attributes of
    every type, events and links with attributes, an error status, a scope with a version."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "agent-svc", "deployment.env": "test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tracemill.tests", "1.2.3")
    with tracer.start_as_current_span("invoke_agent planner", kind=trace.SpanKind.INTERNAL) as parent:
        parent.set_attribute("gen_ai.operation.name", "invoke_agent")
        parent.set_attribute("gen_ai.agent.name", "planner")
        parent.set_attribute("tracemill.task.id", "task-7")
        with tracer.start_as_current_span(
            "chat gpt-4o",
            kind=trace.SpanKind.CLIENT,
            links=[trace.Link(parent.get_span_context(), {"link.reason": "caused_by", "link.n": 2})],
        ) as child:
            child.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.conversation.id": "conv-1",
                    "gen_ai.usage.input_tokens": 1234,
                    "gen_ai.usage.output_tokens": 56,
                    "gen_ai.request.temperature": 0.7,
                    "flag.true": True,
                    "flag.false": False,
                    "big.float": 1e21,
                    "whole.float": 3.0,
                    "tiny.float": 1.5e-7,
                    "list.str": ["a", 'b"c'],
                    "list.int": [1, -2, 3],
                    "list.float": [1.5, 2.0],
                    "list.bool": [True, False],
                    "text.unicode": "héllo ✓",
                }
            )
            child.add_event("gen_ai.choice", {"index": 0, "finish_reason": "stop", "score": 0.25})
            child.add_event("plain")
            child.set_status(trace.Status(trace.StatusCode.ERROR, "rate limited"))
    provider.shutdown()
    return list(memory.get_finished_spans())
