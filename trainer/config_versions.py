"""Which configuration versions a dataset's rows come from, for its manifest.

A row built from one span (a corrected LLM decision) comes from that span's
``tracemill.config.version``; a row built from a whole run (SFT, outcome contrasts) from every
decision version in its trace. The manifest counts rows per version, so a model trained on the
dataset can be traced back to the prompts, tools and models that produced its data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tracemill.collector.store.schema import SPANS_TABLE
from tracemill.tracer.versions.config_version import CONFIG_VERSION

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store
    from tracemill.trainer.rows import Row

__all__ = ["row_versions", "version_counts"]

_SQL = f"""
SELECT TraceId, SpanId, SpanAttributes['{CONFIG_VERSION}'] AS v FROM {SPANS_TABLE}
WHERE TraceId IN {{traces:Array(String)}} AND v != ''
"""


def row_versions(store: Store, rows: Sequence[Row]) -> dict[tuple[str, str], tuple[str, ...]]:
    """(trace id, span id) of each row → the configuration versions it comes from."""
    traces = sorted({row.trace_id for row in rows if row.trace_id})
    by_span: dict[tuple[str, str], str] = {}
    by_trace: dict[str, set[str]] = {}
    for start in range(0, len(traces), 5000):
        for trace_id, span_id, version in store.query(_SQL, {"traces": traces[start:start + 5000]}).result_rows:
            by_span[(trace_id, span_id)] = version
            by_trace.setdefault(trace_id, set()).add(version)
    out = {}
    for row in rows:
        own = by_span.get((row.trace_id, row.span_id))
        out[(row.trace_id, row.span_id)] = (own,) if own else tuple(sorted(by_trace.get(row.trace_id, ())))
    return out


def version_counts(rows: Sequence[Row], versions: dict[tuple[str, str], tuple[str, ...]]) -> dict[str, int]:
    """Rows per configuration version (a run-level row counts for each of its versions)."""
    counts: Counter[str] = Counter()
    for row in rows:
        counts.update(versions.get((row.trace_id, row.span_id), ()))
    return dict(sorted(counts.items()))
