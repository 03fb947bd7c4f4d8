"""``tracemill rollout status|halt|resume|promote NAME``: see a rollout's arms and test, or decide by hand.

Through a running server when one owns the store (``/api/rollouts/NAME``), else by opening the store.
A state set here reaches every traced process within 30 s (the tracer's cache).
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tracemill.cli.options import server_option, store_option, token_option
from tracemill.cli.output import cli_errors, console

__all__ = ["register", "rollout_action", "rollout_status_of"]


def rollout_status_of(*, server: str | None, store: str | None, token: str | None, name: str) -> dict[str, Any]:
    """The rollout's arms, test and state from the server or the store."""
    from tracemill.client import connect

    with connect(server=server, store=store, token=token) as backend:
        return backend.rollout(name)


def rollout_action(
    *, server: str | None, store: str | None, token: str | None, name: str, action: str, reason: str
) -> dict[str, Any]:
    """A person's halt, resume or promote, recorded with who gave it."""
    from tracemill.client import connect, unauthenticated_author
    from tracemill.feedback import default_author

    author = default_author() or unauthenticated_author()  # a server with tokens names it itself
    with connect(server=server, store=store, token=token) as backend:
        return backend.rollout_action(name, action, reason=reason, author=author)


def render_status(console: Console, status: dict[str, Any]) -> None:
    colour = {"running": "green", "halted": "red", "promoted": "cyan"}.get(status["state"], "white")
    console.print(f"rollout [bold]{status['name']}[/]: [{colour}]{status['state']}[/]"
                  + (f" ({status['reason']})" if status.get("reason") else ""), highlight=False)
    table = Table()
    for column in ("arm", "runs", "failed", "failure rate"):
        table.add_column(column)
    for arm, a in status["arms"].items():
        rate = "-" if a["failure_rate"] is None else f"{a['failure_rate']:.1%}"
        table.add_row(arm, str(a["runs"]), str(a["failed"]), rate)
    console.print(table)
    t = status["test"]
    console.print(f"{t['method']}: difference {t['difference']:+.3f}, likelihood ratio {t['likelihood_ratio']:.3g} "
                  f"(halts at {1 / t['alpha']:.0f}), always-valid p {t['p_value']:.3g}; "
                  + ("candidate significantly worse" if t["worse"] else "no significant harm so far"), highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``rollout`` and its subcommands to ``app``."""
    rollout_app = typer.Typer(help="Rollouts behind a kill switch: arms, the sequential test, halt/resume/promote.",
                              no_args_is_help=True)

    @rollout_app.command("status")
    @cli_errors
    def status(
        name: str = typer.Argument(..., help="The rollout's name, as given to tracemill.rollout."),
        server: str = server_option(),
        store: str = store_option(),
        token: str = token_option(),
        as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    ) -> None:
        """Arms, runs, failure rates, the sequential test and the state (running, halted, promoted)."""
        found = rollout_status_of(server=server, store=store, token=token, name=name)
        if as_json:
            console.print_json(data=found)
        else:
            render_status(console, found)

    def add_action(action: str, summary: str) -> None:
        @rollout_app.command(action, help=summary)
        @cli_errors
        def act(
            name: str = typer.Argument(..., help="The rollout's name."),
            reason: str = typer.Option("", "--reason", help="Why, for the record."),
            server: str = server_option(),
            store: str = store_option(),
            token: str = token_option(),
        ) -> None:
            done = rollout_action(server=server, store=store, token=token, name=name, action=action, reason=reason)
            console.print(f"rollout {done['name']} is now {done['state']}", highlight=False)

    add_action("halt", "Stop the candidate: every process gets control within 30 s.")
    add_action("resume", "Run the rollout again after a halt.")
    add_action("promote", "Give every key the candidate.")
    app.add_typer(rollout_app, name="rollout")
