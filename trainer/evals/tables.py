"""Eval suites, cases, runs and results in the store's tables (schema migrations 16 and 17).

A suite version is written once: :func:`write_suite` takes the next version number and never rewrites one.
JSON columns hold what the runner needs; everything is read back as :class:`Case` records or plain dicts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tracemill.collector.store.schema import EVAL_CASES_TABLE, EVAL_RESULTS_TABLE, EVAL_RUNS_TABLE, EVAL_SUITES_TABLE
from tracemill.errors import ConfigError, NotFoundError
from tracemill.trainer.evals.cases import Case

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["list_runs", "list_suites", "load_cases", "load_results", "load_run", "parse_ref", "resolve_version",
           "write_results", "write_run", "write_suite"]

_CASE_COLUMNS = ["Suite", "Version", "CaseId", "Kind", "Source", "TraceId", "SpanId", "MustPass", "Outcome",
                 "GroupKey", "Prompt", "Tools", "Expected", "Input", "Recording"]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@VERSION`` → (name, version or None for the latest)."""
    name, _, version = ref.partition("@")
    if not name:
        raise ConfigError(f"suite reference {ref!r} has no name; write NAME or NAME@VERSION")
    if not version:
        return name, None
    if not version.isdigit():
        raise ConfigError(f"suite version must be a whole number, as in {name}@2 (got {version!r})")
    return name, int(version)


def resolve_version(store: Store, name: str, version: int | None) -> int:
    """The version asked for, or the latest; NotFoundError naming the versions there are."""
    versions = [int(v) for (v,) in store.query(
        f"SELECT DISTINCT Version FROM {EVAL_SUITES_TABLE} WHERE Suite = {{s:String}} ORDER BY Version",
        {"s": name}).result_rows]
    if not versions:
        raise NotFoundError(f"no eval suite named {name!r}; build one with `tracemill eval build {name} --from ...`")
    if version is None:
        return versions[-1]
    if version not in versions:
        raise NotFoundError(f"suite {name!r} has no version {version} (versions: {', '.join(map(str, versions))})")
    return version


def write_suite(store: Store, name: str, cases: Sequence[Case], *, source: str, settings: dict[str, Any]) -> int:
    """Store ``cases`` as the next version of suite ``name``; return that version."""
    latest = store.query(f"SELECT max(Version) FROM {EVAL_SUITES_TABLE} WHERE Suite = {{s:String}}",
                         {"s": name}).result_rows[0][0]
    version = int(latest or 0) + 1
    rows = [[name, version, c.case_id, c.kind, c.source, c.trace_id, c.span_id, int(c.must_pass), c.outcome,
             c.group, _json(c.prompt), _json(c.tools), _json(c.expected), _json(c.input), _json(c.recording)]
            for c in cases]
    for start in range(0, len(rows), 5000):
        store.insert(EVAL_CASES_TABLE, rows[start:start + 5000], _CASE_COLUMNS)
    # The suite row last: a version is listed only once all its cases are in.
    store.insert(EVAL_SUITES_TABLE, [[name, version, source, len(cases), _json(settings), _now()]],
                 ["Suite", "Version", "Source", "Cases", "Settings", "CreatedAt"])
    return version


def load_cases(store: Store, name: str, version: int) -> list[Case]:
    rows = store.query(
        f"SELECT {', '.join(_CASE_COLUMNS[2:])} FROM {EVAL_CASES_TABLE} FINAL "
        "WHERE Suite = {s:String} AND Version = {v:UInt32} ORDER BY CaseId", {"s": name, "v": version}).result_rows
    return [Case(case_id=r[0], kind=r[1], source=r[2], trace_id=r[3], span_id=r[4], must_pass=bool(r[5]),
                 outcome=r[6], group=r[7], prompt=json.loads(r[8]), tools=json.loads(r[9]),
                 expected=json.loads(r[10]), input=json.loads(r[11]), recording=json.loads(r[12])) for r in rows]


