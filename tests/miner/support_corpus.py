"""A development corpus that looks like production customer service, not like the miner's detectors.

A simulated retail support desk: users with orders, an agent with read tools (look up a user, an order,
the policy) and write tools (cancel, refund, change an address, exchange items, transfer to a human),
and policies (cancel only pending orders; refunds only within 30 days of delivery; damaged goods go to
a human). Each task has one correct ending: the right state-changing calls with the right arguments, a
refusal that cites the policy, or a hand-off. Several trials run per task, and the agent's behaviour
varies between trials the way a real model's does: most failures raise nothing (a refund of the wrong
amount, a cancellation of the wrong order, "I've cancelled it" without the call, a needless hand-off),
while some errors are harmless (a mistyped order id, corrected on the next call). The outcome is judged
on the final state, as customer-service benchmarks do, never on what the trace looks like.

The conversations are written three ways, each through the real OpenTelemetry SDK into a real store:
GenAI conventions (JSON messages, ``gen_ai.conversation.id``, no task id), OpenInference's flattened
attributes (``llm.input_messages.N.message.*``, ``session.id``, no task id), and tracemill's own tracer
(``tracemill.run`` around an ``@tracemill.agent`` function, with a task id).
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

READ_TOOLS = ("get_user_details", "get_order_details", "search_policy")
WRITE_TOOLS = ("cancel_pending_order", "refund_order", "modify_order_address", "exchange_items",
               "transfer_to_human_agents")  # fmt: skip

POLICY = (
    "You are the support agent of an online shop. Authenticate the user by user id first. Cancel only "
    "orders that are still pending, for reason 'no longer needed' or 'ordered by mistake'. Refund delivered "
    "orders only within 30 days of delivery, for the order total. Change the address of pending orders only. "
    "Transfer damaged-item claims and anything outside these policies to a human agent. Ask the user to "
    "confirm before any change."
)

TOOL_DEFINITIONS = [
    {"type": "function", "function": {"name": name, "description": desc, "parameters": {
        "type": "object", "properties": props, "required": list(props)}}}
    for name, desc, props in (
        ("get_user_details", "Look up a user.", {"user_id": {"type": "string"}}),
        ("get_order_details", "Look up an order.", {"order_id": {"type": "string"}}),
        ("search_policy", "Search the policy handbook.", {"query": {"type": "string"}}),
        ("cancel_pending_order", "Cancel a pending order.", {"order_id": {"type": "string"},
                                                             "reason": {"type": "string"}}),
        ("refund_order", "Refund a delivered order.", {"order_id": {"type": "string"},
                                                       "amount": {"type": "number"}}),
        ("modify_order_address", "Change a pending order's address.", {"order_id": {"type": "string"},
                                                                       "address": {"type": "string"}}),
        ("exchange_items", "Exchange items of a delivered order.", {
            "order_id": {"type": "string"}, "item_ids": {"type": "array"}, "new_item_ids": {"type": "array"}}),
        ("transfer_to_human_agents", "Hand the conversation to a human agent.", {"summary": {"type": "string"}}),
    )
]  # fmt: skip

KINDS = ("cancel", "cancel_delivered", "refund", "refund_late", "address", "exchange", "damaged", "status")

_STREETS = ("Elm Street", "Oak Avenue", "Maple Road", "Birch Lane", "Cedar Court", "Willow Way")
_ITEMS = ("blue kettle", "desk lamp", "running shoes", "wool scarf", "phone case", "yoga mat", "coffee grinder")


@dataclass
class Order:
    order_id: str
    status: str  # pending, delivered
    total: float
    items: list[str]
    days_since_delivery: int
    address: str


@dataclass
class Task:
    task_id: str
    kind: str
    user_id: str
    orders: list[Order]  # the first is the one the request is about
    new_address: str = ""
    new_item: str = ""

    @property
    def order(self) -> Order:
        return self.orders[0]

    def expected_writes(self) -> list[tuple[str, dict[str, Any]]]:
        """The state-changing calls of a correct run (a hand-off included)."""
        o = self.order
        return {
            "cancel": [("cancel_pending_order", {"order_id": o.order_id, "reason": "no longer needed"})],
            "refund": [("refund_order", {"order_id": o.order_id, "amount": o.total})],
            "address": [("modify_order_address", {"order_id": o.order_id, "address": self.new_address})],
            "exchange": [("exchange_items", {"order_id": o.order_id, "item_ids": [o.items[0]],
                                             "new_item_ids": [self.new_item]})],
            "damaged": [("transfer_to_human_agents", {"summary": f"damaged item in order {o.order_id}"})],
        }.get(self.kind, [])


@dataclass
class Event:
    """One step of a conversation: a user turn, an LLM response (text and/or tool calls) or a tool run."""

    kind: str  # user, llm, tool
    text: str | None = None
    tool: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    call_id: str = ""
    result: Any = None
    failed: bool = False  # the tool raised (status error)
    seconds: float = 0.5


@dataclass
class Conversation:
    task: Task
    trial: int
    behaviour: str
    events: list[Event]
    success: bool
    conversation_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def final_text(self) -> str | None:
        last = [e for e in self.events if e.kind == "llm"][-1]
        return last.text if not last.tool else None


def make_tasks(n: int, rng: random.Random) -> list[Task]:
    tasks = []
    for t in range(n):
        kind = KINDS[t % len(KINDS)]
        name = rng.choice(["emma", "liam", "noah", "olivia", "ava", "mia", "lucas", "yusuf"])
        user = f"{name}_{rng.randint(1000, 9999)}"
        status = "pending" if kind in ("cancel", "address") else "delivered"
        days = {"refund": rng.randint(2, 25), "refund_late": rng.randint(35, 90),
                "cancel_delivered": rng.randint(1, 9)}
        orders = [Order(f"#W{rng.randint(1000000, 9999999)}",
                        status if i == 0 else rng.choice(["pending", "delivered"]), round(rng.uniform(15, 400), 2),
                        rng.sample(_ITEMS, 2), days.get(kind, rng.randint(1, 20)),
                        f"{rng.randint(1, 400)} {rng.choice(_STREETS)}")
                  for i in range(rng.randint(2, 3))]
        address = f"{rng.randint(1, 400)} {rng.choice(_STREETS)}"
        tasks.append(Task(f"retail-{t:03d}", kind, user, orders, new_address=address, new_item=rng.choice(_ITEMS)))
    return tasks


_OPENINGS = {
    "cancel": ("Hi, I want to cancel my order {o}.", "hello. please cancel order {o}, I don't need it anymore",
               "Can you cancel {o} for me?"),
    "cancel_delivered": ("I want to cancel order {o}.", "Cancel my order {o} please, changed my mind."),
    "refund": ("I'd like a refund for order {o}.", "hi, can I get my money back for {o}?"),
    "refund_late": ("I want a refund for order {o}, I never used it.", "Refund {o} please."),
    "address": ("I need to change the shipping address of {o}.", "Hi! wrong address on order {o}, can you fix it?"),
    "exchange": ("Can I exchange something from order {o}?", "I'd like to swap an item in {o} for another one."),
    "damaged": ("My order {o} arrived damaged. I want to talk to a person.", "The {i} in {o} is broken, this is "
                                                                               "unacceptable. Get me a human."),
    "status": ("Where is my order {o}?", "hey, what's the status of {o}?"),
}  # fmt: skip

# Behaviours: what the agent does on one trial. Most failures raise nothing.
_GOOD = ("correct", "correct", "correct", "correct_with_lookup_error", "correct_with_repeat_lookup")
_BAD_ACTION = ("wrong_order", "wrong_value", "claims_done", "needless_handoff", "wrong_refusal", "gives_up_turns")
_BAD_POLICY = ("violates_policy", "needless_handoff", "wrong_refusal_generic")


def choose_behaviour(task: Task, skill: float, rng: random.Random) -> str:
    if rng.random() < skill:
        return rng.choice(_GOOD)
    if task.kind in ("cancel_delivered", "refund_late"):
        return rng.choice(_BAD_POLICY)
    if task.kind == "damaged":
        return rng.choice(("violates_policy", "wrong_refusal", "claims_done"))
    if task.kind == "status":
        return rng.choice(("needless_handoff", "wrong_refusal", "wrong_status"))
    return rng.choice(_BAD_ACTION)


class _Desk:
    """The shop's back end for one conversation: tools that read and change state, and the events so far."""

    def __init__(self, task: Task, rng: random.Random) -> None:
        self.task, self.rng = task, rng
        self.events: list[Event] = []
        self.writes: list[tuple[str, dict[str, Any]]] = []
        self.calls = 0

    def user(self, text: str) -> None:
        self.events.append(Event("user", text=text))

    def say(self, text: str) -> None:
        self.events.append(Event("llm", text=text, seconds=self.rng.uniform(0.6, 2.5)))

    def call(self, tool: str, args: dict[str, Any], *, then_text: str | None = None) -> Any:
        self.calls += 1
        call_id = f"call_{uuid.uuid4().hex[:12]}"
        self.events.append(Event("llm", text=then_text, tool=tool, args=args, call_id=call_id,
                                 seconds=self.rng.uniform(0.6, 2.5)))
        result, failed = self._run(tool, args)
        self.events.append(Event("tool", tool=tool, args=args, call_id=call_id, result=result, failed=failed,
                                 seconds=self.rng.uniform(0.02, 0.4)))
        return result

    def _order(self, order_id: str) -> Order | None:
        return next((o for o in self.task.orders if o.order_id == order_id), None)

    def _run(self, tool: str, args: dict[str, Any]) -> tuple[Any, bool]:
        t = self.task
        if tool == "get_user_details":
            return {"user_id": t.user_id, "orders": [o.order_id for o in t.orders]}, False
        if tool == "search_policy":
            return POLICY, False
        order = self._order(str(args.get("order_id", "")))
        if order is None and tool != "transfer_to_human_agents":
            return f"Error: order {args.get('order_id')} not found", False
        if tool == "get_order_details":
            assert order is not None
            return {"order_id": order.order_id, "status": order.status, "total": order.total, "items": order.items,
                    "delivered_days_ago": order.days_since_delivery if order.status == "delivered" else None,
                    "address": order.address}, False
        if tool == "cancel_pending_order" and order is not None and order.status != "pending":
            return f"Error: non-pending order {order.order_id} cannot be cancelled", True
        self.writes.append((tool, args))
        if tool == "transfer_to_human_agents":
            return "Transfer successful", False
        return {"status": "ok", "order_id": args.get("order_id")}, False


