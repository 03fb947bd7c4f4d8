"""Failure and near-miss rates per agent version, and whether the newest version is worse.

A trace's version is its ``service.version`` resource attribute, else ``gen_ai.agent.version``.
Rates count the mined traces (those with a row in ``tracemill_trace_scores``) and their current
flags. The newest two versions (by first trace) are compared with a two-proportion z-test and
Fisher's exact test, for failures and for near-misses.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from tracemill.collector.store.query import attribute
from tracemill.collector.store.schema import FLAGS_TABLE, SPANS_TABLE, TRACE_SCORES_TABLE

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["report_from_rows", "report_from_traces", "version_report"]

_EPOCH = date(1970, 1, 1)

_SERVICE_VERSION = attribute("service.version", "ResourceAttributes")

_SQL = f"""
SELECT version, toDate(toDateTime(start)) AS day, count() AS traces,
       countIf(failures > 0) AS failed, countIf(failures = 0 AND near_misses > 0) AS near_missed
FROM (
    SELECT TraceId, anyIf(v, v != '') AS version, min(Timestamp) AS start
    FROM (SELECT TraceId, Timestamp,
                 if({_SERVICE_VERSION} != '', {_SERVICE_VERSION}, {attribute('gen_ai.agent.version')}) AS v
          FROM {SPANS_TABLE}
          WHERE TraceId IN (SELECT TraceId FROM {TRACE_SCORES_TABLE}) AND {{where}})
    GROUP BY TraceId
) AS t
LEFT JOIN (
    SELECT TraceId, countIf(Category = 'failure' AND Muted = 0) AS failures,
           countIf(Category = 'near_miss' AND Muted = 0) AS near_misses
    FROM {FLAGS_TABLE} FINAL GROUP BY TraceId
) AS f ON f.TraceId = t.TraceId
GROUP BY version, day
ORDER BY day, version
SETTINGS join_use_nulls = 0
"""


def version_report(store: Store) -> dict[str, Any]:
    """``{"versions": [...], "by_day": [...], "comparison": {...} | None}`` over every mined trace."""
    return report_from_rows(store.query(_SQL.replace("{where}", "1")).result_rows)


def report_from_traces(traces: Iterable[tuple[str, float, bool, bool]]) -> dict[str, Any]:
    """The same report from (version, start in Unix seconds, failed, near-missed) per trace, for a run that
    mined every trace and so already holds them."""
    counts: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0, 0])
    for version, start_s, failed, near in traces:
        entry = counts[(version, int(start_s // 86_400))]  # the UTC day, as days since the epoch
        entry[0] += 1
        entry[1] += int(failed)
        entry[2] += int(near and not failed)
    rows = [(v, _EPOCH + timedelta(days=d), *c) for (v, d), c in counts.items()]
    return report_from_rows(sorted(rows, key=lambda row: (row[1], row[0])))


def report_from_rows(rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """The report from (version, day, traces, failed, near-missed) rows."""
    versions: dict[str, dict[str, Any]] = defaultdict(lambda: {"traces": 0, "failed": 0, "near_missed": 0})
    by_day = []
    for version, day, traces, failed, near in rows:
        name = version or "(none)"
        entry = versions[name]
        entry.setdefault("first_day", day.isoformat())
        entry["traces"] += traces
        entry["failed"] += failed
        entry["near_missed"] += near
        by_day.append({"version": name, "day": day.isoformat(), "traces": traces,
                       "failure_rate": failed / traces, "near_miss_rate": near / traces})
    table = []
    for name, entry in versions.items():
        table.append({"version": name, **entry, "failure_rate": round(entry["failed"] / entry["traces"], 4),
                      "near_miss_rate": round(entry["near_missed"] / entry["traces"], 4)})
    table.sort(key=lambda e: (e["first_day"], e["version"]))
    named = [e for e in table if e["version"] != "(none)"]
    comparison = None
    if len(named) >= 2:
        old, new = named[-2], named[-1]
        comparison = {"baseline": old["version"], "candidate": new["version"],
                      "failure": _compare(old["failed"], old["traces"], new["failed"], new["traces"]),
                      "near_miss": _compare(old["near_missed"], old["traces"], new["near_missed"], new["traces"])}
    return {"versions": table, "by_day": by_day, "comparison": comparison}


def _compare(x1: int, n1: int, x2: int, n2: int) -> dict[str, Any]:
    """Rates, their difference, two-proportion z (pooled) and Fisher's exact p-value (two-sided)."""
    from scipy.stats import fisher_exact

    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (p2 - p1) / se if se > 0 else 0.0
    p_z = math.erfc(abs(z) / math.sqrt(2))
    _, p_fisher = fisher_exact([[x1, n1 - x1], [x2, n2 - x2]])
    return {"baseline_rate": round(p1, 4), "candidate_rate": round(p2, 4), "difference": round(p2 - p1, 4),
            "z": round(z, 3), "p_value_z": round(p_z, 6), "p_value_fisher": round(float(p_fisher), 6),
            "significant": bool(p_fisher < 0.05), "worse": bool(p2 > p1 and p_fisher < 0.05)}
