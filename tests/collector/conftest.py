"""Fixtures of the collector's tests (the chDB ``store`` fixtures are in tests/conftest.py)."""

from __future__ import annotations

import pytest


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