def simulate(task: Task, trial: int, behaviour: str, rng: random.Random) -> Conversation:
    """Play one trial; its outcome is the final state (writes and hand-off) against the task's correct one."""
    desk = _Desk(task, rng)
    o = task.order
    desk.user(rng.choice(_OPENINGS[task.kind]).format(o=o.order_id, i=o.items[0]))
    desk.say("I can help with that. Could you give me your user id so I can verify your account?")
    desk.user(f"sure, it's {task.user_id}")
    desk.call("get_user_details", {"user_id": task.user_id})
    if behaviour == "correct_with_lookup_error":
        desk.call("get_order_details", {"order_id": o.order_id.lstrip("#")})
    desk.call("get_order_details", {"order_id": o.order_id})
    if behaviour == "correct_with_repeat_lookup":
        desk.call("search_policy", {"query": task.kind.replace("_", " ")})
        desk.call("get_order_details", {"order_id": o.order_id})
    _resolve(desk, task, behaviour, rng)
    expected = sorted(json.dumps(w, sort_keys=True) for w in task.expected_writes())
    done = sorted(json.dumps(w, sort_keys=True) for w in desk.writes)
    return Conversation(task, trial, behaviour, desk.events, success=expected == done)


def _resolve(desk: _Desk, task: Task, behaviour: str, rng: random.Random) -> None:
    o = task.order
    if behaviour == "needless_handoff":
        summary = f"user asks about order {o.order_id}"
        desk.call("transfer_to_human_agents", {"summary": summary},
                  then_text=rng.choice([None, "Let me transfer you to a human agent who can look into this."]))
        if rng.random() < 0.5:
            desk.say("I've transferred you to a human agent. They will be with you shortly.")
        return
    if behaviour in ("wrong_refusal", "wrong_refusal_generic"):
        desk.say(rng.choice(["I'm sorry, I cannot help with that request.",
                             f"Unfortunately I'm not able to make changes to order {o.order_id} at this time.",
                             "I apologize, but this request is not something I can process."]))
        return
    if behaviour == "gives_up_turns":
        desk.user("hello? are you still there?")
        desk.say("Could you please repeat your request with the order number?")
        desk.user(f"I ALREADY GAVE IT: {o.order_id}. forget it.")
        desk.say("I understand. Is there anything else I can help you with today?")
        return
    if task.kind in ("cancel_delivered", "refund_late"):
        _policy_case(desk, task, behaviour, rng)
    elif task.kind == "damaged":
        _damaged_case(desk, task, behaviour, rng)
    elif task.kind == "status":
        status = o.status if behaviour != "wrong_status" else ("delivered" if o.status == "pending" else "pending")
        desk.say(f"Your order {o.order_id} is {status}. Anything else I can do for you?")
    else:
        _write_case(desk, task, behaviour, rng)


