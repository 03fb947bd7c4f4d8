"""What each review page needs, gathered from the store into one context dict per page."""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlencode

from tracemill.collector.feedback.feedback import list_feedback, list_flags
from tracemill.collector.store.reads import resolve_trace_id
from tracemill.errors import ConfigError
from tracemill.miner.quality.miner_runs import latest_run
from tracemill.ui import charts
from tracemill.ui.content import outline_rows, span_view
from tracemill.ui.queries import SEVERITY_RANK, QueueFilters, neighbour, overview, queue, queue_choices, sort_key
from tracemill.ui.trace_data import span_details, trace_outline
from tracemill.ui.version_chart import config_version_chart

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["queue_context", "span_context", "step_target", "trace_context"]

_HELPERS = {
    "json": lambda value: json.dumps(value, ensure_ascii=False),
    "json_pretty": lambda value: json.dumps(value, indent=2, ensure_ascii=False),
}


def queue_context(store: Store, query: Any) -> dict[str, Any]:
    filters = QueueFilters.from_query(query)
    page = _page_number(query.get("page", "0"))
    data = queue(store, filters, page=page)
    numbers = overview(store)
    return {
        "filters": filters,
        "filter_items": filters.query_items(),
        "queue": data,
        "end": {"next": "That was the last run of the queue.", "prev": "That was the first run of the queue."}.get(
            query.get("done", ""), ""),
        "choices": {**queue_choices(store), **_agent_choices(numbers["versions"])},
        "day_chart": charts.stacked_days(numbers["per_day"]),
        "version_chart": charts.bars(
            [(f"{v['agent']} v{v['version']}" if v["version"] else v["agent"], v["failed"] / v["runs"],
              f"{v['failed']} of {v['runs']} runs failed") for v in numbers["versions"] if v["runs"]],
            percent=True),
        "config_chart": config_version_chart(store),
        "miner": latest_run(store),
        "group_chart": charts.bars(
            [(g["template"], g["flags"], f"{g['kind']}: {g['template']} ({g['flags']} flags on {g['runs']} runs)")
             for g in numbers["groups"]]),
    }  # fmt: skip


