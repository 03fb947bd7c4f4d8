"""Configuration versions per agent: runs, failure rates, first and last seen, and what changed.

A run's version is :func:`~tracemill.tracer.versions.config_version.run_version` of its decisions' versions
(``tracemill.config.version`` on its LLM spans) and its ``gen_ai.agent.version``. A run failed when
it has an unmuted failure flag or its latest outcome is a failure (label ``failure``, or a reward below
the miner's outcome threshold). Each version is compared with the agent's previous one (Fisher's
exact test); a significant shift is reported with the change that came with it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tracemill.collector.ingest.versions import record_versions
from tracemill.collector.store.query import attribute
from tracemill.collector.store.schema import FEEDBACK_TABLE, FLAGS_TABLE, SPANS_TABLE
from tracemill.collector.store.schema_versions import CONFIG_VERSIONS_TABLE
from tracemill.errors import NotFoundError
from tracemill.miner.config import MinerConfig
from tracemill.miner.detectors import outcome_failed
from tracemill.miner.versions.diff import describe, diff_contents, summary
from tracemill.tracer.versions.config_version import CONFIG_VERSION, run_version
from tracemill.tracer.versions.rollout import ARM, NAME

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["RunVersion", "diff_versions", "load_contents", "run_versions", "versions_report"]


@dataclass(frozen=True)
class RunVersion:
    """One run: its agent, configuration version, when, whether it failed, and its rollout arm."""

    trace_id: str
    agent: str
    version: str
    decisions: tuple[str, ...]
    agent_version: str
    start_ns: int
    failed: bool
    rollout: str
    arm: str


_RUNS_SQL = f"""
SELECT t.TraceId, t.agent, t.decisions, t.agent_version, t.start_ns, t.rollout, t.arm,
       f.failures, o.label, o.score, o.n
FROM (
    SELECT TraceId,
           if(anyIf(AgentName, AgentName != '') != '', anyIf(AgentName, AgentName != ''),
              if(anyIf({attribute('tracemill.run.name')}, {attribute('tracemill.run.name')} != '') != '',
                 anyIf({attribute('tracemill.run.name')}, {attribute('tracemill.run.name')} != ''),
                 argMinIf(SpanName, Timestamp, ParentSpanId = ''))) AS agent,
           arraySort(groupUniqArrayIf({attribute(CONFIG_VERSION)},
                     {attribute(CONFIG_VERSION)} != '' AND {attribute('tracemill.llm.delegated')} != 'true'))
               AS decisions,
           anyIf({attribute('gen_ai.agent.version')}, {attribute('gen_ai.agent.version')} != '') AS agent_version,
           toUnixTimestamp64Nano(min(Timestamp)) AS start_ns,
           anyIf({attribute(NAME)}, {attribute(NAME)} != '') AS rollout,
           anyIf({attribute(ARM)}, {attribute(ARM)} != '') AS arm
    FROM {SPANS_TABLE} WHERE TraceId != '' AND {{where}}
    GROUP BY TraceId
    HAVING length(decisions) > 0 OR agent_version != '' OR rollout != ''
) AS t
LEFT JOIN (SELECT TraceId, count() AS failures FROM {FLAGS_TABLE} FINAL WHERE Category = 'failure' AND Muted = 0
           GROUP BY TraceId) AS f ON f.TraceId = t.TraceId
LEFT JOIN (SELECT TraceId, argMax(Label, UpdatedAt) AS label, argMax(Score, UpdatedAt) AS score, count() AS n
           FROM {FEEDBACK_TABLE} FINAL WHERE IsDeleted = 0 AND Kind = 'outcome' AND NOT startsWith(Author, 'judge:')
           GROUP BY TraceId) AS o ON o.TraceId = t.TraceId
