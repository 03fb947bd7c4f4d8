"""Build an eval suite version from the store: decision cases from corrections, run cases from outcomes and flags.

``build_suite(store, name, source=...)`` reads what it needs in a few bulk queries and writes one new, immutable
version (:func:`~tracemill.trainer.evals.tables.write_suite`). Conflicting corrections of one span are left out,
as the dataset export does, so a suite never asserts a decision reviewers disagree on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from tracemill.collector.feedback.conflicts import current_feedback, settle
from tracemill.collector.store.schema import FEEDBACK_TABLE, FLAGS_TABLE, SPANS_TABLE
from tracemill.errors import ConfigError
from tracemill.trainer.chat import tool_call
from tracemill.trainer.evals.attempts import EVAL_RUN
from tracemill.trainer.evals.cases import Case, decision_case_id, run_case_id
from tracemill.trainer.evals.tables import write_suite
from tracemill.trainer.spans import LLMSpan, load_llm_spans

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["SOURCES", "build_suite", "decision_cases", "expected_decision", "run_cases"]

Source = Literal["corrections", "outcomes", "flags", "all"]
SOURCES: tuple[str, ...] = ("corrections", "outcomes", "flags", "all")

_CORRECTED_SPANS = (f"SELECT TraceId, SpanId FROM {FEEDBACK_TABLE} FINAL "
                    "WHERE IsDeleted = 0 AND Kind = 'correction' AND SpanId != ''")
# The runs of evals are traces too, and the miner flags them; they are not production runs to make cases of.
_FAILED_TRACES = (f"SELECT DISTINCT TraceId FROM {FLAGS_TABLE} FINAL WHERE Category = 'failure' "
                  "AND CreatedAt >= fromUnixTimestamp64Nano({since:Int64}) AND TraceId NOT IN ("
                  f"SELECT TraceId FROM {SPANS_TABLE} WHERE ParentSpanId = '' AND SpanAttributes['{EVAL_RUN}'] != '') "
                  "ORDER BY TraceId")
_RUN_SPANS = f"""
SELECT TraceId, ParentSpanId = '', ToolName, SpanAttributes['tracemill.input'],
       SpanAttributes['gen_ai.tool.call.arguments'], SpanAttributes['gen_ai.tool.call.result'],
       StatusCode IN ('Error', 'STATUS_CODE_ERROR'), StatusMessage, TaskId, SpanId, SpanAttributes['error.type']
FROM {SPANS_TABLE}
WHERE TraceId IN {{ids:Array(String)}} AND (ParentSpanId = '' OR GenAiOperation = 'execute_tool')
ORDER BY TraceId, Timestamp"""


def expected_decision(value: Mapping[str, Any]) -> dict[str, Any]:
    """A correction's value as the expected decision: answer text (or None) and tool calls (name, arguments)."""
    calls = []
    for call in value.get("tool_calls") or []:
        function = tool_call(call.get("id"), call["name"], call.get("arguments"))["function"]
        calls.append({"name": function["name"], "arguments": function["arguments"]})
    return {"output": value.get("output") or None, "tool_calls": calls}


def _decision_case(span: LLMSpan, value: Mapping[str, Any], must_pass: bool) -> Case:
    return Case(case_id=decision_case_id(span.trace_id, span.span_id), kind="decision", source="correction",
                trace_id=span.trace_id, span_id=span.span_id, prompt=span.prompt, tools=span.tools,
                expected=expected_decision(value), must_pass=must_pass, group=span.group)


def decision_cases(store: Store, *, since_ns: int | None, must_pass: bool = False) -> list[Case]:
    """One case per corrected LLM span (newest correction first), conflicting corrections left out."""
    feedback = current_feedback(store, since_ns=since_ns, kinds=["correction"])
    kept, _, _ = settle(feedback, None)
    spans = load_llm_spans(store, keys_sql=_CORRECTED_SPANS)
    cases: dict[str, Case] = {}
    for item in reversed(kept):
        span = spans.get((item["trace_id"], item["span_id"]))
        if span is not None and item["value"]:
            case = _decision_case(span, item["value"], must_pass)
            cases.setdefault(case.case_id, case)
    return list(cases.values())