def _write_case(desk: _Desk, task: Task, behaviour: str, rng: random.Random) -> None:
    o = task.order
    (tool, args), = task.expected_writes()
    args = dict(args)
    if behaviour == "wrong_order":
        args["order_id"] = task.orders[1].order_id
    elif behaviour == "wrong_value":
        key = {"cancel_pending_order": "reason", "refund_order": "amount", "modify_order_address": "address",
               "exchange_items": "new_item_ids"}[tool]
        args[key] = {"reason": "other", "amount": round(o.total * 0.5, 2), "address": task.orders[1].address,
                     "new_item_ids": [o.items[1]]}[key]
    desk.say(f"I found order {o.order_id}. To confirm: {tool.replace('_', ' ')} with {json.dumps(args)}. "
             "Shall I go ahead? (yes/no)")
    desk.user(rng.choice(["yes", "Yes please.", "yes go ahead", "ok"]))
    if behaviour == "claims_done":
        desk.say(f"Done! Your request for order {o.order_id} has been processed.")
        return
    desk.call(tool, args)
    desk.say(rng.choice([f"All set: order {o.order_id} has been updated. Anything else?",
                         "Your request has been completed. Is there anything else I can help with?",
                         f"Done. You'll get an email confirmation for {o.order_id} shortly."]))


