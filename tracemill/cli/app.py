"""The ``tracemill`` command line: a thin shell over plain functions, one module per command group.

Each command parses its options, calls library code, and prints a table (or JSON with
``--json``). tracemill's own errors become one red line and exit code 1, never a traceback
(:mod:`tracemill.cli.output`). A new command group is a module with a ``register(app)``, added below.
"""

from __future__ import annotations

import typer

from tracemill.cli import demo, eval, feedback, judge, mine, rollout, serve, traces, train, versions
from tracemill.cli.output import cli_errors, console, err_console

__all__ = ["app", "cli_errors", "console", "err_console", "main"]

app = typer.Typer(
    name="tracemill",
    help="Trace LLM agents, store the traces in ClickHouse, mine failures, and train on corrections.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


for _group in (demo, serve, traces, feedback, mine, train, eval, judge, versions, rollout):
    _group.register(app)


def main() -> None:
    """Entry point of the ``tracemill`` console script."""
    app(prog_name="tracemill")


if __name__ == "__main__":  # pragma: no cover
    main()
