"""What the review pages show, read from the store: the queue of flagged runs, its neighbours, the overview.

The queue is one row per flagged run, built in ClickHouse from ``tracemill_flags`` (read with
FINAL, the latest mining run's row per trace, detector and span) and the flag reviews in
``tracemill_feedback`` (``Kind='label'``, ``Name='flag_review'``, the detector in the value). A run
is reviewed when every flag on it has a review. Feedback keeps one row per (trace, span, name,
author), so a review settles every flag on its span (the detector it names is kept for the
record); the latest review of a span counts. Only one page of runs comes back to Python; the
agent and version of those runs are read for that page alone.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from tracemill.collector.store.schema import FEEDBACK_TABLE, FLAGS_TABLE, SPANS_TABLE, TRACE_ID_TS_TABLE
from tracemill.errors import ConfigError

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["SEVERITY_RANK", "QueueFilters", "neighbour", "overview", "queue", "queue_choices", "sort_key"]

SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}
"""Order of the miner's severities, most severe highest; any other value ranks with info."""

PAGE_SIZE = 50
_SEVERITY_SQL = "multiIf(" + ", ".join(f"Severity = '{name}', {rank}" for name, rank in SEVERITY_RANK.items()) + ", 0)"
_KIND = "if(Kind != '', Kind, Detector)"  # flags written without a kind count under their detector
_F_KIND = "if(f.Kind != '', f.Kind, f.Detector)"
_AGENT_VERSION = "AgentVersion"  # materialized from gen_ai.agent.version (schema migration 8)
# Flags of a category starting with one of these are near misses, not failures, in the failure rate.
_NEAR_MISS_PREFIXES = ("near",)


@dataclass(frozen=True)
class QueueFilters:
    """The queue's filters, as they travel in the page's query string (empty: any)."""

    kind: str = ""
    """The flag's kind (``tracemill_flags.Kind``, e.g. tool_error, loop, excess_steps)."""
    category: str = ""
    """failure or near_miss."""
    detector: str = ""
    agent: str = ""
    version: str = ""
    reviewed: Literal["", "yes", "no"] = "no"
    sort: Literal["severity", "newest"] = "severity"

    @classmethod
    def from_query(cls, query: Any) -> QueueFilters:
        values = {f.name: (query.get(f.name) or "").strip() for f in fields(cls) if f.name in query}
        reviewed = values.pop("reviewed", "no")
        sort = values.pop("sort", "") or "severity"
        if reviewed not in ("", "yes", "no"):
            raise ConfigError(f"reviewed must be yes, no or empty (got {reviewed!r})")
        if sort not in ("severity", "newest"):
            raise ConfigError(f"sort must be severity or newest (got {sort!r})")
        return cls(**values, reviewed=reviewed, sort=sort)  # type: ignore[arg-type]  # checked just above

    def query_items(self) -> list[tuple[str, str]]:
        """The filters for a link's query string (defaults included, so a link keeps the exact view)."""
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


def _flag_rows_sql(filters: QueueFilters, params: dict[str, Any], *, trace_param: str | None = None) -> str:
    """Every current flag matching the filters, with its review label ('' when unreviewed)."""
    conditions = ["f.Muted = 0"]  # a muted detector's flags stay out of the queue (see miner.calibration)
    if filters.kind:
        conditions.append(f"{_F_KIND} = {{kind:String}}")
        params["kind"] = filters.kind
    if filters.category:
        conditions.append("f.Category = {category:String}")
        params["category"] = filters.category
    if filters.detector:
        conditions.append("f.Detector = {detector:String}")
        params["detector"] = filters.detector
    if filters.agent or filters.version:
        inner = ["AgentName != ''"]
        if filters.agent:
            inner.append("AgentName = {agent:String}")
            params["agent"] = filters.agent
        if filters.version:
            inner.append(f"{_AGENT_VERSION} = {{version:String}}")
            params["version"] = filters.version
        conditions.append(f"f.TraceId IN (SELECT TraceId FROM {SPANS_TABLE} WHERE {' AND '.join(inner)})")
    if trace_param:
        conditions.append(f"f.TraceId = {{{trace_param}:String}}")
    return f"""
        SELECT f.TraceId AS TraceId, f.SpanId AS SpanId, f.Detector AS Detector, f.Category AS Category,
               {_F_KIND} AS FlagKind,
               f.Severity AS Severity, f.Confidence AS Confidence, f.Evidence AS Evidence, f.CreatedAt AS CreatedAt,
               r.Review AS Review, {_SEVERITY_SQL.replace('Severity', 'f.Severity')} AS SeverityRank
        FROM {FLAGS_TABLE} AS f FINAL
        LEFT JOIN (
            SELECT TraceId, SpanId, argMax(Label, UpdatedAt) AS Review
            FROM {FEEDBACK_TABLE} FINAL
            WHERE Kind = 'label' AND Name = 'flag_review' AND IsDeleted = 0
            GROUP BY TraceId, SpanId
        ) AS r ON r.TraceId = f.TraceId AND r.SpanId = f.SpanId
        WHERE {' AND '.join(conditions)}"""