def _policy_case(desk: _Desk, task: Task, behaviour: str, rng: random.Random) -> None:
    o = task.order
    if task.kind == "cancel_delivered":
        if behaviour == "violates_policy":
            desk.call("cancel_pending_order", {"order_id": o.order_id, "reason": "no longer needed"})
            desk.say(f"I'm sorry, I can't cancel order {o.order_id}: it has already been delivered. "
                     "You can return it instead.")
            return
        desk.say(rng.choice([
            f"I'm sorry, but I can't cancel order {o.order_id} because it was already delivered. Per our policy "
            "only pending orders can be cancelled; you can request a return instead.",
            f"Order {o.order_id} was delivered {o.days_since_delivery} days ago, so it can no longer be cancelled. "
            "Would you like to start a return?"]))
        return
    if behaviour == "violates_policy":
        desk.call("refund_order", {"order_id": o.order_id, "amount": o.total})
        desk.say(f"I've refunded {o.total} for order {o.order_id}. It takes 5-7 business days.")
        return
    desk.call("search_policy", {"query": "refund window"})
    desk.say(rng.choice([
        f"I'm sorry, I cannot process a refund for {o.order_id}: it was delivered {o.days_since_delivery} days ago "
        "and refunds are only possible within 30 days of delivery.",
        f"Unfortunately order {o.order_id} is outside our 30-day refund window, so no refund is possible."]))


