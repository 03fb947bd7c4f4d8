"""The mining stage that predicts decisive steps: ``decisive_model`` flags on failed runs no reviewer marked.

With at least :data:`MIN_MARKED_RUNS` runs a reviewer marked, the ranker is cross-validated (grouped by
task) against the first-step, last-step and rule-detector baselines; it predicts only when its top-1
accuracy beats all three. Each failed run without a reviewer's mark then gets one flag on the
predicted span, with the ranker's probability as confidence and the runner-ups in the evidence. Every
mining run replaces all earlier predictions, so a run a reviewer has since marked loses its flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tracemill.collector.store.schema import FLAGS_TABLE
from tracemill.miner.decisive.eval import cross_validate
from tracemill.miner.decisive.marks import DETECTOR, failed_runs, load_marks, rule_spans
from tracemill.miner.decisive.ranker import train
from tracemill.miner.decisive.spans import Run, load_runs
from tracemill.miner.detectors import Flag

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["DETECTOR", "MIN_MARKED_RUNS", "DecisiveReport", "predict_decisive"]

MIN_MARKED_RUNS = 20
"""The ranker learns and predicts only from this many runs with a reviewer's decisive mark."""

VERSION = "1"
_RUNNER_UPS = 3


@dataclass
class DecisiveReport:
    """What the stage did: ``note`` in words, the cross-validation figures, the flags it wrote."""

    note: str
    marked_runs: int = 0
    cv: dict[str, Any] = field(default_factory=dict)
    flags: list[Flag] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"note": self.note, "marked_runs": self.marked_runs, "cv": self.cv, "predicted": len(self.flags)}


def predict_decisive(store: Store, *, threshold: float = 0.5, folds: int = 5, run_id: str = "",
                     miner_version: str = "") -> DecisiveReport:
    """Replace the store's ``decisive_model`` flags with fresh predictions (see the module docstring)."""
    store.command(f"DELETE FROM {FLAGS_TABLE} WHERE Detector = {{d:String}}", {"d": DETECTOR})
    marks = load_marks(store)
    human = [trace_id for trace_id, mark in marks.items() if mark.weight >= 1.0]
    if len(human) < MIN_MARKED_RUNS:
        return DecisiveReport(f"decisive steps: {len(human)} runs have a reviewer's mark; the ranker needs "
                              f"{MIN_MARKED_RUNS} (tracemill feedback decisive, or d in the review UI)", len(human))
    failed = failed_runs(store, threshold)
    runs = load_runs(store, set(failed) | set(marks))
    marked_runs = [runs[t] for t in marks if t in runs]
    rules = rule_spans(store, list(runs))
    try:
        cv = cross_validate(marked_runs, marks, failed, rules, folds=folds)
    except ValueError as exc:
        return DecisiveReport(f"decisive steps: {exc}", len(human))
    best = max(cv[name]["top1"] for name in ("first_step", "last_step", "rules"))
    if cv["model"]["top1"] <= best:
        return DecisiveReport(f"decisive steps: the ranker's top-1 accuracy {cv['model']['top1']:.0%} does not beat "
                              f"the best baseline ({best:.0%}); no predictions written", len(human), cv)
    ranker = train(marked_runs, marks, failed, rules)
    targets = [runs[t] for t in sorted(failed) if t in runs and runs[t].steps
               and (t not in marks or marks[t].weight < 1.0)]
    flags = [_flag(run, ranker.rank(run, failed[run.trace_id], rules.get(run.trace_id, ())), cv) for run in targets]
    _write(store, flags, run_id, miner_version)
    note = (f"decisive steps: ranker trained on {len(human)} marked runs (grouped CV top-1 {cv['model']['top1']:.0%}, "
            f"top-3 {cv['model']['top3']:.0%}, agent {cv['model']['agent']:.0%}; best baseline {best:.0%}); "
            f"predicted {len(flags)} unmarked failed runs")
    return DecisiveReport(note, len(human), cv, flags)


def _flag(run: Run, ranked: list[tuple[int, float]], cv: dict[str, Any]) -> Flag:
    index, probability = ranked[0]
    step = run.steps[index]
    others = "; ".join(f"{run.steps[i].name} [{run.steps[i].span_id}] {p:.2f}" for i, p in ranked[1:1 + _RUNNER_UPS])
    evidence = (f"predicted decisive step: {step.name} of agent {step.agent or '(none)'} (p={probability:.2f}); "
                f"runner-ups: {others or 'none'}; ranker CV top-1 {cv['model']['top1']:.0%} "
                f"on {cv['runs']} marked runs")
    return Flag(run.trace_id, step.span_id, DETECTOR, VERSION, "failure", "decisive_step",
                "high" if probability >= 0.7 else "medium", round(probability, 4), evidence)


def _write(store: Store, flags: list[Flag], run_id: str, miner_version: str) -> None:
    if not flags:
        return
    now = datetime.now(timezone.utc)
    columns = ("RunId", "MinerVersion", "TraceId", "SpanId", "Detector", "DetectorVersion", "Category", "Kind",
               "Severity", "Confidence", "Evidence", "CreatedAt")
    store.insert(FLAGS_TABLE, [[run_id, miner_version, f.trace_id, f.span_id, f.detector, f.detector_version,
                                f.category, f.kind, f.severity, f.confidence, f.evidence, now] for f in flags], columns)