def _runs_sql(filters: QueueFilters, params: dict[str, Any], *, trace_param: str | None = None) -> str:
    """Flagged runs: one row per trace with its worst flag, counts and the queue's sort key.

    While a run has open flags, its place and the flag shown come from the open ones alone.
    """
    return f"""
        SELECT TraceId,
               count() AS Flags,
               countIf(Review = '') AS Open,
               if(Open > 0, maxIf(SeverityRank, Review = ''), max(SeverityRank)) AS Rank,
               if(Open > 0, maxIf(Confidence, Review = ''), max(Confidence)) AS TopConfidence,
               argMax(tuple(SpanId, Detector, Category, Severity, Confidence, Evidence, FlagKind),
                      tuple(Review = '', SeverityRank, Confidence, CreatedAt)) AS Top,
               max(CreatedAt) AS Latest,
               {_sort_key(filters.sort)} AS SortKey
        FROM ({_flag_rows_sql(filters, params, trace_param=trace_param)})
        GROUP BY TraceId"""


def _sort_key(sort: str) -> str:
    if sort == "newest":
        return "tuple(toUnixTimestamp64Micro(Latest), Rank, TraceId)"
    return "tuple(Rank, TopConfidence, toUnixTimestamp64Micro(Latest), TraceId)"


def _reviewed_having(filters: QueueFilters) -> str:
    return {"yes": "Open = 0", "no": "Open > 0", "": "1"}[filters.reviewed]


def queue(store: Store, filters: QueueFilters, *, page: int = 0, page_size: int = PAGE_SIZE) -> dict[str, Any]:
    """One page of flagged runs, worst (or newest) first, with how many match and how many are left."""
    if page < 0:
        raise ConfigError(f"page must be 0 or more (got {page})")
    params: dict[str, Any] = {"limit": page_size, "offset": page * page_size}
    rows = store.query(
        f"""SELECT TraceId, Flags, Open, Top, Latest FROM ({_runs_sql(filters, params)})
            WHERE {_reviewed_having(filters)}
            ORDER BY SortKey DESC LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}""",
        params,
    ).result_rows
    items = []
    matching, left = _counts(store, filters)
    for trace_id, flags, open_flags, top, latest in rows:
        span_id, detector, category, severity, confidence, evidence, kind = top
        items.append({
            "trace_id": trace_id, "flags": int(flags), "open": int(open_flags), "span_id": span_id,
            "detector": detector, "category": category, "kind": kind, "severity": severity,
            "confidence": float(confidence), "evidence": evidence, "flagged_at": _iso(latest),
        })  # fmt: skip
    _add_run_facts(store, items)
    return {"items": items, "matching": int(matching), "left": int(left), "page": page, "page_size": page_size}


def _counts(store: Store, filters: QueueFilters) -> tuple[int, int]:
    """(runs matching the filters, runs with open flags), from a lighter aggregation than the page's."""
    params: dict[str, Any] = {}
    having = _reviewed_having(filters)
    row = store.query(
        f"""SELECT countIf({having}), countIf(Open > 0)
            FROM (SELECT TraceId, countIf(Review = '') AS Open
                  FROM ({_flag_rows_sql(filters, params)}) GROUP BY TraceId)""",
        params,
    ).result_rows[0]
    return int(row[0]), int(row[1])


