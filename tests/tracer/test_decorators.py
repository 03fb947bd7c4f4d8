"""Lifecycle of decorated callables: one span per call, ended exactly once on every exit path."""

from __future__ import annotations

import functools
import inspect
import json

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import tracemill


class Boom(Exception):
    pass


def test_sync_function_return_records_one_span_with_input_and_output(spans):
    @tracemill.step
    def add(a, b=2):
        return a + b

    assert add(1, b=5) == 6
    span = spans.named("add")
    assert json.loads(span.attributes["tracemill.input"]) == {"a": 1, "b": 5}
    assert span.attributes["tracemill.output"] == "6"
    assert span.attributes["tracemill.step.kind"] == "step"
    assert span.status.status_code is StatusCode.UNSET
    assert span.kind is SpanKind.INTERNAL


def test_sync_function_exception_is_reraised_unchanged_and_recorded(spans):
    error = Boom("bad input")

    @tracemill.step(name="fails")
    def fails():
        raise error

    with pytest.raises(Boom) as caught:
        fails()
    assert caught.value is error
    span = spans.named("fails")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "Boom: bad input"
    assert span.attributes["error.type"] == f"{__name__}.Boom"
    assert [e.name for e in span.events] == ["exception"]


def test_builtin_exception_error_type_is_unqualified(spans):
    @tracemill.tool
    def divide(a, b):
        return a / b

    with pytest.raises(ZeroDivisionError):
        divide(1, 0)
    assert spans.named("execute_tool divide").attributes["error.type"] == "ZeroDivisionError"


def test_decorated_function_keeps_signature_docstring_and_wraps_metadata():
    def search(query: str, k: int = 3) -> list[str]:
        """Search the index."""
        return []

    traced = tracemill.tool(search)
    assert inspect.signature(traced) == inspect.signature(search)
    assert traced.__doc__ == "Search the index."
    assert traced.__name__ == "search"
    assert traced.__wrapped__ is search
    assert functools.WRAPPER_ASSIGNMENTS  # the attributes functools.wraps copies are all reachable
    for attr in ("__module__", "__qualname__", "__annotations__"):
        assert getattr(traced, attr) == getattr(search, attr)


def test_decorator_with_arguments_sets_name_and_extra_attributes(spans):
    @tracemill.step(name="plan", kind="planning", attributes={"team": "search"})
    def make_plan(goal):
        return ["a", "b"]

    make_plan("x")
    span = spans.named("plan")
    assert span.attributes["tracemill.step.kind"] == "planning"
    assert span.attributes["team"] == "search"


def test_capture_input_and_output_can_be_turned_off_per_decorator(spans):
    @tracemill.step(name="quiet", capture_input=False, capture_output=False)
    def quiet(secret):
        return secret

    quiet("hidden")
    attributes = spans.named("quiet").attributes
    assert "tracemill.input" not in attributes
    assert "tracemill.output" not in attributes


def test_agent_span_follows_genai_conventions(spans):
    @tracemill.agent(name="planner", version="2", description="plans trips")
    def run_agent(question):
        return "done"

    run_agent("where?")
    span = spans.named("invoke_agent planner")
    assert span.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert span.attributes["gen_ai.agent.name"] == "planner"
    assert span.attributes["gen_ai.agent.version"] == "2"
    assert span.attributes["gen_ai.agent.description"] == "plans trips"
    assert span.parent is None


def test_tool_span_records_arguments_result_and_description(spans):
    @tracemill.tool
    def lookup(city: str, units: str = "metric"):
        """Look up the weather.

        Longer description that is not recorded.
        """
        return {"temp": 21}

    lookup("Oslo")
    span = spans.named("execute_tool lookup")
    assert span.attributes["gen_ai.operation.name"] == "execute_tool"
    assert span.attributes["gen_ai.tool.name"] == "lookup"
    assert span.attributes["gen_ai.tool.type"] == "function"
    assert span.attributes["gen_ai.tool.description"] == "Look up the weather."
    assert json.loads(span.attributes["gen_ai.tool.call.arguments"]) == {"city": "Oslo"}
    assert json.loads(span.attributes["gen_ai.tool.call.result"]) == {"temp": 21}


def test_nested_calls_form_parent_child_links(spans):
    @tracemill.tool
    def inner():
        return 1

    @tracemill.agent
    def outer():
        return inner() + inner()

    outer()
    root = spans.named("invoke_agent outer")
    children = [s for s in spans.finished if s.name == "execute_tool inner"]
    assert len(children) == 2
    for child in children:
        assert child.parent.span_id == root.context.span_id
        assert child.context.trace_id == root.context.trace_id


