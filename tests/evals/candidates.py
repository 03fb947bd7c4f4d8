"""Candidate models for the eval tests: the demo's scripted model served over the OpenAI API, in three minds.

- ``old``: every ticket keeps the behaviour it had when the runs were traced, so it repeats each mistake;
- ``fixed``: every ticket is clean, so it makes the decisions the reviewer prescribed;
- ``half``: the old behaviour on even tickets, clean on odd ones.
"""

from __future__ import annotations

from tracemill.demo.model import ScriptedModel
from tracemill.demo.runs import assign_behaviours
from tracemill.demo.server import ModelServer
from tracemill.demo.world import make_tickets


def scripted(mode: str, runs: int, seed: int) -> ScriptedModel:
    model = ScriptedModel()
    tickets = make_tickets(runs, seed=seed)
    behaviours = assign_behaviours(tickets, seed=seed)
    for ticket in tickets:
        old = behaviours[ticket.number]
        keep = mode == "old" or (mode == "half" and ticket.number % 2 == 0)
        model.assign(ticket, old if keep else "clean")
    return model


def server(mode: str, runs: int, seed: int) -> ModelServer:
    return ModelServer(scripted(mode, runs, seed), model_name=f"travel-desk-{mode}")


if __name__ == "__main__":
    import sys
    import time

    with server(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])) as running:
        print(running.base_url, flush=True)
        time.sleep(3600)
