"""The detectors' calibration table on the command line: ``tracemill mine`` prints it, ``tracemill flags
--detectors`` shows the latest labelled run's (see :mod:`tracemill.miner.calibration`)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

__all__ = ["default_rows", "detectors_table", "latest_detectors"]


def default_rows() -> list[dict[str, Any]]:
    """The table before any labelled run: every detector with its defaults."""
    from tracemill.miner import DETECTORS

    return [{"detector": d.name, "category": d.category, "runs": 0, "failed": 0, "groups": 0, "precision": None,
             "recall": None, "lift": None, "base_rate": None, "muted": False, "pinned": "",
             "evidence": "no labelled runs"} for d in DETECTORS.values()]  # fmt: skip


def latest_detectors(backend: Any) -> dict[str, Any]:
    """``{"run": latest run row or None, "detectors": rows}`` through the server or from the store."""
    if backend.kind == "server":
        latest = backend.get("/api/miner/latest", {})
    else:
        from tracemill.miner.miner_runs import latest_run

        latest = {"run": latest_run(backend.store)}
    run = latest.get("run")
    return {"run": run, "detectors": run["detectors"] if run else default_rows()}


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
