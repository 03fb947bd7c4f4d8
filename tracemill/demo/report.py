"""The demo's final report for people: what ran, what was found, what was learned, where it all is."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["print_report"]

_STATUS = {"done": "[green]done[/]", "skipped": "[yellow]skipped[/]", "unavailable": "[red]not available[/]"}


def _counts(title: str, counts: dict[str, int] | None) -> Table | None:
    if not counts:
        return None
    table = Table(title=title)
    table.add_column(title.split()[-1], no_wrap=True)
    table.add_column("flags", justify="right")
    for key, count in counts.items():
        table.add_row(key, str(count))
    return table


def _gates(evals: dict[str, Any] | None) -> Table | None:
    if not evals or not evals.get("gates"):
        return None
    table = Table(title=f"Eval gate on suite {evals['suite']}@{evals['version']} ({evals['cases']} corrected "
                        "decisions)")
    for column in ("candidate", "baseline", "cases", "passed", "verdict", "p"):
        table.add_column(column, no_wrap=column != "candidate")
    colour = {"regression": "red", "improvement": "green"}
    for gate in evals["gates"]:
        verdict = gate["verdict"]
        table.add_row(gate["candidate"], gate["baseline"], str(gate["cases"]),
                      f"{gate['candidate_passed']} vs {gate['baseline_passed']}",
                      f"[{colour.get(verdict, 'white')}]{verdict}[/]", f"{gate['p_value']:.2g}")
    return table


def print_report(report: dict[str, Any], console: Console) -> None:
    runs = Table(title=f"{report['runs']} agent runs traced", show_header=True)
    runs.add_column("scripted behaviour", no_wrap=True)
    runs.add_column("runs", justify="right")
    for behaviour, count in report["behaviours"].items():
        runs.add_row(behaviour, str(count))
    runs.caption = f"{report['runs_succeeded']} of {report['runs']} booked the right flight"
    console.print(runs)

    for title, key in (("Flags by kind", "flags_by_kind"), ("Flags by detector", "flags_by_detector")):
        table = _counts(title, report.get(key))
        if table is not None:
            console.print(table)
    if report.get("taxonomy"):
        taxonomy = Table(title="Failure taxonomy")
        columns = list(report["taxonomy"][0])
        for column in columns:
            taxonomy.add_column(column)
        for row in report["taxonomy"][:12]:
            taxonomy.add_row(*(str(row.get(c, "")) for c in columns))
        console.print(taxonomy)

    gates = _gates(report.get("evals"))
    if gates is not None:
        console.print(gates)

    stages = Table(title="The loop")
    stages.add_column("stage", no_wrap=True)
    stages.add_column("status", no_wrap=True)
    stages.add_column("result")
    stages.add_row("trace", _STATUS["done"], f"{report['runs']} runs into {report['store']}")
    for name, stage in report["stages"].items():
        stages.add_row(name, _STATUS[stage["status"]], stage["detail"])
    console.print(stages)

    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold", no_wrap=True)
    summary.add_column()
    accuracy = report["preference_accuracy_before"], report["preference_accuracy_after"]
    rows = [
        ("runs", str(report["runs"])),
        ("flags", "-" if report["flags"] is None else f"{report['flags']} on {report['flagged_runs']} runs"),
        ("pairs exported", "-" if report["pairs"] is None else str(report["pairs"])),
        ("held-out preference accuracy", "-" if accuracy[0] is None else f"{accuracy[0]:.2f} before, "
                                                                           f"{accuracy[1]:.2f} after training"),
        ("store", report["store"]),
        ("dataset", report["export_dir"] or "-"),
        ("trained model", report["model_dir"] or "-"),
        ("everything under", report["directory"]),
        ("review UI", report["review_ui"]),
    ]
    for key, value in rows:
        summary.add_row(key, value)
    console.print(summary)
