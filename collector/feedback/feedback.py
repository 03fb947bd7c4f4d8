"""Feedback and miner flags in the store: checked feedback writes, and reads of both tables.

The HTTP API (``POST``/``GET /api/feedback``, ``GET /api/flags``) runs these functions, so every
client (CLI, review UI, scripts) gets the same checks. A write is checked whole before anything is
stored: every item must name a known kind, a trace in the store and, when it names one, a span of
that trace. A typo in an id then never leaves feedback pointing at nothing, and either every item
of a request is stored or none is.

Feedback keeps one current row per (trace, span, name, author), as ``tracemill_feedback`` is keyed:
writing the same key again replaces the row (its ``created_at`` is kept), ``deleted`` writes a
tombstone, and different authors never replace each other.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tracemill.collector.feedback.checks import check_feedback_content
from tracemill.collector.feedback.decisive import check_one_per_author, superseded
from tracemill.collector.feedback.reviewers import normalize_author
from tracemill.collector.feedback.strict_json import check_value
from tracemill.collector.store.query import Filter, iso
from tracemill.collector.store.reads import resolve_trace_id
from tracemill.collector.store.schema import FEEDBACK_KINDS, FEEDBACK_TABLE, FLAGS_TABLE, SPANS_TABLE
from tracemill.errors import ConfigError, NotFoundError, SpanNotFoundError, TraceNotFoundError

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["MAX_FEEDBACK_ITEMS", "list_feedback", "list_flags", "public_row", "record_feedback"]

MAX_FEEDBACK_ITEMS = 1000
"""At most this many feedback items in one write."""

_FIELDS = ("trace_id", "span_id", "name", "author", "kind", "value", "score", "label", "comment", "deleted")
_REQUIRED = ("trace_id", "name", "author")
_SPAN_ID = re.compile(r"^[0-9a-f]{16}$")
_MAX_NAME = 200
# What each kind means nothing without.
_KIND_NEEDS = {"correction": "value", "preference": "value", "score": "score", "label": "label"}
_FEEDBACK_COLUMNS = (
    "TraceId", "SpanId", "Name", "Author", "Kind", "Value", "Score", "Label", "Comment",
    "CreatedAt", "UpdatedAt", "IsDeleted", "WrittenBy",
)  # fmt: skip


def record_feedback(
    store: Store, items: Sequence[Mapping[str, Any]], *, check_only: bool = False, written_by: str = ""
) -> list[dict[str, Any]]:
    """Store feedback items (dicts with the fields of :data:`_FIELDS`) and return them as stored.

    With ``check_only`` the items are checked and returned as they would be stored, and nothing is
    written (an import larger than one write checks every part this way before writing any). ``written_by``
    is the identity the server authenticated ('' for none), recorded with every row.

    Raises :class:`~tracemill.errors.ConfigError` for an item that is malformed,
    :class:`~tracemill.errors.TraceNotFoundError` / :class:`~tracemill.errors.SpanNotFoundError`
    for one naming a trace or span the store does not hold; the message starts with the item's
    index. Nothing is stored then.
    """
    if not items:
        raise ConfigError("no feedback items given")
    if len(items) > MAX_FEEDBACK_ITEMS:
        raise ConfigError(f"{len(items)} feedback items in one write; send at most {MAX_FEEDBACK_ITEMS}")
    checked = [_checked(index, item) for index, item in enumerate(items)]
    for index, item in enumerate(checked):
        try:
            item["trace_id"] = resolve_trace_id(store, item["trace_id"])
        except (ConfigError, NotFoundError) as exc:  # keep its class, add the index
            raise type(exc)(f"item {index}: {exc}") from None
    _check_ids_exist(store, checked)
    check_feedback_content(store, checked)
    check_one_per_author(checked)
    existing = _current_rows(store, {item["trace_id"] for item in checked})
    rows = _rows(checked, existing, datetime.now(timezone.utc), written_by)
    if not check_only:
        store.insert(FEEDBACK_TABLE, rows, _FEEDBACK_COLUMNS)
    return [_public(item) for item in checked]


def _rows(
    checked: list[dict[str, Any]], existing: dict[tuple[str, str, str, str], dict[str, Any]], now: datetime,
    written_by: str,
) -> list[list[Any]]:
    """The rows to insert: tombstones of an author's earlier decisive marks, then one row per checked item."""
    rows = [[*key, existing[key]["kind"], "", None, "", "", existing[key]["created_at"], now, 1, written_by]
            for key in superseded(checked, existing)]  # an author's earlier decisive mark on that trace
    seen: dict[tuple[str, str, str, str], int] = {}
    for index, item in enumerate(checked):
        key = (item["trace_id"], item["span_id"], item["name"], item["author"])
        if key in seen:  # both rows would carry the same UpdatedAt: which one stays would be arbitrary
            raise ConfigError(f"item {index}: item {seen[key]} already gives feedback {_describe(key)}")
        seen[key] = index
        before = existing.get(key)
        if item["deleted"]:
            if before is None:
                raise ConfigError(f"item {index}: there is no feedback {_describe(key)} to delete")
            item["kind"] = before["kind"]
        item["created_at"] = before["created_at"] if before else now
        item["updated_at"] = now
        item["written_by"] = written_by
        value = "" if item["value"] is None else json.dumps(item["value"], ensure_ascii=False, allow_nan=False)
        rows.append([*key, item["kind"], value, item["score"], item["label"], item["comment"], item["created_at"],
                     now, int(item["deleted"]), written_by])
    return rows


