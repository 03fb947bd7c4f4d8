"""``tracemill serve``: run the server that owns the store, with every option read from :mod:`tracemill.config`."""

from __future__ import annotations

from typing import Any

import typer

from tracemill import config
from tracemill.cli.options import store_option
from tracemill.cli.output import cli_errors, err_console
from tracemill.errors import ConfigError

__all__ = ["register"]

# Every default and variable name of these options comes from its declaration in tracemill.config.
_STORE = store_option(
    "Store DSN this server owns: chdb:///abs/path or http(s)://user:pass@host:8123/db "
    "(default: the embedded store in the data dir)."
)
_HOST = typer.Option(config.HOST.default, "--host", envvar=config.HOST.name,
                     help="Address to listen on. Anything but loopback requires --token.")
_PORT = typer.Option(config.PORT.default, "--port", envvar=config.PORT.name, min=0, max=65535,
                     help="Port for OTLP/HTTP (/v1/traces) and the JSON API (/api); 0 picks a free port.")
_TOKEN = typer.Option(config.TOKEN.default, "--token", envvar=config.TOKEN.name,
                      help="Admin token: require 'Authorization: Bearer TOKEN' (this or a reviewer's) on every "
                           "request.")
_REVIEWERS = typer.Option(config.REVIEWERS.default, "--reviewers", envvar=config.REVIEWERS.name,
                          help="File of reviewer tokens, one line 'author token' each, re-read when it changes.")
_SPOOL = typer.Option(config.SPOOL.default, "--spool", envvar=config.SPOOL.name,
                      help="Directory of the durable spool (default: '<store>.spool' beside an embedded store).")
_FORWARD = typer.Option(
    config.FORWARD.default, "--forward", envvar=config.FORWARD.name,
    help="Also send received spans to this OTLP/HTTP endpoint (Jaeger, Tempo, Phoenix, Langfuse...).")
_OPENINFERENCE = typer.Option(
    None, "--openinference/--no-openinference", envvar=config.FORWARD_OPENINFERENCE.name, show_default=False,
    help="With --forward: also write OpenInference attributes on forwarded spans (for Arize Phoenix).")
_CLUSTER = typer.Option(config.CLUSTER.default, "--cluster", envvar=config.CLUSTER.name,
                        help="ClickHouse cluster: create the schema ON CLUSTER with Replicated engines.")
_LOG_LEVEL = typer.Option(config.LOG_LEVEL.default, "--log-level", envvar=config.LOG_LEVEL.name,
                          help="Server log level: debug, info, warning or error.")


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""
    app.command()(cli_errors(serve))


def serve(
    store: str = _STORE, host: str = _HOST, port: int = _PORT, token: str = _TOKEN, spool: str = _SPOOL,
    reviewers: str = _REVIEWERS, forward: str = _FORWARD, openinference: bool = _OPENINFERENCE, cluster: str = _CLUSTER,
    log_level: str = _LOG_LEVEL,
) -> None:
    """Receive OTLP traces into the store and answer the other commands (runs until Ctrl-C)."""
    import logging

    from tracemill.deps import require

    require("uvicorn", extra="server", feature="tracemill serve")
    from tracemill.collector.server.server import ServerSettings
    from tracemill.collector.server.server import serve as run_server

    level = log_level.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"--log-level must be debug, info, warning or error (got {log_level!r})")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServerSettings.from_env(
        store=store, host=host, port=port, token=token, spool_dir=spool, forward=forward, cluster=cluster,
        openinference=openinference, reviewers=reviewers,
    )
    run_server(settings, on_ready=_ready, on_stopped=_stopped)


def _ready(server: Any, url: str) -> None:
    forward = server.settings.forward
    err_console.print(
        f"tracemill serve: listening on [bold]{url}[/] (OTLP: {url}/v1/traces, API: {url}/api)\n"
        f"  store: {server.store_location} (database {server.store_database})\n"
        f"  spool: {server.spool_dir}" + (f"\n  forwarding to: {forward}" if forward else ""),
        highlight=False, soft_wrap=True,
    )


def _stopped(server: Any) -> None:
    left = server.spool.pending_spans
    err_console.print(
        f"tracemill serve: stopped; {server.writer.inserted_spans:,} spans inserted since start, "
        + (f"{left:,} left in the spool for the next start" if left else "the spool is empty"),
        highlight=False, soft_wrap=True,
    )
