"""What feedback must say to be usable for training, checked against the spans it names.

:func:`tracemill.collector.feedback.feedback.record_feedback` runs these checks after the ids are known to
exist, so the HTTP API, the CLI, the Python façade and the review UI refuse the same things:

- a correction names an LLM span (one that recorded ``gen_ai.output.messages``); its value is
  ``{"output": text or null, "tool_calls": [{"id", "name", "arguments"}]}``; every tool call names
  a tool of the span's ``gen_ai.tool.definitions`` and carries arguments that are JSON and fit that
  tool's parameter schema;
- a preference names two LLM spans (``{"better": span, "worse": span}``, optionally
  ``"worse_trace"`` when the worse answer is in another trace) that saw the same input;
- an outcome is ``{"success": bool}`` or ``{"reward": number}`` on the whole trace;
- a review of a miner flag (``flag_review``) is ``confirmed`` or ``false_positive``;
- a decisive-step mark (``decisive``) names a span of the trace (see :mod:`.decisive`).

Items are normalized in place (tool-call arguments given as JSON text become JSON values; an
outcome's label and score follow its value), so readers see one shape.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tracemill.collector.feedback.decisive import DECISIVE, check_decisive
from tracemill.collector.feedback.json_schema import schema_errors
from tracemill.collector.feedback.strict_json import loads_strict
from tracemill.collector.store.schema import SPANS_TABLE
from tracemill.errors import ConfigError, NotFoundError, SpanNotFoundError

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["FLAG_REVIEW_LABELS", "check_feedback_content", "tool_index"]

FLAG_REVIEW_LABELS = ("confirmed", "false_positive")
"""The labels of a ``flag_review``: the reviewer agrees with the miner's flag, or not."""

_SPAN_ID = re.compile(r"^[0-9a-f]{16}$")
_INPUT, _OUTPUT = "gen_ai.input.messages", "gen_ai.output.messages"
_SYSTEM, _TOOLS = "gen_ai.system_instructions", "gen_ai.tool.definitions"


def tool_index(definitions: Any) -> dict[str, Any]:
    """Tool name → parameter schema, from recorded definitions in the flat GenAI shape
    ``{type, name, parameters}`` or the Chat Completions shape ``{type, function: {name, parameters}}``."""
    index: dict[str, Any] = {}
    for definition in definitions if isinstance(definitions, list) else ():
        if not isinstance(definition, Mapping):
            continue
        inner = definition.get("function")
        function: Mapping[str, Any] = inner if isinstance(inner, Mapping) else definition
        if isinstance(function.get("name"), str):
            index[function["name"]] = function.get("parameters")
    return index


def check_feedback_content(store: Store, items: list[dict[str, Any]]) -> None:
    """Check (and normalize) every live item's content by kind; raise naming the first bad item."""
    for index, item in enumerate(items):
        if item["deleted"]:
            continue
        try:
            _check_shape(store, item)
        except (ConfigError, NotFoundError) as exc:  # keep its class, add the index
            raise type(exc)(f"item {index}: {exc}") from None
    wanted = {
        (trace_id, span_id)
        for item in items
        if not item["deleted"] and item["kind"] in ("correction", "preference")
        for trace_id, span_id in _spans_named(item)
    }
    spans = _llm_spans(store, wanted)
    for index, item in enumerate(items):
        if item["deleted"]:
            continue
        try:
            if item["kind"] == "correction":
                _check_correction(item, spans)
            elif item["kind"] == "preference":
                _check_preference(item, spans)
        except (ConfigError, NotFoundError) as exc:  # keep its class, add the index
            raise type(exc)(f"item {index}: {exc}") from None


# -- shapes --------------------------------------------------------------------------------------


