"""A hand-written agent loop traced with decorators only: no framework, no integration.

    python examples/decorators_agent.py

``@tracemill.agent`` makes each run one trace, ``@tracemill.tool`` records tool calls,
``@tracemill.step(decision=True)`` records a choice made in code, and ``tracemill.llm_call``
records a model call that no integration covers (here a scripted policy standing in for one).
"""

from __future__ import annotations

from _support import print_trace, start_tracing

import tracemill

SCRIPT = [
    {"tool_calls": [{"id": "call_1", "name": "lookup_order", "arguments": {"order_id": "A-17"}}]},
    {"tool_calls": [{"id": "call_2", "name": "refund", "arguments": {"order_id": "A-17", "amount": 20}}]},
    {"content": "Your order A-17 was refunded 20 EUR."},
]


@tracemill.tool
def lookup_order(order_id: str) -> dict:
    """Find an order."""
    return {"order_id": order_id, "status": "damaged", "paid": 20}


@tracemill.tool
def refund(order_id: str, amount: int) -> str:
    """Refund an order."""
    return f"refunded {amount} on {order_id}"


@tracemill.step(decision=True, options=["answer", "escalate"])
def route(question: str) -> str:
    """A decision made in code: which path the request takes."""
    return "escalate" if "lawyer" in question else "answer"


def scripted_model(messages: list[dict], turn: int) -> dict:
    """Stands in for any model client; the manual API records the call as a GenAI span."""
    reply = SCRIPT[turn]
    with tracemill.llm_call(provider="scripted", model="policy-v1", input_messages=messages) as call:
        call.record_output(content=reply.get("content"), tool_calls=reply.get("tool_calls", ()),
                           finish_reasons=["tool_calls" if "tool_calls" in reply else "stop"],
                           input_tokens=15 * len(messages), output_tokens=8)
    return reply


@tracemill.agent(name="support-agent", version="1")
def support_agent(question: str) -> str:
    if route(question) == "escalate":
        return "A human will call you back."
    tools = {"lookup_order": lookup_order, "refund": refund}
    messages = [{"role": "user", "content": question}]
    for turn in range(len(SCRIPT)):
        reply = scripted_model(messages, turn)
        if "tool_calls" not in reply:
            return reply["content"]
        calls = [{"id": c["id"], "function": {"name": c["name"], "arguments": c["arguments"]}}
                 for c in reply["tool_calls"]]
        messages.append({"role": "assistant", "tool_calls": calls})
        for call in reply["tool_calls"]:
            result = tools[call["name"]](**call["arguments"])
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": str(result)})
    return "I could not finish."


def main() -> None:
    start_tracing("decorators-example")
    print(support_agent("My order A-17 arrived damaged, can I get a refund?"))
    print_trace()


if __name__ == "__main__":
    main()
