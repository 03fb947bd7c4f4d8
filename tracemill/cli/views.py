"""Rich renderings of status, trace lists and trace trees for the CLI.

Kept apart from the command modules so each stays parse → call → print. Every value
that comes from trace content goes through :func:`rich.markup.escape`, so a span name such as
``[red]`` is shown, not interpreted.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from tracemill.cli.terminal_text import escape

__all__ = ["render_status", "render_trace", "render_traces"]

_MAX_VALUE_CHARS = 120


def render_status(console: Console, status: dict[str, Any], *, via: str) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    _server_rows(table, status)
    _store_rows(table, status.get("store") or {})
    _pipeline_rows(table, status)
    console.print(table)
    console.print(f"[dim]via {escape(via)}[/]")


def _server_rows(table: Table, status: dict[str, Any]) -> None:
    server = status.get("url") or status.get("server")
    other = status.get("other_server")
    if server:
        table.add_row("server", escape(f"{server} (pid {status.get('pid')})"))
    elif other:
        owned = other.get("store") or {}
        table.add_row("server", escape(
            f"{other['url']} (pid {other.get('pid')}) runs for another store: {owned.get('location')} "
            f"(database {owned.get('database')}); this store was read directly"
        ))
    else:
        table.add_row("server", "not running")


def _store_rows(table: Table, store: dict[str, Any]) -> None:
    table.add_row("store", escape(f"{store.get('location')} (database {store.get('database')})"))
    if store.get("available") is False:
        table.add_row("store state", f"[red]unavailable[/]: {escape(str(store.get('error')))}")
    if "spans" in store:
        table.add_row("traces", f"{store['traces']:,}")
        table.add_row("spans", f"{store['spans']:,} ({store['error_spans']:,} with errors)")
        if store.get("first_span_at"):
            table.add_row("time range", f"{store['first_span_at']} → {store['last_span_at']}")
        services = ", ".join(f"{escape(s['name'] or '(none)')} ({s['spans']:,})" for s in store.get("services", []))
        table.add_row("services", services or "-")
        table.add_row("schema version", str(store.get("schema_version")))
    dead = store.get("dead_letters")
    if dead and dead.get("spans"):
        table.add_row(
            "dead letters",
            f"[yellow]{dead['spans']:,} span(s) the store could not hold are set aside in {dead['table']}[/]; "
            f"latest: {escape(str(dead.get('last_reason')))}",
        )


def _pipeline_rows(table: Table, status: dict[str, Any]) -> None:
    """The server's own parts: spool, writer, receiver, outbox intake, forwarding."""
    spool = status.get("spool")
    if spool:
        table.add_row(
            "spool",
            escape(f"{spool['spans']:,} spans in {spool['batches']:,} batches, {_size(spool['bytes'])} "
                   f"of {_size(spool['max_bytes'])} ({spool['directory']})"),
        )
        if spool.get("dead_batches"):
            table.add_row("set aside", f"[yellow]{spool['dead_batches']} batch(es) could not be converted[/]")
    writer = status.get("writer")
    if writer:
        state = "[green]healthy[/]" if writer["healthy"] else f"[red]failing[/]: {escape(str(writer['last_error']))}"
        table.add_row("writer", f"{state}, {writer['inserted_spans']:,} spans inserted since start")
    receiver = status.get("receiver")
    if receiver:
        table.add_row(
            "receiver",
            f"{receiver['accepted_spans']:,} spans accepted, {receiver['rejected_spans']:,} rejected, "
            f"{receiver['refused_requests']:,} requests refused, "
            f"{receiver['backpressure_responses']:,} told to retry",
        )
    outbox = status.get("outbox")
    if outbox:
        table.add_row("outbox", escape(
            f"{outbox['ingested_spans']:,} spans taken in since start, {outbox['waiting_files']:,} files waiting "
            f"({outbox['directory']})"
        ))
    forward = status.get("forward")
    if forward:
        table.add_row(
            "forwarding",
            escape(
                f"{forward['url']}: {forward['forwarded_requests']:,} sent, {forward['dropped_requests']:,} dropped"
            ),
        )


# Columns of the trace list, most important first: at a narrow width the last ones are left out
# before the name is squeezed (`--json` has every field).
_TRACE_COLUMNS: tuple[tuple[str, str, int], ...] = (  # (header, key, widest content shown)
    ("trace", "trace_id", 16),
    ("started (UTC)", "start", 14),
    ("name", "name", 40),
    ("err", "errors", 4),
    ("task", "task", 24),
    ("agent", "agent", 30),
    ("duration", "duration", 9),
    ("service", "service", 24),
    ("spans", "spans", 6),
    ("tokens", "tokens", 9),
)


def render_traces(console: Console, traces: list[dict[str, Any]]) -> None:
    if not traces:
        console.print("No traces match.")
        return
    narrow = console.width < 100
    rows = [_trace_cells(t, narrow=narrow) for t in traces]
    shown = _fit_columns(rows, console.width)
    # Ids are shortened: `tracemill show` takes any unique prefix, --json has them whole.
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for header, key, _ in _TRACE_COLUMNS:
        if key not in shown:
            continue
        right = key in ("errors", "duration", "spans", "tokens")
        table.add_column(header, justify="right" if right else "left", no_wrap=key != "name",
                         overflow="fold" if key == "name" else "ellipsis")
    for cells in rows:
        table.add_row(*(cells[key] for _, key, _ in _TRACE_COLUMNS if key in shown))
    console.print(table)


