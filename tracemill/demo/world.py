"""The demo's world: a travel desk's tickets, its flight inventory, its tools, and the right next move.

A ticket asks the desk to book the cheapest flight with seats left between two cities on a date,
sometimes also to report the weather at the destination. The tools are real Python functions traced
with ``@tracemill.tool``; a wrong call raises (an error span) or answers with an error in its
result text, as real tools do. :func:`correct_action` is the desk's manual: the next action a
good agent takes given the conversation so far. The scripted model follows it on clean runs, and
the scripted reviewer writes it as the correction of a flagged decision.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import tracemill

__all__ = ["SYSTEM_PROMPT", "TOOLS", "Action", "Booking", "Ticket", "TravelDesk", "correct_action", "make_tickets",
           "parse_ticket", "ticket_of_messages"]

SYSTEM_PROMPT = ("You are a travel desk agent. Use the tools to search flights and book the cheapest flight that "
                 "still has seats for the passenger, report the weather when asked, then confirm the booking "
                 "reference in one sentence.")

TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "search_flights", "description": "Flights between two cities on a date, with prices and seats left.",
        "parameters": {"type": "object", "required": ["origin", "destination", "date"], "properties": {
            "origin": {"type": "string", "description": "departure city"},
            "destination": {"type": "string", "description": "arrival city"},
            "date": {"type": "string", "description": "departure date, YYYY-MM-DD"}}}}},
    {"type": "function", "function": {
        "name": "book_flight", "description": "Book a seat on a flight for a passenger; returns a booking reference.",
        "parameters": {"type": "object", "required": ["flight_id", "passenger"], "properties": {
            "flight_id": {"type": "string"}, "passenger": {"type": "string"}}}}},
    {"type": "function", "function": {
        "name": "get_weather", "description": "The weather forecast in a city.",
        "parameters": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}}},
]

_CITIES = ("Oslo", "Rome", "Lisbon", "Vienna", "Dublin", "Athens", "Prague", "Madrid", "Berlin", "Helsinki")
_PASSENGERS = ("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov",
               "Donald Knuth", "Frances Allen", "John McCarthy", "Margaret Hamilton", "Ken Thompson")
_FORECASTS = ("sunny, 24°C", "light rain, 12°C", "cloudy, 15°C", "snow, -2°C", "windy, 9°C", "clear, 18°C")
_TICKET = re.compile(r"Ticket (?P<number>\d+): book the cheapest flight with seats from (?P<origin>[A-Z][a-z]+) "
                     r"to (?P<destination>[A-Z][a-z]+) on (?P<date>\d{4}-\d{2}-\d{2}) for (?P<passenger>[A-Za-z ]+?)"
                     r"(?P<weather>, and tell me the weather there)?\.$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Ticket:
    """One customer request; its text is what the agent is given."""

    number: int
    origin: str
    destination: str
    date: str
    passenger: str
    wants_weather: bool

    @property
    def task_id(self) -> str:
        """Runs of the same route are the same task: the miner compares them and the export splits by them."""
        return f"book-{self.origin.lower()}-{self.destination.lower()}"

    @property
    def text(self) -> str:
        weather = ", and tell me the weather there" if self.wants_weather else ""
        return (f"Ticket {self.number}: book the cheapest flight with seats from {self.origin} to {self.destination} "
                f"on {self.date} for {self.passenger}{weather}.")


@dataclass(frozen=True)
class Action:
    """A model's decision: tool calls ``(name, arguments)`` or a final answer."""

    tool_calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    content: str | None = None


@dataclass(frozen=True)
class Booking:
    reference: str
    flight_id: str
    passenger: str


def make_tickets(count: int, *, seed: int = 7) -> list[Ticket]:
    """``count`` reproducible tickets over a few routes (each route a task)."""
    rng = random.Random(seed)
    routes = [(a, b) for a in _CITIES for b in _CITIES if a != b]
    rng.shuffle(routes)
    routes = routes[:24]
    start = date(2026, 12, 1)
    return [Ticket(number=1000 + i, origin=o, destination=d,
                   date=(start + timedelta(days=rng.randrange(60))).isoformat(),
                   passenger=rng.choice(_PASSENGERS), wants_weather=rng.random() < 0.4)
            for i, (o, d) in enumerate(rng.choice(routes) for _ in range(count))]


def parse_ticket(text: str) -> Ticket | None:
    match = _TICKET.match(text.strip())
    if match is None:
        return None
    return Ticket(int(match["number"]), match["origin"], match["destination"], match["date"], match["passenger"],
                  bool(match["weather"]))


def flights(origin: str, destination: str, day: str) -> list[dict[str, Any]]:
    """The inventory: three flights a day on every route, derived from the route and date so it never changes."""
    digest = hashlib.sha256(f"{origin}|{destination}|{day}".encode()).digest()
    sold_out = digest[9] % 3  # so the cheapest flight is sold out on about a third of the days: a trap
    out = [{"flight_id": f"TM{100 + digest[i] % 900}{'ABC'[i]}",
            "departs": f"{day}T{7 + 5 * i:02d}:{digest[3 + i] % 6 * 10:02d}", "price_eur": 60 + digest[6 + i] % 240,
            "seats_left": 0 if i == sold_out else 1 + digest[10 + i] % 9} for i in range(3)]
    return sorted(out, key=lambda f: f["price_eur"])


