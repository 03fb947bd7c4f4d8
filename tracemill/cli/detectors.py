"""The detectors' calibration table on the command line: ``tracemill mine`` prints it, ``tracemill flags
--detectors`` shows the latest labelled run's (see :mod:`tracemill.miner.quality.calibration`)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from tracemill.cli.output import console

__all__ = ["default_rows", "detectors_table", "latest_detectors", "show_detectors"]


def default_rows() -> list[dict[str, Any]]:
    """The table before any labelled run: every detector with its defaults."""
    from tracemill.miner import DETECTORS

    return [{"detector": d.name, "category": d.category, "runs": 0, "failed": 0, "groups": 0, "precision": None,
             "recall": None, "lift": None, "base_rate": None, "muted": False, "pinned": "",
             "evidence": "no labelled runs", "trusted": False} for d in DETECTORS.values()]  # fmt: skip


def latest_detectors(backend: Any) -> dict[str, Any]:
    """``{"run": latest run row or None, "detectors": rows}`` through the server or from the store."""
    run = backend.latest_miner_run()
    return {"run": run, "detectors": run["detectors"] if run else default_rows()}


def show_detectors(backend: Any, *, as_json: bool) -> None:
    """Print the latest labelled run's detector table (or every detector's defaults before one)."""
    found = latest_detectors(backend)
    if as_json:
        console.print_json(data=found)
        return
    run = found["run"]
    console.print(f"from mining run {run['run_id']} at {run['created_at']}; grouping: {run['grouping']}"
                  if run else "no labelled mining run yet: every detector has its defaults", highlight=False)
    console.print(detectors_table(found["detectors"]))


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def detectors_table(rows: list[dict[str, Any]], title: str = "Detectors on this store's labelled runs") -> Table:
    table = Table(title=title)
    for column in ("detector", "category", "runs", "failed", "precision", "recall", "lift", "state", "evidence"):
        table.add_column(column, justify="right" if column in ("runs", "failed", "precision", "recall", "lift")
                         else "left")
    for r in rows:
        state = "[red]muted[/]" if r["muted"] else ("pinned on" if r["pinned"] == "on" else "on")
        table.add_row(r["detector"], r["category"], str(r["runs"]), str(r["failed"]), _num(r["precision"]),
                      _num(r["recall"]), _num(r["lift"]), state, r["evidence"])
    return table