ORDER BY t.start_ns
SETTINGS join_use_nulls = 0
"""


_VERSIONED = (
    f"TraceId IN (SELECT TraceId FROM {SPANS_TABLE} WHERE mapContains(SpanAttributes, '{CONFIG_VERSION}') "
    f"OR mapContains(SpanAttributes, 'gen_ai.agent.version') OR mapContains(SpanAttributes, '{NAME}'))"
)


def run_versions(store: Store, *, rollout: str | None = None, config: MinerConfig | None = None) -> list[RunVersion]:
    """Every run with a configuration version (or in rollout ``rollout``), oldest first."""
    threshold = (config or MinerConfig()).outcome_threshold
    # Only traces with one of the attributes can have a version: looking for the keys reads no attribute value.
    where, parameters = _VERSIONED, {}
    if rollout is not None:
        where = f"TraceId IN (SELECT TraceId FROM {SPANS_TABLE} WHERE {attribute(NAME)} = {{rollout:String}})"
        parameters = {"rollout": rollout}
    rows = store.query(_RUNS_SQL.replace("{where}", where), parameters).result_rows
    out = []
    for trace_id, agent, decisions, agent_version, start_ns, name, arm, failures, label, score, n in rows:
        failed = bool(failures) or outcome_failed(label, score, n, threshold)
        out.append(RunVersion(trace_id, agent, run_version(decisions, agent_version), tuple(decisions),
                              agent_version, int(start_ns), failed, name, arm))
    return out


def load_contents(store: Store, versions: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """Stored content per decision version (recording any version seen in spans but not stored yet)."""
    record_versions(store)
    rows = store.query(f"SELECT Version, Content FROM {CONFIG_VERSIONS_TABLE} FINAL").result_rows
    return {v: json.loads(c) for v, c in rows if versions is None or v in versions}


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _aggregate(runs: list[RunVersion]) -> list[dict[str, Any]]:
    by: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        entry = by.setdefault((run.agent, run.version), {
            "version": run.version, "agent": run.agent, "runs": 0, "failed": 0, "first_ns": run.start_ns,
            "last_ns": run.start_ns, "agent_version": run.agent_version, "decisions": list(run.decisions)})
        entry["runs"] += 1
        entry["failed"] += int(run.failed)
        entry["last_ns"] = max(entry["last_ns"], run.start_ns)
    return sorted(by.values(), key=lambda e: (e["agent"], e["first_ns"], e["version"]))


def versions_report(store: Store, *, agent: str | None = None) -> dict[str, Any]:
    """``{"versions": [...]}`` per agent, oldest first, each with what changed from the agent's previous one."""
    from tracemill.miner.regressions import _compare

    runs = [r for r in run_versions(store) if agent is None or r.agent == agent]
    entries = _aggregate(runs)
    contents = load_contents(store)
    previous: dict[str, dict[str, Any]] = {}
    out = []
    for e in entries:
        prior = previous.get(e["agent"])
        changes: list[str] = []
        shift = None
        if prior is not None:
            changes = describe([contents.get(v, {"version": v}) for v in prior["decisions"]],
                               [contents.get(v, {"version": v}) for v in e["decisions"]],
                               agent_from=prior["agent_version"], agent_to=e["agent_version"])
            shift = _compare(prior["failed"], prior["runs"], e["failed"], e["runs"])
        previous[e["agent"]] = e
        out.append({
            "version": e["version"], "agent": e["agent"], "runs": e["runs"], "failed": e["failed"],
            "failure_rate": round(e["failed"] / e["runs"], 4), "first_seen": _iso(e["first_ns"]),
            "last_seen": _iso(e["last_ns"]), "agent_version": e["agent_version"], "decisions": e["decisions"],
            "models": sorted({contents[v]["model"] for v in e["decisions"] if v in contents}),
            "previous": prior["version"] if prior else None, "changes": changes,
            "shift": shift, "significant_shift": bool(shift and shift["significant"]),
        })
    return {"versions": out}


def _resolve(name: str, known: set[str]) -> str:
    matches = [v for v in known if v.startswith(name)] if name else []
    if name in known:
        return name
    if len(matches) == 1:
        return matches[0]
    hint = "it matches several; give more characters" if matches else "see `tracemill versions` for the versions"
    raise NotFoundError(f"no configuration version {name!r}: {hint}")


def diff_versions(store: Store, a: str, b: str) -> dict[str, Any]:
    """What changed from version ``a`` to ``b``: decision versions, or run versions (prefixes accepted)."""
    contents = load_contents(store)
    runs = {r.version: r for r in run_versions(store)}
    known = set(contents) | set(runs)
    a, b = _resolve(a, known), _resolve(b, known)
    if a in contents and b in contents:
        diff = diff_contents(contents[a], contents[b])
        return {"a": a, "b": b, "kind": "decision", "changes": summary(diff), **diff}
    if a not in runs or b not in runs:
        raise NotFoundError(f"{a} and {b} are not both decision versions nor both run versions; compare like with like")
    old, new = runs[a], runs[b]
    first = [contents.get(v, {}) for v in old.decisions]
    second = [contents.get(v, {}) for v in new.decisions]
    diffs = [{"from": x, "to": y, **diff_contents(contents[x], contents[y])}
             for x in old.decisions for y in new.decisions
             if x in contents and y in contents and x != y and len(old.decisions) == len(new.decisions) == 1]
    return {"a": a, "b": b, "kind": "run",
            "changes": describe(first, second, agent_from=old.agent_version, agent_to=new.agent_version),
            "agent_version": {"from": old.agent_version, "to": new.agent_version},
            "decisions": {"from": list(old.decisions), "to": list(new.decisions)}, "diffs": diffs}


def group_counts(runs: list[RunVersion], key: str) -> dict[str, list[int]]:
    """[runs, failed] per value of ``key`` (an attribute of :class:`RunVersion`)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for run in runs:
        entry = counts[getattr(run, key)]
        entry[0] += 1
        entry[1] += int(run.failed)
    return dict(counts)
