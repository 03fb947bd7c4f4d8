"""What each review page needs, gathered from the store into one context dict per page."""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlencode

from tracemill.collector.api import get_trace
from tracemill.collector.feedback import list_feedback, list_flags
from tracemill.ui import charts
from tracemill.ui.content import flatten_trace
from tracemill.ui.queries import SEVERITY_RANK, QueueFilters, neighbour, overview, queue, queue_choices

if TYPE_CHECKING:
    from tracemill.collector.store import Store

__all__ = ["queue_context", "step_target", "trace_context"]


def queue_context(store: Store, query: Any) -> dict[str, Any]:
    filters = QueueFilters.from_query(query)
    page = _page_number(query.get("page", "0"))
    data = queue(store, filters, page=page)
    numbers = overview(store)
    return {
        "filters": filters,
        "filter_items": filters.query_items(),
        "queue": data,
        "choices": {**queue_choices(store), **_agent_choices(numbers["versions"])},
        "day_chart": charts.stacked_days(numbers["per_day"]),
        "version_chart": charts.bars(
            [(f"{v['agent']} v{v['version']}" if v["version"] else v["agent"], v["failed"] / v["runs"],
              f"{v['failed']} of {v['runs']} runs failed") for v in numbers["versions"] if v["runs"]],
            percent=True),
        "group_chart": charts.bars(
            [(f"{g['kind']} · {g['detector']}", g["flags"], f"{g['flags']} flags on {g['runs']} runs")
             for g in numbers["groups"]]),
    }  # fmt: skip


def _agent_choices(versions: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {"agents": sorted({v["agent"] for v in versions}),
            "versions": sorted({v["version"] for v in versions if v["version"]})}


def _page_number(raw: str) -> int:
    from tracemill.errors import ConfigError

    try:
        return max(0, int(raw))
    except ValueError:
        raise ConfigError(f"page must be a whole number (got {raw!r})") from None


def trace_context(store: Store, trace_id: str, query: Any, *, rng: random.Random) -> dict[str, Any]:
    """The trace, its flags (the current one chosen), its feedback so far, and what the editors need."""
    filters = QueueFilters.from_query(query)
    trace = get_trace(store, trace_id)
    spans = flatten_trace(trace)
    by_id = {span["span_id"]: span for span in spans}
    flags = list_flags(store, trace_id=trace["trace_id"], limit=1000)
    feedback = list_feedback(store, trace_id=trace["trace_id"], limit=1000)
    reviews = {(f["span_id"], (f["value"] or {}).get("detector", "")): f["label"]
               for f in feedback if f["name"] == "flag_review" and f["kind"] == "label"}
    for flag in flags:
        flag["review"] = reviews.get((flag["span_id"], flag["detector"]), "")
    flags.sort(key=lambda f: (f["review"] != "", -SEVERITY_RANK.get(f["severity"], 0), -f["confidence"]))
    wanted_span, wanted_detector = query.get("span"), query.get("flag")
    current = next((f for f in flags if f["span_id"] == wanted_span and
                    (not wanted_detector or f["detector"] == wanted_detector)), flags[0] if flags else None)
    decisive = current["span_id"] if current and current["span_id"] in by_id else ""
    if not decisive:  # a whole-run flag, or none: the first failed LLM span, else the first LLM span
        decisive = next((s["span_id"] for s in spans if s["is_llm"] and s["error"]), "") or next(
            (s["span_id"] for s in spans if s["is_llm"]), "")
    feedback_by_span: dict[str, list[dict[str, Any]]] = {}
    for item in feedback:
        feedback_by_span.setdefault(item["span_id"], []).append(item)
    comparison = None
    focus = by_id.get(decisive)
    if focus and focus["siblings"]:
        other = by_id[focus["siblings"][0]]
        pair = [focus, other]
        rng.shuffle(pair)  # the position of an answer must not say which one is under review
        comparison = pair
    return {
        "trace": trace,
        "spans": spans,
        "flags": flags,
        "current": current,
        "decisive": decisive,
        "feedback_by_span": feedback_by_span,
        "run_feedback": feedback_by_span.get("", []),
        "comparison": comparison,
        "filters": filters,
        "filter_items": filters.query_items(),
        "next_url": _step_url(filters, trace["trace_id"], "next"),
        "prev_url": _step_url(filters, trace["trace_id"], "prev"),
        "json": lambda value: json.dumps(value, ensure_ascii=False),
        "json_pretty": lambda value: json.dumps(value, indent=2, ensure_ascii=False),
    }


def _step_url(filters: QueueFilters, trace_id: str, direction: str) -> str:
    return "/ui/step?" + urlencode([*filters.query_items(), ("after", trace_id), ("dir", direction)])


def step_target(store: Store, query: Any) -> str:
    """Where j/k (and 'open the next item' after a save) lead: the neighbouring run, or the queue at the end."""
    filters = QueueFilters.from_query(query)
    direction: Literal["next", "prev"] = "prev" if query.get("dir") == "prev" else "next"
    after = query.get("after", "")
    found = neighbour(store, filters, after, direction) if after else None
    suffix = urlencode(filters.query_items())
    if found is None:
        return f"/ui/?{suffix}&done={direction}"
    return f"/ui/traces/{quote(found)}?{suffix}"
