"""Options that several CLI commands share, each reading the variable :mod:`tracemill.config` declares.

In a module of their own so that the command modules (feedback, mine, train) can use them without
importing ``tracemill.cli.app``, which imports them.
"""

from __future__ import annotations

from typing import Any

import typer

from tracemill import config

__all__ = ["server_option", "store_option", "token_option"]

_SERVER_HELP = f"URL of a running tracemill server (default: http://127.0.0.1:${config.PORT.name}, else :4318)."
_STORE_HELP = "Store DSN to read when no server answers (default: the embedded store in the user data dir)."
_TOKEN_HELP = "Bearer token of the server, when it requires one."


def server_option() -> Any:
    """``--server`` of a command that asks a running server first."""
    return typer.Option(config.SERVER.default, "--server", envvar=config.SERVER.name, help=_SERVER_HELP)


def store_option(help: str = _STORE_HELP) -> Any:
    """``--store``, read from the store setting."""
    return typer.Option(config.STORE.default, "--store", envvar=config.STORE.name, help=help)


def token_option() -> Any:
    """``--token``: the server's bearer token."""
    return typer.Option(config.TOKEN.default, "--token", envvar=config.TOKEN.name, help=_TOKEN_HELP)
