"""The travel-desk agent: a plain tool-calling loop on the ``openai`` client.

Nothing in it is specific to tracemill except the ``@tracemill.agent`` decorator on the loop and
the traced tools of :class:`~tracemill.demo.world.TravelDesk`; the model calls are traced by
``tracemill.instrument("openai")``. It runs against the demo's scripted model server, or against a
real model when ``OPENAI_API_KEY`` is set (``OPENAI_BASE_URL`` for another compatible server,
the ``demo_model`` setting of :mod:`tracemill.config` for the model name).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import tracemill
from tracemill import config
from tracemill.demo.world import SYSTEM_PROMPT, TOOLS, Ticket, TravelDesk

__all__ = ["MAX_STEPS", "AgentResult", "real_model", "travel_desk"]

MAX_STEPS = 8
"""Model calls one run may make before the agent gives up."""

GAVE_UP = "I could not finish this ticket within my step budget."


@dataclass(frozen=True)
class AgentResult:
    answer: str
    steps: int
    succeeded: bool
    """Ground truth from the desk: the right flight was booked for the right passenger."""


def real_model() -> tuple[str | None, str] | None:
    """``(base_url, model)`` when a real model is configured through ``OPENAI_API_KEY``, else None."""
    if not os.environ.get("OPENAI_API_KEY"):
        return None
    return os.environ.get("OPENAI_BASE_URL") or None, config.read(config.DEMO_MODEL)


@tracemill.agent(name="travel_desk", version="2")
def travel_desk(client: Any, model: str, ticket: Ticket) -> AgentResult:
    """Work one ticket: ask the model, run the tools it asks for, repeat until it answers."""
    desk = TravelDesk()
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT},
                                      {"role": "user", "content": ticket.text}]
    for step in range(1, MAX_STEPS + 1):
        reply = client.chat.completions.create(model=model, messages=messages, tools=TOOLS,
                                               temperature=0).choices[0].message
        if not reply.tool_calls:
            return AgentResult(reply.content or "", step, desk.succeeded(ticket))
        messages.append(reply.model_dump(exclude_none=True))
        for call in reply.tool_calls:
            try:
                arguments = json.loads(call.function.arguments or "{}")
            except ValueError:
                arguments = call.function.arguments
            messages.append({"role": "tool", "tool_call_id": call.id,
                             "content": desk.call(call.function.name, arguments)})
    return AgentResult(GAVE_UP, MAX_STEPS, desk.succeeded(ticket))
