"""The travel-desk agent as a team would hand it to ``tracemill eval run --agent desk_agent:agent``.

It is the demo's tool loop on the ``openai`` client, talking to the model at ``$EVAL_MODEL_URL``, with a desk whose
tools append every real execution to ``$EVAL_LIVE_LOG`` (one line per call), so a test can see whether any tool
ran for real. The agent takes a run case's input: the ticket text.
"""

from __future__ import annotations

import json
import os
from typing import Any

import openai

import tracemill
from tracemill.demo.world import SYSTEM_PROMPT, TOOLS, TravelDesk, parse_ticket


def _log(name: str, arguments: dict[str, Any]) -> None:
    path = os.environ.get("EVAL_LIVE_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"name": name, "arguments": arguments}) + "\n")


class LoggedDesk(TravelDesk):
    def search_flights(self, origin: str, destination: str, date: str) -> list[dict[str, Any]]:
        _log("search_flights", {"origin": origin, "destination": destination, "date": date})
        return super().search_flights(origin, destination, date)

    def book_flight(self, flight_id: str, passenger: str) -> dict[str, Any]:
        _log("book_flight", {"flight_id": flight_id, "passenger": passenger})
        return super().book_flight(flight_id, passenger)

    def get_weather(self, city: str) -> str:
        _log("get_weather", {"city": city})
        return super().get_weather(city)


@tracemill.agent(name="travel_desk")
def agent(text: str) -> dict[str, Any]:
    ticket = parse_ticket(text)
    if ticket is None:
        raise ValueError(f"not a ticket: {text!r}")
    desk = LoggedDesk()
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": text}]
    with openai.OpenAI(base_url=os.environ["EVAL_MODEL_URL"], api_key="offline", max_retries=0) as client:
        for step in range(1, 9):
            reply = client.chat.completions.create(model="travel-desk", messages=messages, tools=TOOLS,  # type: ignore[arg-type]
                                                   temperature=0).choices[0].message
            if not reply.tool_calls:
                return {"answer": reply.content, "steps": step}
            messages.append(reply.model_dump(exclude_none=True))
            for call in reply.tool_calls:
                messages.append({"role": "tool", "tool_call_id": call.id,
                                 "content": desk.call(call.function.name, json.loads(call.function.arguments))})
    return {"answer": None, "steps": 8}
