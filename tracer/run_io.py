"""A run's input and output when the program does not give them: what its agents took and gave.

Backends list traces by their root span, so a ``tracemill.run`` root without input and output
shows an empty row for every run. While a run is open, a :class:`RunIO` rides in the context;
its agents and LLM calls leave their (already captured) payloads in it as they go, which costs
one context lookup and an assignment per agent or LLM call. When the run ends without an
explicit output, its root takes:

- as input, the input of the first agent that started in it (unless ``run(input=...)`` was given);
- as output, the output of the agent that ended last (an enclosing agent ends after the agents it
  calls, and of agents called one after another the last one answers), else the answer of the
  last LLM call: its text, or the whole GenAI message when it asked for tool calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from opentelemetry import context as otel_context

from tracemill.tracer import semconv
from tracemill.tracer.spans import capture

RUN_IO_KEY = otel_context.create_key("tracemill.run_io")
"""Context key holding the :class:`RunIO` of the enclosing ``tracemill.run``."""


class RunIO:
    """What the agents and LLM calls of one run took and gave, as they report it."""

    __slots__ = ("agent_input", "agent_output", "agent_seen", "llm_output")

    def __init__(self) -> None:
        self.agent_seen = False
        self.agent_input: str | None = None
        self.agent_output: str | None = None
        self.llm_output: Sequence[Any] | None = None

    def agent_started(self, captured_input: str | None) -> None:
        if not self.agent_seen:
            self.agent_seen = True
            self.agent_input = captured_input

    def agent_ended(self, captured_output: str | None) -> None:
        """``None`` for an agent that failed or does not capture its output: it gives the run nothing."""
        self.agent_output = captured_output

    def llm_answered(self, messages: Sequence[Any]) -> None:
        self.llm_output = messages

    def root_attributes(self, *, has_input: bool, has_output: bool) -> dict[str, str]:
        """``tracemill.input``/``tracemill.output`` for the root, for what the program left unsaid."""
        out: dict[str, str] = {}
        if not has_input and self.agent_input is not None:
            out[semconv.INPUT] = self.agent_input
        if not has_output:
            if self.agent_output is not None:
                out[semconv.OUTPUT] = self.agent_output
            elif self.llm_output:
                out[semconv.OUTPUT] = capture(semconv.OUTPUT, llm_answer(self.llm_output))
        return out


def current_run_io(parent: otel_context.Context | None = None) -> RunIO | None:
    return cast("RunIO | None", otel_context.get_value(RUN_IO_KEY, parent))


def agent_ended(captured_output: str | None) -> None:
    """Report an agent's end to the run of the current context (the agent's own span is still current)."""
    run_io = current_run_io()
    if run_io is not None:
        run_io.agent_ended(captured_output)


def llm_answer(messages: Sequence[Any]) -> Any:
    """The answer of an LLM call's GenAI output messages: the last message's text when it is only text,
    else the message itself (a decision to call tools)."""
    last = messages[-1]
    if not isinstance(last, dict):
        return last
    parts = last.get("parts") or ()
    texts = [p.get("content") for p in parts if isinstance(p, dict) and p.get("type") == "text"]
    if parts and len(texts) == len(parts) and all(isinstance(t, str) for t in texts):
        return "\n".join(cast("list[str]", texts))
    return last
