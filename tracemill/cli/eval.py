"""``tracemill eval build|list|run|compare``: suites from the store, runs against a candidate, the CI gate.

``eval list`` asks a running server first, like ``tracemill traces``; ``build``, ``run`` and ``compare`` open the
store themselves (``--store``, else the ``store`` setting): a run writes its traces and results there.
``eval compare`` exits 1 on a ``regression`` verdict.
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

_STORE_HELP = "Store DSN of the suites, runs and traces (default: the embedded store in the user data dir)."


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command group to ``app``."""
    group = typer.Typer(help="Eval suites built from corrected runs, runs against a candidate, a regression gate.",
                        no_args_is_help=True)
    app.add_typer(group, name="eval")

    @group.command("build")
    @cli_errors
    def build_command(
        name: str = typer.Argument(..., help="Suite name; each build makes a new immutable version of it."),
        source: str = typer.Option("corrections", "--from",
                                   help="corrections (decision cases), outcomes or flags (run cases), or all."),
        since: str = typer.Option(None, "--since", help="Only feedback and flags after this (7d, 2h, ISO-8601)."),
        limit: int = typer.Option(None, "--limit", min=1, help="At most this many cases (newest first)."),
        must_pass: bool = typer.Option(False, "--must-pass", help="Mark every case must-pass for `eval compare`."),
        store: str = store_option(_STORE_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print {suite, version, cases, by_kind} as JSON."),
    ) -> None:
        """Build a new version of an eval suite from the store."""
        from tracemill.evals import build

        result = build(name, source=source, since=since, limit=limit, must_pass=must_pass, store=store)
        if as_json:
            console.print_json(data=result)
        else:
            console.print(f"suite [bold]{result['suite']}@{result['version']}[/]: {result['cases']} cases "
                          f"({result['by_kind']['decision']} decision, {result['by_kind']['run']} run)",
                          highlight=False)

    @group.command("list")
    @cli_errors
    def list_command(
        suite: str = typer.Option(None, "--suite", help="Only this suite's versions and runs."),
        limit: int = typer.Option(100, "--limit", min=1, help="At most this many runs, newest first."),
        server: str = server_option(),
        store: str = store_option(_STORE_HELP),
        token: str = token_option(),
        as_json: bool = typer.Option(False, "--json", help="Print {suites, runs} as JSON."),
    ) -> None:
        """List suite versions and eval runs (from a running server, else the store)."""
        from tracemill.client import connect

        with connect(server=server, store=store, token=token) as backend:
            result = backend.evals(suite=suite, limit=limit)
        if as_json:
            console.print_json(data=result)
        else:
            _print_listing(console, result)

    _register_run(group, cli_errors, console, err_console)
    _register_compare(group, cli_errors, console, err_console)


def _print_listing(console: Console, result: dict[str, Any]) -> None:
    suites = Table(title=f"{len(result['suites'])} suite version(s)")
    for column in ("suite", "version", "from", "cases", "created"):
        suites.add_column(column)
    for s in result["suites"]:
        suites.add_row(s["suite"], str(s["version"]), s["source"], str(s["cases"]), s["created_at"][:19])
    console.print(suites)
    runs = Table(title=f"{len(result['runs'])} eval run(s), newest first")
    for column in ("run", "suite", "candidate", "passed", "repeat", "started"):
        runs.add_column(column)
    for r in result["runs"]:
        runs.add_row(r["run_id"][:12], f"{r['suite']}@{r['version']}", r["candidate"], f"{r['passed']}/{r['total']}",
                     str(r["repeat"]), r["started_at"][:19])
    console.print(runs)


def _register_run(group: typer.Typer, cli_errors: Any, console: Console, err_console: Console) -> None:
    @group.command("run")
    @cli_errors
    def run_command(
        ref: str = typer.Argument(..., help="NAME or NAME@VERSION (default: the latest version)."),
        model: str = typer.Option(None, "--model", help="Model name for decision cases (OpenAI-compatible API)."),
        base_url: str = typer.Option(None, "--base-url", envvar="OPENAI_BASE_URL",
                                     help="Base URL of the OpenAI-compatible server (default: OpenAI's)."),
        model_dir: str = typer.Option(None, "--model-dir", help="Local transformers model (`tracemill train` output)."),
        agent: str = typer.Option(None, "--agent", help="module:function called with each run case's input."),
        scorer: str = typer.Option(None, "--scorer", help="module:function(case, output) -> bool, number or "
                                                          "(passed, detail); replaces the built-in scoring."),
        replay_tools: bool = typer.Option(False, "--replay-tools",
                                          help="Answer @tracemill.tool calls from the case's recording."),
        repeat: int = typer.Option(1, "--repeat", min=1, help="Attempts per case (pass@k and pass^k)."),
        concurrency: int = typer.Option(8, "--concurrency", min=1, help="Attempts in flight at once."),
        case: list[str] = typer.Option(None, "--case", help="Only these case ids (repeatable)."),  # noqa: B008
        store: str = store_option(_STORE_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print {run_id, passed, total, summary} as JSON."),
    ) -> None:
        """Run a suite against a model or the team's agent; every attempt is traced."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from tracemill.evals import run

        with Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err_console, transient=True) as bar:
            task = bar.add_task("eval", total=None)
            result = run(ref, model=model, base_url=base_url, model_dir=model_dir, agent=agent, scorer=scorer,
                         replay_tools=replay_tools, repeat=repeat, concurrency=concurrency, case_ids=case or None,
                         progress=lambda done, total: bar.update(task, completed=done, total=total), store=store)
        summary = result["summary"]
        if as_json:
            console.print_json(data={key: result[key] for key in ("run_id", "suite", "version", "candidate", "passed",
                                                                   "total", "repeat", "summary", "results")})
            return
        console.print(f"eval run [bold]{result['run_id']}[/] of {result['suite']}@{result['version']} "
                      f"({result['candidate']}): {result['passed']}/{result['total']} cases passed; "
                      f"pass@{repeat} {summary['pass_at_k']:.1%}, pass^{repeat} {summary['pass_hat_k']:.1%}",
                      highlight=False)
        _print_drift(console, result["results"])


def _print_drift(console: Console, results: list[dict[str, Any]]) -> None:
    for r in results:
        drift = (r["detail"] or {}).get("drift") or {}
        if drift.get("unmatched_calls") or drift.get("unused_recordings"):
            console.print(f"  drift in {r['case_id']}: {len(drift['unmatched_calls'])} unrecorded call(s), "
                          f"{len(drift['unused_recordings'])} unused recording(s)", highlight=False)


def _register_compare(group: typer.Typer, cli_errors: Any, console: Console, err_console: Console) -> None:
    @group.command("compare")
    @cli_errors
    def compare_command(
        baseline: str = typer.Argument(..., help="Run id (or unique prefix) of the baseline."),
        candidate: str = typer.Argument(..., help="Run id (or unique prefix) of the candidate."),
        alpha: float = typer.Option(0.05, "--alpha", help="Significance level of the paired test."),
        report: Path = typer.Option(None, "--report", help="Also write an HTML report here."),  # noqa: B008
        junit: Path = typer.Option(None, "--junit", help="Also write JUnit XML here (for CI)."),  # noqa: B008
        store: str = store_option(_STORE_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print {verdict, p_value, regressed, improved, ...}."),
    ) -> None:
        """Compare two runs case by case; exit 1 on a regression (the CI gate)."""
        from tracemill.evals import compare, junit_xml, render_html

        result = compare(baseline, candidate, alpha=alpha, store=store)
        if report is not None:
            report.write_text(render_html(result), encoding="utf-8")
            err_console.print(f"report written to {report}", highlight=False)
        if junit is not None:
            junit.write_text(junit_xml(result), encoding="utf-8")
            err_console.print(f"JUnit XML written to {junit}", highlight=False)
        if as_json:
            console.print_json(data={k: v for k, v in result.items() if k != "cases"})
        else:
            _print_comparison(console, result)
        if result["verdict"] == "regression":
            raise typer.Exit(1)


def _print_comparison(console: Console, result: dict[str, Any]) -> None:
    colour = {"regression": "red", "improvement": "green"}.get(result["verdict"], "white")
    console.print(f"[bold {colour}]{result['verdict']}[/]: {result['test']} p = {result['p_value']:.4g} "
                  f"(alpha {result['alpha']}); {result['baseline_pass_rate']:.1%} -> "
                  f"{result['candidate_pass_rate']:.1%} on {result['paired_cases']} paired cases", highlight=False)
    for label, key in (("regressed", "regressed"), ("improved", "improved"), ("must-pass failed", "must_pass_failed")):
        if result[key]:
            console.print(f"  {label} ({len(result[key])}): {', '.join(result[key])}", highlight=False)
