"""The command line's edge: the consoles it prints to, and the one error rule (one red line, exit code 1).

Every command module imports these from here, so none of them imports :mod:`tracemill.cli.app` back.

Off a terminal (a pipe, a file, CI logs) rich lays out for 80 columns and cuts table cells with "…", so a store
path, a dataset directory or the command that starts the review UI could not be found from a log. There the
consoles are as wide as any line needs: tables keep their columns and print each cell whole, plain lines are not
wrapped. ``--json`` output does not depend on the width.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console

from tracemill.errors import TracemillError

__all__ = ["OFF_TERMINAL_WIDTH", "cli_console", "cli_errors", "console", "err_console"]

OFF_TERMINAL_WIDTH = 4096
"""Columns off a terminal: wider than any path or command the CLI prints, so nothing is cut or wrapped
(tables are as wide as their content, not as the console)."""


def cli_console(*, stderr: bool = False) -> Console:
    """A console for the CLI's output (``stderr`` for messages and progress)."""
    console = Console(stderr=stderr)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, width=OFF_TERMINAL_WIDTH)


console = cli_console()
err_console = cli_console(stderr=True)

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

    return wrapper  # type: ignore[return-value]  # functools.wraps keeps func's signature, which typer reads