def list_feedback(
    store: Store,
    *,
    trace_id: str | None = None,
    span_id: str | None = None,
    name: str | None = None,
    author: str | None = None,
    kind: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Current feedback (tombstones left out), newest first, filtered by any of the arguments."""
    author = normalize_author(author) if author else author
    where, params = _filters(
        store, trace_id, {"SpanId": span_id, "Name": name, "Author": author, "Kind": kind}, limit, offset
    )
    rows = store.query(
        f"SELECT {', '.join(_FEEDBACK_COLUMNS)} FROM {FEEDBACK_TABLE} FINAL WHERE IsDeleted = 0 AND {where} "
        "ORDER BY UpdatedAt DESC, TraceId, SpanId, Name, Author LIMIT {limit:UInt32} OFFSET {offset:UInt32}",
        params,
    ).result_rows
    return [_feedback_row(row) for row in rows]


def list_flags(
    store: Store,
    *,
    trace_id: str | None = None,
    detector: str | None = None,
    category: str | None = None,
    severity: str | None = None,
    kind: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The miner's current flags (the latest run's row per trace, detector and span), newest first."""
    where, params = _filters(
        store, trace_id, {"Detector": detector, "Category": category, "Severity": severity, "Kind": kind}, limit,
        offset,
    )
    rows = store.query(
        "SELECT TraceId, SpanId, Detector, DetectorVersion, Category, Severity, Confidence, Evidence, RunId, "
        f"MinerVersion, CreatedAt, Kind, Muted FROM {FLAGS_TABLE} FINAL WHERE {where} "
        "ORDER BY CreatedAt DESC, Confidence DESC, TraceId, Detector, SpanId "
        "LIMIT {limit:UInt32} OFFSET {offset:UInt32}",
        params,
    ).result_rows
    keys = ("trace_id", "span_id", "detector", "detector_version", "category", "severity", "confidence",
            "evidence", "run_id", "miner_version", "created_at", "kind", "muted")  # fmt: skip
    return [{**dict(zip(keys, row, strict=True)), "created_at": _iso(row[-3]), "muted": bool(row[-1])} for row in rows]


# -- checks --------------------------------------------------------------------------------------


def _checked(index: int, item: Any) -> dict[str, Any]:
    """The item with every field present and of the right type, or a ConfigError naming the problem."""

    def fail(message: str) -> ConfigError:
        return ConfigError(f"item {index}: {message}")

    if not isinstance(item, Mapping):
        raise fail(f"a feedback item is a JSON object, not {type(item).__name__}")
    try:
        check_value(dict(item), what="the item")
    except ConfigError as exc:
        raise fail(str(exc)) from None
    unknown = sorted(set(item) - set(_FIELDS))
    if unknown:
        raise fail(f"unknown field(s) {', '.join(map(repr, unknown))}; the fields are {', '.join(_FIELDS)}")
    out: dict[str, Any] = {
        "span_id": "", "kind": None, "value": None, "score": None, "label": "", "comment": "", "deleted": False,
        **item,
    }  # fmt: skip
    for field in _REQUIRED:
        if not isinstance(out.get(field), str) or not out[field].strip():
            raise fail(f"{field} is required (a non-empty string)")
    for field in ("name", "author"):
        if len(out[field]) > _MAX_NAME:
            raise fail(f"{field} is longer than {_MAX_NAME} characters")
    out["author"] = normalize_author(out["author"])  # 'Alice' and 'alice ' are one author, one row
    for field in ("span_id", "label", "comment"):
        if not isinstance(out[field], str):
            raise fail(f"{field} must be a string")
    out["span_id"] = out["span_id"].strip().lower()
    if out["span_id"] and not _SPAN_ID.match(out["span_id"]):
        raise fail(f"span_id {out['span_id']!r} is not a span id (16 hex digits; '' for the whole trace)")
    if not isinstance(out["deleted"], bool):
        raise fail("deleted must be true or false")
    if out["deleted"]:
        return out  # a tombstone needs only its key
    if out["kind"] not in FEEDBACK_KINDS:
        raise fail(f"kind {out['kind']!r} is not one of {', '.join(FEEDBACK_KINDS)}")
    score = out["score"]
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, (int, float)) or not abs(score) <= sys.float_info.max
    ):
        raise fail(f"score must be a finite number (got {score!r})")
    if score is not None and out["kind"] != "outcome" and not 0 <= score <= 1:
        raise fail(f"score must be between 0 and 1 (got {score!r})")
    if out["value"] is not None:
        try:
            json.dumps(out["value"], allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise fail(f"value cannot be written as JSON: {exc}") from None
    needed = _KIND_NEEDS.get(out["kind"])
    if needed and out[needed] in (None, ""):
        raise fail(f"{out['kind']} feedback needs a {needed}")
    return out


def _check_ids_exist(store: Store, items: list[dict[str, Any]]) -> None:
    """Every item's trace is in the store, and so is its span (when it names one) in that trace."""
    traces = sorted({item["trace_id"] for item in items})
    found_traces = {
        row[0]
        for row in store.query(
            f"SELECT DISTINCT TraceId FROM {SPANS_TABLE} WHERE TraceId IN {{traces:Array(String)}}", {"traces": traces}
        ).result_rows
    }
    wanted = {(item["trace_id"], item["span_id"]) for item in items if item["span_id"]}
    found_spans: set[tuple[str, str]] = set()
    if wanted:
        found_spans = {
            (row[0], row[1]) for row in store.query(
                f"SELECT DISTINCT TraceId, SpanId FROM {SPANS_TABLE} "
                "WHERE TraceId IN {traces:Array(String)} AND SpanId IN {spans:Array(String)}",
                {"traces": traces, "spans": sorted({s for _, s in wanted})},
            ).result_rows
        }
    for index, item in enumerate(items):
        trace_id, span_id = item["trace_id"], item["span_id"]
        if trace_id not in found_traces:
            raise TraceNotFoundError(f"item {index}: no trace with id {trace_id} in {store.location}")
        if span_id and (trace_id, span_id) not in found_spans:
            raise SpanNotFoundError(f"item {index}: trace {trace_id} has no span {span_id}")


def _current_rows(store: Store, trace_ids: set[str]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    rows = store.query(
        f"SELECT TraceId, SpanId, Name, Author, Kind, CreatedAt FROM {FEEDBACK_TABLE} FINAL "
        "WHERE TraceId IN {traces:Array(String)} AND IsDeleted = 0",
        {"traces": sorted(trace_ids)},
    ).result_rows
    return {tuple(row[:4]): {"kind": row[4], "created_at": row[5]} for row in rows}


def _filters(
    store: Store, trace_id: str | None, equal: Mapping[str, str | None], limit: int, offset: int
) -> tuple[str, dict[str, Any]]:
    """A WHERE condition and its parameters: the trace (id or unique prefix), columns equal to the
    values given (None: any), and the page (``{limit}``/``{offset}``), built by the one filter builder."""
    where = Filter()
    where.page(limit, offset)
    where.trace(store, trace_id)
    for column, value in equal.items():
        where.equal(column, value)
    return where.sql(), where.params


# -- shapes --------------------------------------------------------------------------------------


def _describe(key: tuple[str, str, str, str]) -> str:
    trace_id, span_id, name, author = key
    where = f"span {span_id} of trace {trace_id}" if span_id else f"trace {trace_id}"
    return f"{name!r} by {author!r} on {where}"


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {
        **{field: item[field] for field in _FIELDS},
        "created_at": _iso(item["created_at"]),
        "updated_at": _iso(item["updated_at"]),
        "written_by": item["written_by"],
    }


def public_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A feedback row read with its value parsed, as the API shows it (times in ISO 8601)."""
    return {**row, "deleted": bool(row.get("deleted", False)), "created_at": _iso(row["created_at"]),
            "updated_at": _iso(row["updated_at"])}


def _feedback_row(row: Sequence[Any]) -> dict[str, Any]:
    trace_id, span_id, name, author, kind, value, score, label, comment, created, updated, deleted, by = row
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "name": name,
        "author": author,
        "kind": kind,
        "value": json.loads(value) if value else None,
        "score": score,
        "label": label,
        "comment": comment,
        "deleted": bool(deleted),
        "created_at": _iso(created),
        "updated_at": _iso(updated),
        "written_by": by,
    }


def _iso(moment: datetime) -> str:
    return iso(moment)
