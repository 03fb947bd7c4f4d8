"""Configuration versions at ingest: stamp spans that lack one, and store each version's content once.

Spans from tracemill's tracer carry ``tracemill.config.version`` already. Inference spans from
plain OTel GenAI instrumentation (or OpenInference) do not: :func:`stamp_request` computes it from
their attributes with the tracer's own function, so the same configuration gets the same version
whichever SDK recorded it. :func:`record_versions` then writes the content of every version not yet
in ``tracemill_config_versions`` (one row per version, not one per span).
"""

from __future__ import annotations

import functools
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
    """Add ``tracemill.config.version`` to inference spans that lack it; the number of spans stamped.

    Every version met on the way, stamped or carried, is noted for :class:`VersionRecorder`.
    """
    stamped = 0
    seen: set[str] = set()
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if span.kind != _CLIENT:
                    continue
                wanted = [kv for kv in span.attributes if kv.key in _WANTED]
                carried = next((kv.value.string_value for kv in wanted if kv.key == CONFIG_VERSION), None)
                if carried is not None:
                    seen.add(carried)
                    continue
                version = _version_of(wanted)
                if version is None:
                    continue
                added = span.attributes.add()
                added.key = CONFIG_VERSION
                added.value.string_value = version
                seen.add(version)
                stamped += 1
    SIGHTINGS.note(seen)
    return stamped


def _version_of(wanted: list[Any]) -> str | None:
    """The version of an inference span's configuration attributes (OTLP key-values); None when the
    span names no model or delegates its decision.

    Spans of one configuration repeat the same values, so versions are cached by their encoded
    values. The input messages only count for their system or developer messages: when their text
    names neither role they are left out of the key, so a conversation that grows does not miss
    the cache.
    """
    key = tuple(
        (kv.key, kv.value.SerializeToString()) for kv in wanted
        if kv.key != semconv.INPUT_MESSAGES or _may_name_a_system_role(kv.value)
    )
    return _cached_version(key)


def _may_name_a_system_role(messages: Any) -> bool:
    if messages.WhichOneof("value") != "string_value":
        return True
    text = messages.string_value
    return '"system"' in text or '"developer"' in text


@functools.lru_cache(maxsize=1024)
def _cached_version(key: tuple[tuple[str, bytes], ...]) -> str | None:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    found = {name: _plain(AnyValue.FromString(value)) for name, value in key}
    if found.get(semconv.LLM_DELEGATED):
        return None
    content = attributes_content(found)
    return None if content is None else version_of(content)


class _Sightings:
    """Versions the receiver met since the recorder last looked, so it queries only for new ones.

    Bounded: past ``limit`` versions (a client sending a new one on every span) the next look is a
    full one instead.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._versions: set[str] = set()
        self._overflowed = False
        self._lock = threading.Lock()

    def note(self, versions: set[str]) -> None:
        if not versions:
            return
        with self._lock:
            if len(self._versions) + len(versions) > self._limit:
                self._versions.clear()
                self._overflowed = True
            else:
                self._versions |= versions

    def take(self) -> tuple[set[str], bool]:
        """The versions noted since the last take, and whether some were dropped (then look at everything)."""
        with self._lock:
            versions, overflowed = self._versions, self._overflowed
            self._versions, self._overflowed = set(), False
        return versions, overflowed


SIGHTINGS = _Sightings()
"""Versions seen by :func:`stamp_request` in this process, for the recorders of the same process."""


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


# mapContains first: it reads only the attribute keys, so spans without a version cost little.
_NEW_VERSIONS = f"""
SELECT v, min(Timestamp) AS first_seen, argMin(SpanAttributes, Timestamp) AS attributes
FROM (SELECT SpanAttributes['{CONFIG_VERSION}'] AS v, Timestamp, SpanAttributes FROM {SPANS_TABLE}
      WHERE mapContains(SpanAttributes, '{CONFIG_VERSION}') AND v != '' AND {{where}})
WHERE v NOT IN (SELECT Version FROM {CONFIG_VERSIONS_TABLE})
GROUP BY v
"""


def record_versions(store: Store, *, since_s: float | None = None, versions: set[str] | None = None) -> int:
    """Store the content of every version seen in spans (after ``since_s``, Unix seconds) and not stored yet.

    ``versions`` narrows the look to those versions. The content comes from the first span with the
    version; a span recorded with content capture off gives the model and parameters only. Returns
    how many versions were written.
    """
    conditions: list[str] = ["1"]
    parameters: dict[str, Any] = {}
    if since_s is not None:
        conditions.append("Timestamp >= fromUnixTimestamp64Nano({since:Int64})")
        parameters["since"] = int(since_s * 1e9)
    if versions is not None:
        conditions.append("v IN {versions:Array(String)}")
        parameters["versions"] = sorted(versions)
    rows = store.query(_NEW_VERSIONS.replace("{where}", " AND ".join(conditions)), parameters).result_rows
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
    """Records new versions after inserts, at most every ``interval_s``, looking back ``window_s``.

    Looking means reading the attributes of every span in the window, so after a first full look
    the recorder looks again only for versions the receiver saw and the store does not hold yet
    (:data:`SIGHTINGS`), and in full every ``full_interval_s`` for spans that reached the store
    some other way (an inference span that is not a client span, another process's receiver).
    """

    def __init__(self, *, interval_s: float = 5.0, window_s: float = 3600.0, full_interval_s: float = 600.0) -> None:
        self.interval_s, self.window_s, self.full_interval_s = interval_s, window_s, full_interval_s
        self._next_at = 0.0
        self._full_at = 0.0
        self._known: set[str] = set()
        self._pending: dict[str, float] = {}  # version -> when first sighted (monotonic)
        self._lock = threading.Lock()

    def after_insert(self, store: Store) -> None:
        """Never raises: a failure is logged and retried on a later insert."""
        now = time.monotonic()
        with self._lock:
            if now < self._next_at:
                return
            self._next_at = now + self.interval_s
            sighted, overflowed = SIGHTINGS.take()
            for version in sighted - self._known:
                self._pending.setdefault(version, now)
            # One sighted but never stored (its spans refused, or older than the window) is left
            # to the next full look.
            self._pending = {v: at for v, at in self._pending.items() if now - at < self.full_interval_s}
            full = overflowed or now >= self._full_at
            if not full and not self._pending:
                return
            wanted = None if full else set(self._pending)
        try:
            record_versions(store, since_s=time.time() - self.window_s, versions=wanted)
            stored = {row[0] for row in store.query(f"SELECT Version FROM {CONFIG_VERSIONS_TABLE}").result_rows}
        except Exception as exc:
            logger.warning("could not record configuration versions: %s", exc)
            return
        with self._lock:
            self._known = stored
            self._pending = {v: at for v, at in self._pending.items() if v not in stored}
            if full:
                self._full_at = now + self.full_interval_s
