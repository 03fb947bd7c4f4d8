"""GenAI structured messages (role + parts) back to OpenAI-style chat messages.

OpenInference viewers (Phoenix) show an LLM span's ``input.value``/``output.value`` as the
provider's request and response, which OpenInference instrumentations record in OpenAI's shape;
the GenAI ``parts`` shape reads there as opaque JSON. This is the inverse of
:func:`tracemill.tracer.messages.to_genai_message` for the part types tracemill records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["to_openai_messages"]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _tool_call(part: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": part.get("id"), "type": "function",
            "function": {"name": part.get("name"), "arguments": _text(part.get("arguments"))}}


def _message(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One GenAI message as OpenAI messages (a tool message per tool response it holds)."""
    role = message.get("role") or "user"
    parts = [p for p in message.get("parts") or () if isinstance(p, Mapping)]
    responses = [p for p in parts if p.get("type") == "tool_call_response"]
    if responses:
        return [{"role": "tool", "tool_call_id": p.get("id"), "content": _text(p.get("response"))}
                for p in responses]
    calls = [_tool_call(p) for p in parts if p.get("type") == "tool_call"]
    content_parts = [p for p in parts if p.get("type") != "tool_call"]
    content: Any
    if all(p.get("type") == "text" for p in content_parts):
        texts = [_text(p.get("content", "")) for p in content_parts]
        content = "\n".join(texts) if texts else None
    else:  # images, files…: OpenAI's list of content parts
        content = [{"type": "text", "text": _text(p.get("content", ""))} if p.get("type") == "text" else dict(p)
                   for p in content_parts]
    out: dict[str, Any] = {"role": role, "content": content}
    if calls:
        out["tool_calls"] = calls
    if isinstance(message.get("name"), str):
        out["name"] = message["name"]
    return [out]


def to_openai_messages(messages: Sequence[Any], system: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    """``messages`` (GenAI format) as OpenAI chat messages, led by a system message for ``system``
    (GenAI system-instruction parts) when given."""
    out: list[dict[str, Any]] = []
    if system:
        out.extend(_message({"role": "system", "parts": list(system)}))
    for message in messages:
        if isinstance(message, Mapping):
            out.extend(_message(message))
    return out
