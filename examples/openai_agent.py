"""A tool-calling agent on the raw ``openai`` client, traced by adding one line.

    python examples/openai_agent.py

Runs offline against a scripted OpenAI-compatible server. With ``OPENAI_API_KEY`` set (and
``OPENAI_BASE_URL`` for any other compatible server, ``OPENAI_MODEL`` for the model) it talks
to that model instead. Spans are printed as a tree, or exported when ``TRACEMILL_ENDPOINT`` /
``TRACEMILL_STORE`` is set.
"""

from __future__ import annotations

import json
import os

import openai
from _support import ScriptedOpenAI, print_trace, real_model_configured, start_tracing

import tracemill

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}]


@tracemill.tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return {"Oslo": "light snow, -3°C", "Lisbon": "sunny, 19°C"}.get(city, "unknown")


def run_agent(client: openai.OpenAI, model: str, question: str) -> str:
    """Ask, run the tools the model asks for, repeat until it answers; the answer is streamed."""
    messages: list[dict] = [{"role": "system", "content": "Answer with the weather tool."},
                            {"role": "user", "content": question}]
    for _ in range(5):
        reply = client.chat.completions.create(model=model, messages=messages, tools=TOOLS).choices[0].message
        if not reply.tool_calls:
            break
        messages.append(reply.model_dump(exclude_none=True))
        for call in reply.tool_calls:
            result = get_weather(**json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    stream = client.chat.completions.create(model=model, messages=messages, stream=True,
                                            stream_options={"include_usage": True})
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def main() -> None:
    start_tracing("openai-example")
    tracemill.instrument("openai")  # <- the one line (instrument() takes every installed framework)

    server = None
    if real_model_configured():
        client, model = openai.OpenAI(), os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
    else:
        server = ScriptedOpenAI([
            {"tool_calls": [("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Lisbon"})]},
            {"content": "Done."},
            {"content": "Oslo has light snow at -3°C; Lisbon is sunny at 19°C."},
        ])
        client, model = openai.OpenAI(base_url=server.base_url, api_key="offline"), "scripted-model"
    try:
        with tracemill.run("weather-agent", task_id="compare-weather"):  # one trace per run
            print(run_agent(client, model, "Compare the weather in Oslo and Lisbon."))
    finally:
        client.close()
        if server is not None:
            server.close()
    print_trace()


if __name__ == "__main__":
    main()
