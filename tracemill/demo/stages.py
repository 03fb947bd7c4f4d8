"""The demo's stages after tracing, one function each: mine, review, export, train.

Each stage calls the library's public entry point for its step and returns a :class:`Stage`
saying whether it ran. A stage whose part of tracemill is not installed in this build, or whose
input is empty, says so and why; it is never reported as done.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tracemill.demo.review import ReviewResult, review
from tracemill.demo.runs import RunRecord

if TYPE_CHECKING:
    from tracemill.collector.store import Store

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


def mine_stage(dsn: str, store: Store, records: Sequence[RunRecord]) -> Stage:
    """Mine the store, then read this demo's flags back and group them by detector and category."""
    try:
        from tracemill import mine
    except ImportError as exc:
        return _unavailable("mine", "the miner (tracemill.mine)", exc)
    result = mine(store=dsn)
    from tracemill.collector.feedback import list_flags

    ours = {r.trace_id for r in records}
    flags = [f for f in list_flags(store, limit=100_000) if f["trace_id"] in ours]
    data: dict[str, Any] = {
        "flags": flags,
        "by_detector": dict(Counter(f["detector"] for f in flags).most_common()),
        "by_category": dict(Counter(f["category"] for f in flags).most_common()),
        "flagged_runs": len({f["trace_id"] for f in flags}),
        "taxonomy": _taxonomy(result),
    }
    return Stage("mine", "done", f"{len(flags)} flags on {data['flagged_runs']} of {len(records)} runs", data)


def _taxonomy(result: Any) -> list[dict[str, Any]]:
    """The miner's failure taxonomy as plain rows (label, count, example), whatever its record type."""
    clusters = getattr(result, "taxonomy", None) or []
    rows = []
    for cluster in clusters:
        row = cluster if isinstance(cluster, dict) else getattr(cluster, "__dict__", {"label": str(cluster)})
        rows.append({k: v for k, v in row.items() if isinstance(v, (str, int, float))})
    return rows


def review_stage(store: Store, mined: Stage, records: Sequence[RunRecord]) -> Stage:
    """The scripted reviewer corrects the flagged decisions and records every run's outcome."""
    if mined.status != "done":
        return Stage("review", "skipped", "nothing to review: the runs were not mined")
    result: ReviewResult = review(store, mined.data["flags"], records)
    return Stage("review", "done",
                 f"{result.corrections} decisions corrected, {result.confirmed} flags confirmed, "
                 f"{result.false_positives} rejected, {result.outcomes} outcomes recorded",
                 {"corrections": result.corrections, "confirmed": result.confirmed,
                  "false_positives": result.false_positives, "outcomes": result.outcomes})


def export_stage(dsn: str, reviewed: Stage, export_dir: Path) -> Stage:
    """Export the DPO dataset the corrections make (train/eval split by task)."""
    if reviewed.status != "done":
        return Stage("export", "skipped", "no review feedback to export")
    try:
        from tracemill.trainer import export  # type: ignore[attr-defined]
    except ImportError as exc:
        return _unavailable("export", "dataset export (tracemill.trainer.export)", exc)
    export("dpo", store=dsn, output=str(export_dir))
    manifest = json.loads((export_dir / "manifest.json").read_text())
    splits = manifest.get("splits", {})
    pairs = int(splits.get("train", 0)) + int(splits.get("eval", 0))
    return Stage("export", "done", f"{pairs} preference pairs ({splits.get('train', 0)} train, "
                 f"{splits.get('eval', 0)} held out) in {export_dir}", {"pairs": pairs, "manifest": manifest})


def _texts(export_dir: Path) -> list[str]:
    return [line for name in ("train.jsonl", "eval.jsonl") if (export_dir / name).exists()
            for line in (export_dir / name).read_text().splitlines() if line.strip()]


def train_stage(exported: Stage, export_dir: Path, base_dir: Path, model_dir: Path, *, skip: bool) -> Stage:
    """Build a tiny model on the dataset's text and train it with DPO for a few steps on CPU."""
    if skip:
        return Stage("train", "skipped", "--skip-train given")
    if exported.status != "done":
        return Stage("train", "skipped", "no dataset to train on")
    if not exported.data["manifest"].get("splits", {}).get("eval"):
        return Stage("train", "skipped", "the dataset has no held-out pairs to measure preference accuracy on")
    try:
        from tracemill import train
        from tracemill.trainer.tiny import build_tiny_model  # type: ignore[import-not-found]
    except ImportError as exc:
        return _unavailable("train", "training (tracemill.train, tracemill.trainer.tiny)", exc)
    build_tiny_model(str(base_dir), _texts(export_dir))
    report = train("dpo", str(export_dir), model=str(base_dir), output=str(model_dir),
                   num_train_epochs=8, learning_rate=5e-3, per_device_train_batch_size=8)
    before, after = report["before"]["preference_accuracy"], report["after"]["preference_accuracy"]
    return Stage("train", "done", f"held-out preference accuracy {before:.2f} -> {after:.2f}",
                 {"before": report["before"], "after": report["after"], "report": str(model_dir / "report.json")})