def _check_shape(store: Store, item: dict[str, Any]) -> None:
    kind, value = item["kind"], item["value"]
    if kind == "correction":
        if not item["span_id"]:
            raise ConfigError("a correction names the LLM span it corrects (span_id)")
        item["value"] = _correction_value(value)
    elif kind == "preference":
        item["value"] = _preference_value(store, item, value)
    elif kind == "outcome":
        _outcome(item, value)
    elif kind == DECISIVE:
        check_decisive(item)
    elif kind == "label" and item["name"] == "flag_review":
        if item["label"] not in FLAG_REVIEW_LABELS:
            raise ConfigError(f"a flag_review label is one of {', '.join(FLAG_REVIEW_LABELS)} (got {item['label']!r})")
        if not isinstance(value, Mapping) or not isinstance(value.get("detector"), str) or not value["detector"]:
            raise ConfigError('a flag_review value names the flag\'s detector: {"detector": "<detector name>"}')


def _correction_value(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not set(value) <= {"output", "tool_calls"}:
        raise ConfigError(
            'a correction value is {"output": "text or null", "tool_calls": [{"id", "name", "arguments"}]} '
            f"(got {json.dumps(value)[:200]})"
        )
    output, calls = value.get("output"), value.get("tool_calls") or []
    if output is not None and not isinstance(output, str):
        raise ConfigError(f"a correction's output is text or null (got {type(output).__name__})")
    if not isinstance(calls, list):
        raise ConfigError("a correction's tool_calls is a list of {id, name, arguments}")
    if not (output or "").strip() and not calls:
        raise ConfigError("a correction gives an output text, tool calls, or both (both are empty)")
    normalized = []
    for number, call in enumerate(calls):
        if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping):  # OpenAI's shape
            function = call["function"]
            call = {"id": call.get("id"), "name": function.get("name"), "arguments": function.get("arguments", {})}
        if not isinstance(call, Mapping) or not isinstance(call.get("name"), str) or not call["name"]:
            raise ConfigError(f"tool call {number} needs a tool name: {{\"name\": ..., \"arguments\": {{...}}}}")
        unknown = set(call) - {"id", "name", "arguments"}
        if unknown:
            raise ConfigError(f"tool call {number} has unknown field(s) {', '.join(sorted(unknown))}")
        arguments = call.get("arguments", {})
        if isinstance(arguments, str):
            arguments = loads_strict(arguments, what=f"tool call {number} ({call['name']}): the argument text")
        call_id = call.get("id") or f"call_{number}"
        if not isinstance(call_id, str):
            raise ConfigError(f"tool call {number} ({call['name']}): id must be a string")
        normalized.append({"id": call_id, "name": call["name"], "arguments": arguments})
    return {"output": output, "tool_calls": normalized}


def _preference_value(store: Store, item: dict[str, Any], value: Any) -> dict[str, Any]:
    from tracemill.collector.store.reads import resolve_trace_id

    if not isinstance(value, Mapping) or not set(value) <= {"better", "worse", "worse_trace"}:
        raise ConfigError('a preference value is {"better": span_id, "worse": span_id} (optionally "worse_trace")')
    better, worse = (str(value.get(key) or "").strip().lower() for key in ("better", "worse"))
    for key, span in (("better", better), ("worse", worse)):
        if not _SPAN_ID.match(span):
            raise ConfigError(f"a preference's {key} must be a span id (16 hex digits; got {value.get(key)!r})")
    if item["span_id"] and item["span_id"] != better:
        raise ConfigError(f"a preference is stored on its better span: span_id {item['span_id']} is not {better}")
    item["span_id"] = better
    out = {"better": better, "worse": worse}
    worse_trace = value.get("worse_trace")
    if worse_trace:
        resolved = resolve_trace_id(store, str(worse_trace))
        if resolved != item["trace_id"]:
            out["worse_trace"] = resolved
    if out.get("worse_trace", item["trace_id"]) == item["trace_id"] and better == worse:
        raise ConfigError(f"a preference compares two different spans (better and worse are both {better})")
    return out


