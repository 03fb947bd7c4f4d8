"""``run_demo``: trace, mine, review, export, train, and report where everything is."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

import tracemill
from tracemill.demo.gate import eval_stage
from tracemill.demo.report import print_report
from tracemill.demo.runs import RunRecord, trace_runs
from tracemill.demo.stages import Stage, export_stage, mine_stage, review_stage, train_stage

__all__ = ["DemoPaths", "default_demo_dir", "run_demo"]


@dataclass(frozen=True)
class DemoPaths:
    directory: Path
    store: str
    export_dir: Path
    base_model_dir: Path
    model_dir: Path

    @classmethod
    def under(cls, directory: Path, store: str | None) -> DemoPaths:
        directory = directory.absolute()
        return cls(directory, store or "chdb://" + quote(str(directory / "store")), directory / "dataset-dpo",
                   directory / "tiny-model", directory / "trained-model")


def default_demo_dir() -> Path:
    """A fresh directory per demo under the data dir, so every demo starts on an empty store."""
    from tracemill.paths import data_dir

    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Path(data_dir()) / "demo" / f"{stamp}-{os.getpid()}"


def _require() -> None:
    from tracemill.deps import require

    require("clickhouse_connect", extra="server", feature="The demo's store")
    require("openai", extra="integrations", feature="The demo agent (it uses the openai client)")


def run_demo(*, directory: Path | None, store: str | None, runs: int, skip_train: bool, seed: int, as_json: bool,
             console: Console, err_console: Console) -> dict[str, Any]:
    """Run the whole loop and print the report (tables, or one JSON object with ``as_json``).

    With ``as_json`` the progress goes to ``err_console``, so stdout holds the JSON object alone.
    """
    _require()
    paths = DemoPaths.under(directory or default_demo_dir(), store)
    paths.directory.mkdir(parents=True, exist_ok=True)
    progress_console = err_console if as_json else console
    stages: list[Stage] = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=progress_console, transient=as_json) as progress:
        tracing = progress.add_task("tracing agent runs", total=runs)
        records: list[RunRecord] = trace_runs(paths.store, runs, seed=seed,
                                              on_run=lambda _r: progress.advance(tracing))
        tracemill.shutdown()
        with tracemill.Store.open(paths.store) as opened:
            for name, step in (
                ("mining the runs", lambda: mine_stage(opened, records)),
                ("reviewing flagged decisions", lambda: review_stage(opened, stages[0], records)),
                ("exporting the DPO dataset", lambda: export_stage(opened, stages[1], paths.export_dir)),
                ("training a tiny model", lambda: train_stage(stages[2], paths.export_dir, paths.base_model_dir,
                                                              paths.model_dir, skip=skip_train)),
                ("gating candidates on the corrections", lambda: eval_stage(
                    opened, stages[1], stages[3], records, paths.export_dir, paths.model_dir)),
            ):
                task = progress.add_task(name, total=1)
                stages.append(step())
                progress.update(task, completed=1, description=f"{name}: {stages[-1].status}")
            location = opened.location
    report = _report(paths, location, records, stages)
    if as_json:
        console.print_json(json.dumps(report, default=str))
    else:
        print_report(report, console)
    return report


def _report(paths: DemoPaths, location: str, records: list[RunRecord], stages: list[Stage]) -> dict[str, Any]:
    mined, reviewed, exported, trained, evaluated = stages
    flags = mined.data.get("flags")
    return {
        "runs": len(records),
        "runs_succeeded": sum(r.result.succeeded for r in records),
        "behaviours": dict(Counter(r.behaviour or "real model" for r in records).most_common()),
        "flags": len(flags) if flags is not None else None,
        "flagged_runs": mined.data.get("flagged_runs"),
        "flags_by_kind": mined.data.get("by_kind"),
        "flags_by_detector": mined.data.get("by_detector"),
        "flags_by_category": mined.data.get("by_category"),
        "taxonomy": mined.data.get("taxonomy"),
        "corrections": reviewed.data.get("corrections"),
        "pairs": exported.data.get("pairs"),
        "preference_accuracy_before": trained.data["before"]["preference_accuracy"] if "before" in trained.data
        else None,
        "preference_accuracy_after": trained.data["after"]["preference_accuracy"] if "after" in trained.data
        else None,
        "directory": str(paths.directory),
        "store": location,
        "store_dsn": paths.store,
        "export_dir": str(paths.export_dir) if exported.status == "done" else None,
        "model_dir": str(paths.model_dir) if trained.status == "done" else None,
        "evals": evaluated.data or None,
        "review_ui": f"tracemill serve --store '{paths.store}'   # then open http://127.0.0.1:4318/ui/",
        "stages": {s.name: {"status": s.status, "detail": s.detail} for s in stages},
        "trace_ids": [r.trace_id for r in records],
        "run_outcomes": [{"trace_id": r.trace_id, "task_id": r.ticket.task_id, "behaviour": r.behaviour,
                          "succeeded": r.result.succeeded, "steps": r.result.steps} for r in records],
    }
