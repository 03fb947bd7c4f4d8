"""Stage 1 of the demo: run the travel-desk agent many times through the real tracer into a store."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass

import tracemill
from tracemill.demo.agent import AgentResult, real_model, travel_desk
from tracemill.demo.model import BEHAVIOURS, Behaviour, ScriptedModel
from tracemill.demo.server import ModelServer
from tracemill.demo.world import Ticket, cheapest_open, flights, make_tickets

__all__ = ["RunRecord", "assign_behaviours", "trace_runs"]

_NEEDS_SOLD_OUT: frozenset[Behaviour] = frozenset({"sold_out_claimed", "sold_out_recovered"})


@dataclass(frozen=True)
class RunRecord:
    trace_id: str
    ticket: Ticket
    behaviour: Behaviour | None
    """The scripted model's behaviour on this ticket; None against a real model."""
    result: AgentResult


def _cheapest_sold_out(ticket: Ticket) -> bool:
    options = flights(ticket.origin, ticket.destination, ticket.date)
    return options[0]["flight_id"] != cheapest_open(options)["flight_id"]


def assign_behaviours(tickets: list[Ticket], *, seed: int) -> dict[int, Behaviour]:
    """Draw a behaviour per ticket; the sold-out mistakes only where the cheapest flight is sold out."""
    rng = random.Random(seed)
    out: dict[int, Behaviour] = {}
    for ticket in tickets:
        allowed = {b: w for b, w in BEHAVIOURS.items() if b not in _NEEDS_SOLD_OUT or _cheapest_sold_out(ticket)}
        out[ticket.number] = rng.choices(list(allowed), weights=list(allowed.values()))[0]
    return out


def trace_runs(dsn: str, runs: int, *, seed: int = 7, on_run: Callable[[RunRecord], None] | None = None,
               ) -> list[RunRecord]:
    """Trace ``runs`` tickets into the store at ``dsn``; returns what happened in each run.

    The agent talks to the scripted model server, or to a real model when ``OPENAI_API_KEY`` is set.
    """
    import openai

    tracemill.init(store=dsn, service_name="tracemill-demo")
    tracemill.instrument("openai")
    tickets = make_tickets(runs, seed=seed)
    scripted = ScriptedModel()
    behaviours = assign_behaviours(tickets, seed=seed)
    for ticket in tickets:
        scripted.assign(ticket, behaviours[ticket.number])
    real = real_model()
    records: list[RunRecord] = []
    try:
        with contextlib.ExitStack() as stack:
            if real is None:
                server = stack.enter_context(ModelServer(scripted))
                client, model_name = openai.OpenAI(base_url=server.base_url, api_key="offline", max_retries=0), \
                    server.model_name
            else:
                client, model_name = openai.OpenAI(base_url=real[0]), real[1]
            with client:
                for ticket in tickets:
                    with tracemill.run("travel_desk", task_id=ticket.task_id, conversation_id=f"ticket-{ticket.number}",
                                       input=ticket.text, new_trace=True) as run:
                        result = travel_desk(client, model_name, ticket)
                        run.set_output(result.answer)
                    record = RunRecord(run.trace_id or "", ticket, behaviours[ticket.number] if real is None else None,
                                       result)
                    records.append(record)
                    if on_run is not None:
                        on_run(record)
    finally:
        tracemill.force_flush()
        tracemill.uninstrument("openai")
    return records
