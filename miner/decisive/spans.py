"""The candidate steps of runs, read from the store for the decisive-step ranker.

A candidate is an LLM, tool, agent or step span (the run's root is the run, not a step). Each carries
what the ranker's features read: its place in the run, its kind, the agent it ran in (the nearest
``invoke_agent`` span above it, or its own agent name), the text it read and wrote (LLM messages, tool
arguments and result, a step's input and output) and its error signals. Reading follows the same
conventions as the miner's SQL (:func:`tracemill.miner.sql.span_columns`), so traces from other
instrumentations work too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tracemill.collector.store.schema import SPANS_TABLE
from tracemill.miner.sql import FLATTENED_INPUTS, _first_set, _q, span_columns

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["Candidate", "Run", "load_runs"]


@dataclass
class Candidate:
    """One step of a run that may be where it went wrong."""

    span_id: str
    kind: str  # llm, tool, agent or step
    name: str
    agent: str
    start_ns: int
    input_text: str
    output_text: str
    tool: str = ""
    error: bool = False
    result_error: bool = False
    asks_tool: bool = False  # an LLM decision that calls a tool


@dataclass
class Run:
    """A run's candidates in the order they started, and what the run was asked and answered."""

    trace_id: str
    task_id: str
    request: str
    answer: str
    steps: list[Candidate] = field(default_factory=list)

    def index_of(self, span_id: str) -> int | None:
        return next((i for i, step in enumerate(self.steps) if step.span_id == span_id), None)


_A = "SpanAttributes"
_FLATTENED = " OR ".join(f"startsWith(k, {_q(prefix)})" for prefix, _ in FLATTENED_INPUTS.values())
_FLAT_INPUT = (
    "arrayStringConcat(arrayFilter(x -> x != '', mapValues(mapApply((k, v) -> (k, if(endsWith(k, '.content') AND "
    f"{_A}[concat(substring(k, 1, length(k) - 7), 'role')] != 'system', v, '')), mapFilter((k, v) -> "
    f"{_FLATTENED}, {_A})))), '\\n')"
)
"""The contents of an LLM span's flattened input messages (:data:`~tracemill.miner.sql.FLATTENED_INPUTS`:
OpenInference's ``llm.input_messages.N.message.content``, OpenLLMetry's ``gen_ai.prompt.N.content``) but the
system prompt's, in the order they were recorded: what the GenAI conventions' ``gen_ai.input.messages`` holds,
the system prompt being apart there."""

_QUERY = f"""
SELECT TraceId, SpanId, ParentSpanId, SpanName, start_ns, op, is_llm, is_tool, tool, args, result, span_error,
       result_error,
       multiIf(llm_output != '', llm_output,
               flat_tool != '', trimLeft(concat(flat_text, ' ', flat_tool, '(', flat_args, ')')),
               flat_text) AS llm_text,
       agent_name, task_id, is_root, if(is_root, run_output, '') AS root_output,
       if(is_llm, if(genai_input != '', genai_input, {_FLAT_INPUT}), '') AS llm_input,
       {_first_set('tracemill.input', 'input.value', 'traceloop.entity.input')} AS io_in,
       {_first_set('tracemill.output', 'output.value', 'traceloop.entity.output')} AS io_out,
       {_A}['tracemill.step.kind'] != '' AS is_step,
       is_llm AND (flat_tool != '' OR position(llm_output, '"tool_call"') > 0) AS asks_tool
FROM (SELECT {span_columns('0')}, {_A} FROM {SPANS_TABLE} WHERE TraceId IN {{ids:Array(String)}})
ORDER BY TraceId, start_ns, SpanId
"""
"""Each span of the runs with what a candidate reads, in every convention the miner's SQL reads: an LLM step's
input is its GenAI JSON messages, else its flattened input messages' contents; its output the GenAI JSON or
``output.value``, else the flattened output text and tool call; a step's input and output come from tracemill's,
OpenInference's or OpenLLMetry's attributes."""


def load_runs(store: Store, trace_ids: Iterable[str]) -> dict[str, Run]:
    """The runs of ``trace_ids`` that have spans, with their candidate steps."""
    ids = sorted(set(trace_ids))
    if not ids:
        return {}
    rows = store.query(_QUERY, {"ids": ids}).result_rows
    by_trace: dict[str, list[Sequence[Any]]] = {}
    for row in rows:
        by_trace.setdefault(row[0], []).append(row)
    return {trace_id: _run(trace_id, members) for trace_id, members in by_trace.items()}


def _run(trace_id: str, rows: list[Sequence[Any]]) -> Run:
    parent = {row[1]: row[2] for row in rows}
    agent_of = {row[1]: row[14] for row in rows if row[5] == "invoke_agent" and row[14]}
    run = Run(trace_id, next((row[15] for row in rows if row[15]), ""), "", "")
    for (_, span_id, _, name, start_ns, op, is_llm, is_tool, tool, args, result, span_error, result_error,
         llm_output, agent_name, _, is_root, root_output, llm_input, io_in, io_out, is_step, asks_tool) in rows:
        if is_root:
            run.request, run.answer = io_in, root_output or io_out
            continue
        kind = "llm" if is_llm else "tool" if is_tool else "agent" if op == "invoke_agent" else \
            "step" if is_step else ""
        if not kind:
            continue
        run.steps.append(Candidate(
            span_id=span_id, kind=kind, name=name, agent=agent_name or _agent(span_id, parent, agent_of),
            start_ns=int(start_ns), input_text=args if is_tool else llm_input or io_in,
            output_text=result if is_tool else llm_output or io_out, tool=tool, error=bool(span_error),
            result_error=bool(result_error), asks_tool=bool(asks_tool),
        ))
    if not run.request and run.steps:
        run.request = run.steps[0].input_text
    return run


def _agent(span_id: str, parent: dict[str, str], agent_of: dict[str, str]) -> str:
    seen = 0
    current = parent.get(span_id, "")
    while current and seen < 64:
        if current in agent_of:
            return agent_of[current]
        current, seen = parent.get(current, ""), seen + 1
    return ""