def _agent_choices(versions: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {"agents": sorted({v["agent"] for v in versions}),
            "versions": sorted({v["version"] for v in versions if v["version"]})}


def _page_number(raw: str) -> int:
    try:
        return max(0, int(raw))
    except ValueError:
        raise ConfigError(f"page must be a whole number (got {raw!r})") from None


def _reviewed_flags(store: Store, trace_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The trace's flags (each with its review label, open ones first, worst first) and its feedback."""
    flags = list_flags(store, trace_id=trace_id, limit=1000)
    feedback = list_feedback(store, trace_id=trace_id, limit=1000)
    reviews: dict[str, str] = {}
    for item in sorted(feedback, key=lambda f: f["updated_at"]):  # the latest review of a span counts
        if item["name"] == "flag_review" and item["kind"] == "label":
            reviews[item["span_id"]] = item["label"]
    for flag in flags:  # one review row per span and reviewer: it settles every flag on that span
        flag["review"] = reviews.get(flag["span_id"], "")
    flags.sort(key=lambda f: (f["review"] != "", -SEVERITY_RANK.get(f["severity"], 0), -f["confidence"]))
    return flags, feedback


def _confirmations(flags: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """LLM span → the open flag a correction saved there also confirms (``{"span", "detector"}``): the
    first open flag on the span itself."""
    out: dict[str, dict[str, str]] = {}
    for flag in flags:
        if flag["span_id"] and not flag["review"]:
            out.setdefault(flag["span_id"], {"span": flag["span_id"], "detector": flag["detector"]})
    return out


def _decision_of(spans: list[dict[str, Any]], target: dict[str, Any], links: list[str]) -> str:
    """The LLM span whose answer led to ``target``: itself when it is one, else the LLM span it links to
    (a tool call links to the decision that asked for it), else the last LLM span that started before it."""
    if target["is_llm"]:
        return str(target["span_id"])
    llm = {s["span_id"] for s in spans if s["is_llm"]}
    for link in links:
        span_id = link.rpartition("/")[2]
        if span_id in llm:
            return span_id
    before = [s for s in spans if s["is_llm"] and s["start_ns"] <= target["start_ns"]]
    return str(max(before, key=lambda s: s["start_ns"])["span_id"]) if before else ""


def _by_span(feedback: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for item in feedback:
        out.setdefault(item["span_id"], []).append(item)
    return out


def trace_context(store: Store, trace_id: str, query: Any, *, rng: random.Random) -> dict[str, Any]:
    """The trace's outline, its flags (the current one chosen), the decisive span's content, the feedback so far."""
    filters = QueueFilters.from_query(query)
    outline = trace_outline(store, trace_id)
    full_id = outline["trace_id"]
    spans = outline_rows(outline)
    by_id = {span["span_id"]: span for span in spans}
    flags, feedback = _reviewed_flags(store, full_id)
    wanted_span, wanted_detector = query.get("span"), query.get("flag")
    current = next((f for f in flags if f["span_id"] == wanted_span and
                    (not wanted_detector or f["detector"] == wanted_detector)), flags[0] if flags else None)
    decisive = current["span_id"] if current and current["span_id"] in by_id else ""
    if not decisive:  # a whole-run flag, or none: the first failed LLM span, else the first LLM span
        decisive = next((s["span_id"] for s in spans if s["is_llm"] and s["error"]), "") or next(
            (s["span_id"] for s in spans if s["is_llm"]), "") or spans[0]["span_id"]  # no LLM span: the root
    views = {span_id: span_view(span) for span_id, span in span_details(store, full_id, [decisive]).items()}
    confirm = _confirmations(flags)
    # The editor opens on the decision behind the decisive span (a failed tool call's is the LLM span
    # that asked for it); a correction saved there confirms the flag under review.
    edit_target = _decision_of(spans, by_id[decisive], views[decisive]["links"]) if decisive else ""
    if current and edit_target and not current["review"]:
        confirm[edit_target] = {"span": current["span_id"], "detector": current["detector"]}
    focus = by_id.get(edit_target)
    more = [edit_target] if edit_target and edit_target not in views else []
    if focus and focus["siblings"]:
        more.append(focus["siblings"][0])
    views.update({span_id: span_view(span) for span_id, span in span_details(store, full_id, more).items()})
    comparison = None
    if focus and focus["siblings"]:
        comparison = [views[edit_target], views[focus["siblings"][0]]]
        rng.shuffle(comparison)  # the position of an answer must not say which one is under review
    start = min(s["start_ns"] for s in outline["spans"])
    end = max(s["start_ns"] + s["duration_ns"] for s in outline["spans"])
    trace = {
        "trace_id": full_id, "start": _iso(start), "duration_ms": round((end - start) / 1e6, 3),
        "span_count": len(spans), "error_count": sum(1 for s in spans if s["error"]), "truncated": outline["truncated"],
    }  # fmt: skip
    by_span = _by_span(feedback)
    marks = [item for item in feedback if item["kind"] == "decisive"]
    return {
        **_HELPERS,
        "marks": marks,
        "marked": {item["span_id"] for item in marks},
        "trace": trace,
        "spans": spans,
        "views": {k: v for k, v in views.items() if k in (decisive, edit_target)},
        "edit_target": edit_target,
        "flags": flags,
        "current": current,
        "decisive": decisive,
        "confirm": confirm,
        "feedback_by_span": by_span,
        "run_feedback": by_span.get("", []),
        "comparison": comparison,
        "filters": filters,
        "filter_items": filters.query_items(),
        "next_url": _step_url(filters, full_id, "next", sort_key(filters, full_id, flags)),
        "prev_url": _step_url(filters, full_id, "prev", sort_key(filters, full_id, flags)),
    }


def span_context(store: Store, trace_id: str, span_id: str) -> dict[str, Any]:
    """One span's content, for the fragment the page loads when the span is opened."""
    outline_id = resolve_trace_id(store, trace_id)
    view = span_view(span_details(store, outline_id, [span_id])[span_id])
    flags, feedback = _reviewed_flags(store, outline_id)
    return {
        **_HELPERS,
        "trace": {"trace_id": outline_id},
        "view": view,
        "confirm": _confirmations(flags),
        "feedback_by_span": _by_span(feedback),
        "evidence": None,
    }


def _iso(ns: int) -> str:
    from datetime import datetime, timezone

    seconds, rest = divmod(int(ns), 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S") + f".{rest // 1000:06d}Z"


def _step_url(filters: QueueFilters, trace_id: str, direction: str, key: tuple[Any, ...] | None) -> str:
    """The link to the neighbouring run; it carries this run's place in the queue as the page saw it."""
    items = [*filters.query_items(), ("after", trace_id), ("dir", direction)]
    if key is not None:
        items.append(("key", json.dumps(list(key))))
    return "/ui/step?" + urlencode(items)


def _key(raw: str | None, filters: QueueFilters) -> tuple[Any, ...] | None:
    """A sort key from a step link, or None (then the run's current place is used)."""
    if not raw:
        return None
    try:
        key = json.loads(raw)
    except ValueError:
        raise ConfigError(f"key must be the JSON list a step link carries (got {raw!r})") from None
    size = 3 if filters.sort == "newest" else 4
    if not isinstance(key, list) or len(key) != size or not all(isinstance(v, (int, float, str)) for v in key):
        raise ConfigError(f"key must be a list of {size} values (got {raw!r})")
    return tuple(key)


def step_target(store: Store, query: Any) -> str:
    """Where j/k (and 'open the next item' after a save) lead: the neighbouring run, or the queue at the end."""
    filters = QueueFilters.from_query(query)
    direction: Literal["next", "prev"] = "prev" if query.get("dir") == "prev" else "next"
    after = query.get("after", "")
    found = neighbour(store, filters, after, direction, key=_key(query.get("key"), filters)) if after else None
    suffix = urlencode(filters.query_items())
    if found is None:
        return f"/ui/?{suffix}&done={direction}"
    return f"/ui/traces/{quote(found)}?{suffix}"
