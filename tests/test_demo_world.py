"""The demo's world, scripted model and agent: the behaviours it claims, checked run by run."""

from __future__ import annotations

import json

import openai
import pytest

import tracemill
from tracemill.demo.agent import MAX_STEPS, travel_desk
from tracemill.demo.model import BEHAVIOURS, ScriptedModel
from tracemill.demo.runs import assign_behaviours
from tracemill.demo.server import ModelServer
from tracemill.demo.world import TOOLS, Ticket, cheapest_open, correct_action, flights, make_tickets, parse_ticket


def _ticket_with_sold_out_cheapest() -> Ticket:
    for ticket in make_tickets(200, seed=3):
        options = flights(ticket.origin, ticket.destination, ticket.date)
        if options[0]["seats_left"] == 0:
            return ticket
    raise AssertionError("no ticket whose cheapest flight is sold out")


def test_ticket_text_parses_back_to_the_ticket():
    for ticket in make_tickets(50, seed=1):
        assert parse_ticket(ticket.text) == ticket


def test_tickets_are_reproducible_from_the_seed():
    assert make_tickets(20, seed=5) == make_tickets(20, seed=5)
    assert make_tickets(20, seed=5) != make_tickets(20, seed=6)


def test_correct_action_searches_then_books_the_cheapest_open_flight():
    ticket = _ticket_with_sold_out_cheapest()
    user = {"role": "user", "parts": [{"type": "text", "content": ticket.text}]}
    first = correct_action(ticket, [user])
    assert first.tool_calls == (("search_flights", {"origin": ticket.origin, "destination": ticket.destination,
                                                    "date": ticket.date}),)
    options = flights(ticket.origin, ticket.destination, ticket.date)
    found = {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": json.dumps(options)}]}
    second = correct_action(ticket, [user, found])
    assert second.tool_calls[0][0] == "book_flight"
    assert second.tool_calls[0][1]["flight_id"] == cheapest_open(options)["flight_id"] != options[0]["flight_id"]


def test_behaviours_needing_a_sold_out_flight_go_only_to_such_tickets():
    tickets = make_tickets(300, seed=11)
    assigned = assign_behaviours(tickets, seed=11)
    assert set(assigned.values()) == set(BEHAVIOURS)
    for ticket in tickets:
        if assigned[ticket.number].startswith("sold_out"):
            assert flights(ticket.origin, ticket.destination, ticket.date)[0]["seats_left"] == 0


@pytest.fixture
def desk(spans):
    model = ScriptedModel()
    tracemill.instrument("openai")
    with ModelServer(model) as server, openai.OpenAI(base_url=server.base_url, api_key="offline",
                                                     max_retries=0) as client:
        yield model, client, server.model_name
    tracemill.uninstrument("openai")


@pytest.mark.parametrize(("behaviour", "succeeds"), [
    ("clean", True), ("wrong_args", False), ("bad_date_recovered", True), ("sold_out_claimed", False),
    ("sold_out_recovered", True), ("loop", False), ("give_up", False), ("detour", True),
])
def test_each_behaviour_ends_as_scripted(desk, spans, behaviour, succeeds):
    model, client, name = desk
    ticket = _ticket_with_sold_out_cheapest()
    model.assign(ticket, behaviour)
    result = travel_desk(client, name, ticket)
    assert result.succeeded is succeeds
    if behaviour == "loop":
        assert result.steps == MAX_STEPS
    if behaviour == "clean":
        assert "booking reference BK" in result.answer


def test_traced_run_records_tools_sent_and_links_tool_spans_to_decisions(desk, spans):
    model, client, name = desk
    ticket = make_tickets(1, seed=2)[0]
    model.assign(ticket, "wrong_args")
    travel_desk(client, name, ticket)
    chats = [s for s in spans.finished if s.name == f"chat {name}"]
    assert len(chats) == 2
    sent = json.loads(chats[0].attributes["gen_ai.tool.definitions"])
    assert {t.get("name") or t.get("function", {}).get("name") for t in sent} == {t["function"]["name"]
                                                                                  for t in TOOLS}
    failed = spans.named("execute_tool search_flights")
    assert failed.status.status_code.name == "ERROR"
    assert "unexpected keyword argument 'from'" in failed.status.description
    assert [link.context.span_id for link in failed.links] == [chats[0].context.span_id]
