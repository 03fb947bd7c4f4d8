"""Options that several CLI commands share, each reading the environment variable its settings declare.

In a module of their own so that the command modules (feedback, mine, train) can use them without
importing ``tracemill.cli.app``, which imports them.
"""

from __future__ import annotations

from typing import Any

import typer

from tracemill.collector.server.server import env_name
from tracemill.collector.store.dsn import STORE_ENV

__all__ = ["server_option", "store_option", "token_option"]

_SERVER_HELP = "URL of a running tracemill server (default: http://127.0.0.1:$TRACEMILL_PORT, else :4318)."
_STORE_HELP = "Store DSN to read when no server answers (default: the embedded store in the user data dir)."
_TOKEN_HELP = "Bearer token of the server, when it requires one."


def server_option() -> Any:
    """``--server`` of a command that asks a running server first."""
    return typer.Option(None, "--server", envvar=env_name("server"), help=_SERVER_HELP)


def store_option(help: str = _STORE_HELP) -> Any:
    """``--store``, read from ``TRACEMILL_STORE``."""
    return typer.Option(None, "--store", envvar=STORE_ENV, help=help)


def token_option() -> Any:
    """``--token``: the server's bearer token."""
    return typer.Option(None, "--token", envvar=env_name("token"), help=_TOKEN_HELP)