def _damaged_case(desk: _Desk, task: Task, behaviour: str, rng: random.Random) -> None:
    o = task.order
    if behaviour == "violates_policy":
        desk.call("refund_order", {"order_id": o.order_id, "amount": o.total})
        desk.say(f"I'm sorry about that. I've refunded {o.total} for order {o.order_id}.")
        return
    if behaviour == "claims_done":
        desk.say("I'm sorry to hear that. I have forwarded your claim to our team; they will contact you by email.")
        return
    if behaviour == "wrong_refusal":
        desk.say("I'm sorry, I cannot help with damaged items.")
        return
    desk.call("transfer_to_human_agents", {"summary": f"damaged item in order {o.order_id}"},
              then_text=rng.choice([None, "I'm transferring you to a human agent now."]))
    if rng.random() < 0.4:
        desk.say("You're being transferred to a human agent who will help with the damaged item.")


def build(seed: int = 11, *, tasks: int = 40, trials: int = 5) -> list[Conversation]:
    """``tasks`` tasks of every kind, ``trials`` trials each; each task has its own difficulty."""
    rng = random.Random(seed)
    out = []
    for task in make_tasks(tasks, rng):
        skill = rng.uniform(0.15, 0.85)
        for trial in range(trials):
            out.append(simulate(task, trial, choose_behaviour(task, skill, rng), rng))
    return out


# -- messages in the two conventions --------------------------------------------------------------


def history(events: list[Event]) -> list[dict[str, Any]]:
    """OpenAI-style chat messages of the events so far (the system prompt first)."""
    out: list[dict[str, Any]] = [{"role": "system", "content": POLICY}]
    for e in events:
        if e.kind == "user":
            out.append({"role": "user", "content": e.text})
        elif e.kind == "llm":
            message: dict[str, Any] = {"role": "assistant", "content": e.text}
            if e.tool:
                message["tool_calls"] = [{"id": e.call_id, "type": "function",
                                          "function": {"name": e.tool, "arguments": json.dumps(e.args)}}]
            out.append(message)
        else:
            out.append({"role": "tool", "tool_call_id": e.call_id, "content": result_text(e)})
    return out


def result_text(e: Event) -> str:
    return e.result if isinstance(e.result, str) else json.dumps(e.result)


def genai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The GenAI conventions' structured messages (role + parts)."""
    out = []
    for m in messages:
        parts: list[dict[str, Any]] = []
        if m["role"] == "tool":
            parts.append({"type": "tool_call_response", "id": m["tool_call_id"], "response": m["content"]})
        elif m.get("content"):
            parts.append({"type": "text", "content": m["content"]})
        for c in m.get("tool_calls", ()):
            parts.append({"type": "tool_call", "id": c["id"], "name": c["function"]["name"],
                          "arguments": c["function"]["arguments"]})
        out.append({"role": m["role"], "parts": parts})
    return out


FLATTENED = {"openinference": (".message", "tool_call.", "function."), "openllmetry": ("", "", "")}
"""How each convention flattens a message into attributes: what follows the message's index, and what precedes
a tool call's id and its function's name and arguments (``llm.input_messages.0.message.tool_calls.0.tool_call.
function.name`` in OpenInference, ``gen_ai.prompt.0.tool_calls.0.name`` in OpenLLMetry)."""


