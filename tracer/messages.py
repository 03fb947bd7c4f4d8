"""Messages in the OTel GenAI structured format: ``{"role": ..., "parts": [...]}``.

Integrations and the manual API accept what their frameworks hand them — OpenAI-style chat
messages, plain strings, or messages already in the GenAI format — and record one format, so
the miner and the trainer read a single shape. Part types: ``text`` {content}, ``tool_call``
{id, name, arguments}, ``tool_call_response`` {id, response}; other parts pass through.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Message = dict[str, Any]


def text_part(content: str) -> dict[str, Any]:
    return {"type": "text", "content": content}


def tool_call_part(call_id: str | None, name: str, arguments: Any) -> dict[str, Any]:
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": parse_arguments(arguments)}


def parse_arguments(arguments: Any) -> Any:
    """Tool arguments arrive as JSON text from most APIs; record them as JSON values when they parse."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def _content_parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [text_part(content)] if content else []
    parts: list[dict[str, Any]] = []
    if isinstance(content, Iterable) and not isinstance(content, Mapping):
        for item in content:
            if isinstance(item, str):
                parts.append(text_part(item))
            elif isinstance(item, Mapping) and item.get("type") in ("text", "input_text", "output_text"):
                parts.append(text_part(str(item.get("text", item.get("content", "")))))
            elif isinstance(item, Mapping):
                parts.append(dict(item))
            else:
                parts.append(text_part(str(item)))
        return parts
    return [text_part(str(content))]


def _openai_tool_call(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    return tool_call_part(call.get("id"), function.get("name", call.get("name", "")),
                          function.get("arguments", call.get("arguments")))


def to_genai_message(message: Any) -> Message:
    """Normalize one message (GenAI, OpenAI chat, or a plain string) to the GenAI format."""
    if isinstance(message, str):
        return {"role": "user", "parts": [text_part(message)]}
    if not isinstance(message, Mapping):
        return {"role": "user", "parts": [text_part(str(message))]}
    if "parts" in message:
        return dict(message)
    role = message.get("role", "user")
    if role in ("tool", "function"):
        return {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": message.get("tool_call_id"),
                       "response": message.get("content")}],
        }
    parts = _content_parts(message.get("content"))
    parts.extend(_openai_tool_call(call) for call in message.get("tool_calls") or ())
    out: Message = {"role": role, "parts": parts}
    if message.get("name"):
        out["name"] = message["name"]
    if message.get("finish_reason"):
        out["finish_reason"] = message["finish_reason"]
    return out


def to_genai_messages(messages: Any) -> list[Message]:
    """Normalize a string, one message, or a sequence of messages."""
    if messages is None:
        return []
    if isinstance(messages, (str, Mapping)):
        return [to_genai_message(messages)]
    return [to_genai_message(m) for m in messages]


def output_message(
    *,
    content: str | None = None,
    tool_calls: Sequence[Mapping[str, Any]] = (),
    finish_reason: str | None = None,
    role: str = "assistant",
) -> Message:
    """Build one output message from a completion's text and tool calls.

    ``tool_calls`` items are ``{"id", "name", "arguments"}`` or OpenAI's ``{"id", "function": {...}}``.
    """
    parts = _content_parts(content)
    parts.extend(_openai_tool_call(call) for call in tool_calls)
    message: Message = {"role": role, "parts": parts}
    if finish_reason:
        message["finish_reason"] = finish_reason
    return message


def tool_calls_of(messages: Sequence[Message]) -> list[tuple[str | None, str]]:
    """The (call id, tool name) pairs an LLM's output messages ask for."""
    return [
        (part.get("id"), part.get("name", ""))
        for message in messages
        for part in message.get("parts", ())
        if isinstance(part, Mapping) and part.get("type") == "tool_call"
    ]