def list_suites(store: Store) -> list[dict[str, Any]]:
    rows = store.query(f"SELECT Suite, Version, Source, Cases, CreatedAt FROM {EVAL_SUITES_TABLE} FINAL "
                       "ORDER BY Suite, Version").result_rows
    return [{"suite": r[0], "version": int(r[1]), "source": r[2], "cases": int(r[3]), "created_at": r[4].isoformat()}
            for r in rows]


_RUN_COLUMNS = ["RunId", "Suite", "Version", "Candidate", "Repeat", "Passed", "Total", "Settings", "StartedAt",
                "FinishedAt"]


def write_run(store: Store, run: dict[str, Any]) -> None:
    store.insert(EVAL_RUNS_TABLE, [[run["run_id"], run["suite"], run["version"], run["candidate"], run["repeat"],
                                    run["passed"], run["total"], _json(run["summary"]), run["started_at"],
                                    run["finished_at"]]], _RUN_COLUMNS)


def write_results(store: Store, run_id: str, results: Sequence[dict[str, Any]]) -> None:
    rows = [[run_id, r["case_id"], r["attempt"], int(r["passed"]), r["trace_id"], r["duration_s"],
             _json(r["output"]), _json(r["detail"])] for r in results]
    for start in range(0, len(rows), 5000):
        store.insert(EVAL_RESULTS_TABLE, rows[start:start + 5000],
                     ["RunId", "CaseId", "Attempt", "Passed", "TraceId", "DurationS", "Output", "Detail"])


def _run_dict(r: Sequence[Any]) -> dict[str, Any]:
    return {"run_id": r[0], "suite": r[1], "version": int(r[2]), "candidate": r[3], "repeat": int(r[4]),
            "passed": int(r[5]), "total": int(r[6]), "summary": json.loads(r[7] or "{}"),
            "started_at": r[8].isoformat(), "finished_at": r[9].isoformat()}


def list_runs(store: Store, *, suite: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    where = "WHERE Suite = {s:String}" if suite else ""
    rows = store.query(f"SELECT {', '.join(_RUN_COLUMNS)} FROM {EVAL_RUNS_TABLE} FINAL {where} "
                       "ORDER BY StartedAt DESC LIMIT {n:UInt32}", {"s": suite or "", "n": limit}).result_rows
    return [_run_dict(r) for r in rows]


def listing(store: Store, *, suite: str | None = None, limit: int = 100) -> dict[str, Any]:
    """``{"suites", "runs"}``: every suite version and the newest ``limit`` runs (of ``suite`` when named)."""
    suites = [s for s in list_suites(store) if suite is None or s["suite"] == suite]
    return {"suites": suites, "runs": list_runs(store, suite=suite, limit=limit)}


def load_run(store: Store, run_id: str) -> dict[str, Any]:
    """One run by id or unique prefix."""
    rows = store.query(f"SELECT {', '.join(_RUN_COLUMNS)} FROM {EVAL_RUNS_TABLE} FINAL "
                       "WHERE startsWith(RunId, {r:String}) LIMIT 2", {"r": run_id}).result_rows
    if not rows:
        raise NotFoundError(f"no eval run {run_id!r}; `tracemill eval list` shows the runs")
    if len(rows) > 1:
        raise NotFoundError(f"eval run prefix {run_id!r} is ambiguous; give more of the id")
    return _run_dict(rows[0])


def load_results(store: Store, run_id: str) -> list[dict[str, Any]]:
    rows = store.query(f"SELECT CaseId, Attempt, Passed, TraceId, DurationS, Output, Detail FROM {EVAL_RESULTS_TABLE} "
                       "FINAL WHERE RunId = {r:String} ORDER BY CaseId, Attempt", {"r": run_id}).result_rows
    return [{"case_id": r[0], "attempt": int(r[1]), "passed": bool(r[2]), "trace_id": r[3], "duration_s": r[4],
             "output": json.loads(r[5] or "null"), "detail": json.loads(r[6] or "null")} for r in rows]
