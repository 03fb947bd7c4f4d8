"""Which traces a run mines, and their features as columns (one row per trace).

The features come from :func:`tracemill.miner.sql.trace_features_sql`: one query, grouped by trace inside
ClickHouse, whose rows :func:`tracemill.miner.feature_cache.load_features` keeps and reads back joined with the
traces' feedback. The only other read is the distinct tool definitions (a handful of JSON schemas, turned into
a SQL check by :func:`tool_schema_check` so invalid tool arguments are found in the same query).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tracemill.collector.store.schema import FEEDBACK_TABLE, SPANS_TABLE, TRACE_SCORES_TABLE
from tracemill.miner.sql import _q

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["MAX_DEFINITIONS", "NEW_OR_CHANGED", "Frame", "any_trace", "anything_new", "candidate_condition",
           "tool_schema_check"]

MAX_DEFINITIONS = 500
"""At most this many distinct tool definitions are turned into the invalid-arguments check."""
_JSON_TYPES = {
    "string": ("String",), "integer": ("Int64", "UInt64"), "number": ("Int64", "UInt64", "Double"),
    "boolean": ("Bool",), "array": ("Array",), "object": ("Object",), "null": ("Null",),
}  # fmt: skip


@dataclass
class Frame:
    """Feature columns of the traces of one run: ``frame["tool_errors"][i]`` is trace ``i``'s value."""

    columns: dict[str, list[Any]]
    where: str = "1"
    """The condition on ``otel_traces`` that selected these traces, for reads of more of their spans."""
    params: dict[str, Any] = field(default_factory=dict)
    """The parameters of ``where``."""
    cache: Any = None
    """The :class:`~tracemill.miner.feature_cache.FeatureCache` the rows were read from (more of the traces'
    features, such as their conversations, are kept there)."""
    conversations: Future[Any] | None = None
    """The traces' conversations being read in the background, when the run expects to train the supervised
    scorer (:meth:`~tracemill.miner.feature_cache.FeatureCache.conversations_in_background`)."""
    keeping: Future[Any] | None = None
    """The traces' conversations being computed and kept in the background for a later run, when this one does
    not read them (its result is None)."""
    _groups: list[str] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.columns.get("trace_id", ()))

    def __getitem__(self, name: str) -> list[Any]:
        return self.columns[name]

    def row(self, index: int) -> dict[str, Any]:
        return {name: values[index] for name, values in self.columns.items()}

    def peer_group(self, index: int) -> str:
        """Runs of the same task, else of the same agent (root span name, agent, service), are peers."""
        return self.peer_groups()[index]

    def steps(self) -> list[int]:
        """Each trace's steps: its LLM and tool calls (the cost peers are compared on)."""
        return [llm + tool for llm, tool in zip(self.columns["llm_calls"], self.columns["tool_calls"], strict=True)]

    def peer_groups(self) -> list[str]:
        """:meth:`peer_group` of every trace."""
        if self._groups is None:
            c = self.columns
            self._groups = [
                "task:" + task if task else f"agent:{root}|{agent}|{service}"
                for task, root, agent, service in zip(c["task_id"], c["root_name"], c["agent_name"], c["service"],
                                                      strict=True)
            ]
        return self._groups


def candidate_condition(store: Store, *, since_s: float | None, remine: bool) -> tuple[str, dict[str, Any], bool]:
    """The WHERE condition on ``otel_traces`` selecting the traces this run mines.

    Without ``since``: traces with no score yet (every mined trace gets one), traces whose feedback
    changed after they were mined, and traces with outcome feedback (the scorer trains on them).
    With ``since``: every trace with a span at or after it, mined before or not. The third value says
    whether nothing was mined before (so no earlier flags can need replacing).
    """
    params: dict[str, Any] = {}
    mined = store.query(f"SELECT count(), max(CreatedAt) FROM {TRACE_SCORES_TABLE}").result_rows[0]
    fresh = not mined[0]
    if since_s is not None:
        params["since_ns"] = int(since_s * 1e9)
        return (
            f"TraceId IN (SELECT DISTINCT TraceId FROM {SPANS_TABLE} "
            "WHERE Timestamp >= fromUnixTimestamp64Nano({since_ns:Int64}))",
            params,
            fresh,
        )
    if remine or fresh:
        return "1", params, fresh
    params["mined_at"] = mined[1]
    return (
        f"({NEW_OR_CHANGED} "
        f"OR TraceId IN (SELECT TraceId FROM {FEEDBACK_TABLE} FINAL WHERE Kind = 'outcome' AND IsDeleted = 0))",
        params,
        fresh,
    )


