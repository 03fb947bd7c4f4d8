"""tracemill.run: one trace per run, with task and conversation ids on every span."""

from __future__ import annotations

import asyncio
import json

import pytest
from opentelemetry.trace import StatusCode, format_trace_id

import tracemill


@tracemill.tool
def act(i):
    return i


def test_bare_loop_inside_run_is_one_trace_under_the_run_span(spans):
    with tracemill.run("support", task_id="task-9", conversation_id="conv-1", user_id="u1",
                       metadata={"agent_version": "1.2", "tags": ["a"]}, input="help me") as run:
        for i in range(3):
            act(i)
        run.set_output("done")
    root = spans.named("invoke_workflow support")
    assert root.parent is None
    assert root.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert root.attributes["tracemill.task.id"] == "task-9"
    assert root.attributes["gen_ai.conversation.id"] == "conv-1"
    assert root.attributes["user.id"] == "u1"
    assert root.attributes["tracemill.metadata.agent_version"] == "1.2"
    assert json.loads(root.attributes["tracemill.metadata.tags"]) == ["a"]
    assert json.loads(root.attributes["tracemill.input"]) == "help me"
    assert json.loads(root.attributes["tracemill.output"]) == "done"
    assert run.trace_id == format_trace_id(root.context.trace_id)
    tools = [s for s in spans.finished if s.name == "execute_tool act"]
    assert len(tools) == 3
    for tool in tools:
        assert tool.parent.span_id == root.context.span_id
        assert tool.attributes["tracemill.task.id"] == "task-9"
        assert tool.attributes["gen_ai.conversation.id"] == "conv-1"


def test_consecutive_runs_are_separate_traces(spans):
    for _ in range(2):
        with tracemill.run("r"):
            act(1)
    assert len({s.context.trace_id for s in spans.finished}) == 2


def test_run_records_exception_and_reraises(spans):
    with pytest.raises(RuntimeError), tracemill.run("failing"):
        raise RuntimeError("agent crashed")
    span = spans.named("invoke_workflow failing")
    assert span.status.status_code is StatusCode.ERROR


def test_async_run_and_new_trace(spans):
    async def main():
        with tracemill.run("outer"):
            async with tracemill.run("inner", new_trace=True):
                act(1)

    asyncio.run(main())
    outer, inner = spans.named("invoke_workflow outer"), spans.named("invoke_workflow inner")
    assert inner.parent is None
    assert inner.context.trace_id != outer.context.trace_id
    assert spans.named("execute_tool act").parent.span_id == inner.context.span_id
