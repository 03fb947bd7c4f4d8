"""Candidate models for the eval tests: the demo's scripted model over the OpenAI API, repeating chosen mistakes.

A ticket in ``keep_old`` keeps the behaviour it had when the runs were traced (so the model repeats that run's
mistake on the same prompt); every other ticket is clean (the model makes the decision the reviewer prescribed).
"""

from __future__ import annotations

from collections.abc import Set

from tracemill.demo.model import ScriptedModel
from tracemill.demo.runs import assign_behaviours
from tracemill.demo.server import ModelServer
from tracemill.demo.world import make_tickets


def scripted(runs: int, seed: int, *, keep_old: Set[int]) -> ScriptedModel:
    model = ScriptedModel()
    tickets = make_tickets(runs, seed=seed)
    behaviours = assign_behaviours(tickets, seed=seed)
    for ticket in tickets:
        model.assign(ticket, behaviours[ticket.number] if ticket.number in keep_old else "clean")
    return model


def server(runs: int, seed: int, *, keep_old: Set[int]) -> ModelServer:
    return ModelServer(scripted(runs, seed, keep_old=keep_old), model_name="travel-desk-candidate")
