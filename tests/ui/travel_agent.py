"""A small travel-desk agent with a scripted model, for seeding the review UI's tests.

The "model" is a deterministic policy that answers with tool calls and a final answer, so the
demo runs offline and every run is reproducible. Its spans are the real thing: one
``invoke_agent`` per run, a ``chat`` span per model decision carrying messages, tool calls and
token usage, and an ``execute_tool`` span per tool call linked back to the decision.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tracemill

TOOLS = [
    {"type": "function", "function": {"name": "search_flights", "description": "Find flights between two cities.",
                                      "parameters": {"type": "object", "properties": {
                                          "origin": {"type": "string"}, "destination": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city.",
                                      "parameters": {"type": "object", "properties": {
                                          "city": {"type": "string"}}}}},
]
SYSTEM = "You are a travel desk. Use tools, then answer in one sentence."


@dataclass(frozen=True)
class Task:
    task_id: str
    question: str
    origin: str
    destination: str


TASKS = (
    Task("trip-oslo-rome", "Find me a flight from Oslo to Rome and tell me the weather there.", "Oslo", "Rome"),
    Task("trip-paris-atlantis", "Fly me from Paris to Atlantis; how is the weather?", "Paris", "Atlantis"),
    Task("trip-lima-cusco", "Flights from Lima to Cusco, and the weather in Cusco?", "Lima", "Cusco"),
)

_WEATHER = {"Rome": "sunny, 24°C", "Cusco": "cloudy, 14°C", "Oslo": "snow, -3°C"}


class UnknownCityError(LookupError):
    pass


@tracemill.tool
def search_flights(origin: str, destination: str) -> list[dict[str, Any]]:
    """Find flights between two cities."""
    if destination not in _WEATHER:
        raise UnknownCityError(f"no airport found for {destination!r}")
    return [{"flight": f"TM{len(origin) * 100 + len(destination)}", "from": origin, "to": destination,
             "price_eur": 120 + 7 * len(destination)}]


@tracemill.tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return _WEATHER.get(city, "unknown")


def _scripted_model(messages: list[dict[str, Any]], task: Task) -> dict[str, Any]:
    """Decide the next action from the conversation so far, like a tool-calling model would."""
    tool_results = [m for m in messages if m["role"] == "tool"]
    if not tool_results:
        return {"tool_calls": [{"id": f"call_{task.task_id}_1", "function": {
            "name": "search_flights",
            "arguments": json.dumps({"origin": task.origin, "destination": task.destination})}}]}
    if len(tool_results) == 1 and "error" not in tool_results[0]["content"]:
        return {"tool_calls": [{"id": f"call_{task.task_id}_2", "function": {
            "name": "get_weather", "arguments": json.dumps({"city": task.destination})}}]}
    if "error" in tool_results[-1]["content"]:
        return {"content": "I could not find that trip, sorry."}
    flight = json.loads(tool_results[0]["content"])[0]
    return {"content": f"Flight {flight['flight']} costs {flight['price_eur']} EUR; "
                       f"the weather in {task.destination} is {tool_results[1]['content']}."}


@tracemill.agent(name="travel_desk", version="1")
def travel_desk(task: Task) -> str:
    """Run the agent loop until the model answers."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task.question}]
    for _ in range(5):
        with tracemill.llm_call(provider="scripted", model="travel-policy-1", input_messages=list(messages),
                                tool_definitions=TOOLS, temperature=0.0) as call:
            reply = _scripted_model(messages, task)
            prompt_tokens = sum(len(str(m.get("content") or "")) // 4 + 4 for m in messages)
            call.record_output(content=reply.get("content"), tool_calls=reply.get("tool_calls", ()),
                               finish_reasons=["tool_calls" if "tool_calls" in reply else "stop"],
                               input_tokens=prompt_tokens, output_tokens=len(json.dumps(reply)) // 4)
        if "tool_calls" not in reply:
            return reply["content"]
        messages.append({"role": "assistant", "content": None, "tool_calls": reply["tool_calls"]})
        for tool_request in reply["tool_calls"]:
            function = tool_request["function"]
            try:
                tools: dict[str, Callable[..., Any]] = {"search_flights": search_flights, "get_weather": get_weather}
                result = tools[function["name"]](**json.loads(function["arguments"]))
                content = result if isinstance(result, str) else json.dumps(result)
            except LookupError as exc:
                content = json.dumps({"error": str(exc)})
            messages.append({"role": "tool", "tool_call_id": tool_request["id"], "content": content})
    return "gave up"
