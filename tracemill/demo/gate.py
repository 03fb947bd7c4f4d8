"""The demo's eval stage: a suite from the corrected decisions, candidates run against it, the gate's verdicts.

The scripted model is run twice over HTTP on the suite's exact prompts: with the behaviour each ticket had when
the runs were traced (so it repeats every corrected mistake), and fixed (it makes the decisions the reviewer
prescribed). Each is gated against the other, as a team would gate a rollback and a fix. The trained tiny model
runs through its model directory on the decision cases of the tasks held out of training, gated against the old
behaviour on the same cases.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracemill.demo.runs import RunRecord
from tracemill.demo.stages import Stage

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["SUITE", "eval_stage"]

SUITE = "demo-corrections"


def eval_stage(store: Store, reviewed: Stage, trained: Stage, records: Sequence[RunRecord], export_dir: Path,
               model_dir: Path) -> Stage:
    """Build the suite, run the candidates, and gate each; skipped without corrections or scripted runs."""
    if reviewed.status != "done" or not reviewed.data.get("corrections"):
        return Stage("eval", "skipped", "no corrected decisions to build a suite from")
    if any(r.behaviour is None for r in records):
        return Stage("eval", "skipped", "the runs used a real model: the scripted candidates have nothing to repeat")
    try:
        from tracemill import evals
    except ImportError as exc:
        return Stage("eval", "unavailable", f"evals (tracemill.evals) are not available in this build "
                                            f"({type(exc).__name__}: {exc})")
    started = time.monotonic()
    suite = evals.build(SUITE, source="corrections", store=store)
    ref = f"{SUITE}@{suite['version']}"
    with _traced_as_the_demo(store):
        old = _scripted_run(store, ref, records, repeat_mistakes=True)
        fixed = _scripted_run(store, ref, records, repeat_mistakes=False)
        held_out = _held_out_cases(store, suite, export_dir) if trained.status == "done" else []
        tiny = evals.run(ref, model_dir=str(model_dir), case_ids=held_out, concurrency=1, store=store) \
            if held_out else None
    gates = [_gate(store, "scripted model, old behaviour", old, "fixed", fixed),
             _gate(store, "scripted model, fixed", fixed, "old behaviour", old)]
    if tiny is not None:
        gates.append(_gate(store, "trained tiny model (held-out tasks)", tiny, "old behaviour", old))
    verdicts = ", ".join(f"{g['candidate']}: {g['verdict']}" for g in gates)
    seconds = time.monotonic() - started
    return Stage("eval", "done", f"suite {ref} of {suite['cases']} decision cases; {verdicts} ({seconds:.0f} s)",
                 {"suite": suite["suite"], "version": suite["version"], "cases": suite["cases"], "gates": gates,
                  "seconds": round(seconds, 2)})


@contextlib.contextmanager
def _traced_as_the_demo(store: Store) -> Iterator[None]:
    """The eval's traces go into the demo's store under the demo's service name (this process's first)."""
    import tracemill
    from tracemill.collector.ingest.exporter import StoreSpanExporter

    tracemill.init(exporter=StoreSpanExporter(store.another_connection()), service_name="tracemill-demo")
    try:
        yield
    finally:
        tracemill.shutdown()


def _scripted_run(store: Store, ref: str, records: Sequence[RunRecord], *, repeat_mistakes: bool) -> dict[str, Any]:
    """A run of the scripted model behind a local OpenAI-compatible server, old or fixed."""
    from tracemill import evals
    from tracemill.demo.model import ScriptedModel
    from tracemill.demo.server import ModelServer

    model = ScriptedModel()
    for record in records:
        model.assign(record.ticket, record.behaviour if repeat_mistakes and record.behaviour else "clean")
    name = "travel-desk-scripted-old" if repeat_mistakes else "travel-desk-scripted-fixed"
    with ModelServer(model, model_name=name) as server:
        return evals.run(ref, model=name, base_url=server.base_url, api_key="offline", store=store)


def _gate(store: Store, candidate: str, run: dict[str, Any], baseline: str, base: dict[str, Any]) -> dict[str, Any]:
    """``evals.compare(baseline, candidate)`` in brief: the verdict and the cases that moved."""
    from tracemill import evals

    result = evals.compare(base["run_id"], run["run_id"], store=store)
    return {"candidate": candidate, "baseline": baseline, "candidate_run": run["run_id"],
            "baseline_run": base["run_id"], "cases": result["paired_cases"],
            "candidate_passed": round(result["candidate_pass_rate"] * result["paired_cases"]),
            "baseline_passed": round(result["baseline_pass_rate"] * result["paired_cases"]),
            "verdict": result["verdict"], "p_value": result["p_value"], "test": result["test"],
            "regressed": result["regressed"], "improved": result["improved"]}


def _held_out_cases(store: Store, suite: dict[str, Any], export_dir: Path) -> list[str]:
    """The suite's decision cases whose corrections are on the tasks held out of training."""
    import json

    from tracemill.trainer.evals.cases import decision_case_id
    from tracemill.trainer.evals.tables import load_cases

    path = export_dir / "eval.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    held_out = {decision_case_id(r["trace_id"], r["span_id"]) for r in rows if r.get("source") == "correction"}
    return sorted(c.case_id for c in load_cases(store, suite["suite"], suite["version"]) if c.case_id in held_out)