def test_bare_agent_loop_without_enclosing_span_gives_one_trace_per_run(spans):
    @tracemill.tool
    def act(i):
        return i

    @tracemill.agent
    def agent_run(n):
        return [act(i) for i in range(n)]

    agent_run(3)
    agent_run(2)
    roots = [s for s in spans.finished if s.name == "invoke_agent agent_run"]
    assert len(roots) == 2
    assert len({s.context.trace_id for s in spans.finished}) == 2
    for root in roots:
        tools = [s for s in spans.finished if s.context.trace_id == root.context.trace_id and s is not root]
        assert all(t.parent.span_id == root.context.span_id for t in tools)


class Toolbox:
    def __init__(self, prefix):
        self.prefix = prefix

    @tracemill.tool
    def method(self, x):
        return f"{self.prefix}{x}"

    @tracemill.step
    @classmethod
    def from_config(cls, config):
        return cls(config["prefix"])

    @classmethod
    @tracemill.step(name="classmethod_outside")
    def other(cls, y):
        return y

    @tracemill.step
    @staticmethod
    def helper(z):
        return z * 2

    @staticmethod
    @tracemill.step(name="staticmethod_outside")
    def helper2(z):
        return z * 3


def test_methods_class_and_static_methods_are_traced_without_self(spans):
    box = Toolbox.from_config({"prefix": "p-"})
    assert box.method("x") == "p-x"
    assert Toolbox.helper(2) == 4
    assert box.helper(3) == 6
    assert Toolbox.helper2(2) == 6
    assert Toolbox.other(5) == 5
    assert json.loads(spans.named("execute_tool method").attributes["gen_ai.tool.call.arguments"]) == {"x": "x"}
    assert json.loads(spans.named("from_config").attributes["tracemill.input"]) == {
        "config": {"prefix": "p-"}
    }
    helper_inputs = [json.loads(s.attributes["tracemill.input"]) for s in spans.finished if s.name == "helper"]
    assert helper_inputs == [{"z": 2}, {"z": 3}]
    assert json.loads(spans.named("staticmethod_outside").attributes["tracemill.input"]) == {"z": 2}
    assert json.loads(spans.named("classmethod_outside").attributes["tracemill.input"]) == {"y": 5}


def test_varargs_and_kwargs_are_captured_by_name(spans):
    @tracemill.step(name="va")
    def va(a, *rest, **options):
        return len(rest)

    va(1, 2, 3, flag=True)
    assert json.loads(spans.named("va").attributes["tracemill.input"]) == {"a": 1, "rest": [2, 3], "flag": True}


def test_decision_step_records_options_and_choice(spans):
    @tracemill.step(decision=True, options=["search", "answer"], name="route")
    def route(question):
        return "search"

    @tracemill.step(decision=True, name="route2")
    def route2(question):
        tracemill.set_decision(choice="answer", options=["search", "answer"], reason="known fact")
        return {"text": "42"}

    route("q")
    route2("q")
    first = spans.named("route").attributes
    assert first["tracemill.step.kind"] == "decision"
    assert json.loads(first["tracemill.decision.options"]) == ["search", "answer"]
    assert json.loads(first["tracemill.decision.choice"]) == "search"
    second = spans.named("route2").attributes
    assert json.loads(second["tracemill.decision.choice"]) == "answer"
    assert second["tracemill.decision.reason"] == "known fact"


def test_decorating_a_non_callable_raises_type_error():
    with pytest.raises(TypeError, match="take a function or method"):
        tracemill.step(42)


def test_step_in_a_nested_function_is_named_by_name_like_agent_and_tool(spans):
    def outer():
        @tracemill.step
        def plan(goal):
            return goal

        @tracemill.agent
        def helper():
            return plan("x")

        return helper()

    outer()
    assert sorted(spans.names()) == ["invoke_agent helper", "plan"]


def test_decision_step_with_a_kind_keeps_the_kind_and_is_marked_a_decision(spans):
    @tracemill.step(kind="routing", decision=True, options=["a", "b"])
    def route():
        tracemill.set_decision(choice="b")
        return "b"

    @tracemill.step(decision=True)
    def pick():
        return "a"

    route()
    pick()
    routed = spans.named("route").attributes
    assert routed["tracemill.step.kind"] == "routing"
    assert routed["tracemill.decision"] is True
    assert json.loads(routed["tracemill.decision.choice"]) == "b"
    picked = spans.named("pick").attributes
    assert picked["tracemill.step.kind"] == "decision"
    assert picked["tracemill.decision"] is True


def test_plain_step_is_not_marked_a_decision(spans):
    @tracemill.step(kind="parse")
    def parse():
        return 1

    parse()
    assert "tracemill.decision" not in spans.named("parse").attributes
