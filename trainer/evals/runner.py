"""Run a suite version against a candidate: every case K times, in parallel up to a bound, every call traced.

Decision cases go to a model (:mod:`.models`); run cases go to the team's agent (``agent(case_input)``). Results
are stored per attempt; the run's summary has pass@k (a case passes on some attempt) and pass^k (on every
attempt). Run cases with no scorer are judged by the miner: the eval's traces are mined, and a run passes when
the miner's detectors raise no failure flag on it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tracemill.collector.store.schema import FLAGS_TABLE
from tracemill.errors import ConfigError
from tracemill.trainer.evals.attempts import Attempt, decision_attempt, run_attempt
from tracemill.trainer.evals.cases import Case
from tracemill.trainer.evals.models import Decider
from tracemill.trainer.evals.scoring import Scorer
from tracemill.trainer.evals.tables import load_cases, parse_ref, resolve_version, write_results, write_run

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["Progress", "run_suite", "summarise"]

Progress = Callable[[int, int], None]
"""``progress(done, total)`` after each attempt."""


@contextlib.contextmanager
def traced_into(store: Store) -> Iterator[None]:
    """Trace into ``store`` for the block, unless the program has configured tracing itself."""
    import tracemill
    from tracemill.collector.ingest.exporter import StoreSpanExporter
    from tracemill.tracer.runtime import RUNTIME

    if RUNTIME.tracer is not None:
        yield
        tracemill.force_flush()
        return
    tracemill.init(exporter=StoreSpanExporter(store.another_connection()), service_name="tracemill-eval")
    try:
        yield
    finally:
        tracemill.force_flush()
        tracemill.shutdown()


def _pick(cases: Sequence[Case], *, decider: Decider | None, agent: Any, case_ids: Sequence[str] | None,
          ) -> list[Case]:
    kinds = {"decision"} if decider is not None else set()
    if agent is not None:
        kinds.add("run")
    chosen = [c for c in cases if c.kind in kinds and (not case_ids or c.case_id in case_ids)]
    if not chosen:
        wanted = " and ".join(sorted(kinds))
        raise ConfigError(f"the suite has no {wanted} cases to run"
                          + (" among the case ids given" if case_ids else "; give --model for decision cases, "
                             "--agent for run cases"))
    return chosen


def _judge_by_miner(store: Store, results: list[dict[str, Any]]) -> None:
    """Mine the eval's own traces and pass each unjudged run that got no failure flag from a detector.

    The miner's learned failure probability (``predicted_failure``) does not judge: it was fitted on the
    production runs, and an eval run (a root of another name, tools answered from a recording) is not one."""
    pending = [r for r in results if r["passed"] is None]
    if not pending:
        return
    from tracemill.miner import mine

    mine(store)
    ids = [r["trace_id"] for r in pending]
    failed = {trace_id for (trace_id,) in store.query(
        f"SELECT DISTINCT TraceId FROM {FLAGS_TABLE} FINAL WHERE Category = 'failure' AND Kind != 'predicted_failure' "
        "AND TraceId IN {ids:Array(String)}", {"ids": ids}).result_rows}
    for result in pending:
        result["passed"] = result["trace_id"] not in failed
        result["detail"]["reason"] = "miner: failure flag" if result["passed"] is False else "miner: no failure flag"


def summarise(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per case pass rate over its attempts; counts and rates of pass@k and pass^k."""
    attempts: dict[str, list[bool]] = defaultdict(list)
    for result in results:
        attempts[result["case_id"]].append(bool(result["passed"]))
    total = len(attempts)
    every = sum(all(a) for a in attempts.values())
    some = sum(any(a) for a in attempts.values())
    return {"cases": total, "passed": every, "pass_at_k": some / total if total else 0.0,
            "pass_hat_k": every / total if total else 0.0,
            "attempt_pass_rate": sum(map(sum, attempts.values())) / max(1, sum(map(len, attempts.values())))}


def _execute(attempts: list[Attempt], work: Callable[[Attempt], dict[str, Any]], concurrency: int,
             progress: Progress | None) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="tracemill-eval") as pool:
        for done, result in enumerate(pool.map(work, attempts), start=1):
            results.append(result)
            if progress is not None:
                progress(done, len(attempts))
    return results


def run_suite(store: Store, ref: str, *, decider: Decider | None = None, agent: Callable[[Any], Any] | None = None,
              scorer: Scorer | None = None, replay_tools: bool = False, repeat: int = 1, concurrency: int = 8,
              case_ids: Sequence[str] | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Run suite ``ref`` (``NAME`` or ``NAME@VERSION``) against ``decider`` and/or ``agent``; store and return the
    run: ``{"run_id", "suite", "version", "passed", "total", "summary", "results"}``."""
    if decider is None and agent is None:
        raise ConfigError("give a candidate: --model or --model-dir for decision cases, --agent for run cases")
    if repeat < 1 or concurrency < 1:
        raise ConfigError(f"--repeat and --concurrency must be at least 1 (got {repeat} and {concurrency})")
    name, wanted = parse_ref(ref)
    version = resolve_version(store, name, wanted)
    cases = _pick(load_cases(store, name, version), decider=decider, agent=agent, case_ids=case_ids)
    run_id = uuid.uuid4().hex
    attempts = [Attempt(run_id, name, case, number) for case in cases for number in range(repeat)]

    def work(attempt: Attempt) -> dict[str, Any]:
        if attempt.case.kind == "decision":
            assert decider is not None  # _pick keeps decision cases only with a decider
            return decision_attempt(attempt, decider, scorer)
        assert agent is not None
        return run_attempt(attempt, agent, scorer, replay_tools)

    started = datetime.now(timezone.utc)
    with traced_into(store):
        results = _execute(attempts, work, concurrency, progress)
    _judge_by_miner(store, results)
    summary = summarise(results)
    candidate = " + ".join(filter(None, [decider.name if decider else "", _name(agent)]))
    run = {"run_id": run_id, "suite": name, "version": version, "candidate": candidate, "repeat": repeat,
           "passed": summary["passed"], "total": summary["cases"], "started_at": started,
           "finished_at": datetime.now(timezone.utc),
           "summary": {**summary, "replay_tools": replay_tools, "must_pass": [c.case_id for c in cases if c.must_pass],
                       "config_versions": candidate_versions(store, [r["trace_id"] for r in results])}}
    write_results(store, run_id, results)
    write_run(store, run)
    return {**run, "started_at": started.isoformat(), "finished_at": run["finished_at"].isoformat(),
            "results": results}


def _name(agent: Any) -> str:
    if agent is None:
        return ""
    return f"{getattr(agent, '__module__', '')}:{getattr(agent, '__qualname__', repr(agent))}"


def candidate_versions(store: Store, trace_ids: Sequence[str]) -> list[str]:
    """The configuration versions the candidate's traced decisions recorded (``tracemill.config.version`` on the
    LLM spans of the run's attempts), so an eval run names what it measured, like the runs it is compared with."""
    from tracemill.collector.store.schema import SPANS_TABLE
    from tracemill.tracer.versions.config_version import CONFIG_VERSION

    ids = [t for t in trace_ids if t]
    if not ids:
        return []
    rows = store.query(
        f"SELECT DISTINCT SpanAttributes[{{key:String}}] AS v FROM {SPANS_TABLE} "
        "WHERE TraceId IN {ids:Array(String)} AND v != '' ORDER BY v",
        {"key": CONFIG_VERSION, "ids": ids},
    ).result_rows
    return [r[0] for r in rows]