def _decode(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def run_cases(store: Store, trace_ids: Sequence[str], *, source: str, outcomes: Mapping[str, float | None],
              must_pass: bool = False) -> list[Case]:
    """One case per run: the root's input, the tool calls in order (for replay), the outcome if known."""
    roots: dict[str, tuple[Any, str, str]] = {}
    recordings: dict[str, list[dict[str, Any]]] = {trace_id: [] for trace_id in trace_ids}
    rows = store.query(_RUN_SPANS, {"ids": list(trace_ids)}).result_rows
    for trace_id, is_root, tool, run_input, arguments, result, failed, message, task_id, span_id, kind in rows:
        if is_root and trace_id not in roots:
            roots[trace_id] = (_decode(run_input), task_id, span_id)
        if tool:
            recordings[trace_id].append({"name": tool, "arguments": _decode(arguments) or {},
                                         "result": _decode(result), "error": (message or "error") if failed else None,
                                         "error_type": kind if failed else ""})
    return [Case(case_id=run_case_id(trace_id), kind="run", source=source, trace_id=trace_id,
                 span_id=roots[trace_id][2], input=roots[trace_id][0], recording=recordings[trace_id],
                 outcome=outcomes.get(trace_id), must_pass=must_pass, group=roots[trace_id][1] or trace_id)
            for trace_id in trace_ids if trace_id in roots]


def _outcomes(store: Store, since_ns: int | None) -> dict[str, float | None]:
    rows = current_feedback(store, since_ns=since_ns, kinds=["outcome"])
    return {row["trace_id"]: row["score"] for row in rows if not row["span_id"]}


def _flagged(store: Store, since_ns: int | None) -> list[str]:
    return [trace_id for (trace_id,) in store.query(_FAILED_TRACES, {"since": since_ns or 0}).result_rows]


def collect_cases(store: Store, source: str, *, since_ns: int | None, must_pass: bool) -> list[Case]:
    """The cases of one build, decision cases first, each case once."""
    if source not in SOURCES:
        raise ConfigError(f"--from must be one of {', '.join(SOURCES)} (got {source!r})")
    cases: list[Case] = []
    if source in ("corrections", "all"):
        cases += decision_cases(store, since_ns=since_ns, must_pass=must_pass)
    outcomes = _outcomes(store, since_ns) if source in ("outcomes", "flags", "all") else {}
    if source in ("outcomes", "all"):
        cases += run_cases(store, sorted(outcomes), source="outcome", outcomes=outcomes, must_pass=must_pass)
    if source in ("flags", "all"):
        seen = {case.trace_id for case in cases if case.kind == "run"}
        flagged = [trace_id for trace_id in _flagged(store, since_ns) if trace_id not in seen]
        cases += run_cases(store, flagged, source="flag", outcomes=outcomes, must_pass=must_pass)
    return cases


def build_suite(store: Store, name: str, *, source: str = "corrections", since: str | float | None = None,
                limit: int | None = None, must_pass: bool = False) -> dict[str, Any]:
    """Write a new version of suite ``name``; return ``{"suite", "version", "cases", "by_kind"}``."""
    from tracemill.collector.store.query import parse_since

    if not name or "@" in name:
        raise ConfigError(f"suite name must be non-empty and without '@' (got {name!r})")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1 (got {limit})")
    since_ns = int(parse_since(since) * 1e9) if since not in (None, "") else None
    cases = collect_cases(store, source, since_ns=since_ns, must_pass=must_pass)[:limit]
    if not cases:
        raise ConfigError(f"no cases for suite {name!r} from {source}: the store has no "
                          f"{'corrections' if source == 'corrections' else 'matching feedback or flags'} "
                          f"{'since ' + str(since) if since else 'yet'}")
    version = write_suite(store, name, cases, source=source,
                          settings={"from": source, "since": since, "limit": limit, "must_pass": must_pass})
    by_kind = {kind: sum(case.kind == kind for case in cases) for kind in ("decision", "run")}
    return {"suite": name, "version": version, "cases": len(cases), "by_kind": by_kind}
