"""``tracemill mine`` and ``tracemill flags``: run the miner and list its flags.

Both go through a running ``tracemill serve`` when one owns the store (``POST /api/mine``,
``GET /api/flags``, ``GET /api/miner/latest``), and open the store themselves otherwise (see :mod:`tracemill.client`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tracemill.cli.options import server_option, store_option, token_option
from tracemill.cli.output import cli_errors, console, err_console

__all__ = ["register"]

_STORE_HELP = "Store DSN to use when no server answers (default: the embedded store in the user data dir)."


def register(app: typer.Typer) -> None:
    """Add the miner's commands to ``app``."""
    app.command()(cli_errors(mine))
    app.command()(cli_errors(flags))


def mine(
    since: str = typer.Option(
        None, "--since", help="Mine every trace with a span after this (30m, 2h, 7d or an ISO-8601 time) "
                              "instead of only the traces not mined yet.",
    ),
    remine: bool = typer.Option(
        False, "--all", help="Mine every trace in the store again, computing its features from its spans again."
    ),
    report: Path = typer.Option(  # noqa: B008 - typer reads the default, it is never mutated
        None, "--report", help="Also write a self-contained HTML report here."
    ),
    server: str = server_option(),
    store: str = store_option(_STORE_HELP),
    token: str = token_option(),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables."),
) -> None:
    """Flag failed and near-miss runs, point at the decisive step, score every trace."""
    result = run_mine(server=server, store=store, token=token, since=since, remine=remine,
                      err_console=err_console)
    if report is not None:
        from tracemill.miner.report import render_html

        report.write_text(render_html(result), encoding="utf-8")
        err_console.print(f"report written to {report}", highlight=False)
    if as_json:
        console.print_json(data=result)
    else:
        render_summary(console, result)