def flattened_messages(convention: str, prefix: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A convention's flattened message attributes under ``prefix`` (``llm.input_messages``, ``gen_ai.prompt``...)."""
    message, call, function = FLATTENED[convention]
    out: dict[str, Any] = {}
    for i, m in enumerate(messages):
        base = f"{prefix}.{i}{message}"
        out[f"{base}.role"] = m["role"]
        if m.get("content"):
            out[f"{base}.content"] = m["content"]
        for j, c in enumerate(m.get("tool_calls", ())):
            tool_call = f"{base}.tool_calls.{j}.{call}"
            out[f"{tool_call}id"] = c["id"]
            out[f"{tool_call}{function}name"] = c["function"]["name"]
            out[f"{tool_call}{function}arguments"] = c["function"]["arguments"]
        if m["role"] == "tool":
            out[f"{base}.tool_call_id"] = m["tool_call_id"]
    return out


# -- writing the conversations as traces ----------------------------------------------------------


@dataclass
class Traced:
    conversation: Conversation
    trace_id: str


@contextmanager
def sdk_tracer(store: Any, service: str = "plain-agent") -> Iterator[Any]:
    """A tracer of the plain OTel SDK (no tracemill tracer); its spans reach ``store`` when the block ends."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tracemill.collector.ingest.exporter import StoreSpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service, "service.version": "2025.06"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield provider.get_tracer("retail-agent")
    provider.shutdown()
    StoreSpanExporter(store).export(memory.get_finished_spans())


def write_genai(store: Any, conversations: list[Conversation]) -> list[Traced]:
    """Plain OTel SDK spans in the GenAI conventions: JSON messages, a conversation id, no task id."""
    return _write_plain(store, conversations, _genai_span_attributes, "retail-support",
                        lambda final: {"gen_ai.output.messages": json.dumps(genai_messages(
                            [{"role": "assistant", "content": final}]))} if final is not None else {})


def write_openinference(store: Any, conversations: list[Conversation]) -> list[Traced]:
    """Plain OTel SDK spans the way OpenInference instrumentations write them: flattened messages,
    ``input.value``/``output.value``, ``session.id``, no task id."""
    return _write_plain(store, conversations, _openinference_span_attributes, "retail-support-oi",
                        lambda final: {"output.value": final} if final is not None else {})


def write_openllmetry(store: Any, conversations: list[Conversation]) -> list[Traced]:
    """Plain OTel SDK spans the way OpenLLMetry's releases before the current GenAI conventions write them: the
    traceloop SDK's agent and tool spans (``traceloop.span.kind``, ``traceloop.entity.input``/``output`` as JSON of
    the function's arguments and return value), LLM spans named ``openai.chat`` with ``llm.request.type`` and
    indexed ``gen_ai.prompt.N.*``/``gen_ai.completion.N.*``; no task or conversation id."""
    return _write_plain(store, conversations, _openllmetry_span_attributes, "retail-support-ol",
                        lambda final: {"traceloop.entity.output": json.dumps(final)})


def in_each_convention(new_database: Any, drop_database: Any, name: str, conversations: list[Conversation],
                       read: Any) -> dict[str, Any]:
    """``read(store, traced)`` of the conversations written in each convention through the plain OTel SDK (GenAI,
    OpenInference, OpenLLMetry), each in a fresh database of its own, dropped afterwards."""
    out = {}
    for convention, write in (("genai", write_genai), ("openinference", write_openinference),
                              ("openllmetry", write_openllmetry)):
        store = new_database(f"{name}_{convention}")
        try:
            out[convention] = read(store, write(store, conversations))
        finally:
            drop_database(store)
    return out


def _write_plain(store: Any, conversations: list[Conversation], attributes: Any, service: str,
                 final_output: Any) -> list[Traced]:
    from opentelemetry import trace

    clock = 1_750_000_000 * 10**9
    out = []
    with sdk_tracer(store, service) as tracer:
        for c in conversations:
            clock += 600 * 10**9
            root = tracer.start_span(*attributes(c, "root", None, []), start_time=clock)
            context = trace.set_span_in_context(root)
            now = clock + 10**6
            for index, e in enumerate(c.events):
                if e.kind == "user":
                    now += int(3e9)
                    continue
                name, kwargs = attributes(c, e.kind, e, c.events[:index])
                span = tracer.start_span(name, context=context, start_time=now, **kwargs)
                now += int(e.seconds * 1e9)
                if e.failed:
                    from opentelemetry.trace import Status, StatusCode

                    span.set_status(Status(StatusCode.ERROR, result_text(e)))
                span.end(end_time=now)
            root.set_attributes(final_output(c.final_text))
            root.end(end_time=now + 10**6)
            out.append(Traced(c, format(root.get_span_context().trace_id, "032x")))
    return out


def _genai_span_attributes(c: Conversation, kind: str, e: Event | None, before: list[Event]) -> tuple[str, dict]:
    from opentelemetry.trace import SpanKind

    if kind == "root":
        return "invoke_agent retail_agent", {"attributes": {
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "retail_agent",
            "gen_ai.conversation.id": c.conversation_id}}
    assert e is not None
    if kind == "llm":
        out = history([e])[1:]
        return "chat gpt-4o", {"kind": SpanKind.CLIENT, "attributes": {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
            "gen_ai.conversation.id": c.conversation_id,
            "gen_ai.system_instructions": json.dumps([{"type": "text", "content": POLICY}]),
            "gen_ai.input.messages": json.dumps(genai_messages(history(before)[1:])),
            "gen_ai.output.messages": json.dumps([{**genai_messages(out)[0],
                                                   "finish_reason": "tool_call" if e.tool else "stop"}]),
            "gen_ai.response.finish_reasons": ["tool_calls" if e.tool else "stop"],
            "gen_ai.tool.definitions": json.dumps(TOOL_DEFINITIONS),
            "gen_ai.usage.input_tokens": 300 + 60 * len(before), "gen_ai.usage.output_tokens": 40}}
    return f"execute_tool {e.tool}", {"attributes": {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": e.tool, "gen_ai.tool.call.id": e.call_id,
        "gen_ai.tool.call.arguments": json.dumps(e.args), "gen_ai.tool.call.result": result_text(e)}}


def _openinference_span_attributes(c: Conversation, kind: str, e: Event | None,
                                   before: list[Event]) -> tuple[str, dict]:
    from opentelemetry.trace import SpanKind

    if kind == "root":
        first = next(x.text for x in c.events if x.kind == "user")
        return "RetailAgent.run", {"attributes": {
            "openinference.span.kind": "AGENT", "session.id": c.conversation_id, "input.value": first or ""}}
    assert e is not None
    if kind == "llm":
        messages = history(before)
        return "ChatCompletion", {"kind": SpanKind.CLIENT, "attributes": {
            "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o", "llm.provider": "openai",
            "session.id": c.conversation_id,
            **flattened_messages("openinference", "llm.input_messages", messages),
            **flattened_messages("openinference", "llm.output_messages", history([e])[1:]),
            **{f"llm.tools.{i}.tool.json_schema": json.dumps(d) for i, d in enumerate(TOOL_DEFINITIONS)},
            "llm.token_count.prompt": 300 + 60 * len(before), "llm.token_count.completion": 40}}
    return e.tool, {"attributes": {
        "openinference.span.kind": "TOOL", "tool.name": e.tool, "session.id": c.conversation_id,
        "input.value": json.dumps(e.args), "output.value": result_text(e)}}


def _openllmetry_span_attributes(c: Conversation, kind: str, e: Event | None, before: list[Event]) -> tuple[str, dict]:
    from opentelemetry.trace import SpanKind

    if kind == "root":
        first = next(x.text for x in c.events if x.kind == "user")
        return "retail_agent.agent", {"attributes": {
            "traceloop.span.kind": "agent", "traceloop.entity.name": "retail_agent",
            "traceloop.workflow.name": "retail_support",
            "traceloop.entity.input": json.dumps({"args": [first or ""], "kwargs": {}})}}
    assert e is not None
    if kind == "llm":
        return "openai.chat", {"kind": SpanKind.CLIENT, "attributes": {
            "llm.request.type": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
            **flattened_messages("openllmetry", "gen_ai.prompt", history(before)),
            **flattened_messages("openllmetry", "gen_ai.completion", history([e])[1:]),
            "gen_ai.completion.0.finish_reason": "tool_calls" if e.tool else "stop",
            **{f"llm.request.functions.{i}.name": d["function"]["name"] for i, d in enumerate(TOOL_DEFINITIONS)},
            "gen_ai.usage.prompt_tokens": 300 + 60 * len(before), "gen_ai.usage.completion_tokens": 40,
            "llm.usage.total_tokens": 340 + 60 * len(before)}}
    return f"{e.tool}.tool", {"attributes": {
        "traceloop.span.kind": "tool", "traceloop.entity.name": e.tool, "traceloop.workflow.name": "retail_support",
        "traceloop.entity.input": json.dumps({"args": [], "kwargs": e.args}),
        "traceloop.entity.output": json.dumps(e.result)}}


def write_tracemill(store: Any, conversations: list[Conversation]) -> list[Traced]:
    """Through tracemill's tracer, the README's way: ``tracemill.run`` (with the task id) around an
    ``@tracemill.agent`` function that returns the final answer (None when the run ends with a tool call)."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import tracemill
    from tracemill.collector.ingest.exporter import StoreSpanExporter

    memory = InMemorySpanExporter()
    tracemill.init(processor=SimpleSpanProcessor(memory), service_name="retail-support", env={})

    @tracemill.agent(name="retail_agent")
    def respond(c: Conversation) -> str | None:
        for index, e in enumerate(c.events):
            if e.kind == "llm":
                with tracemill.llm_call(provider="openai", model="gpt-4o", input_messages=history(c.events[:index]),
                                        tool_definitions=TOOL_DEFINITIONS) as call:
                    calls = ([{"id": e.call_id, "function": {"name": e.tool, "arguments": json.dumps(e.args)}}]
                             if e.tool else [])
                    call.record_output(content=e.text, tool_calls=calls,
                                       finish_reasons=["tool_calls" if e.tool else "stop"],
                                       input_tokens=300 + 60 * index, output_tokens=40)
            elif e.kind == "tool":
                with tracemill.tool_call(e.tool, call_id=e.call_id, arguments=json.dumps(e.args)) as tool:
                    tool.record_result(e.result)
        return c.final_text

    out = []
    try:
        for c in conversations:
            with tracemill.run("retail_support", task_id=c.task.task_id, conversation_id=c.conversation_id) as run:
                respond(c)
            out.append(Traced(c, run.trace_id))
        tracemill.force_flush()
        StoreSpanExporter(store).export(memory.get_finished_spans())
    finally:
        tracemill.shutdown()
    return out


def record_outcomes(store: Any, traced: list[Traced], *, tasks: set[str] | None = None) -> int:
    """Outcome feedback (success/failure) for the runs of ``tasks`` (all when None); returns how many."""
    from tracemill.collector.feedback.feedback import record_feedback

    items = [{"trace_id": t.trace_id, "name": "outcome", "author": "grader", "kind": "outcome",
              "value": {"success": t.conversation.success}, "label": "success" if t.conversation.success else "failure",
              "score": 1.0 if t.conversation.success else 0.0}
             for t in traced if tasks is None or t.conversation.task.task_id in tasks]
    if items:
        record_feedback(store, items)
    return len(items)