def _add_run_facts(store: Store, items: list[dict[str, Any]]) -> None:
    """Agent, version, task, start and span count of the page's runs (one query over those traces only)."""
    if not items:
        return
    rows = store.query(
        f"""SELECT TraceId,
                   anyIf(AgentName, AgentName != ''),
                   anyIf({_AGENT_VERSION}, {_AGENT_VERSION} != ''),
                   anyIf(TaskId, TaskId != ''),
                   toUnixTimestamp64Nano(min(Timestamp)),
                   count(),
                   argMin(SpanName, (ParentSpanId != '', Timestamp))
            FROM {SPANS_TABLE} WHERE TraceId IN {{ids:Array(String)}} GROUP BY TraceId""",
        {"ids": [item["trace_id"] for item in items]},
    ).result_rows
    facts = {row[0]: row[1:] for row in rows}
    for item in items:
        agent, version, task, start_ns, spans, name = facts.get(item["trace_id"], ("", "", "", 0, 0, ""))
        item.update(agent=agent, version=version, task=task, spans=int(spans), name=name,
                    start=_iso_ns(start_ns) if start_ns else "")


def neighbour(store: Store, filters: QueueFilters, trace_id: str, direction: Literal["next", "prev"], *,
              key: tuple[Any, ...] | None = None) -> str | None:
    """The run after (or before) ``trace_id`` in the queue's order, or None at the end.

    Keyset order from the run's sort ``key`` as it was when its page was shown (see :func:`sort_key`;
    read from the store when not given): a review just saved may have moved the run or taken it
    out of the queue, and the next run is still the one that followed it.
    """
    if key is None:
        params: dict[str, Any] = {"tid": trace_id}
        own = store.query(f"SELECT SortKey FROM ({_runs_sql(filters, params, trace_param='tid')})", params)
        key = tuple(own.result_rows[0][0]) if own.result_rows else None
    params = {}
    runs = _runs_sql(filters, params)
    if key is not None:
        params["key"] = key
        compare, order = ("<", "DESC") if direction == "next" else (">", "ASC")
        where = f"{_reviewed_having(filters)} AND SortKey {compare} {{key:{_key_type(filters.sort)}}}"
    else:
        where, order = _reviewed_having(filters), "DESC"
    rows = store.query(f"SELECT TraceId FROM ({runs}) WHERE {where} ORDER BY SortKey {order} LIMIT 1", params)
    return rows.result_rows[0][0] if rows.result_rows else None


def sort_key(filters: QueueFilters, trace_id: str, flags: list[dict[str, Any]]) -> tuple[Any, ...] | None:
    """The queue's sort key of a run, from its flags as :func:`tracemill.collector.feedback.feedback.list_flags` gives
    them with a ``review`` label each (the same rule as the SQL of :func:`queue`); None when no flag matches."""
    mine = [f for f in flags if (not filters.kind or (f.get("kind") or f["detector"]) == filters.kind)
            and (not filters.category or f["category"] == filters.category)
            and (not filters.detector or f["detector"] == filters.detector)]
    if not mine:
        return None
    open_flags = [f for f in mine if not f["review"]] or mine
    rank = max(SEVERITY_RANK.get(f["severity"], 0) for f in open_flags)
    confidence = max(float(f["confidence"]) for f in open_flags)
    latest = max(_micros(f["created_at"]) for f in mine)
    if filters.sort == "newest":
        return (latest, rank, trace_id)
    return (rank, confidence, latest, trace_id)


def _micros(iso: str) -> int:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def _key_type(sort: str) -> str:
    if sort == "newest":
        return "Tuple(Int64, UInt8, String)"
    return "Tuple(UInt8, Float64, Int64, String)"


