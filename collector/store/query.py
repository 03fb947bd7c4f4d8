"""One place that builds the WHERE clause and page of every store listing, and reads the filters users type.

The trace list, the span reads, the feedback and flag listings all filter through
:class:`Filter`, so a limit is checked once, an ``--attr`` means the same everywhere, and times are
written one way (:func:`iso`). Values always travel as query parameters, never inside the SQL.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tracemill.collector.store.schema import quote_literal
from tracemill.errors import ConfigError

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = [
    "ERROR_CONDITION",
    "MAX_PAGE",
    "Filter",
    "attribute",
    "check_page",
    "iso",
    "parse_attributes",
    "parse_since",
    "search_needles",
]

MAX_PAGE = 1000
"""Most rows one listing returns."""

ERROR_CONDITION = "StatusCode IN ('Error', 'STATUS_CODE_ERROR')"
"""A span failed: both status spellings (the current exporter's and the older ``STATUS_CODE_ERROR``)."""


def attribute(key: str, column: str = "SpanAttributes") -> str:
    """The SQL value of attribute ``key`` in the map ``column`` ('' when unset), as ``column[key]`` reads it.

    Looked up in the map's key array instead: with the exporter's ``LowCardinality`` keys, a subscript costs
    about seven times as much per span (eight lookups over 1M spans: 0.29 s against 0.11 s, 0.08 s of which is
    reading the map). The mining queries make dozens per span, one for each convention they read."""
    return f"{column}.values[indexOf({column}.keys, {quote_literal(key)})]"


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def check_page(limit: int, offset: int) -> None:
    """Refuse a page no listing serves; the message names the value."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ConfigError(f"limit must be between 1 and {MAX_PAGE} (got {limit!r})")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ConfigError(f"offset must be 0 or more (got {offset!r})")


class Filter:
    """AND-ed conditions with their parameters; each method adds one and returns the filter."""

    def __init__(self, prefix: str = "") -> None:
        """``prefix`` keeps parameter names apart when the SQL of two filters is combined."""
        self.conditions: list[str] = []
        self.params: dict[str, Any] = {}
        self._prefix = prefix
        self._count = 0

    def _name(self, stem: str) -> str:
        self._count += 1
        return f"{self._prefix}{stem}{self._count}"

    def add(self, condition: str, **params: Any) -> Filter:
        """A raw condition whose ``{name:Type}`` placeholders are given in ``params``."""
        self.conditions.append(condition)
        self.params.update(params)
        return self

    def equal(self, column: str, value: Any, type_: str = "String") -> Filter:
        """``column = value``; None adds nothing (any value)."""
        if value is None:
            return self
        name = self._name("eq")
        return self.add(f"{column} = {{{name}:{type_}}}", **{name: value})

    def trace(self, store: Store, trace_id: str | None) -> Filter:
        """The trace with this id or unique prefix (resolved in the store); None adds nothing."""
        if not trace_id:
            return self
        from tracemill.collector.store.trace_ids import resolve_trace_id

        return self.equal("TraceId", resolve_trace_id(store, trace_id))

    def since(self, moment: str | float | None, column: str = "Timestamp") -> Filter:
        if moment is None:
            return self
        name = self._name("since")
        return self.add(f"{column} >= fromUnixTimestamp64Nano({{{name}:Int64}})",
                        **{name: int(parse_since(moment) * 1e9)})

    def until(self, moment: str | float | None, column: str = "Timestamp") -> Filter:
        if moment is None:
            return self
        name = self._name("until")
        return self.add(f"{column} <= fromUnixTimestamp64Nano({{{name}:Int64}})",
                        **{name: int(parse_since(moment) * 1e9)})

    def errors(self, only: bool) -> Filter:
        return self.add(ERROR_CONDITION) if only else self

    def attributes(self, wanted: Mapping[str, str] | None) -> Filter:
        """A span attribute equal to each value, or, for a list-valued one, an element equal to it.

        The key must be present: an empty value matches an empty attribute, not a missing one (a Map
        lookup of a missing key gives ''). List values are stored as JSON arrays (``["stop"]``).
        """
        for key, value in sorted((wanted or {}).items()):
            k, v = self._name("k"), self._name("v")
            attr, want = f"SpanAttributes[{{{k}:String}}]", f"{{{v}:String}}"
            self.add(
                f"(mapContains(SpanAttributes, {{{k}:String}}) AND ({attr} = {want} OR (startsWith({attr}, '[') "
                f"AND arrayExists(x -> if(JSONType(x) = 'String', JSONExtractString(x), x) = {want}, "
                f"JSONExtractArrayRaw({attr})))))",
                **{k: key, v: value},
            )
        return self

    def search(self, text: str | None) -> Filter:
        """Case-insensitive text in a span name, attribute value (as stored, or JSON-escaped), status message,
        or a trace id prefix."""
        if not text:
            return self
        q, needles = self._name("q"), self._name("needles")
        return self.add(
            f"(positionCaseInsensitiveUTF8(SpanName, {{{q}:String}}) > 0"
            f" OR arrayExists(v -> multiSearchAnyCaseInsensitiveUTF8(v, {{{needles}:Array(String)}}),"
            " mapValues(SpanAttributes))"
            f" OR positionCaseInsensitiveUTF8(StatusMessage, {{{q}:String}}) > 0"
            f" OR startsWith(TraceId, lower({{{q}:String}})))",
            **{q: text, needles: search_needles(text)},
        )

    def sql(self) -> str:
        """The WHERE condition ('1' when nothing was added)."""
        return " AND ".join(self.conditions) or "1"

    def page(self, limit: int, offset: int) -> str:
        """``LIMIT … OFFSET …`` for a checked page, its values added to :attr:`params`."""
        check_page(limit, offset)
        self.params.update(limit=limit, offset=offset)
        return "LIMIT {limit:UInt32} OFFSET {offset:UInt32}"


def search_needles(text: str) -> list[str]:
    """``text`` and the forms a JSON writer with ``ensure_ascii`` stores it in (``—`` as ``\\u2014``).

    Attribute values holding JSON (messages, tool arguments) keep whatever escaping the client used.
    Escapes are compared case-insensitively, so the lower and upper forms cover ``\\u00e9`` and ``\\u00c9``.
    """
    forms = [text] + [json.dumps(form)[1:-1] for form in (text, text.lower(), text.upper())]
    return list(dict.fromkeys(forms))


def parse_attributes(items: Iterable[str] | None, *, option: str = "--attr") -> dict[str, str]:
    """``KEY=VALUE`` strings (CLI ``--attr``, API ``attr=``) as a mapping; the value may be empty."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} must look like KEY=VALUE (got {item!r})")
        out[key] = value
    return out


