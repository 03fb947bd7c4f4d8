"""A trace as the review page shows it: spans in tree order with their waterfall bars and readable content.

Attribute values are strings in the store; the ones that hold JSON (messages, tool definitions,
tool arguments and results) are parsed and pretty-printed, messages become role + parts, and what
is long is marked for folding. Everything here is plain data: the template escapes all of it.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["FOLD_CHARS", "LLM_OPERATIONS", "outline_rows", "pretty", "span_view"]

LLM_OPERATIONS = {"chat", "text_completion", "generate_content"}
FOLD_CHARS = 400
"""Content longer than this (or over :data:`FOLD_LINES` lines) is folded behind a <details> summary."""
FOLD_LINES = 8
_CONTENT_KEYS = (
    ("gen_ai.system_instructions", "system instructions"),
    ("gen_ai.input.messages", "input messages"),
    ("gen_ai.output.messages", "output messages"),
    ("gen_ai.tool.call.arguments", "tool call arguments"),
    ("gen_ai.tool.call.result", "tool call result"),
    ("tracemill.input", "input"),
    ("tracemill.output", "output"),
    ("gen_ai.tool.definitions", "tool definitions"),
)
_CONTENT_NAMES = {key for key, _ in _CONTENT_KEYS}
_MESSAGE_KEYS = {"gen_ai.input.messages", "gen_ai.output.messages"}
_AGENT_OPERATIONS = {"invoke_agent", "invoke_workflow", "create_agent"}


def pretty(raw: Any) -> str:
    """JSON (or a string holding JSON) pretty-printed; any other string as it is."""
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError:
            return raw
        if isinstance(value, str):
            return value
    else:
        value = raw
    return json.dumps(value, indent=2, ensure_ascii=False)


def block(title: str, text: str, *, folded: bool = False) -> dict[str, Any]:
    """A titled piece of content, folded when long (or when ``folded``)."""
    lines = text.count("\n") + 1
    folded = folded or len(text) > FOLD_CHARS or lines > FOLD_LINES
    first = text.strip().splitlines()[0] if text.strip() else ""
    return {"title": title, "text": text, "folded": folded, "preview": first[:120],
            "size": f"{len(text):,} chars, {lines} lines"}


def _loads(raw: str | None) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def messages(raw: str | None) -> list[dict[str, Any]] | None:
    """GenAI messages as ``[{role, parts: [{kind, title, text}]}]``, or None when the value is not messages."""
    value = _loads(raw)
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        return None
    out = []
    for message in value:
        parts = []
        for part in message.get("parts") or []:
            if not isinstance(part, dict):
                parts.append(block("part", pretty(part)))
                continue
            kind = part.get("type", "")
            if kind == "text":
                parts.append({**block("text", str(part.get("content", ""))), "kind": "text"})
            elif kind == "tool_call":
                args = pretty(part.get("arguments"))
                parts.append({**block(f"tool call {part.get('name', '')} ({part.get('id', '')})", args),
                              "kind": "tool_call"})
            elif kind == "tool_call_response":
                parts.append({**block(f"tool result ({part.get('id', '')})", pretty(part.get("response"))),
                              "kind": "tool_result"})
            else:
                parts.append({**block(kind or "part", pretty(part)), "kind": "other"})
        if "parts" not in message and "content" in message:
            parts.append({**block("text", pretty(message["content"])), "kind": "text"})
        out.append({"role": str(message.get("role", "")), "parts": parts,
                    "finish_reason": str(message.get("finish_reason", "") or "")})
    return out


def llm_output(attributes: dict[str, str]) -> dict[str, Any]:
    """The answer of an LLM span as the editor starts from it: text, tool calls, the tools it could call."""
    text_parts: list[str] = []
    calls: list[dict[str, Any]] = []
    for message in _loads(attributes.get("gen_ai.output.messages")) or []:
        if not isinstance(message, dict):
            continue
        for part in message.get("parts") or []:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text":
                text_parts.append(str(part.get("content", "")))
            elif part.get("type") == "tool_call":
                arguments = part.get("arguments")
                if isinstance(arguments, str):
                    arguments = _loads(arguments) if _loads(arguments) is not None else arguments
                calls.append({"id": str(part.get("id", "")), "name": str(part.get("name", "")),
                              "arguments": arguments if arguments is not None else {}})
    tools = []
    for tool in _loads(attributes.get("gen_ai.tool.definitions")) or []:
        if not isinstance(tool, dict):
            continue
        nested = tool.get("function")
        function: dict[str, Any] = nested if isinstance(nested, dict) else tool
        name = function.get("name")
        if isinstance(name, str) and name:
            tools.append({"name": name, "description": str(function.get("description", "") or ""),
                          "parameters": function.get("parameters") or function.get("input_schema") or {}})
    return {"text": "\n".join(text_parts), "tool_calls": calls, "tools": tools}


def span_view(span: dict[str, Any]) -> dict[str, Any]:
    """The content of one span (as :func:`tracemill.ui.trace_data.span_details` reads it), ready to show."""
    attributes = span["attributes"]
    is_llm = attributes.get("gen_ai.operation.name", "") in LLM_OPERATIONS
    content = []
    conversation = {}
    for key, title in _CONTENT_KEYS:
        if key not in attributes:
            continue
        parsed = messages(attributes[key]) if key in _MESSAGE_KEYS else None
        if parsed is not None:
            conversation[key] = {"title": title, "messages": parsed}
        else:
            content.append(block(title, pretty(attributes[key])))
    rest = {k: v for k, v in attributes.items() if k not in _CONTENT_NAMES}
    return {
        "span_id": span["span_id"],
        "parent_span_id": span["parent_span_id"],
        "start": span["start"],
        "status_code": span["status_code"],
        "status_message": span["status_message"],
        "is_llm": is_llm,
        "input_messages": conversation.get("gen_ai.input.messages"),
        "output_messages": conversation.get("gen_ai.output.messages"),
        "content": content,
        "attributes": block("attributes", json.dumps(rest, indent=2, ensure_ascii=False, sort_keys=True)),
        "resource": block("resource", json.dumps(span["resource_attributes"], indent=2, ensure_ascii=False,
                                                 sort_keys=True), folded=True),
        "events": [block(f"event {e['name']} at {e['time']}", json.dumps(e["attributes"], indent=2,
                                                                         ensure_ascii=False))
                   for e in span["events"]],
        "links": [f"{link['trace_id']}/{link['span_id']}" for link in span["links"]],
        "llm": llm_output(attributes) if is_llm else None,
    }


def outline_rows(outline: dict[str, Any]) -> list[dict[str, Any]]:
    """The outline's spans in tree order (children by start), each with its depth, kind and waterfall bar.

    Spans whose parent is missing become roots, so a partly received trace still shows all it has.
    LLM spans that saw the same input (regenerations, samples) list each other as ``siblings``.
    """
    spans = outline["spans"]
    start = min(s["start_ns"] for s in spans)
    end = max(s["start_ns"] + s["duration_ns"] for s in spans)
    total = max(1, end - start)
    by_id = {s["span_id"]: s for s in spans}
    children: dict[str, list[dict[str, Any]]] = {}
    roots = []
    for span in spans:  # already in start order
        parent = span["parent_span_id"]
        if parent and parent in by_id and parent != span["span_id"]:
            children.setdefault(parent, []).append(span)
        else:
            roots.append(span)
    same_input: dict[int, list[str]] = {}
    rows: list[dict[str, Any]] = []
    stack = [(root, 0) for root in reversed(roots)]
    while stack:  # iterative: a chain of thousands of spans must not hit the recursion limit
        span, depth = stack.pop()
        operation = span["operation"]
        is_llm = operation in LLM_OPERATIONS
        offset = span["start_ns"] - start
        kind = ("llm" if is_llm else "tool" if operation == "execute_tool"
                else "agent" if operation in _AGENT_OPERATIONS else "other")
        rows.append({
            **span, "depth": depth, "indent": min(depth, 24), "kind": kind, "is_llm": is_llm,
            "start_ms": round(offset / 1e6, 3), "duration_ms": round(span["duration_ns"] / 1e6, 3),
            "bar_x": round(1000 * offset / total, 1), "bar_w": max(2.0, round(1000 * span["duration_ns"] / total, 1)),
            "siblings": [],
        })  # fmt: skip
        if is_llm and span["input_hash"]:
            same_input.setdefault(span["input_hash"], []).append(span["span_id"])
        stack.extend((child, depth + 1) for child in reversed(children.get(span["span_id"], [])))
    row_of = {row["span_id"]: row for row in rows}
    for group in same_input.values():
        for span_id in group:
            row_of[span_id]["siblings"] = [s for s in group if s != span_id]
    return rows
