"""``tracemill versions`` and ``tracemill versions diff A B``: configuration versions and what changed.

Through a running server when one owns the store (``GET /api/versions``, ``/api/versions/diff``),
else by opening the store (see :mod:`tracemill.client`).
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tracemill.cli.options import server_option, store_option, token_option
from tracemill.cli.output import cli_errors, console

__all__ = ["fetch_diff", "fetch_versions", "register"]


def fetch_versions(*, server: str | None, store: str | None, token: str | None, agent: str | None) -> dict[str, Any]:
    """The versions report from the server or the store."""
    from tracemill.client import connect

    with connect(server=server, store=store, token=token) as backend:
        return backend.versions(agent=agent)


def fetch_diff(*, server: str | None, store: str | None, token: str | None, a: str, b: str) -> dict[str, Any]:
    """The difference between two versions from the server or the store."""
    from tracemill.client import connect

    with connect(server=server, store=store, token=token) as backend:
        return backend.version_diff(a, b)


def render_versions(console: Console, report: dict[str, Any]) -> None:
    table = Table(title="Configuration versions (oldest first per agent)")
    for column in ("agent", "version", "runs", "failure rate", "first seen", "last seen", "changed from previous"):
        table.add_column(column)
    for v in report["versions"]:
        rate = f"{v['failure_rate']:.1%}" + (" [red]↑ significant[/]" if v.get("significant_shift")
                                             and v["shift"]["difference"] > 0 else "")
        table.add_row(v["agent"], v["version"], str(v["runs"]), rate, v["first_seen"], v["last_seen"],
                      "; ".join(v["changes"]) if v["previous"] else "(first)")
    console.print(table)


def render_diff(console: Console, diff: dict[str, Any]) -> None:
    console.print(f"[bold]{diff['a']} → {diff['b']}[/] ({diff['kind']} versions)", highlight=False)
    for change in diff["changes"] or ["no change"]:
        console.print(f"  • {change}", highlight=False)
    for part in [diff] if diff["kind"] == "decision" else diff.get("diffs", []):
        if part["system"]["diff"]:
            console.print("system prompt:", highlight=False)
            for line in part["system"]["diff"]:
                style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
                console.print(f"[{style}]{line}[/]", highlight=False, markup=True)


def register(app: typer.Typer) -> None:
    """Add ``versions`` (with its ``diff`` subcommand) to ``app``."""
    versions_app = typer.Typer(help="Configuration versions per agent, their failure rates, and what changed.",
                               invoke_without_command=True)

    @versions_app.callback()
    @cli_errors
    def versions(
        ctx: typer.Context,
        agent: str = typer.Option(None, "--agent", help="Only this agent (its name or its run's name)."),
        server: str = server_option(),
        store: str = store_option(),
        token: str = token_option(),
        as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table."),
    ) -> None:
        """Each configuration version per agent: runs, failure rate, first/last seen, what changed."""
        if ctx.invoked_subcommand is not None:
            return
        report = fetch_versions(server=server, store=store, token=token, agent=agent)
        if as_json:
            console.print_json(data=report)
        else:
            render_versions(console, report)

    @versions_app.command("diff")
    @cli_errors
    def diff(
        a: str = typer.Argument(..., help="The older version (a decision or run version, or a unique prefix)."),
        b: str = typer.Argument(..., help="The newer version."),
        server: str = server_option(),
        store: str = store_option(),
        token: str = token_option(),
        as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    ) -> None:
        """System-prompt diff, tools added/removed/changed, model and parameter changes from A to B."""
        found = fetch_diff(server=server, store=store, token=token, a=a, b=b)
        if as_json:
            console.print_json(data=found)
        else:
            render_diff(console, found)

    app.add_typer(versions_app, name="versions")