_LATEST_S = 253402300799.0  # 9999-12-31T23:59:59Z, the last second datetime (and DateTime64) can hold


def parse_since(value: str | float | int) -> float:
    """A point in time as Unix seconds, from a number, an ISO-8601 time, or a duration back from now ('90m', '2h')."""
    seconds = _parse_moment(value)
    if not 0 <= seconds <= _LATEST_S:
        raise ConfigError(f"time {value!r} is outside 1970-01-01 .. 9999-12-31; give a duration like 7d, an "
                          "ISO-8601 time or Unix seconds in that range")
    return seconds


def _parse_moment(value: str | float | int) -> float:
    if isinstance(value, bool) or (not isinstance(value, (int, float, str))):
        raise ConfigError(f"time {value!r} is not a time; give a duration like 7d, an ISO-8601 time or Unix seconds")
    if isinstance(value, (int, float)):
        return float(value) if abs(value) <= 1e300 else float("inf")
    text = str(value).strip()
    match = _DURATION.match(text.lower())
    if match:
        return time.time() - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"time {value!r} is not understood; use a duration back from now like 30m, 2h, 7d, "
            "an ISO-8601 time like 2025-01-31T12:00:00Z, or Unix seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def iso(moment: int | datetime) -> str:
    """A UTC ISO-8601 time ending in ``Z``, from Unix nanoseconds (nanosecond digits) or a datetime."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:  # DateTime64(6, 'UTC') may come back naive
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    seconds, rest = divmod(int(moment), 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{rest:09d}Z"
