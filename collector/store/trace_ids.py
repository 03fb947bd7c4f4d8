"""Trace ids as users type them: a full id, or a unique prefix of at least 6 hex digits, like short git hashes."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tracemill.collector.store.schema import SPANS_TABLE
from tracemill.errors import ConfigError, TraceNotFoundError

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["resolve_trace_id"]

_HEX = re.compile(r"^[0-9a-f]+$")


def resolve_trace_id(store: Store, trace_id: str) -> str:
    """A full trace id from a full id or a unique prefix (at least 6 hex digits), like short git hashes."""
    wanted = trace_id.strip().lower()
    if not wanted or not _HEX.match(wanted) or len(wanted) > 32:
        raise ConfigError(f"trace id {trace_id!r} is not a hex trace id (up to 32 hex digits)")
    if len(wanted) == 32:
        return wanted
    if len(wanted) < 6:
        raise ConfigError(f"trace id prefix {trace_id!r} is too short; give at least 6 hex digits")
    found = store.query(
        f"SELECT DISTINCT TraceId FROM {SPANS_TABLE} WHERE startsWith(TraceId, {{p:String}}) LIMIT 5",
        {"p": wanted},
    ).result_rows
    if not found:
        raise TraceNotFoundError(f"no trace id starts with {wanted!r}")
    if len(found) > 1:
        shown = ", ".join(row[0] for row in found)
        raise TraceNotFoundError(f"trace id prefix {wanted!r} is ambiguous: {shown}; give more digits")
    return str(found[0][0])
