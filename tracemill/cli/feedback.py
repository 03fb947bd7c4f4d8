"""``tracemill feedback ...`` and ``tracemill export ...``: give feedback and export datasets from the shell.

Both go through a running server when it owns the store (chDB lets one process open it), else open the
store. The checks are the store's own (:func:`tracemill.collector.feedback.feedback.record_feedback`), so the
CLI refuses what the API and the Python façade refuse, and stores nothing when it refuses.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from tracemill import config
from tracemill.cli.options import server_option, store_option, token_option
from tracemill.cli.output import cli_errors, console
from tracemill.errors import ConfigError, NotFoundError, ServerError
from tracemill.feedback import default_author

if TYPE_CHECKING:
    from tracemill.client import Backend

__all__ = ["register"]

_STORE_HELP = "Store DSN to use when no server answers (default: the embedded store in the user data dir)."

feedback_app = typer.Typer(help="Give feedback on traces and spans, list it, find conflicts.", no_args_is_help=True)

_SERVER = server_option()
_STORE = store_option(_STORE_HELP)
_TOKEN = token_option()
_JSON = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")
_AUTHOR = typer.Option(None, "--author", envvar=config.AUTHOR.name,
                       help="Who gives the feedback (default: the reviewer of your token, else $USER).")
_COMMENT = typer.Option("", "--comment", help="Free text kept with the feedback.")
_TRACE = typer.Argument(..., help="Trace id, or a unique prefix of at least 6 hex digits.")
_ITEM_INDEX = re.compile(r"^item (\d+): ")


def register(app: typer.Typer) -> None:
    """Add the ``feedback`` command group and the ``export`` command to ``app``."""
    app.add_typer(feedback_app, name="feedback")
    app.command("export")(export_command)


# -- the connection ------------------------------------------------------------------------------


def _connect(server: str | None, store: str | None, token: str | None) -> Backend:
    from tracemill.client import connect

    return connect(server=server, store=store, token=token)


def _author(author: str | None) -> str | None:
    """The author named with --author (or the author setting); None lets the server take it from the token."""
    return default_author(author)


def _write_one(item: dict[str, Any], server: str | None, store: str | None, token: str | None,
               as_json: bool) -> None:
    with _connect(server, store, token) as backend:
        (stored,) = backend.record_feedback([item])
    if as_json:
        console.print_json(data=stored)
        return
    where = f"span {stored['span_id']} of trace {stored['trace_id']}" if stored["span_id"] else \
        f"trace {stored['trace_id']}"
    verb = "withdrew" if stored["deleted"] else "stored"
    console.print(f"{verb} {stored.get('kind') or 'feedback'} {stored['name']!r} by {stored['author']} on {where}",
                  highlight=False)


def _json_argument(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{what} is not JSON: {exc} (got {text!r})") from None


# -- feedback commands ---------------------------------------------------------------------------


@feedback_app.command("correct")
@cli_errors
def correct_command(
    trace_id: str = _TRACE,
    span_id: str = typer.Argument(..., help="The LLM span whose output is corrected."),
    output: str = typer.Option(None, "--output", help="The text the model should have answered."),
    tool_call: list[str] = typer.Option(  # noqa: B008 - typer reads the default, it is never mutated
        None, "--tool-call", help='A tool call it should have made, as JSON {"name": ..., "arguments": {...}} '
                                  "(repeatable)."),
    author: str = _AUTHOR, comment: str = _COMMENT, server: str = _SERVER, store: str = _STORE,
    token: str = _TOKEN, as_json: bool = _JSON,
) -> None:
    """Correct what an LLM span answered: its text, its tool calls, or both (checked against its tools)."""
    calls = [_json_argument(text, f"--tool-call {number}") for number, text in enumerate(tool_call or [])]
    item = {"trace_id": trace_id, "span_id": span_id, "name": "correction", "author": _author(author),
            "kind": "correction", "value": {"output": output, "tool_calls": calls}, "comment": comment}
    _write_one(item, server, store, token, as_json)


@feedback_app.command("score")
@cli_errors
def score_command(
    trace_id: str = _TRACE,
    value: float = typer.Argument(..., min=0.0, max=1.0, help="The score, from 0 to 1."),
    span_id: str = typer.Option("", "--span", help="The span scored (default: the whole trace)."),
    name: str = typer.Option("quality", "--name", help="What is scored."),
    author: str = _AUTHOR, comment: str = _COMMENT, server: str = _SERVER, store: str = _STORE,
    token: str = _TOKEN, as_json: bool = _JSON,
) -> None:
    """Score a span or a whole trace from 0 to 1."""
    item = {"trace_id": trace_id, "span_id": span_id, "name": name, "author": _author(author), "kind": "score",
            "score": value, "comment": comment}
    _write_one(item, server, store, token, as_json)


@feedback_app.command("label")
@cli_errors
def label_command(
    trace_id: str = _TRACE,
    value: str = typer.Argument(..., help="good or bad (thumbs_up/thumbs_down, positive/negative, ...)."),
    span_id: str = typer.Option("", "--span", help="The span labelled (default: the whole trace)."),
    name: str = typer.Option("thumbs", "--name", help="What the label is about."),
    author: str = _AUTHOR, comment: str = _COMMENT, server: str = _SERVER, store: str = _STORE,
    token: str = _TOKEN, as_json: bool = _JSON,
) -> None:
    """Label a span or a whole trace (good/bad for datasets)."""
    item = {"trace_id": trace_id, "span_id": span_id, "name": name, "author": _author(author), "kind": "label",
            "label": value.strip(), "comment": comment}
    _write_one(item, server, store, token, as_json)


@feedback_app.command("prefer")
@cli_errors
def prefer_command(
    trace_id: str = _TRACE,
    better: str = typer.Argument(..., help="The LLM span with the better answer."),
    worse: str = typer.Argument(..., help="The LLM span with the worse answer to the same input."),
    worse_trace: str = typer.Option(None, "--worse-trace", help="The trace of the worse span, if another one."),
    author: str = _AUTHOR, comment: str = _COMMENT, server: str = _SERVER, store: str = _STORE,
    token: str = _TOKEN, as_json: bool = _JSON,
) -> None:
    """Prefer one LLM answer to another answer to the same input."""
    value = {"better": better, "worse": worse, **({"worse_trace": worse_trace} if worse_trace else {})}
    item = {"trace_id": trace_id, "span_id": better, "name": f"preference:{worse}", "author": _author(author),
            "kind": "preference", "value": value, "comment": comment}
    _write_one(item, server, store, token, as_json)


@feedback_app.command("outcome")
@cli_errors
def outcome_command(
    trace_id: str = _TRACE,
    success: bool = typer.Option(None, "--success/--failure", help="Whether the run succeeded."),
    reward: float = typer.Option(None, "--reward", help="A reward instead of success/failure."),
    author: str = _AUTHOR, comment: str = _COMMENT, server: str = _SERVER, store: str = _STORE,
    token: str = _TOKEN, as_json: bool = _JSON,
) -> None:
    """Record how a whole run ended: --success, --failure, or --reward NUMBER."""
    if (success is None) == (reward is None):
        raise ConfigError("give --success, --failure or --reward NUMBER (exactly one)")
    value = {"success": success} if success is not None else {"reward": reward}
    item = {"trace_id": trace_id, "name": "outcome", "author": _author(author), "kind": "outcome", "value": value,
            "comment": comment}
    _write_one(item, server, store, token, as_json)


@feedback_app.command("decisive")
@cli_errors
def decisive_command(
    trace_id: str = _TRACE,
    span_id: str = typer.Argument(..., help="The span where the run went wrong (any span of the trace)."),
    reason: str = typer.Option("", "--reason", help="Why this step decided the failure."),
    author: str = _AUTHOR, server: str = _SERVER, store: str = _STORE, token: str = _TOKEN, as_json: bool = _JSON,
) -> None:
    """Mark the decisive step of a run: the span where it went wrong (replaces your earlier mark there)."""
    item = {"trace_id": trace_id, "span_id": span_id, "name": "decisive", "author": _author(author),
            "kind": "decisive", "comment": reason}
    _write_one(item, server, store, token, as_json)


@feedback_app.command("delete")
@cli_errors
def delete_command(
    trace_id: str = _TRACE,
    name: str = typer.Option(..., "--name", help="The feedback's name (correction, quality, thumbs, outcome...)."),
    span_id: str = typer.Option("", "--span", help="The span it is on (default: the whole trace)."),
    author: str = _AUTHOR, server: str = _SERVER, store: str = _STORE, token: str = _TOKEN, as_json: bool = _JSON,
) -> None:
    """Withdraw your feedback (the store keeps its history as a tombstone)."""
    item = {"trace_id": trace_id, "span_id": span_id, "name": name, "author": _author(author), "deleted": True}
    _write_one(item, server, store, token, as_json)


@feedback_app.command("list")
@cli_errors
def list_command(
    trace_id: str = typer.Option(None, "--trace", help="Only this trace (id or unique prefix)."),
    span_id: str = typer.Option(None, "--span", help="Only this span."),
    kind: str = typer.Option(None, "--kind", help="Only this kind: correction, score, label, preference, outcome."),
    author: str = typer.Option(None, "--author", help="Only this author."),
    limit: int = typer.Option(100, "--limit", "-n", min=1, max=1000, help="How many to list."),
    server: str = _SERVER, store: str = _STORE, token: str = _TOKEN, as_json: bool = _JSON,
) -> None:
    """List current feedback, newest first."""
    with _connect(server, store, token) as backend:
        rows = backend.feedback(trace_id=trace_id, span_id=span_id, kind=kind, author=author, limit=limit)
    if as_json:
        console.print_json(data=rows)
        return
    table = Table("trace", "span", "kind", "name", "author", "says", "updated")
    for row in rows:
        table.add_row(row["trace_id"][:12], row["span_id"] or "(trace)", row["kind"], row["name"], row["author"],
                      _says(row), row["updated_at"])
    console.print(table)


@feedback_app.command("conflicts")
@cli_errors
def conflicts_command(
    trace_id: str = typer.Option(None, "--trace", help="Only conflicts about this trace."),
    server: str = _SERVER, store: str = _STORE, token: str = _TOKEN, as_json: bool = _JSON,
) -> None:
    """List where authors disagree (export leaves these out unless --resolve says how to settle them)."""
    with _connect(server, store, token) as backend:
        found = backend.conflicts(trace_id)
    if as_json:
        console.print_json(data=found)
        return
    if not found:
        console.print("no conflicting feedback")
        return
    table = Table("subject", "author", "says", "updated")
    for conflict in found:
        subject = conflict["subject"]
        about = f"{subject['kind']} {subject.get('trace_id', '')[:12]} {subject.get('span_id', '')}".strip()
        for row in conflict["feedback"]:
            table.add_row(about, row["author"], _says(row), row["updated_at"])
    console.print(table)


@feedback_app.command("import")
@cli_errors
def import_command(
    path: Path = typer.Argument(  # noqa: B008 - typer reads the default, it is never mutated
        ..., exists=True, dir_okay=False, help="A JSONL file of feedback items."),
    server: str = _SERVER, store: str = _STORE, token: str = _TOKEN, as_json: bool = _JSON,
) -> None:
    """Store every feedback item of a JSONL file, or (on any bad line) none of them."""
    from tracemill.collector.feedback.feedback import MAX_FEEDBACK_ITEMS

    items, lines = [], []
    named = _author(None)  # the author setting; else the server takes the author from the token
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"{path}: line {number} is not JSON: {exc}; nothing was stored") from None
        if not isinstance(item, dict):
            raise ConfigError(f"{path}: line {number} is not a JSON object; nothing was stored")
        if named:
            item.setdefault("author", named)
        items.append(item)
        lines.append(number)
    if not items:
        raise ConfigError(f"{path} holds no feedback items")
    chunks = [range(start, min(start + MAX_FEEDBACK_ITEMS, len(items)))
              for start in range(0, len(items), MAX_FEEDBACK_ITEMS)]
    stored: list[dict[str, Any]] = []
    with _connect(server, store, token) as backend:
        for check_only in ([True, False] if len(chunks) > 1 else [False]):
            for chunk in chunks:
                try:
                    result = backend.record_feedback([items[i] for i in chunk], check_only=check_only)
                except (ConfigError, NotFoundError) as exc:
                    raise type(exc)(_at_line(str(exc), path, lines, chunk.start)) from None
                except ServerError as exc:
                    raise ServerError(_at_line(str(exc), path, lines, chunk.start), status=exc.status) from None
                if not check_only:
                    stored += result
    if as_json:
        console.print_json(data=stored)
    else:
        console.print(f"stored {len(stored)} feedback items from {path}")


def _at_line(message: str, path: Path, lines: list[int], offset: int) -> str:
    """An 'item N: ...' message of a write, told as the line of the file (and that nothing was stored)."""
    prefix = message
    if ": item " in message:  # a server's answer: "the server at URL answered 400: item N: ..."
        prefix = "item " + message.partition(": item ")[2]
    match = _ITEM_INDEX.match(prefix)
    if match:
        number = lines[offset + int(match.group(1))]
        return f"{path}: line {number}: {prefix[match.end():]}; nothing was stored"
    return f"{path}: {message}; nothing was stored"


def _says(row: dict[str, Any]) -> str:
    if row["kind"] == "score":
        return f"{row['score']:.2f}"
    if row["kind"] == "label":
        return row["label"]
    if row["kind"] == "decisive":
        return f"decisive step {row['span_id']}"
    return json.dumps(row["value"], ensure_ascii=False)[:80]


# -- export --------------------------------------------------------------------------------------


@cli_errors
def export_command(
    kind: str = typer.Argument(..., help="dpo, kto, sft, stepwise, openai or flags."),
    output: Path = typer.Option(  # noqa: B008 - typer reads the default, it is never mutated
        ..., "--output", "-o", help="Directory to write train/eval .jsonl/.parquet and manifest.json to."),
    resolve: str = typer.Option(None, "--resolve", help="Settle conflicting feedback: latest, majority or "
                                                        "author:NAME[,NAME...] (default: leave conflicts out)."),
    since: str = typer.Option(None, "--since", help="Only feedback from this time on: 7d, 2h or ISO-8601."),
    eval_fraction: float = typer.Option(0.1, "--eval-fraction", min=0.0, max=0.99,
                                        help="Share of tasks held out for eval (no task is in both splits)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the train/eval split."),
    include_unlabelled: bool = typer.Option(False, "--include-unlabelled",
                                            help="SFT/OpenAI: also runs with no outcome, flag or negative feedback."),
    server: str = _SERVER, store: str = _STORE, token: str = _TOKEN, as_json: bool = _JSON,
) -> None:
    """Export a dataset for TRL (or OpenAI fine-tuning, or labelling elsewhere) from the feedback in the store."""
    from rich.progress import Progress

    from tracemill.trainer.export import write_dataset

    spinner = (console.status(f"building the {kind} dataset") if console.is_terminal and not as_json
               else contextlib.nullcontext())
    with _connect(server, store, token) as backend, spinner:
        train, held_out, manifest = backend.export(kind, resolve=resolve, since=since, eval_fraction=eval_fraction,
                                                   seed=seed, include_unlabelled=include_unlabelled)
    show_progress = not as_json and console.is_terminal and len(train) + len(held_out) >= 10_000
    with Progress(console=console, transient=True, disable=not show_progress) as bar:
        task = bar.add_task("writing", total=len(train) + len(held_out))

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done if stage == "write" else total)

        manifest = write_dataset(output, train, held_out, manifest, progress=progress)
    if as_json:
        console.print_json(data=manifest)
        return
    console.print(f"wrote {manifest['splits']['train']} train and {manifest['splits']['eval']} eval {kind} rows "
                  f"to {output}", highlight=False)
    for source, count in manifest["counts"].items():
        console.print(f"  {source}: {count}", highlight=False)
    for reason, count in manifest["dropped"].items():
        console.print(f"  dropped ({reason}): {count}", highlight=False)