def forecast(city: str) -> str:
    return f"{city}: {_FORECASTS[hashlib.sha256(city.encode()).digest()[0] % len(_FORECASTS)]}"


class TravelDesk:
    """The desk's backend for one run: its tools are traced, and it remembers what was searched and booked."""

    def __init__(self) -> None:
        self.bookings: list[Booking] = []
        self._offers: dict[str, dict[str, Any]] = {}
        self.tools: dict[str, Callable[..., Any]] = {
            "search_flights": tracemill.tool(name="search_flights")(self.search_flights),
            "book_flight": tracemill.tool(name="book_flight")(self.book_flight),
            "get_weather": tracemill.tool(name="get_weather")(self.get_weather)}

    def search_flights(self, origin: str, destination: str, date: str) -> list[dict[str, Any]]:
        """Flights between two cities on a date, with prices and seats left."""
        if not _DATE.match(date):
            raise ValueError(f"date must be YYYY-MM-DD (got {date!r})")
        for city in (origin, destination):
            if city not in _CITIES:
                raise LookupError(f"no airport named {city!r}")
        found = flights(origin, destination, date)
        self._offers.update((f["flight_id"], f) for f in found)
        return found

    def book_flight(self, flight_id: str, passenger: str) -> dict[str, Any]:
        """Book a seat; a full or unknown flight answers with an error in the result, as booking APIs do."""
        flight = self._offers.get(flight_id)
        if flight is None:
            return {"error": f"unknown flight {flight_id!r}; search first", "code": "NOT_FOUND"}
        if flight["seats_left"] <= 0:
            return {"error": f"flight {flight_id} is sold out", "code": "SOLD_OUT"}
        reference = "BK" + hashlib.sha256(f"{flight_id}|{passenger}".encode()).hexdigest()[:6].upper()
        self.bookings.append(Booking(reference, flight_id, passenger))
        return {"booking_reference": reference, "flight_id": flight_id, "passenger": passenger}

    def get_weather(self, city: str) -> str:
        """The weather forecast in a city."""
        return forecast(city)

    def call(self, name: str, arguments: Any) -> str:
        """Run one tool as the agent asked (traced), and return the text the model sees next."""
        tool = self.tools.get(name)
        if tool is None:
            return json.dumps({"error": f"no tool named {name!r}"})
        if not isinstance(arguments, Mapping):
            return json.dumps({"error": f"arguments of {name} must be a JSON object (got {arguments!r})"})
        try:
            result = tool(**arguments)
        except (TypeError, ValueError, LookupError) as exc:
            return json.dumps({"error": f"{type(exc).__name__}: {exc}"})
        return result if isinstance(result, str) else json.dumps(result)

    def succeeded(self, ticket: Ticket) -> bool:
        """The ground truth of a run: the right flight was booked for the right passenger, once."""
        right = cheapest_open(flights(ticket.origin, ticket.destination, ticket.date))
        return [(b.flight_id, b.passenger) for b in self.bookings] == [(right["flight_id"], ticket.passenger)]


def cheapest_open(options: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return dict(min((f for f in options if f["seats_left"] > 0), key=lambda f: f["price_eur"]))


# --- reading a conversation (GenAI message format) ---------------------------------------------


def _parts(messages: Sequence[Mapping[str, Any]], role: str, kind: str) -> list[Mapping[str, Any]]:
    return [p for m in messages if m.get("role") == role for p in m.get("parts", ()) if p.get("type") == kind]


def ticket_of_messages(messages: Sequence[Mapping[str, Any]]) -> Ticket | None:
    for part in _parts(messages, "user", "text"):
        ticket = parse_ticket(str(part.get("content", "")))
        if ticket is not None:
            return ticket
    return None


def _results(messages: Sequence[Mapping[str, Any]]) -> list[Any]:
    out = []
    for part in _parts(messages, "tool", "tool_call_response"):
        response = part.get("response")
        try:
            out.append(json.loads(response) if isinstance(response, str) else response)
        except ValueError:
            out.append(response)
    return out


def correct_action(ticket: Ticket, messages: Sequence[Mapping[str, Any]]) -> Action:
    """What a good agent does next, given the conversation so far (GenAI messages)."""
    results = _results(messages)
    found = next((r for r in reversed(results) if isinstance(r, list) and r and "flight_id" in r[0]), None)
    booked = next((r for r in results if isinstance(r, dict) and "booking_reference" in r), None)
    weather = next((r for r in results if isinstance(r, str) and r.startswith(f"{ticket.destination}: ")), None)
    if found is None:
        return Action(tool_calls=(("search_flights", {"origin": ticket.origin, "destination": ticket.destination,
                                                      "date": ticket.date}),))
    if booked is None:
        return Action(tool_calls=(("book_flight", {"flight_id": cheapest_open(found)["flight_id"],
                                                   "passenger": ticket.passenger}),))
    if ticket.wants_weather and weather is None:
        return Action(tool_calls=(("get_weather", {"city": ticket.destination}),))
    answer = (f"Booked {booked['flight_id']} for {ticket.passenger} from {ticket.origin} to {ticket.destination} "
              f"on {ticket.date}; booking reference {booked['booking_reference']}.")
    if weather is not None:
        answer += f" Forecast for {weather}."
    return Action(content=answer)
