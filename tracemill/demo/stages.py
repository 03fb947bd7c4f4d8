"""The demo's stages after tracing, one function each: mine, review, export, train.

Each stage calls the library's public entry point for its step and returns a :class:`Stage`
saying whether it ran. A stage whose part of tracemill is not installed in this build, or whose
input is empty, says so and why; it is never reported as done.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tracemill.demo.review import ReviewResult, review
from tracemill.demo.runs import RunRecord

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["Stage", "export_stage", "mine_stage", "review_stage", "train_stage"]

Status = Literal["done", "skipped", "unavailable"]


@dataclass
class Stage:
    name: str
    status: Status
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def _unavailable(name: str, what: str, exc: Exception) -> Stage:
    return Stage(name, "unavailable", f"{what} is not available in this build ({type(exc).__name__}: {exc})")


def mine_stage(store: Store, records: Sequence[RunRecord]) -> Stage:
    """Mine the store, and keep this demo's flags grouped by kind, detector and category."""
    try:
        from tracemill.miner import mine
    except ImportError as exc:
        return _unavailable("mine", "the miner (tracemill.mine)", exc)
    result = mine(store=store)
    ours = {r.trace_id for r in records}
    flags = [flag.to_dict() for flag in result.flags if flag.trace_id in ours]
    data: dict[str, Any] = {
        "flags": flags,
        "by_kind": dict(Counter(f["kind"] for f in flags).most_common()),
        "by_detector": dict(Counter(f["detector"] for f in flags).most_common()),
        "by_category": dict(Counter(f["category"] for f in flags).most_common()),
        "flagged_runs": len({f["trace_id"] for f in flags}),
        "taxonomy": [{"group": group.get("name", ""), "runs": group.get("count", 0),
                      "example": group.get("example_message", "")} for group in result.taxonomy],
        "scorer": result.scorer.get("mode"),
    }
    return Stage("mine", "done", f"{len(flags)} flags on {data['flagged_runs']} of {len(records)} runs", data)


def review_stage(store: Store, mined: Stage, records: Sequence[RunRecord]) -> Stage:
    """The scripted reviewer corrects the flagged decisions and records every run's outcome."""
    if mined.status != "done":
        return Stage("review", "skipped", "nothing to review: the runs were not mined")
    try:
        from tracemill import feedback  # noqa: F401 (the reviewer writes through it)
    except ImportError as exc:
        return _unavailable("review", "the feedback API (tracemill.feedback)", exc)
    result: ReviewResult = review(store, mined.data["flags"], records)
    from tracemill.miner.decisive.mine import predict_decisive

    predicted = predict_decisive(store)  # the ranker learns from the marked runs and predicts the rest
    return Stage("review", "done",
                 f"{result.corrections} decisions corrected, {result.confirmed} flags confirmed, "
                 f"{result.false_positives} rejected, {result.outcomes} outcomes recorded, "
                 f"{result.decisive_marks} decisive steps marked; {predicted.note}",
                 {"corrections": result.corrections, "confirmed": result.confirmed,
                  "false_positives": result.false_positives, "outcomes": result.outcomes,
                  "decisive_marks": result.decisive_marks, "decisive_predicted": len(predicted.flags),
                  "decisive_cv": predicted.cv})


EVAL_FRACTION = 0.35
"""Share of the tasks (routes) held out of training, on which preference accuracy is measured."""
TINY_VOCAB = 4096
"""Upper bound of the tiny model's tokenizer: the rows' text needs about 1,600 tokens, so prompts stay short."""
TRAIN_EPOCHS = 3.0
"""A few steps: with 200 runs, about 40 training pairs in batches of 8."""


def export_stage(store: Store, reviewed: Stage, export_dir: Path) -> Stage:
    """Export the DPO dataset the corrections make (train/eval split by task)."""
    if reviewed.status != "done":
        return Stage("export", "skipped", "no review feedback to export")
    try:
        from tracemill.trainer import export
    except ImportError as exc:
        return _unavailable("export", "dataset export (tracemill.trainer.export)", exc)
    manifest = export("dpo", store=store, output=export_dir, eval_fraction=EVAL_FRACTION)
    splits = manifest.get("splits", {})
    pairs = int(splits.get("train", 0)) + int(splits.get("eval", 0))
    return Stage("export", "done", f"{pairs} preference pairs ({splits.get('train', 0)} train, "
                 f"{splits.get('eval', 0)} held out) in {export_dir}", {"pairs": pairs, "manifest": manifest})


def _texts(export_dir: Path) -> list[str]:
    return [line for name in ("train.jsonl", "eval.jsonl") if (export_dir / name).exists()
            for line in (export_dir / name).read_text().splitlines() if line.strip()]


def _quiet_progress_bars() -> None:
    """The libraries' own bars (loading weights, tokenizing) would break the demo's progress display."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def train_stage(exported: Stage, export_dir: Path, base_dir: Path, model_dir: Path, *, skip: bool) -> Stage:
    """Build a tiny model on the dataset's text and train it with DPO for a few steps on CPU."""
    if skip:
        return Stage("train", "skipped", "--skip-train given")
    if exported.status != "done":
        return Stage("train", "skipped", "no dataset to train on")
    if not exported.data["manifest"].get("splits", {}).get("eval"):
        return Stage("train", "skipped", "the dataset has no held-out pairs to measure preference accuracy on")
    try:
        from tracemill.trainer.tiny import build_tiny_model
        from tracemill.trainer.train import train
    except ImportError as exc:
        return _unavailable("train", "training (tracemill.train, tracemill.trainer.tiny)", exc)
    _quiet_progress_bars()
    build_tiny_model(base_dir, _texts(export_dir), vocab_size=TINY_VOCAB)
    # A tiny random model learns nothing in a few steps at a rate suited to real models; this one suits it.
    report = train("dpo", export_dir, model=str(base_dir), output=model_dir, epochs=TRAIN_EPOCHS, lr=5e-3,
                   batch_size=8, max_length=2048, progress=False)
    before, after = report["before"]["preference_accuracy"], report["after"]["preference_accuracy"]
    return Stage("train", "done", f"held-out preference accuracy {before:.2f} -> {after:.2f} "
                 f"({report.get('seconds', 0):.0f} s)", {"before": report["before"], "after": report["after"]})