def queue_choices(store: Store) -> dict[str, list[str]]:
    """Values the filters offer: kinds, categories and detectors that have flags."""
    rows = store.query(f"SELECT DISTINCT {_KIND}, Category, Detector FROM {FLAGS_TABLE} FINAL").result_rows
    return {"kinds": sorted({r[0] for r in rows if r[0]}), "categories": sorted({r[1] for r in rows if r[1]}),
            "detectors": sorted({r[2] for r in rows if r[2]})}


def overview(store: Store, *, days: int = 30) -> dict[str, Any]:
    """The numbers behind the overview strip: flags per day by kind, failure rate per agent version,
    the largest groups of the failure taxonomy (failure evidence grouped by its template)."""
    per_day = store.query(
        f"""SELECT toDate(ts.Start) AS Day, {_F_KIND} AS K,
                   count()
            FROM {FLAGS_TABLE} AS f FINAL
            INNER JOIN (SELECT TraceId, min(Start) AS Start FROM {TRACE_ID_TS_TABLE}
                        WHERE TraceId IN (SELECT TraceId FROM {FLAGS_TABLE}) GROUP BY TraceId) AS ts
                ON ts.TraceId = f.TraceId
            GROUP BY Day, K ORDER BY Day DESC, K LIMIT 2000""",
    ).result_rows
    recent_days = sorted({row[0] for row in per_day})[-days:]
    kept = ["Muted = 0", "Category != 'signal'"]  # muted flags and hand-off signals are not failures
    near = " AND ".join([*kept, *(f"NOT startsWith(Category, '{p}')" for p in _NEAR_MISS_PREFIXES)])
    # An agent run is an invoke_agent span (a sub-agent's run counts for its own name and version);
    # it failed when its trace has a flag that is not a near miss. Runs of the last ``days`` only.
    versions = store.query(
        f"""SELECT AgentName, {_AGENT_VERSION} AS Version, count() AS Runs,
                   countIf(TraceId IN (SELECT TraceId FROM {FLAGS_TABLE} FINAL WHERE {near})) AS Failed
            FROM {SPANS_TABLE}
            WHERE GenAiOperation = 'invoke_agent' AND AgentName != ''
              AND Timestamp >= now() - toIntervalDay({{days:UInt32}})
            GROUP BY AgentName, Version ORDER BY AgentName, Version LIMIT 24""",
        {"days": days},
    ).result_rows
    # The taxonomy's groups: failure evidence with numbers, quoted values and ids masked, so one kind of
    # error is one group whatever order, city or id it names.
    groups = store.query(
        f"""SELECT replaceRegexpAll(replaceRegexpAll(replaceRegexpAll(lower(Evidence), {{ids:String}}, '<id>'),
                                                    {{numbers:String}}, '<n>'), {{quoted:String}}, '<s>') AS Template,
                   topK(1)({_KIND})[1], count() AS n, uniqExact(TraceId)
            FROM {FLAGS_TABLE} FINAL WHERE Category = 'failure' AND Muted = 0
            GROUP BY Template ORDER BY n DESC, Template LIMIT 8""",
        {"ids": r"\b[0-9a-f]{16,}\b", "numbers": r"\d+(\.\d+)?", "quoted": r"'[^']*'|\"[^\"]*\""},
    ).result_rows
    stored = _stored_groups(store)
    return {
        "per_day": [{"day": day.isoformat(), "kind": kind, "flags": int(n)} for day, kind, n in per_day
                    if day in recent_days],
        "versions": [{"agent": a, "version": v, "runs": int(r), "failed": int(f)} for a, v, r, f in versions],
        "groups": stored or [{"template": g, "kind": k, "flags": int(n), "runs": int(t)} for g, k, n, t in groups],
    }


def _stored_groups(store: Store) -> list[dict[str, Any]]:
    """The miner's stored failure taxonomy (``tracemill_taxonomy``), in the overview's shape; empty before the
    first mining run that found failures, when the overview groups flag evidence itself."""
    from tracemill.miner.quality.taxonomy_store import latest_taxonomy

    return [{"template": g["name"], "kind": next(iter(g["detectors"]), ""), "flags": g["count"], "runs": g["count"]}
            for g in latest_taxonomy(store)[:8]]


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _iso_ns(ns: int) -> str:
    return datetime.fromtimestamp(int(ns) / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
