"""Configuration versions at ingest: stamp spans that lack one, and store each version's content once.

Spans from tracemill's tracer carry ``tracemill.config.version`` already. Inference spans from
plain OTel GenAI instrumentation (or OpenInference) do not: :func:`stamp_request` computes it from
their attributes with the tracer's own function, so the same configuration gets the same version
whichever SDK recorded it. :func:`record_versions` then writes the content of every version not yet
in ``tracemill_config_versions`` (one row per version, not one per span).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tracemill.collector.store.schema import SPANS_TABLE
from tracemill.collector.store.schema_versions import CONFIG_VERSIONS_TABLE
from tracemill.tracer import semconv
from tracemill.tracer.versions.config_version import (
    CONFIG_VERSION,
    PARAM_KEYS,
    PROMPT_NAME,
    PROMPT_VERSION,
    attributes_content,
    version_of,
)

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from tracemill.collector.store.store import Store

__all__ = ["VersionRecorder", "content_of", "record_versions", "stamp_request", "stamp_request_safely"]

logger = logging.getLogger(__name__)

_CLIENT = 3  # SPAN_KIND_CLIENT: inference spans are client spans in the GenAI conventions
_WANTED = frozenset({
    semconv.REQUEST_MODEL, "llm.model_name", semconv.PROVIDER_NAME, "gen_ai.system", semconv.SYSTEM_INSTRUCTIONS,
    semconv.INPUT_MESSAGES, semconv.TOOL_DEFINITIONS, CONFIG_VERSION, semconv.LLM_DELEGATED, *PARAM_KEYS,
})
_COLUMNS = ("Version", "Provider", "Model", "Content", "PromptName", "PromptVersion", "FirstSeen", "RecordedAt")


def _plain(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_plain(v) for v in value.array_value.values]
    return getattr(value, which) if which else None


def stamp_request(request: ExportTraceServiceRequest) -> int:
    """Add ``tracemill.config.version`` to inference spans that lack it; the number of spans stamped."""
    stamped = 0
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if span.kind != _CLIENT:
                    continue
                found = {kv.key: _plain(kv.value) for kv in span.attributes if kv.key in _WANTED}
                if CONFIG_VERSION in found or found.get(semconv.LLM_DELEGATED):
                    continue
                content = attributes_content(found)
                if content is None:
                    continue
                added = span.attributes.add()
                added.key = CONFIG_VERSION
                added.value.string_value = version_of(content)
                stamped += 1
    return stamped


def stamp_request_safely(request: ExportTraceServiceRequest) -> int:
    """:func:`stamp_request` that logs instead of raising: a version is never worth refusing spans."""
    try:
        return stamp_request(request)
    except Exception:
        logger.exception("could not compute configuration versions for a request; its spans are kept as sent")
        return 0


def content_of(attributes: Mapping[str, str]) -> dict[str, Any] | None:
    """A version's content from a stored span's attribute map (values as the exporter stores them)."""
    return attributes_content(attributes)


_NEW_VERSIONS = f"""
SELECT v, min(Timestamp) AS first_seen, argMin(SpanAttributes, Timestamp) AS attributes
FROM (SELECT SpanAttributes['{CONFIG_VERSION}'] AS v, Timestamp, SpanAttributes FROM {SPANS_TABLE}
      WHERE v != '' AND {{where}})
WHERE v NOT IN (SELECT Version FROM {CONFIG_VERSIONS_TABLE})
GROUP BY v
"""


def record_versions(store: Store, *, since_s: float | None = None) -> int:
    """Store the content of every version seen in spans (after ``since_s``, Unix seconds) and not stored yet.

    The content comes from the first span with the version; a span recorded with content capture off
    gives the model and parameters only. Returns how many versions were written.
    """
    where, parameters = "1", {}
    if since_s is not None:
        where, parameters = "Timestamp >= fromUnixTimestamp64Nano({since:Int64})", {"since": int(since_s * 1e9)}
    rows = store.query(_NEW_VERSIONS.replace("{where}", where), parameters).result_rows
    now = datetime.now(timezone.utc)
    out = []
    for version, first_seen, attributes in rows:
        content = content_of(attributes) or {"provider": "", "model": "", "system": [], "tools": [], "params": {}}
        out.append((version, content["provider"], content["model"],
                    json.dumps(content, sort_keys=True, ensure_ascii=False, default=str),
                    attributes.get(PROMPT_NAME, ""), attributes.get(PROMPT_VERSION, ""), first_seen, now))
    if out:
        store.insert(CONFIG_VERSIONS_TABLE, out, _COLUMNS)
    return len(out)


class VersionRecorder:
    """Records new versions after inserts, at most every ``interval_s``, looking back ``window_s``."""

    def __init__(self, *, interval_s: float = 5.0, window_s: float = 3600.0) -> None:
        self.interval_s, self.window_s = interval_s, window_s
        self._next_at = 0.0
        self._lock = threading.Lock()

    def after_insert(self, store: Store) -> None:
        """Never raises: a failure is logged and retried on a later insert."""
        now = time.monotonic()
        with self._lock:
            if now < self._next_at:
                return
            self._next_at = now + self.interval_s
        try:
            record_versions(store, since_s=time.time() - self.window_s)
        except Exception as exc:
            logger.warning("could not record configuration versions: %s", exc)
