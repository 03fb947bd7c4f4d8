"""The ``tracemill`` command line: a thin shell over plain functions.

Each command parses its options, calls library code, and prints a table (or JSON with
``--json``). tracemill's own errors become one red line and exit code 1, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console

from tracemill.errors import TracemillError

app = typer.Typer(
    name="tracemill",
    help="Trace LLM agents, store the traces in ClickHouse, mine failures, and train on corrections.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def cli_errors(func: F) -> F:
    """Turn tracemill errors into one line on stderr and exit code 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TracemillError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _print_version(value: bool) -> None:
    if value:
        from tracemill import __version__

        console.print(f"tracemill {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Trace LLM agents, store the traces in ClickHouse, mine failures, and train on corrections."""


@app.command()
@cli_errors
def demo(
    store: str = typer.Option(
        None, "--store", envvar="TRACEMILL_STORE",
        help="Store DSN to write the demo traces to (default: the embedded store in the user data dir).",
    ),
    runs: int = typer.Option(3, "--runs", min=1, help="How many agent runs to trace."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables."),
) -> None:
    """Run a small traced agent against the embedded store and show what was stored."""
    from tracemill.demo import run_demo

    run_demo(store=store, runs=runs, as_json=as_json, console=console)


def main() -> None:
    """Entry point of the ``tracemill`` console script."""
    app(prog_name="tracemill")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