NEW_OR_CHANGED = (
    f"(TraceId NOT IN (SELECT TraceId FROM {TRACE_SCORES_TABLE}) "
    # Without FINAL, so a tombstone (withdrawn feedback) counts as a change too.
    f"OR TraceId IN (SELECT TraceId FROM {FEEDBACK_TABLE} WHERE UpdatedAt > {{mined_at:DateTime64(6)}}))"
)
"""Traces never mined, and traces whose feedback changed after ``mined_at`` (the latest stored score)."""


def anything_new(store: Store, params: dict[str, Any]) -> bool:
    """Whether an incremental run (``params`` from :func:`candidate_condition`) has a trace that is new or whose
    feedback changed; without one, it would only read the labelled traces again to train the same model."""
    return any_trace(store, NEW_OR_CHANGED, params)


def any_trace(store: Store, where: str, params: dict[str, Any]) -> bool:
    """Whether some trace's spans match ``where`` (the scan stops at the first)."""
    return bool(store.query(
        f"SELECT count() > 0 FROM (SELECT TraceId FROM {SPANS_TABLE} WHERE TraceId != '' AND {where} LIMIT 1)",
        params,
    ).result_rows[0][0])


def tool_schema_check(definitions: Sequence[str]) -> str:
    """A SQL condition on ``tool`` and ``args`` that is true when the arguments are not JSON, or break
    every recorded definition of that tool (a required key missing, a value of the wrong type, a
    key the schema does not allow)."""
    schemas: dict[str, list[dict[str, Any]]] = {}
    for raw in definitions:
        try:
            parsed = json.loads(raw)
        except ValueError:
            continue
        for item in parsed if isinstance(parsed, list) else [parsed]:
            if not isinstance(item, dict):
                continue
            inner = item.get("function")
            function: dict[str, Any] = inner if isinstance(inner, dict) else item
            name, parameters = function.get("name"), function.get("parameters") or function.get("input_schema")
            if not isinstance(name, str) or not isinstance(parameters, dict):
                continue
            if parameters.get("type", "object") == "object" and parameters not in schemas.setdefault(name, []):
                schemas[name].append(parameters)
    not_json = r"(match(args, '^\s*[\[{]') AND NOT isValidJSON(args))"
    if not schemas:
        return not_json
    branches = []
    for name, options in sorted(schemas.items()):
        fits = " OR ".join(_fits(schema) for schema in options)
        branches.append(f"tool = {_q(name)}, NOT ({fits})")
    return f"{not_json} OR multiIf({', '.join(branches)}, 0)"


def _fits(schema: dict[str, Any]) -> str:
    conditions = ["isValidJSON(args)", "JSONType(args) = 'Object'"]
    found = schema.get("properties")
    properties: dict[str, Any] = found if isinstance(found, dict) else {}
    required = [k for k in schema.get("required") or [] if isinstance(k, str)]
    if required:
        conditions.append(f"hasAll(JSONExtractKeys(args), [{', '.join(map(_q, required))}])")
    if schema.get("additionalProperties") is False:
        allowed = ", ".join(map(_q, properties)) or "''"
        conditions.append(f"hasAll([{allowed}], JSONExtractKeys(args))")
    for key, spec in properties.items():
        kinds = spec.get("type") if isinstance(spec, dict) else None
        kinds = [kinds] if isinstance(kinds, str) else kinds if isinstance(kinds, list) else []
        types = sorted({t for kind in kinds for t in _JSON_TYPES.get(kind, ())})
        if types:
            allowed_types = ", ".join(map(_q, types))
            conditions.append(f"(NOT JSONHas(args, {_q(key)}) OR JSONType(args, {_q(key)}) IN ({allowed_types}))")
    return "(" + " AND ".join(conditions) + ")"