def _outcome(item: dict[str, Any], value: Any) -> None:
    if item["span_id"]:
        raise ConfigError("an outcome is feedback on the whole trace: leave span_id empty")
    if isinstance(value, Mapping) and set(value) == {"success"} and isinstance(value["success"], bool):
        item["label"] = "success" if value["success"] else "failure"
        item["score"] = 1.0 if value["success"] else 0.0
        return
    reward = value.get("reward") if isinstance(value, Mapping) and set(value) == {"reward"} else None
    if isinstance(reward, (int, float)) and not isinstance(reward, bool) and math.isfinite(reward):
        item["label"], item["score"] = "", float(reward)
        return
    raise ConfigError(
        f'an outcome value is {{"success": true|false}} or {{"reward": number}} (got {json.dumps(value)})'
    )


def _spans_named(item: Mapping[str, Any]) -> list[tuple[str, str]]:
    if item["kind"] == "correction":
        return [(item["trace_id"], item["span_id"])]
    value = item["value"]
    return [(item["trace_id"], value["better"]), (value.get("worse_trace", item["trace_id"]), value["worse"])]


# -- checks against the spans --------------------------------------------------------------------


def _llm_spans(store: Store, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    if not wanted:
        return {}
    rows = store.query(
        f"SELECT TraceId, SpanId, SpanName, SpanAttributes['{_INPUT}'], SpanAttributes['{_OUTPUT}'], "
        f"SpanAttributes['{_SYSTEM}'], SpanAttributes['{_TOOLS}'] FROM {SPANS_TABLE} "
        "WHERE TraceId IN {traces:Array(String)} AND SpanId IN {spans:Array(String)}",
        {"traces": sorted({t for t, _ in wanted}), "spans": sorted({s for _, s in wanted})},
    ).result_rows
    return {
        (row[0], row[1]): {"name": row[2], "input": row[3], "output": row[4], "system": row[5], "tools": row[6]}
        for row in rows
    }


def _llm_span(spans: Mapping[tuple[str, str], dict[str, Any]], trace_id: str, span_id: str, what: str) -> dict:
    span = spans.get((trace_id, span_id))
    if span is None:
        raise SpanNotFoundError(f"trace {trace_id} has no span {span_id}")
    if not span["output"]:
        raise ConfigError(
            f"span {span_id} ({span['name']!r}) of trace {trace_id} is not an LLM span: it recorded no "
            f"gen_ai.output.messages, and {what} apply to model outputs"
        )
    return span


def _check_correction(item: dict[str, Any], spans: Mapping[tuple[str, str], dict[str, Any]]) -> None:
    span = _llm_span(spans, item["trace_id"], item["span_id"], "corrections")
    calls = item["value"]["tool_calls"]
    if not calls:
        return
    tools = tool_index(_json(span["tools"]))
    if not tools:
        raise ConfigError(
            f"the correction of span {item['span_id']} calls tools, but that span recorded no tool definitions "
            "(gen_ai.tool.definitions); correct it with an output text instead"
        )
    for number, call in enumerate(calls):
        if call["name"] not in tools:
            raise ConfigError(
                f"tool call {number} names the tool {call['name']!r}, which span {item['span_id']} did not offer "
                f"(its tools: {', '.join(sorted(tools))})"
            )
        errors = schema_errors(call["arguments"], tools[call["name"]])
        if errors:
            raise ConfigError(
                f"tool call {number} ({call['name']}): the arguments do not fit the tool's parameters: "
                + "; ".join(errors)
            )


def _check_preference(item: dict[str, Any], spans: Mapping[tuple[str, str], dict[str, Any]]) -> None:
    value = item["value"]
    worse_trace = value.get("worse_trace", item["trace_id"])
    better = _llm_span(spans, item["trace_id"], value["better"], "preferences")
    worse = _llm_span(spans, worse_trace, value["worse"], "preferences")
    if (_json(better["input"]), _json(better["system"])) != (_json(worse["input"]), _json(worse["system"])):
        raise ConfigError(
            f"spans {value['better']} and {value['worse']} answered different inputs (their input messages or "
            "system instructions differ); a preference compares two answers to the same input"
        )


def _json(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
