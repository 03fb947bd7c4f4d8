"""An OTLP request holding one agent run: a root span, an LLM span that offered tools, and a tool span.

The tool's parameters use what hand-written validators miss: a nested object, an enum, a ``$ref`` into
``$defs``, a format and a combinator, so the server's schema checks are tested against a real definition.
"""

from __future__ import annotations

import json
import time
from typing import Any

BOOK_HOTEL = {
    "type": "function",
    "function": {
        "name": "book_hotel",
        "description": "Book a hotel room.",
        "parameters": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "required": ["guest", "stay"],
            "additionalProperties": False,
            "$defs": {
                "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
            },
            "properties": {
                "guest": {
                    "type": "object",
                    "required": ["name", "tier"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "tier": {"enum": ["standard", "gold", "platinum"]},
                    },
                },
                "stay": {
                    "type": "object",
                    "required": ["check_in", "nights"],
                    "properties": {
                        "check_in": {"$ref": "#/$defs/date"},
                        "nights": {"type": "integer", "minimum": 1, "maximum": 30},
                    },
                },
                "contact": {"oneOf": [{"type": "string"}, {"type": "null"}]},
            },
        },
    },
}

GOOD_ARGUMENTS = {"guest": {"name": "Ada", "tier": "gold"}, "stay": {"check_in": "2026-03-01", "nights": 2}}


def _attribute(key: str, value: Any) -> Any:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def agent_run(seed: int, *, llm: bool = True, root_name: str = "invoke_agent travel") -> tuple[Any, dict[str, str]]:
    """The request and the ids of its trace and spans (``trace``, ``root``, ``llm``, ``tool``)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(_attribute("service.name", "travel-desk"))
    scope_spans = resource_spans.scope_spans.add()
    trace_id = (0xA0 + seed).to_bytes(8, "big") + seed.to_bytes(8, "big")
    ids = {name: (seed * 100 + number).to_bytes(8, "big") for number, name in enumerate(("root", "llm", "tool"), 1)}
    now = time.time_ns()
    call = {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1", "name": "book_hotel",
                                            "arguments": GOOD_ARGUMENTS}]}
    spans = [("root", root_name, None, [_attribute("gen_ai.operation.name", "invoke_agent")])]
    if llm:
        spans.append(("llm", "chat tiny", ids["root"], [
            _attribute("gen_ai.operation.name", "chat"),
            _attribute("gen_ai.input.messages", json.dumps([{"role": "user", "parts": [
                {"type": "text", "content": "Book me two nights from March 1st"}]}])),
            _attribute("gen_ai.output.messages", json.dumps([call])),
            _attribute("gen_ai.tool.definitions", json.dumps([BOOK_HOTEL])),
        ]))
    spans.append(("tool", "execute_tool book_hotel", ids["root"], [
        _attribute("gen_ai.operation.name", "execute_tool"), _attribute("gen_ai.tool.name", "book_hotel")]))
    for offset, (key, name, parent, attributes) in enumerate(spans):
        span = scope_spans.spans.add()
        span.trace_id = trace_id
        span.span_id = ids[key]
        if parent:
            span.parent_span_id = parent
        span.name = name
        span.kind = 1
        span.start_time_unix_nano = now + offset * 1000
        span.end_time_unix_nano = now + offset * 1000 + 500
        span.attributes.extend(attributes)
    return request, {"trace": trace_id.hex(), **{key: value.hex() for key, value in ids.items()}}
