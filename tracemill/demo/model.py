"""The scripted model: a tool-calling policy with the failure modes real agents show.

On a clean run it follows :func:`~tracemill.demo.world.correct_action`. Each other behaviour
departs from it the way models do: tool arguments that do not fit the schema, a date the tool
refuses, booking the sold-out cheapest flight and then claiming success or recovering, calling
the same search in a loop until the agent's step budget runs out, giving up at once, and taking
detours that still end well. Which behaviour a ticket gets is decided by the demo
(:meth:`ScriptedModel.assign`); the model reads the ticket from the conversation like any model would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from tracemill.demo.world import Action, Ticket, correct_action, ticket_of_messages

__all__ = ["BEHAVIOURS", "Behaviour", "ScriptedModel"]

Behaviour = Literal["clean", "wrong_args", "bad_date_recovered", "sold_out_claimed", "sold_out_recovered", "loop",
                    "give_up", "detour"]

# How often each behaviour is drawn: about half the runs are clean.
BEHAVIOURS: dict[Behaviour, float] = {
    "clean": 0.48, "wrong_args": 0.08, "bad_date_recovered": 0.08, "sold_out_claimed": 0.08,
    "sold_out_recovered": 0.07, "loop": 0.07, "give_up": 0.07, "detour": 0.07,
}
FAILING: frozenset[Behaviour] = frozenset({"wrong_args", "sold_out_claimed", "loop", "give_up"})
"""Behaviours whose runs do not book the right flight."""


def _assistant_turns(messages: Sequence[Mapping[str, Any]]) -> int:
    return sum(1 for m in messages if m.get("role") == "assistant")


def _sold_out(messages: Sequence[Mapping[str, Any]]) -> bool:
    return any("SOLD_OUT" in str(p.get("response")) for m in messages if m.get("role") == "tool"
               for p in m.get("parts", ()))


class ScriptedModel:
    """Decides the next action of one conversation; thread-safe, deterministic per ticket."""

    def __init__(self) -> None:
        self._behaviours: dict[int, Behaviour] = {}
        self._lock = threading.Lock()

    def assign(self, ticket: Ticket, behaviour: Behaviour) -> None:
        with self._lock:
            self._behaviours[ticket.number] = behaviour

    def behaviour(self, ticket: Ticket) -> Behaviour:
        with self._lock:
            return self._behaviours.get(ticket.number, "clean")

    def decide(self, messages: Sequence[Mapping[str, Any]]) -> Action:
        """The next action for a conversation in the GenAI message format."""
        ticket = ticket_of_messages(messages)
        if ticket is None:
            return Action(content="I can only help with flight booking tickets.")
        right = correct_action(ticket, messages)
        turn = _assistant_turns(messages)
        behaviour = self.behaviour(ticket)
        if behaviour == "wrong_args":
            if turn == 0:  # the schema says origin/destination; the model invents its own names
                return Action(tool_calls=(("search_flights", {"from": ticket.origin, "to": ticket.destination,
                                                              "date": ticket.date}),))
            return Action(content="Sorry, the flight search is not working right now. Please try again later.")
        if behaviour == "bad_date_recovered" and turn == 0:
            day = ticket.date
            return Action(tool_calls=(("search_flights", {"origin": ticket.origin, "destination": ticket.destination,
                                                          "date": f"{day[8:10]}/{day[5:7]}/{day[:4]}"}),))
        if behaviour in ("sold_out_claimed", "sold_out_recovered") and right.tool_calls \
                and right.tool_calls[0][0] == "book_flight" and not _sold_out(messages):
            found = _last_search(messages)
            if found and found[0]["seats_left"] <= 0:  # books the cheapest without looking at the seats
                return Action(tool_calls=(("book_flight", {"flight_id": found[0]["flight_id"],
                                                           "passenger": ticket.passenger}),))
        if behaviour == "sold_out_claimed" and _sold_out(messages):
            found = _last_search(messages) or [{"flight_id": "?"}]
            return Action(content=f"Done! {ticket.passenger} is booked on {found[0]['flight_id']} to "
                                  f"{ticket.destination} on {ticket.date}.")
        if behaviour == "loop":
            return Action(tool_calls=(("search_flights", {"origin": ticket.origin, "destination": ticket.destination,
                                                          "date": ticket.date}),))
        if behaviour == "give_up":
            return Action(content="I'm sorry, I can't book flights for you. Please contact the airline directly.")
        if behaviour == "detour" and turn < 2:
            return (Action(tool_calls=(("get_weather", {"city": ticket.origin}),)) if turn == 0 else
                    Action(tool_calls=(("search_flights", {"origin": ticket.origin, "destination": ticket.destination,
                                                           "date": ticket.date}),)))
        return right


def _last_search(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    for m in reversed(messages):
        if m.get("role") != "tool":
            continue
        for part in m.get("parts", ()):
            response = part.get("response")
            try:
                value = json.loads(response) if isinstance(response, str) else response
            except ValueError:
                continue
            if isinstance(value, list) and value and "flight_id" in value[0]:
                return value
    return None
