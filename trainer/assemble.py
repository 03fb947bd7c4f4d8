"""Per dataset kind: read the feedback and spans it needs in bulk, run the builders, count what was left out.

Each ``assemble_*`` returns the rows (before hygiene) and a counter of dropped items by reason.
Conflicted feedback has already been settled or removed by the caller (:func:`settle`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tracemill.collector.store.schema import FEEDBACK_TABLE, FLAGS_TABLE, SPANS_TABLE
from tracemill.trainer import builders
from tracemill.trainer.rows import Row
from tracemill.trainer.spans import LLMSpan, load_llm_spans, spans_by_trace

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["BuildOptions", "assemble"]

_LIVE = f"SELECT {{columns}} FROM {FEEDBACK_TABLE} FINAL WHERE IsDeleted = 0 AND {{where}}"
_NAMED_SPANS = _LIVE.format(columns="TraceId, SpanId", where="SpanId != '' AND Kind IN ('correction', 'label', "
                                                             "'score', 'preference')")
_WORSE_SPANS = _LIVE.format(columns="if(JSONExtractString(Value, 'worse_trace') = '', TraceId, "
                                    "JSONExtractString(Value, 'worse_trace')), JSONExtractString(Value, 'worse')",
                            where="Kind = 'preference'")
_SPAN_KEYS = f"{_NAMED_SPANS} UNION ALL {_WORSE_SPANS}"


def _span_keys(feedback: Sequence[Mapping[str, Any]]) -> str:
    """The (trace, span) pairs feedback names; the worse spans of preferences only when there are any."""
    return _SPAN_KEYS if any(row["kind"] == "preference" for row in feedback) else _NAMED_SPANS
_FEEDBACK_TRACES = _LIVE.format(columns="TraceId", where="1")


@dataclass(frozen=True)
class BuildOptions:
    """What the builders may vary; the defaults suit most stores."""

    good_at: float = 0.7
    """A score at or above this is a desirable answer (KTO label True)."""
    bad_at: float = 0.3
    """A score at or below this is an undesirable answer (KTO label False)."""
    success_at: float = 0.5
    """A reward outcome at or above this counts as a successful run."""
    include_unlabelled: bool = False
    """SFT: also runs with no outcome, no miner flag and no negative feedback."""
    since_ns: int | None = None
    """Only feedback (and flags, and unlabelled runs) from this time on."""


Assembled = tuple[list[Row], Counter[str]]


def assemble(kind: str, store: Store, feedback: Sequence[Mapping[str, Any]], options: BuildOptions) -> Assembled:
    if kind == "dpo":
        return _dpo(store, feedback, options)
    if kind == "kto":
        return _kto(store, feedback, options)
    if kind in ("sft", "openai"):
        rows, dropped = _sft(store, feedback, options)
        if kind == "openai":
            rows = [Row(builders.openai_from_sft(row.data), row.source, row.trace_id, row.span_id, row.group)
                    for row in rows]
        return rows, dropped
    if kind == "stepwise":
        return _stepwise(store, feedback, options)
    return _flags(store, feedback, options)


def _row(data: dict[str, Any], span: LLMSpan) -> Row:
    return Row(data, data["source"], span.trace_id, span.span_id, span.group)


def _outcomes(feedback: Sequence[Mapping[str, Any]], options: BuildOptions) -> dict[str, bool]:
    """Trace id → whether the run succeeded, from outcome feedback (settled: one opinion per trace)."""
    out: dict[str, bool] = {}
    for row in feedback:
        if row["kind"] == "outcome" and row["score"] is not None:
            out[row["trace_id"]] = row["score"] >= options.success_at
    return out


# -- DPO -----------------------------------------------------------------------------------------


def _dpo(store: Store, feedback: Sequence[Mapping[str, Any]], options: BuildOptions) -> Assembled:
    outcomes = _outcomes(feedback, options)
    spans = load_llm_spans(
        store, keys_sql=_span_keys(feedback),
        traces_sql=_LIVE.format(columns="TraceId", where="Kind = 'outcome'") if outcomes else None,
    )
    rows: list[Row] = []
    dropped: Counter[str] = Counter()
    for item in feedback:
        if item["kind"] == "correction":
            span = spans.get((item["trace_id"], item["span_id"]))
            if span is None:
                dropped["span_not_an_llm_span"] += 1
                continue
            rows.append(_row(builders.dpo_from_correction(span, item["value"]), span))
        elif item["kind"] == "preference":
            value = item["value"]
            better = spans.get((item["trace_id"], value["better"]))
            worse = spans.get((value.get("worse_trace", item["trace_id"]), value["worse"]))
            if better is None or worse is None:
                dropped["span_not_an_llm_span"] += 1
                continue
            rows.append(_row(builders.dpo_from_preference(better, worse), better))
    rows += _contrasts(spans, outcomes, dropped)
    return rows, dropped


def _runs_by_task(spans: Mapping[tuple[str, str], LLMSpan], outcomes: Mapping[str, bool]):
    by_trace = spans_by_trace({key: span for key, span in spans.items() if span.trace_id in outcomes})
    tasks: dict[str, dict[bool, list[list[LLMSpan]]]] = defaultdict(lambda: {True: [], False: []})
    for trace_id in sorted(by_trace):
        steps = by_trace[trace_id]
        task = next((step.task_id for step in steps if step.task_id), "")
        if task:
            tasks[task][outcomes[trace_id]].append(steps)
    return by_trace, tasks


def _contrasts(spans: Mapping[tuple[str, str], LLMSpan], outcomes: Mapping[str, bool], dropped: Counter[str]):
    """One DPO row per (successful, failed) pair of runs of a task that part at an identical prompt."""
    rows = []
    for runs in _runs_by_task(spans, outcomes)[1].values():
        for good in runs[True]:
            for bad in runs[False]:
                data = builders.dpo_from_outcome_contrast(good, bad)
                if data is None:
                    dropped["contrast_without_identical_prefix"] += 1
                else:
                    rows.append(_row(data, spans[(data["trace_id"], data["span_id"])]))
    return rows


# -- KTO -----------------------------------------------------------------------------------------


def _kto(store: Store, feedback: Sequence[Mapping[str, Any]], options: BuildOptions) -> Assembled:
    spans = load_llm_spans(
        store, keys_sql=_span_keys(feedback),
        traces_sql=_LIVE.format(columns="TraceId", where="SpanId = '' AND Kind IN ('label', 'score')"),
    )
    last = {trace_id: steps[-1] for trace_id, steps in spans_by_trace(spans).items()}
    rows: list[Row] = []
    dropped: Counter[str] = Counter()
    for item in feedback:
        if item["kind"] not in ("label", "score") or item["name"] == "flag_review":
            continue
        label = builders.judgement_label(item, good_at=options.good_at, bad_at=options.bad_at)
        if label is None:
            dropped["judgement_not_clear"] += 1
            continue
        span = spans.get((item["trace_id"], item["span_id"])) if item["span_id"] else last.get(item["trace_id"])
        if span is None:
            dropped["span_not_an_llm_span"] += 1
            continue
        rows.append(_row(builders.kto_from_judgement(span, label, item["kind"]), span))
    return rows, dropped


# -- SFT -----------------------------------------------------------------------------------------


def _negative_traces(store: Store, feedback: Sequence[Mapping[str, Any]], options: BuildOptions) -> set[str]:
    negative = {row["trace_id"] for row in feedback if row["kind"] == "correction"}
    for row in feedback:
        judged = row["kind"] in ("label", "score") and row["name"] != "flag_review"
        if judged and builders.judgement_label(row, good_at=options.good_at, bad_at=options.bad_at) is False:
            negative.add(row["trace_id"])
        if row["kind"] == "outcome" and row["score"] is not None and row["score"] < options.success_at:
            negative.add(row["trace_id"])
    flagged = store.query(f"SELECT DISTINCT TraceId FROM {FLAGS_TABLE} FINAL").result_rows
    return negative | {row[0] for row in flagged}


def _sft(store: Store, feedback: Sequence[Mapping[str, Any]], options: BuildOptions) -> Assembled:
    outcomes = _outcomes(feedback, options)
    if options.include_unlabelled:
        params = {"since": options.since_ns} if options.since_ns is not None else {}
        where = "Timestamp >= fromUnixTimestamp64Nano({since:Int64})" if params else "1"
        spans = load_llm_spans(store, traces_sql=f"SELECT DISTINCT TraceId FROM {SPANS_TABLE} WHERE {where}",
                               params=params)
        negative = _negative_traces(store, feedback, options)
    else:
        spans = load_llm_spans(store, traces_sql=_LIVE.format(columns="TraceId", where="Kind = 'outcome'"))
        negative = set()
    rows: list[Row] = []
    dropped: Counter[str] = Counter()
    for trace_id, steps in sorted(spans_by_trace(spans).items()):
        if outcomes.get(trace_id) is True:
            source = "outcome"
        elif options.include_unlabelled and trace_id not in outcomes and trace_id not in negative:
            source = "unflagged"
        else:
            continue
        data = builders.sft_from_trace(steps, source)
        if data is None:
            dropped["last_step_failed"] += 1
            continue
        rows.append(_row(data, steps[-1]))
    return rows, dropped


# -- stepwise ------------------------------------------------------------------------------------


def _stepwise(store: Store, feedback: Sequence[Mapping[str, Any]], options: BuildOptions) -> Assembled:
    outcomes = _outcomes(feedback, options)
    spans = load_llm_spans(store, traces_sql=_FEEDBACK_TRACES)
    by_trace = spans_by_trace(spans)
    dropped: Counter[str] = Counter()
    # A reviewer's decisive mark says where the run went wrong: it wins over what flags and contrasts suggest.
    decisive = _marked_steps(store, feedback, spans, by_trace, dropped)
    marked = {trace_id for trace_id, _ in decisive}
    reviews = [row for row in feedback if row["kind"] == "label" and row["name"] == "flag_review"
               and row["label"] == "confirmed" and row["trace_id"] not in marked]
    starts = _span_starts(store, [row for row in reviews if (row["trace_id"], row["span_id"]) not in spans])
    for row in reviews:
        span = spans.get((row["trace_id"], row["span_id"])) or _last_llm_before(
            by_trace.get(row["trace_id"], []), starts.get((row["trace_id"], row["span_id"])))
        if span is None:
            dropped["flag_before_any_llm_step"] += 1
            continue
        decisive.setdefault((span.trace_id, span.span_id), "flag_review")
    for row in feedback:
        if row["kind"] == "correction" and (row["trace_id"], row["span_id"]) in spans and row["trace_id"] not in marked:
            decisive.setdefault((row["trace_id"], row["span_id"]), "correction")
    for runs in _runs_by_task(spans, outcomes)[1].values():
        for good in runs[True]:
            for bad in runs[False]:
                found = builders.first_divergence(good, bad)
                if found is not None and found[1].trace_id not in marked:
                    decisive.setdefault((found[1].trace_id, found[1].span_id), "outcome_contrast")
    rows = []
    for (trace_id, span_id), source in decisive.items():
        steps = by_trace[trace_id]
        index = next(i for i, step in enumerate(steps) if step.span_id == span_id)
        rows.append(_row(builders.stepwise_from_steps(steps, index, source), steps[index]))
    return rows, dropped


def _marked_steps(
    store: Store, feedback: Sequence[Mapping[str, Any]], spans: Mapping[tuple[str, str], LLMSpan],
    by_trace: Mapping[str, Sequence[LLMSpan]], dropped: Counter[str],
) -> dict[tuple[str, str], str]:
    """The LLM step of each decisive mark: the marked span itself, or for a tool, agent or step span the last
    model call that started before it ended (the call that asked for the tool, the agent's last answer).
    Marks of several authors that settle on different steps give one row each, like other sources."""
    marks = [row for row in feedback if row["kind"] == "decisive"]
    ends = _span_ends(store, [row for row in marks if (row["trace_id"], row["span_id"]) not in spans])
    out: dict[tuple[str, str], str] = {}
    for row in marks:
        span = spans.get((row["trace_id"], row["span_id"])) or _last_llm_before(
            by_trace.get(row["trace_id"], []), ends.get((row["trace_id"], row["span_id"])))
        if span is None:
            dropped["mark_before_any_llm_step"] += 1
            continue
        out.setdefault((span.trace_id, span.span_id), "decisive_mark")
    return out


def _span_ends(store: Store, rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    if not rows:
        return {}
    found = store.query(
        f"SELECT TraceId, SpanId, toUnixTimestamp64Nano(Timestamp) + Duration FROM {SPANS_TABLE} "
        "WHERE TraceId IN {traces:Array(String)} AND SpanId IN {spans:Array(String)}",
        {"traces": sorted({row["trace_id"] for row in rows}), "spans": sorted({row["span_id"] for row in rows})},
    ).result_rows
    return {(trace_id, span_id): int(end) for trace_id, span_id, end in found}


def _span_starts(store: Store, rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    if not rows:
        return {}
    found = store.query(
        f"SELECT TraceId, SpanId, toUnixTimestamp64Nano(Timestamp) FROM {SPANS_TABLE} "
        "WHERE TraceId IN {traces:Array(String)} AND SpanId IN {spans:Array(String)}",
        {"traces": sorted({row["trace_id"] for row in rows}), "spans": sorted({row["span_id"] for row in rows})},
    ).result_rows
    return {(trace_id, span_id): int(start) for trace_id, span_id, start in found}


def _last_llm_before(steps: Sequence[LLMSpan], start_ns: int | None) -> LLMSpan | None:
    """The model call that led to a non-LLM span (a failed tool call): the last one started before it."""
    if start_ns is None:
        return None
    earlier = [step for step in steps if step.start_ns <= start_ns]
    return earlier[-1] if earlier else None


# -- review dataset of flags ---------------------------------------------------------------------


def _flags(store: Store, feedback: Sequence[Mapping[str, Any]], options: BuildOptions) -> Assembled:
    params: dict[str, Any] = {}
    where = "1"
    if options.since_ns is not None:
        where, params = "CreatedAt >= fromUnixTimestamp64Nano({since:Int64})", {"since": options.since_ns}
    found = store.query(
        "SELECT TraceId, SpanId, Detector, DetectorVersion, Category, Severity, Confidence, Evidence "
        f"FROM {FLAGS_TABLE} FINAL WHERE {where} ORDER BY Confidence DESC, TraceId, Detector, SpanId",
        params,
    ).result_rows
    keys = ("trace_id", "span_id", "detector", "detector_version", "category", "severity", "confidence", "evidence")
    flags = [dict(zip(keys, row, strict=True)) for row in found]
    spans = load_llm_spans(store, keys_sql=f"SELECT TraceId, SpanId FROM {FLAGS_TABLE} FINAL WHERE {where}",
                           params=params) if flags else {}
    reviews = {
        (row["trace_id"], row["span_id"], (row["value"] or {}).get("detector")): row["label"]
        for row in feedback if row["kind"] == "label" and row["name"] == "flag_review"
    }
    rows = []
    for flag in flags:
        span = spans.get((flag["trace_id"], flag["span_id"]))
        review = reviews.get((flag["trace_id"], flag["span_id"], flag["detector"]), "")
        data = builders.review_from_flag(flag, span, review)
        rows.append(Row(data, "flag", flag["trace_id"], flag["span_id"], span.group if span else flag["trace_id"]))
    return rows, Counter()
