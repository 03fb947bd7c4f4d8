"""What the decisive-step ranker learns from and predicts for: marks, failed runs and their failure kinds.

Reviewers' marks count fully; where reviewers disagree about a run it is left out (a conflict to
settle first, see ``tracemill feedback conflicts``). A judge model's mark (author ``judge:<model>``)
counts at :data:`~tracemill.miner.decisive.ranker.JUDGE_WEIGHT`, only on runs no reviewer marked.
A run failed when a failure flag of a detector (other than the ranker's own) points at it, or its
outcome is below the threshold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracemill.collector.store.schema import FEEDBACK_TABLE, FLAGS_TABLE
from tracemill.miner.decisive.ranker import JUDGE_WEIGHT, Mark

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["DETECTOR", "JUDGE_PREFIX", "failed_runs", "load_marks", "rule_spans"]

DETECTOR = "decisive_model"
JUDGE_PREFIX = "judge:"


def load_marks(store: Store, *, judges: bool = True) -> dict[str, Mark]:
    """Trace id → its mark: the reviewers' when they agree, else (with ``judges``) a judge's."""
    rows = store.query(
        f"SELECT TraceId, SpanId, Author FROM {FEEDBACK_TABLE} FINAL WHERE IsDeleted = 0 AND Kind = 'decisive' "
        "ORDER BY TraceId, UpdatedAt"
    ).result_rows
    human: dict[str, set[str]] = {}
    judged: dict[str, str] = {}
    for trace_id, span_id, author in rows:
        if author.startswith(JUDGE_PREFIX):
            judged[trace_id] = span_id
        else:
            human.setdefault(trace_id, set()).add(span_id)
    marks = {trace_id: Mark(next(iter(spans))) for trace_id, spans in human.items() if len(spans) == 1}
    if judges:
        for trace_id, span_id in judged.items():
            if trace_id not in human:
                marks[trace_id] = Mark(span_id, JUDGE_WEIGHT)
    return marks


def failed_runs(store: Store, threshold: float = 0.5) -> dict[str, str]:
    """Trace id → failure kind of every failed run: the strongest failure flag's kind, else ``outcome``."""
    flagged = store.query(
        f"SELECT TraceId, argMax(if(Kind != '', Kind, Detector), Confidence) FROM {FLAGS_TABLE} FINAL "
        "WHERE Category = 'failure' AND Muted = 0 AND Detector != {own:String} GROUP BY TraceId", {"own": DETECTOR}
    ).result_rows
    out = {trace_id: kind for trace_id, kind in flagged}
    outcomes = store.query(
        f"SELECT TraceId, avg(Score) FROM {FEEDBACK_TABLE} FINAL WHERE IsDeleted = 0 AND Kind = 'outcome' "
        f"AND Score IS NOT NULL AND NOT startsWith(Author, '{JUDGE_PREFIX}') GROUP BY TraceId"
    ).result_rows
    for trace_id, score in outcomes:
        if score < threshold:
            out.setdefault(trace_id, "outcome")
    return out


def rule_spans(store: Store, trace_ids: list[str]) -> dict[str, list[str]]:
    """Trace id → the spans the rule detectors point at, most confident first (their decisive spans)."""
    if not trace_ids:
        return {}
    rows = store.query(
        f"SELECT TraceId, SpanId FROM {FLAGS_TABLE} FINAL WHERE TraceId IN {{ids:Array(String)}} AND SpanId != '' "
        "AND Detector != {own:String} ORDER BY TraceId, Confidence DESC, Detector", {"ids": trace_ids, "own": DETECTOR}
    ).result_rows
    out: dict[str, list[str]] = {}
    for trace_id, span_id in rows:
        if span_id not in out.setdefault(trace_id, []):
            out[trace_id].append(span_id)
    return out
