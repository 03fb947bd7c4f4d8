"""Normalization of chat messages into the GenAI structured format."""

from __future__ import annotations

from tracemill.tracer.messages import output_message, to_genai_messages, tool_calls_of


def test_openai_chat_history_becomes_genai_messages():
    history = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image_url", "image_url": {"url": "u"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    assert to_genai_messages(history) == [
        {"role": "system", "parts": [{"type": "text", "content": "You are terse."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Hi"},
                                   {"type": "image_url", "image_url": {"url": "u"}}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "f", "arguments": {"a": 1}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "42"}]},
    ]


def test_strings_genai_messages_and_bad_json_arguments_pass_through():
    already = {"role": "user", "parts": [{"type": "text", "content": "x"}]}
    assert to_genai_messages("plain") == [{"role": "user", "parts": [{"type": "text", "content": "plain"}]}]
    assert to_genai_messages([already]) == [already]
    message = output_message(tool_calls=[{"id": "c", "name": "f", "arguments": "{not json"}],
                             finish_reason="tool_calls")
    assert message["parts"][0]["arguments"] == "{not json"
    assert tool_calls_of([message]) == [("c", "f")]
