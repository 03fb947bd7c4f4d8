"""The CLI's consoles: rich's layout on a terminal, whole lines everywhere else.

Off a terminal (a pipe, a file, CI logs) rich lays out for 80 columns and cuts table cells with
"…", so a store path, a dataset directory or the command that starts the review UI could not be
found from a log. There the consoles are as wide as any line needs: tables keep their columns and
print each cell whole, plain lines are not wrapped. ``--json`` output does not depend on the width.
"""

from __future__ import annotations

from rich.console import Console

__all__ = ["OFF_TERMINAL_WIDTH", "cli_console"]

OFF_TERMINAL_WIDTH = 4096
"""Columns off a terminal: wider than any path or command the CLI prints, so nothing is cut or wrapped
(tables are as wide as their content, not as the console)."""


def cli_console(*, stderr: bool = False) -> Console:
    """A console for the CLI's output (``stderr`` for messages and progress)."""
    console = Console(stderr=stderr)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, width=OFF_TERMINAL_WIDTH)
