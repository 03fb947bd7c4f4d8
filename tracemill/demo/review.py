"""The scripted reviewer: what a person does in the review queue, done by the desk's manual.

For each flagged run it reads the run's model decisions from the store, finds the decision that
went wrong (the flagged span when it is a decision that departs from the manual, else the first
one that does), and corrects it with the tool call the manual prescribes. It confirms or rejects
each flag, marks the corrected decision as the run's decisive step on every other corrected run
(a reviewer marks some runs; the decisive-step ranker predicts the rest), and records every run's
outcome from the desk's ground truth. Everything is written
through the public feedback API, so the trainer sees exactly what a person's review would give it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tracemill.demo.runs import RunRecord
from tracemill.demo.world import Action, correct_action

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["AUTHOR", "ReviewResult", "decisions_of", "review"]

AUTHOR = "demo-reviewer"

_DECISIONS_SQL = """
SELECT SpanId, SpanAttributes['gen_ai.input.messages'], SpanAttributes['gen_ai.output.messages']
FROM otel_traces
WHERE TraceId = {trace_id:String} AND GenAiOperation = 'chat'
ORDER BY Timestamp
"""


@dataclass(frozen=True)
class Decision:
    span_id: str
    input_messages: list[dict[str, Any]]
    output: Action


@dataclass
class ReviewResult:
    corrections: int = 0
    confirmed: int = 0
    false_positives: int = 0
    outcomes: int = 0
    decisive_marks: int = 0
    corrected_spans: list[tuple[str, str]] = field(default_factory=list)
    """(trace id, span id) of each corrected decision."""


def _action_of(output_messages: Sequence[Mapping[str, Any]]) -> Action:
    calls, texts = [], []
    for message in output_messages:
        for part in message.get("parts", ()):
            if part.get("type") == "tool_call":
                calls.append((part.get("name", ""), part.get("arguments")))
            elif part.get("type") == "text":
                texts.append(str(part.get("content", "")))
    return Action(tool_calls=tuple(calls), content="".join(texts) or None)


def decisions_of(store: Store, trace_id: str) -> list[Decision]:
    """The model decisions of one run, in order, as the store holds them."""
    rows = store.query(_DECISIONS_SQL, {"trace_id": trace_id}).result_rows
    return [Decision(span_id, json.loads(inputs or "[]"), _action_of(json.loads(outputs or "[]")))
            for span_id, inputs, outputs in rows]


def _departs(made: Action, right: Action) -> bool:
    """A decision departs from the manual when it calls other tools, or answers where a tool was due.

    Two final answers are not compared: wording is not what the desk corrects.
    """
    if bool(made.tool_calls) != bool(right.tool_calls):
        return True
    return list(made.tool_calls) != list(right.tool_calls)


def _tool_calls(span_id: str, right: Action) -> list[dict[str, Any]]:
    return [{"id": f"call_fix_{span_id[:8]}_{i}", "name": name, "arguments": arguments}
            for i, (name, arguments) in enumerate(right.tool_calls)]


def review(store: Store, flags: Sequence[Mapping[str, Any]], records: Iterable[RunRecord]) -> ReviewResult:
    """Correct flagged decisions, review each flag, and record every run's outcome."""
    from tracemill import feedback

    by_trace = {r.trace_id: r for r in records}
    items: list[dict[str, Any]] = []
    result = ReviewResult()
    flagged: dict[str, list[Mapping[str, Any]]] = {}
    for flag in flags:
        if flag["trace_id"] in by_trace:
            flagged.setdefault(flag["trace_id"], []).append(flag)
    for trace_id, trace_flags in flagged.items():
        ticket = by_trace[trace_id].ticket
        decisions = decisions_of(store, trace_id)
        judged = [(d, correct_action(ticket, d.input_messages)) for d in decisions]
        wrong = [(d, right) for d, right in judged if _departs(d.output, right)]
        flagged_spans = {f["span_id"] for f in trace_flags}
        target = next(((d, r) for d, r in wrong if d.span_id in flagged_spans), wrong[0] if wrong else None)
        if target is not None:
            decision, right = target
            feedback.correct(trace_id, decision.span_id, output=right.content, author=AUTHOR, store=store,
                             tool_calls=_tool_calls(decision.span_id, right),
                             comment="the desk's manual prescribes this action here")
            result.corrections += 1
            result.corrected_spans.append((trace_id, decision.span_id))
            if result.corrections % 2:
                items.append({"trace_id": trace_id, "span_id": decision.span_id, "name": "decisive",
                              "author": AUTHOR, "kind": "decisive", "comment": "the first departure from the manual"})
                result.decisive_marks += 1
        went_wrong = target is not None or not by_trace[trace_id].result.succeeded
        reviewed: set[str] = set()
        for flag in trace_flags:
            if flag["span_id"] in reviewed:  # one review per span (the feedback key); the first detector is named
                continue
            reviewed.add(flag["span_id"])
            label = "confirmed" if went_wrong else "false_positive"
            items.append({"trace_id": trace_id, "span_id": flag["span_id"], "name": "flag_review", "author": AUTHOR,
                          "kind": "label", "label": label, "value": {"detector": flag["detector"]}})
            if went_wrong:
                result.confirmed += 1
            else:
                result.false_positives += 1
    for record in by_trace.values():
        items.append({"trace_id": record.trace_id, "span_id": "", "name": "outcome", "author": AUTHOR,
                      "kind": "outcome", "label": "success" if record.result.succeeded else "failure",
                      "score": 1.0 if record.result.succeeded else 0.0,
                      "value": {"success": record.result.succeeded}})
        result.outcomes += 1
    for start in range(0, len(items), 500):  # flag reviews and outcomes in a few checked writes
        feedback.record(items[start:start + 500], store=store)
    return result
