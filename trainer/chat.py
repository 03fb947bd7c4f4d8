"""GenAI messages (role + parts) to the chat-template messages transformers and TRL render.

Spans record the OTel GenAI shape: ``{"role", "parts": [text | tool_call | tool_call_response]}``.
Chat templates read the transformers convention instead: ``{"role", "content"}``, an assistant's
``tool_calls: [{"id", "type": "function", "function": {"name", "arguments": {...}}}]`` (arguments as
an object) and one ``{"role": "tool", "tool_call_id", "name", "content"}`` message per tool result.
OpenAI fine-tuning files take the same messages with arguments as JSON text.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

__all__ = ["chat_messages", "chat_tools", "openai_messages", "render_step", "system_messages", "tool_call"]

ChatMessage = dict[str, Any]
_encode = msgspec.json.Encoder().encode


def tool_call(call_id: str | None, name: str, arguments: Any) -> dict[str, Any]:
    """One assistant tool call in the chat-template convention (arguments as a JSON value)."""
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):
            arguments = json.loads(arguments)
    return {"id": call_id or "", "type": "function", "function": {"name": name, "arguments": arguments}}


def _text(parts: Sequence[Any]) -> str:
    return "".join(
        str(part.get("content", "")) for part in parts if isinstance(part, Mapping) and part.get("type") == "text"
    )


def system_messages(system: Any) -> list[ChatMessage]:
    """``gen_ai.system_instructions`` (a list of parts, or text) as zero or one system message."""
    if not system:
        return []
    text = system if isinstance(system, str) else _text(system if isinstance(system, list) else [system])
    return [{"role": "system", "content": text}] if text else []


def chat_messages(messages: Any) -> list[ChatMessage]:
    """GenAI messages as chat-template messages; a tool result names the tool its call asked for."""
    out: list[ChatMessage] = []
    tool_names: dict[str, str] = {}
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        parts = message.get("parts")
        if parts is None:  # already a chat message (a producer that does not follow GenAI)
            out.append(dict(message))
            continue
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        results: list[ChatMessage] = []
        for part in parts if isinstance(parts, list) else ():
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(str(part.get("content", "")))
            elif kind == "tool_call":
                call_id, name = part.get("id") or "", part.get("name", "")
                calls.append(tool_call(call_id, name, part.get("arguments")))
                tool_names[call_id] = name
            elif kind == "tool_call_response":
                call_id, response = part.get("id") or "", part.get("response")
                results.append({
                    "role": "tool", "tool_call_id": call_id, "name": tool_names.get(call_id, ""),
                    "content": response if isinstance(response, str) else _encode(response).decode(),
                })
        if results:
            out.extend(results)
            continue
        chat: ChatMessage = {"role": message.get("role") or "user", "content": "".join(texts)}
        if calls:
            chat["tool_calls"] = calls
        out.append(chat)
    return out


def chat_tools(definitions: Any) -> list[dict[str, Any]]:
    """Recorded tool definitions (flat GenAI or Chat Completions shape) as chat-template tools:
    ``{"type": "function", "function": {"name", "description", "parameters"}}``."""
    out = []
    for definition in definitions if isinstance(definitions, list) else ():
        if not isinstance(definition, Mapping):
            continue
        inner = definition.get("function")
        function: Mapping[str, Any] = inner if isinstance(inner, Mapping) else definition
        if not isinstance(function.get("name"), str):
            continue
        spec = {"name": function["name"], "description": function.get("description") or "",
                "parameters": function.get("parameters") or {"type": "object", "properties": {}}}
        out.append({"type": definition.get("type") or "function", "function": spec})
    return out


def openai_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """Chat-template messages in OpenAI's fine-tuning shape: arguments as JSON text, no empty content
    beside tool calls, tool results keyed by ``tool_call_id``."""
    out = []
    for message in messages:
        if message["role"] == "tool":
            out.append({"role": "tool", "tool_call_id": message.get("tool_call_id", ""),
                        "content": message.get("content", "")})
            continue
        converted: dict[str, Any] = {"role": message["role"], "content": message.get("content") or ""}
        if message.get("tool_calls"):
            if not converted["content"]:
                converted["content"] = None
            converted["tool_calls"] = [
                {"id": call["id"], "type": "function", "function": {
                    "name": call["function"]["name"],
                    "arguments": json.dumps(call["function"]["arguments"], ensure_ascii=False)}}
                for call in message["tool_calls"]
            ]
        out.append(converted)
    return out


def render_step(messages: Sequence[ChatMessage]) -> str:
    """An assistant output as one line of text (for stepwise rows): its text, then ``name(arguments)``
    for each tool call."""
    pieces = []
    for message in messages:
        if message.get("content"):
            pieces.append(str(message["content"]))
        for call in message.get("tool_calls") or ():
            arguments = json.dumps(call["function"]["arguments"], ensure_ascii=False, sort_keys=True)
            pieces.append(f"{call['function']['name']}({arguments})")
    return "\n".join(pieces)
