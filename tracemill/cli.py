"""The ``tracemill`` command line: a thin shell over plain functions.

Each command parses its options, calls library code, and prints a table (or JSON with
``--json``). tracemill's own errors become one red line and exit code 1, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console

from tracemill.cli_options import server_option, store_option, token_option
from tracemill.errors import ConfigError, TracemillError
from tracemill.server import DEFAULT_LOG_LEVEL, ServerSettings, env_name

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

    return wrapper  # type: ignore[return-value]  # functools.wraps keeps func's signature, which typer reads


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
        None, "--store", help="Store DSN for the demo's traces (default: a fresh embedded store under --dir).",
    ),
    directory: str = typer.Option(
        None, "--dir", help="Directory for the demo's store, dataset and models (default: a new one per demo "
        "under $TRACEMILL_DATA_DIR/demo).",
    ),
    runs: int = typer.Option(200, "--runs", min=1, help="How many agent runs to trace."),
    skip_train: bool = typer.Option(False, "--skip-train", help="Stop after exporting the dataset."),
    seed: int = typer.Option(7, "--seed", help="Seed of the tickets and the scripted model's behaviours."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Run the whole loop on a fresh store: trace an agent, mine, review, export DPO pairs, train a tiny model."""
    from pathlib import Path

    from tracemill.demo.loop import run_demo

    run_demo(directory=Path(directory) if directory else None, store=store, runs=runs, skip_train=skip_train,
             seed=seed, as_json=as_json, console=console)


_DEFAULTS = ServerSettings()
"""Every default of the server's options comes from its settings, every variable name from their declaration."""


@app.command()
@cli_errors
def serve(
    store: str = store_option(
        "Store DSN this server owns: chdb:///abs/path or http(s)://user:pass@host:8123/db "
        "(default: the embedded store in the data dir)."
    ),
    host: str = typer.Option(
        _DEFAULTS.host, "--host", envvar=env_name("host"),
        help="Address to listen on. Anything but loopback requires --token.",
    ),
    port: int = typer.Option(
        _DEFAULTS.port, "--port", envvar=env_name("port"), min=0, max=65535,
        help="Port for OTLP/HTTP (/v1/traces) and the JSON API (/api); 0 picks a free port.",
    ),
    token: str = typer.Option(
        None, "--token", envvar=env_name("token"),
        help="Require 'Authorization: Bearer TOKEN' on every request.",
    ),
    spool: str = typer.Option(
        None, "--spool", envvar=env_name("spool_dir"),
        help="Directory of the durable spool (default: '<store>.spool' beside an embedded store).",
    ),
    forward: str = typer.Option(
        None, "--forward", envvar=env_name("forward"),
        help="Also send received spans to this OTLP/HTTP endpoint (Jaeger, Tempo, Phoenix, Langfuse...).",
    ),
    openinference: bool = typer.Option(
        None, "--openinference/--no-openinference", envvar=env_name("openinference"), show_default=False,
        help="With --forward: also write OpenInference attributes on forwarded spans (for Arize Phoenix).",
    ),
    cluster: str = typer.Option(
        None, "--cluster", envvar=env_name("cluster"),
        help="ClickHouse cluster: create the schema ON CLUSTER with Replicated engines.",
    ),
    log_level: str = typer.Option(
        DEFAULT_LOG_LEVEL, "--log-level", envvar=env_name("log_level"),
        help="Server log level: debug, info, warning or error.",
    ),
) -> None:
    """Receive OTLP traces into the store and answer the other commands (runs until Ctrl-C)."""
    import logging

    from tracemill.deps import require

    require("uvicorn", extra="server", feature="tracemill serve")
    from tracemill.server import ServerSettings
    from tracemill.server import serve as run_server

    level = log_level.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"--log-level must be debug, info, warning or error (got {log_level!r})")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServerSettings.from_env(
        store=store, host=host, port=port, token=token, spool_dir=spool, forward=forward, cluster=cluster,
        openinference=openinference,
    )

    def ready(server: Any, url: str) -> None:
        err_console.print(
            f"tracemill serve: listening on [bold]{url}[/] (OTLP: {url}/v1/traces, API: {url}/api)\n"
            f"  store: {server.store_location} (database {server.store_database})\n"
            f"  spool: {server.spool_dir}" + (f"\n  forwarding to: {settings.forward}" if settings.forward else ""),
            highlight=False, soft_wrap=True,
        )

    def stopped(server: Any) -> None:
        left = server.spool.pending_spans
        err_console.print(
            f"tracemill serve: stopped; {server.writer.inserted_spans:,} spans inserted since start, "
            + (f"{left:,} left in the spool for the next start" if left else "the spool is empty"),
            highlight=False, soft_wrap=True,
        )

    run_server(settings, on_ready=ready, on_stopped=stopped)


