"""The run's final action: the root's output, else the outermost agent's, else the last LLM message; a run may
end with a tool call, and a hand-off is its own signal."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tracemill
import tracemill.miner as miner
from tracemill.collector.ingest.exporter import StoreSpanExporter
from tracemill.miner.final_action import COLUMNS, final_action

REFUSAL = "I'm sorry, I cannot help with that request."


def _traced_agents(store: Any, answers: list[str | None], *, hand_off: bool, content: bool = True) -> list[str]:
    """Runs of an agent answering ``answers``; without ``content``, recorded as the OTel GenAI instrumentations
    record them by default: no messages, no inputs or outputs."""
    memory = InMemorySpanExporter()
    tracemill.init(processor=SimpleSpanProcessor(memory), service_name="desk", env={})

    @tracemill.agent(name="desk_agent", capture_input=content, capture_output=content)
    def answer(text: str | None) -> str | None:
        asked = [{"role": "user", "content": "help"}] if content else None
        with tracemill.llm_call(provider="p", model="m", input_messages=asked) as c:
            calls = [{"id": "c1", "function": {"name": "transfer_to_human_agents", "arguments": '{"summary": "x"}'}}]
            c.record_output(content=text if content else None, tool_calls=calls if hand_off else [],
                            finish_reasons=["tool_calls" if hand_off else "stop"])
        if hand_off:
            with tracemill.tool_call("transfer_to_human_agents", call_id="c1", arguments='{"summary": "x"}') as t:
                t.record_result("Transfer successful")
        return None if hand_off else text

    ids = []
    try:
        for i, text in enumerate(answers):
            with tracemill.run("desk", task_id=f"t{i}") as run:
                answer(text)
            ids.append(run.trace_id)
        tracemill.force_flush()
        StoreSpanExporter(store).export(memory.get_finished_spans())
    finally:
        tracemill.shutdown()
    return ids


def test_run_around_an_agent_returning_a_refusal_is_give_up(store: Any):
    # The LLM's own message says nothing; the refusal is only what the agent function returned.
    ids = _traced_agents(store, [REFUSAL] * 8, hand_off=False)
    store.command("ALTER TABLE otel_traces UPDATE SpanAttributes = mapUpdate(SpanAttributes, "
                  "map('gen_ai.output.messages', '[]')) WHERE SpanName LIKE 'chat%' SETTINGS mutations_sync = 1")
    result = miner.mine(store)
    flagged = {f.trace_id for f in result.flags if f.detector == "give_up"}
    assert flagged == set(ids)
    assert not any(f.detector == "empty_output" for f in result.flags)


def test_empty_output_needs_a_run_that_recorded_its_request(new_database: Any, drop_database: Any):
    recorded, unrecorded = new_database("empty_recorded"), new_database("empty_unrecorded")
    try:
        ids = _traced_agents(recorded, [None] * 5, hand_off=False)
        assert {f.trace_id for f in miner.mine(recorded).flags if f.detector == "empty_output"} == set(ids)
        # Traced without message content, runs that answered look like runs that did not: no flag.
        _traced_agents(unrecorded, ["Your order ships Monday."] * 5, hand_off=False, content=False)
        result = miner.mine(unrecorded)
        assert result.traces == 5 and not [f for f in result.flags if f.detector == "empty_output"]
    finally:
        drop_database(recorded)
        drop_database(unrecorded)


def test_a_run_ending_with_a_hand_off_call_is_handoff_not_empty_output(store: Any):
    ids = _traced_agents(store, [None] * 6, hand_off=True)
    result = miner.mine(store)
    by_detector = {(f.trace_id, f.detector) for f in result.flags}
    assert {d for _, d in by_detector} == {"handoff"}
    assert {t for t, _ in by_detector} == set(ids)
    flag = next(f for f in result.flags if f.detector == "handoff")
    assert flag.category == "signal" and "transfer_to_human_agents" in flag.evidence
    assert result.counts["failure"] == 0


def _row(**values: str | int) -> dict[str, Any]:
    return {**dict.fromkeys(COLUMNS, ""), "ends_with_tool": 0, **values}


def test_final_action_reads_each_convention():
    genai = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "Your order ships Monday."}]}])
    assert final_action(_row(last_llm_output=genai)).text == "Your order ships Monday."
    # OpenInference: flattened messages, tool call of the last LLM output.
    oi = final_action(_row(last_flat_tool="refund_order", last_flat_args='{"order_id": "#W1"}'))
    assert (oi.kind, oi.tool, oi.arguments, oi.handoff) == ("tool_call", "refund_order", '{"order_id": "#W1"}', False)
    # The root's output wins over the agent's, which wins over the LLM's.
    action = final_action(_row(root_output="root", agent_output="agent", last_flat_text="llm"))
    assert action.text == "root"
    assert final_action(_row(root_output="null", agent_output='"agent"', last_flat_text="llm")).text == "agent"
    # A hand-off said in words, and a refusal that is not one.
    assert final_action(_row(last_flat_text="I'm transferring you to a human agent now.")).handoff
    refusal = final_action(_row(last_flat_text="I can't process a refund: it is past 30 days."))
    assert refusal.gives_up and not refusal.handoff
    # Contractions, with either apostrophe.
    for refusal_text in ("I'm unable to process that.", "I can’t help with that.",
                         "Sorry, I’m not able to process this refund.", "I couldn’t complete the booking."):
        assert final_action(_row(last_flat_text=refusal_text)).gives_up, refusal_text
    assert not final_action(_row(last_flat_text="I can’t wait to help you again!")).gives_up
    # A run whose last step is a tool run ended with that tool.
    tail = final_action(_row(ends_with_tool=1, last_tool="escalate", last_tool_args="{}"))
    assert (tail.kind, tail.handoff) == ("tool_call", True)
    assert final_action(_row()).kind == "none"


def test_final_action_reads_messages_of_any_shape():
    def last_llm(value: Any) -> Any:
        return final_action(_row(last_llm_output=value if isinstance(value, str) else json.dumps(value)))

    text = {"type": "text", "content": "I cannot help with that."}
    call = {"type": "tool_call", "name": "transfer_to_human", "arguments": {"why": "refund"}}
    # GenAI messages, one message alone, a plain content string, and parts of other kinds skipped.
    assert last_llm([{"role": "assistant", "parts": [text]}]).gives_up
    assert last_llm({"role": "assistant", "parts": [text]}).text == "I cannot help with that."
    assert last_llm([{"role": "assistant", "content": "Done."}]).text == "Done."
    odd = last_llm([{"role": "assistant", "parts": ["loose", 5, {"type": 7}, text, call]}])
    assert (odd.kind, odd.text, odd.tool, odd.arguments, odd.handoff) == (
        "tool_call", "I cannot help with that.", "transfer_to_human", '{"why": "refund"}', True)
    assert last_llm([{"role": "assistant", "parts": "not a list", "content": "Fine."}]).text == "Fine."
    # A message that is not an object is no GenAI message: the output is read as text.
    assert last_llm(["a string", {"parts": [text]}]).text == '["a string", {"parts": [{"type": "text", "content": ' \
                                                             '"I cannot help with that."}]}]'
    # Malformed JSON after a part of an unusual shape, and malformed JSON alone: read as text too.
    for broken in ('[{"parts": ["loose", {"type": "text", "content": "x"}]}, oops]', '[{"parts": ['):
        assert last_llm(broken).text == broken


def test_the_give_up_or_hand_off_search_looks_ahead_for_the_letters_its_matches_start_with():
    from tracemill.miner import final_action as module

    plain = module.re.compile("(?i)(?:" + module.HANDOFF_PATTERN.removeprefix("(?i)") + ")|(?:"
                              + module.GIVE_UP_PATTERN.removeprefix("(?i)") + ")")
    assert module._EITHER.pattern.startswith("(?i)(?=[cefghimstu])")
    texts = ["I cannot help.", "ESCALATING to a human agent", "Transferring you to support", "We gave up.",
             "max steps", "STOPPED DUE TO limits", "İ cannot help", "Let me check", "human review", "", "I",
             "thanks, I couldn’t finish", "unable to continue", "connect with the operator"]
    for text in texts:
        assert bool(module._EITHER.search(text)) == bool(plain.search(text)), text
    # Where the first letters are not literal characters, the pattern is kept as it is.
    assert module._with_first_letters(r"(?i)\b\w+ up").pattern == r"(?i)\b\w+ up"
    assert module._with_first_letters(r"(?i)\b(a|b)c|d").pattern == r"(?i)(?=[abd])(?:\b(a|b)c|d)"
