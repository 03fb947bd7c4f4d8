"""``tracemill status``, ``traces`` and ``show``: what the store holds, through a running server or the store."""

from __future__ import annotations

import typer

from tracemill.cli.options import server_option, store_option, token_option
from tracemill.cli.output import cli_errors, console

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``status``, ``traces`` and ``show`` to ``app``."""
    for command in (status, traces, show):
        app.command()(cli_errors(command))


def status(
    server: str = server_option(),
    store: str = store_option(),
    token: str = token_option(),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables."),
) -> None:
    """Show the store's contents and, when a server runs, its spool, writer and receiver."""
    from tracemill.cli.views import render_status
    from tracemill.client import connect

    with connect(server=server, store=store, token=token) as backend:
        result = backend.status()
    if as_json:
        console.print_json(data=result)
    else:
        render_status(console, result, via=f"{backend.kind} {backend.where}")


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
    from tracemill.cli.views import render_traces
    from tracemill.client import connect
    from tracemill.collector.store.query import parse_attributes

    attributes = parse_attributes(attr)
    with connect(server=server, store=store, token=token) as backend:
        found = backend.traces(
            limit=limit, offset=offset, service=service, search=search, errors_only=errors,
            since=since, until=until, attributes=attributes or None,
        )
    if as_json:  # the API's shape, so a script reads either the same way
        console.print_json(data={"traces": found})
    else:
        render_traces(console, found)


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
    from tracemill.cli.views import render_trace
    from tracemill.client import connect

    with connect(server=server, store=store, token=token) as backend:
        found = backend.trace(trace_id)
    if as_json:
        console.print_json(data=found)
    else:
        render_trace(console, found, details=details, full=full, span_id=span)