def flags(
    trace_id: str = typer.Option(None, "--trace", help="Only flags of this trace (id or unique prefix)."),
    detector: str = typer.Option(None, "--detector", help="Only flags of this detector (e.g. loop)."),
    category: str = typer.Option(None, "--category", help="Only 'failure' or 'near_miss' flags."),
    kind: str = typer.Option(None, "--kind", help="Only flags of this kind (e.g. tool_result_error)."),
    severity: str = typer.Option(None, "--severity", help="Only 'high', 'medium' or 'low' flags."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=1000, help="How many flags to list."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many (newest first) for paging."),
    server: str = server_option(),
    store: str = store_option(_STORE_HELP),
    token: str = token_option(),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table."),
    detectors: bool = typer.Option(False, "--detectors", help="Show the detectors' calibration on this store's "
                                   "labelled runs (precision, recall, lift, muted) instead of flags."),
) -> None:
    """List the miner's flags, newest first, with filters (muted detectors' flags dimmed); or, with
    ``--detectors``, the detectors' calibration table."""
    from tracemill.client import connect
    from tracemill.errors import ConfigError

    if detectors:
        from tracemill.cli.detectors import show_detectors

        with connect(server=server, store=store, token=token) as backend:
            show_detectors(backend, as_json=as_json)
        return
    if category not in (None, "failure", "near_miss"):
        raise ConfigError(f"--category must be failure or near_miss (got {category!r})")
    filters: dict[str, Any] = {"trace_id": trace_id, "detector": detector, "category": category, "kind": kind,
               "severity": severity, "limit": limit, "offset": offset}
    with connect(server=server, store=store, token=token) as backend:
        found = backend.flags(**filters)
    if as_json:
        console.print_json(data=found)
        return
    render_flags(console, found)


def render_flags(console: Console, found: list[dict[str, Any]]) -> None:
    table = Table(title=f"{len(found)} flag(s) (kind in red: failure, yellow: near miss)")
    table.add_column("trace", no_wrap=True)
    table.add_column("decisive span", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("sev", no_wrap=True)
    table.add_column("evidence", min_width=20)
    for f in found:
        style = "dim" if f.get("muted") else "red" if f["category"] == "failure" else "yellow"
        table.add_row(f["trace_id"][:12], f["span_id"], f"[{style}]{f.get('kind') or f['detector']}[/]",
                      f["severity"], f["evidence"])
    console.print(table)


def run_mine(*, server: str | None, store: str | None, token: str | None, since: str | None, remine: bool,
             err_console: Console) -> dict[str, Any]:
    """Mine through the server if one owns the store, else here; the result as a dict. The bar waits without a
    count until the miner reports its stages (a server mines and answers when done)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from tracemill.client import connect

    with connect(server=server, store=store, token=token) as backend:
        columns = (TextColumn("mining {task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn())  # fmt: skip
        with Progress(*columns, console=err_console, transient=True) as bar:
            task = bar.add_task(f"in {backend.kind} {backend.where}", total=None)

            def advance(stage: str, done: int, total: int) -> None:
                from tracemill.miner.run import STAGES

                following = STAGES[done] if done < total else "done"
                bar.update(task, total=total, completed=done, description=following)

            return backend.mine(since=since, remine=remine, progress=advance)


def render_summary(console: Console, result: dict[str, Any]) -> None:
    """Counts by category and kind, top decisive steps, taxonomy, scorer quality, version comparison."""
    counts = result["counts"]
    console.print(
        f"mined [bold]{result['traces']}[/] traces ({result['spans']} spans) in {result['duration_s']:.2f} s: "
        f"[red]{counts['failure']} failed[/], [yellow]{counts['near_miss']} near misses[/], "
        f"{counts['clean']} clean; {result['flags_total']} flags",
        highlight=False,
    )
    table = Table(title="Flags by category and kind")
    table.add_column("category")
    table.add_column("kind")
    table.add_column("flags", justify="right")
    for row in result["kinds"]:
        style = "red" if row["category"] == "failure" else "yellow"
        table.add_row(f"[{style}]{row['category']}[/]", row["kind"], str(row["flags"]))
    console.print(table)
    if result["top_steps"]:
        steps = Table(title="Top decisive steps")
        for column in ("span name", "flags", "detectors"):
            steps.add_column(column)
        for s in result["top_steps"]:
            steps.add_row(s["span_name"], str(s["count"]), ", ".join(s["detectors"]))
        console.print(steps)
    if result["taxonomy"]:
        groups = Table(title="Failure taxonomy")
        for column in ("group", "traces", "example trace"):
            groups.add_column(column)
        for g in result["taxonomy"][:10]:
            groups.add_row(g["name"], str(g["count"]), g["examples"][0] if g["examples"] else "")
        console.print(groups)
    if any(d["base_rate"] is not None for d in result.get("detectors", [])):
        from tracemill.cli.detectors import detectors_table

        title = f"Detectors on labelled runs (grouping: {result['grouping']})"
        console.print(detectors_table(result["detectors"], title))
    scorer = result["scorer"]
    if scorer:
        console.print(f"scorer: {scorer['mode']} ({scorer['model_version']}); {scorer['note']}", highlight=False)
        if scorer["mode"] == "supervised":
            quality = Table(title=f"Scorer quality (threshold {scorer['threshold']:.4g})")
            for column in ("", "AUROC", "precision", "recall", "Brier"):
                quality.add_column(column)
            for name, label in (("model", "learned scorer"), ("rules", "rule detectors alone")):
                q = scorer[name]
                quality.add_row(label, str(q["auroc"]), str(q["precision"]), str(q["recall"]), str(q["brier"]))
            console.print(quality)
    if result.get("decisive"):
        console.print(result["decisive"]["note"], highlight=False)
    _render_versions_and_rollouts(console, result)
    comparison = result["regressions"].get("comparison")
    if comparison:
        c = comparison["failure"]
        verdict = "[red]significantly worse[/]" if c["worse"] else "not significantly worse"
        console.print(f"version {comparison['candidate']} vs {comparison['baseline']}: failure rate "
                      f"{c['candidate_rate']:.1%} vs {c['baseline_rate']:.1%} (Fisher p {c['p_value_fisher']:.3g}), "
                      f"{verdict}", highlight=False)


def _render_versions_and_rollouts(console: Console, result: dict[str, Any]) -> None:
    """Configuration versions whose failure rate shifted significantly, with the change; each rollout's state."""
    for v in result["regressions"].get("config_versions", []):
        if v["significant_shift"]:
            shift = v["shift"]
            console.print(f"configuration {v['agent']} {v['version']}: failure rate {shift['candidate_rate']:.1%} "
                          f"vs {shift['baseline_rate']:.1%} before ([bold]{'; '.join(v['changes']) or 'no change'}"
                          f"[/]), Fisher p {shift['p_value_fisher']:.3g}", highlight=False)
    for r in result.get("rollouts", []):
        style = {"halted": "red", "promoted": "cyan"}.get(r["state"], "green")
        console.print(f"rollout {r['name']}: [{style}]{r['state']}[/]" + (f" ({r['reason']})" if r["reason"] else ""),
                      highlight=False)
