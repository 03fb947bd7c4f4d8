"""Rich renderings of status, trace lists and trace trees for the CLI.

Kept apart from the command definitions so ``cli.py`` stays parse → call → print. Every value
that comes from trace content goes through :func:`rich.markup.escape`, so a span name such as
``[red]`` is shown, not interpreted.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

__all__ = ["render_status", "render_trace", "render_traces"]

_MAX_VALUE_CHARS = 120


def render_status(console: Console, status: dict[str, Any], *, via: str) -> None:
    store = status.get("store") or {}
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    server = status.get("url") or status.get("server")
    table.add_row("server", escape(f"{server} (pid {status.get('pid')})") if server else "not running")
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
    forward = status.get("forward")
    if forward:
        table.add_row(
            "forwarding",
            escape(
                f"{forward['url']}: {forward['forwarded_requests']:,} sent, {forward['dropped_requests']:,} dropped"
            ),
        )
    console.print(table)
    console.print(f"[dim]via {escape(via)}[/]")


def render_traces(console: Console, traces: list[dict[str, Any]]) -> None:
    if not traces:
        console.print("No traces match.")
        return
    # Ids are shortened to 16 digits: `tracemill show` takes any unique prefix, --json has them whole.
    table = Table()
    table.add_column("trace", no_wrap=True)
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("name", ratio=3)
    table.add_column("service", ratio=1)
    table.add_column("spans", justify="right", no_wrap=True)
    table.add_column("err", justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("tokens", justify="right", no_wrap=True)
    for t in traces:
        errors = f"[red]{t['errors']}[/]" if t["errors"] else "0"
        tokens = t["input_tokens"] + t["output_tokens"]
        table.add_row(
            t["trace_id"][:16],
            _short_time(t["start_ns"]),
            escape(t["name"]),
            escape(t["service"]),
            str(t["spans"]),
            errors,
            _duration_ms(t["duration_ms"]),
            f"{tokens:,}" if tokens else "-",
        )
    console.print(table)


def render_trace(console: Console, trace: dict[str, Any], *, details: bool = True) -> None:
    title = (
        f"[bold]trace {trace['trace_id']}[/]  {trace['span_count']} spans, "
        f"{trace['error_count']} errors, {_duration_ms(trace['duration_ms'])}, started {_short_time(trace['start_ns'])}"
    )
    tree = Tree(title)
    for root in trace["roots"]:
        _add_span(tree, root, details=details)
    console.print(tree)
    if trace.get("truncated"):
        console.print(f"[yellow]only the first {trace['span_count']} spans are shown[/]")


def _add_span(parent: Tree, span: dict[str, Any], *, details: bool) -> None:
    mark = "[red]✗[/] " if span["error"] else ""
    label = (
        f"{mark}[bold]{escape(span['name'])}[/] [dim]{escape(span['kind'])} · {escape(span['service'])} · "
        f"{_duration_ms(span['duration_ns'] / 1e6)} · {span['span_id']}[/]"
    )
    if span["status_message"]:
        label += f"\n[red]{escape(span['status_code'])}: {escape(span['status_message'])}[/]"
    node = parent.add(label)
    if details:
        for key, value in sorted(span["attributes"].items()):
            node.add(f"[cyan]{escape(key)}[/] = {escape(_clip(value))}")
        for event in span["events"]:
            attrs = ", ".join(f"{k}={_clip(v, 40)}" for k, v in sorted(event["attributes"].items()))
            node.add(f"[magenta]event[/] {escape(event['name'])} {escape(attrs)}")
        for link in span["links"]:
            node.add(f"[blue]link[/] → {link['trace_id']}/{link['span_id']}")
    for child in span["children"]:
        _add_span(node, child, details=details)


def _clip(value: Any, limit: int = _MAX_VALUE_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short_time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%m-%d %H:%M:%S")


def _duration_ms(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.2f}s"
    return f"{ms:.1f}ms"


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return f"{count} B"