def _trace_cells(t: dict[str, Any], *, narrow: bool) -> dict[str, str]:
    tokens = t["input_tokens"] + t["output_tokens"]
    name = escape(t["name"]) + (" [yellow](root missing)[/]" if t.get("root_missing") else "")
    return {
        "trace_id": t["trace_id"][: 10 if narrow else 16],
        "start": _short_time(t["start_ns"], seconds=not narrow),
        "name": name,
        "errors": f"[red]{t['errors']}[/]" if t["errors"] else "0",
        "agent": escape(t.get("agent") or "-"),
        "task": escape(t.get("task") or "-"),
        "duration": _duration_ms(t["duration_ms"]),
        "service": escape(t["service"] or "-"),
        "spans": str(t["spans"]),
        "tokens": f"{tokens:,}" if tokens else "-",
    }


def _fit_columns(rows: list[dict[str, str]], width: int) -> set[str]:
    """The columns that fit in ``width`` next to a readable name, dropping the least important first."""
    from rich.text import Text

    def need(header: str, key: str, cap: int) -> int:
        widest = max([len(header)] + [Text.from_markup(r[key]).cell_len for r in rows])
        return min(widest, cap) + 3  # padding on each side and the divider

    columns = list(_TRACE_COLUMNS)
    while len(columns) > 4 and sum(need(*c) for c in columns) > width:
        columns.pop()
    return {key for _, key, _ in columns}


def render_trace(
    console: Console, trace: dict[str, Any], *, details: bool = True, full: bool = False, span_id: str | None = None
) -> None:
    """The trace as a tree. ``full`` shows every attribute whole (JSON indented, so a conversation reads as
    one); ``span_id`` shows only that span and what it contains, whole."""
    roots = trace["roots"]
    if span_id is not None:
        found = _find_span(roots, span_id.strip().lower())
        if found is None:
            from tracemill.errors import SpanNotFoundError

            raise SpanNotFoundError(f"trace {trace['trace_id']} has no span {span_id!r} (give its 16 hex digits)")
        roots, full, details = [found], True, True
    title = (
        f"[bold]trace {trace['trace_id']}[/]  {trace['span_count']} spans, "
        f"{trace['error_count']} errors, {_duration_ms(trace['duration_ms'])}, started {_short_time(trace['start_ns'])}"
    )
    missing = trace.get("missing_parents") or 0
    if missing:
        title += f"\n[yellow]{missing} span(s) name a parent that is not in the store: its root was lost or not sent[/]"
    tree = Tree(title)
    for root in roots:
        _add_span(tree, root, details=details, full=full)
    console.print(tree)
    if trace.get("truncated"):
        console.print(f"[yellow]only the first {trace['span_count']} spans are shown[/]")


def _find_span(spans: list[dict[str, Any]], span_id: str) -> dict[str, Any] | None:
    for span in spans:
        if span["span_id"] == span_id:
            return span
        found = _find_span(span["children"], span_id)
        if found is not None:
            return found
    return None


def _add_span(parent: Tree, span: dict[str, Any], *, details: bool, full: bool = False) -> None:
    mark = "[red]✗[/] " if span["error"] else ""
    label = (
        f"{mark}[bold]{escape(span['name'])}[/] [dim]{escape(span['kind'])} · {escape(span['service'])} · "
        f"{_duration_ms(span['duration_ns'] / 1e6)} · {span['span_id']}[/]"
    )
    if span.get("parent_missing"):
        label += f"\n[yellow]parent span {escape(span['parent_span_id'])} is missing[/]"
    if span["status_message"]:
        label += f"\n[red]{escape(span['status_code'])}: {escape(span['status_message'])}[/]"
    node = parent.add(label)
    if details:
        for key, value in sorted(span["attributes"].items()):
            shown = _whole(value) if full else _clip(value)
            node.add(f"[cyan]{escape(key)}[/] = {escape(shown, keep_lines=full)}")
        for event in span["events"]:
            attrs = ", ".join(
                f"{k}={_whole(v) if full else _clip(v, 40)}" for k, v in sorted(event["attributes"].items())
            )
            node.add(f"[magenta]event[/] {escape(event['name'])} {escape(attrs, keep_lines=full)}")
        for link in span["links"]:
            node.add(f"[blue]link[/] → {link['trace_id']}/{link['span_id']}")
    for child in span["children"]:
        _add_span(node, child, details=details, full=full)


def _whole(value: Any) -> str:
    """The whole value; JSON objects and arrays (messages, tool arguments) indented to be read."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.dumps(json.loads(value), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _clip(value: Any, limit: int = _MAX_VALUE_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short_time(ns: int, *, seconds: bool = True) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%m-%d %H:%M:%S" if seconds else "%m-%d %H:%M")


def _duration_ms(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.2f}s"
    return f"{ms:.1f}ms"


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]  # whole bytes in; fractional units from the first division on
    return f"{count} B"