@app.command()
@cli_errors
def status(
    server: str = server_option(),
    store: str = store_option(),
    token: str = token_option(),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables."),
) -> None:
    """Show the store's contents and, when a server runs, its spool, writer and receiver."""
    from tracemill.client import connect
    from tracemill.views import render_status

    backend = connect(server=server, store=store, token=token)
    try:
        result = backend.status()
    finally:
        backend.close()
    if as_json:
        console.print_json(data=result)
    else:
        render_status(console, result, via=f"{backend.kind} {backend.where}")


@app.command()
@cli_errors
def traces(
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=1000, help="How many traces to list."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many (newest first) for paging."),
    service: str = typer.Option(None, "--service", help="Only traces with spans of this service.name."),
    search: str = typer.Option(
        None, "--search", "-s",
        help="Only traces with this text in a span name, attribute value, status message or trace id prefix.",
    ),
    errors: bool = typer.Option(False, "--errors", help="Only traces with at least one error span."),
    since: str = typer.Option(None, "--since", help="Only spans after this: 30m, 2h, 7d or an ISO-8601 time."),
    until: str = typer.Option(None, "--until", help="Only spans before this: a duration back or an ISO-8601 time."),
    attr: list[str] = typer.Option(  # noqa: B008 - typer reads the default, it is never mutated
        None, "--attr",
        help="Only traces with a span attribute KEY=VALUE (repeatable). A list-valued attribute matches any "
             "of its elements; KEY= matches an empty value, never a missing key.",
    ),
    server: str = server_option(),
    store: str = store_option(),
    token: str = token_option(),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables."),
) -> None:
    """List recent traces, newest first, with filters and text search."""
    from tracemill.client import connect
    from tracemill.collector.query import parse_attributes
    from tracemill.views import render_traces

    attributes = parse_attributes(attr)
    backend = connect(server=server, store=store, token=token)
    try:
        found = backend.traces(
            limit=limit, offset=offset, service=service, search=search, errors_only=errors,
            since=since, until=until, attributes=attributes or None,
        )
    finally:
        backend.close()
    if as_json:  # the API's shape, so a script reads either the same way
        console.print_json(data={"traces": found})
    else:
        render_traces(console, found)


@app.command()
@cli_errors
def show(
    trace_id: str = typer.Argument(..., help="Trace id, or a unique prefix of at least 6 hex digits."),
    details: bool = typer.Option(True, "--details/--no-details", help="Show attributes, events and links."),
    full: bool = typer.Option(
        False, "--full", help="Show every attribute whole (messages and JSON indented) instead of cut to one line."
    ),
    span: str = typer.Option(None, "--span", help="Show only this span (16 hex digits) and its children, whole."),
    server: str = server_option(),
    store: str = store_option(),
    token: str = token_option(),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of a tree."),
) -> None:
    """Show one trace as a tree of spans."""
    from tracemill.client import connect
    from tracemill.views import render_trace

    backend = connect(server=server, store=store, token=token)
    try:
        found = backend.trace(trace_id)
    finally:
        backend.close()
    if as_json:
        console.print_json(data=found)
    else:
        render_trace(console, found, details=details, full=full, span_id=span)


from tracemill.cli_feedback import register as _register_feedback  # noqa: E402 - needs app, cli_errors

_register_feedback(app, cli_errors=cli_errors, console=console)

from tracemill.cli_mine import register as _register_mine  # noqa: E402 - registers on the app defined above

_register_mine(app, cli_errors=cli_errors, console=console, err_console=err_console)

from tracemill.cli_train import register as _register_train  # noqa: E402  (commands in their own modules)

_register_train(app)

from tracemill.cli_eval import register as _register_eval  # noqa: E402

_register_eval(app)


def main() -> None:
    """Entry point of the ``tracemill`` console script."""
    app(prog_name="tracemill")


if __name__ == "__main__":  # pragma: no cover
    main()
