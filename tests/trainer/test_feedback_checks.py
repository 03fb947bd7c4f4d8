"""What feedback must say before anything is stored, checked against the spans it names
(``record_feedback``, through the public ``tracemill.feedback`` façade)."""

from __future__ import annotations

import pytest

import tracemill.feedback as feedback
from tracemill.errors import ConfigError, SpanNotFoundError, TraceNotFoundError

from .conftest import BAD, GOOD


def _count(store) -> int:
    return store.query("SELECT count() FROM tracemill_feedback").result_rows[0][0]


@pytest.fixture
def run(agent):
    """One run of the agent: its trace id and its LLM spans (lookup, refund, answer)."""
    trace_id = agent.run("refund-A17", BAD)
    return trace_id, agent.llm_spans(trace_id)


def _non_llm_span(store, trace_id: str) -> str:
    return store.query("SELECT SpanId FROM otel_traces WHERE TraceId = {t:String} AND SpanName = 'execute_tool refund'",
                       {"t": trace_id}).result_rows[0][0]


@pytest.mark.parametrize(
    ("tool_calls", "message"),
    [
        ([{"name": "cancel_order", "arguments": {"order_id": "A-17"}}],
         r"tool call 0 names the tool 'cancel_order', which span [0-9a-f]{16} did not offer "
         r"\(its tools: lookup_order, refund\)"),
        ([{"name": "refund", "arguments": '{"order_id": "A-17", "amount": '}],
         r"tool call 0 \(refund\): the argument text is not JSON: Expecting value"),
        ([{"name": "refund", "arguments": {"order_id": "A-17"}}],
         r"tool call 0 \(refund\): the arguments do not fit the tool's parameters: arguments: 'amount' is a "
         r"required property"),
        ([{"name": "refund", "arguments": {"order_id": "A-17", "amount": "twenty"}}],
         r"arguments.amount: 'twenty' is not of type 'number'"),
        ([{"name": "refund", "arguments": {"order_id": "A-17", "amount": 20, "reason": "bored"}}],
         r"arguments.reason: 'bored' is not one of \['damaged', 'late', 'other'\]"),
        ([{"name": "refund", "arguments": {"order_id": "A-17", "amount": -5}}],
         r"arguments.amount: -5 is less than the minimum of 0"),
        ([{"name": "lookup_order", "arguments": {"order_id": "A-17", "verbose": True}}],
         r"arguments: Additional properties are not allowed \('verbose' was unexpected\)"),
        ([{"arguments": {}}], r"tool call 0 needs a tool name"),
    ],
)
def test_correction_with_a_bad_tool_call_is_refused_naming_it(store, run, tool_calls, message):
    trace_id, steps = run
    with pytest.raises(ConfigError, match=r"^item 0: .*" + message):
        feedback.correct(trace_id, steps[1]["span_id"], tool_calls=tool_calls, author="alice", store=store)
    assert _count(store) == 0


def test_correction_of_a_span_that_is_not_an_llm_call_is_refused(store, run):
    trace_id, _ = run
    tool_span = _non_llm_span(store, trace_id)
    with pytest.raises(ConfigError, match=rf"span {tool_span} \('execute_tool refund'\) of trace {trace_id} is not an "
                                          r"LLM span: it recorded no gen_ai.output.messages"):
        feedback.correct(trace_id, tool_span, output="no", author="alice", store=store)
    with pytest.raises(ConfigError, match=r"a correction gives an output text, tool calls, or both"):
        feedback.correct(trace_id, run[1][2]["span_id"], output="  ", author="alice", store=store)
    with pytest.raises(ConfigError, match=r"a correction names the LLM span it corrects"):
        feedback.record([{"trace_id": trace_id, "name": "correction", "author": "a", "kind": "correction",
                          "value": {"output": "x"}}], store=store)
    assert _count(store) == 0


def test_tool_call_arguments_given_as_json_text_are_stored_as_json(store, run):
    trace_id, steps = run
    stored = feedback.correct(trace_id, steps[1]["span_id"], author="alice", store=store,
                              tool_calls=[{"name": "refund", "arguments": '{"order_id": "A-17", "amount": 20}'}])
    assert stored["value"] == {"output": None, "tool_calls": [
        {"id": "call_0", "name": "refund", "arguments": {"order_id": "A-17", "amount": 20}}]}
    assert feedback.list(trace_id=trace_id, store=store)[0]["value"] == stored["value"]
    openai_shape = {"id": "c9", "type": "function",
                    "function": {"name": "refund", "arguments": '{"order_id": "A-17", "amount": 5}'}}
    again = feedback.correct(trace_id, steps[1]["span_id"], author="bob", store=store, tool_calls=[openai_shape])
    assert again["value"]["tool_calls"] == [{"id": "c9", "name": "refund", "arguments": {"order_id": "A-17",
                                                                                          "amount": 5}}]


def test_preference_needs_two_llm_spans_that_saw_the_same_input(store, agent, run):
    trace_id, steps = run
    other = agent.run("refund-A17", GOOD)
    other_steps = agent.llm_spans(other)
    with pytest.raises(ConfigError, match=rf"item 0: spans {steps[1]['span_id']} and {steps[2]['span_id']} answered "
                                          "different inputs"):
        feedback.prefer(trace_id, steps[1]["span_id"], steps[2]["span_id"], author="bob", store=store)
    with pytest.raises(ConfigError, match=r"is not an LLM span"):
        feedback.prefer(trace_id, steps[1]["span_id"], _non_llm_span(store, trace_id), author="bob", store=store)
    with pytest.raises(SpanNotFoundError, match=rf"item 0: trace {trace_id} has no span 00000000000000aa"):
        feedback.prefer(trace_id, steps[1]["span_id"], "00000000000000aa", author="bob", store=store)
    assert _count(store) == 0
    stored = feedback.prefer(other, other_steps[1]["span_id"], steps[1]["span_id"], worse_trace_id=trace_id[:10],
                             author="bob", store=store)
    assert stored["value"] == {"better": other_steps[1]["span_id"], "worse": steps[1]["span_id"],
                               "worse_trace": trace_id}


def test_outcomes_and_flag_reviews_follow_the_shared_conventions(store, run):
    trace_id, steps = run
    success = feedback.outcome(trace_id, success=False, author="ci", store=store)
    assert (success["kind"], success["name"], success["span_id"]) == ("outcome", "outcome", "")
    assert (success["label"], success["score"], success["value"]) == ("failure", 0.0, {"success": False})
    reward = feedback.outcome(trace_id, reward=0.4, author="judge", store=store)
    assert (reward["label"], reward["score"], reward["value"]) == ("", 0.4, {"reward": 0.4})
    with pytest.raises(ConfigError, match="exactly one"):
        feedback.outcome(trace_id, success=True, reward=1.0, store=store)
    with pytest.raises(ConfigError, match=r"item 0: an outcome is feedback on the whole trace"):
        feedback.record([{"trace_id": trace_id, "span_id": steps[0]["span_id"], "name": "outcome", "author": "a",
                          "kind": "outcome", "value": {"success": True}}], store=store)
    review = {"trace_id": trace_id, "span_id": steps[1]["span_id"], "name": "flag_review", "author": "a",
              "kind": "label", "label": "confirmed", "value": {"detector": "tool_error"}}
    assert feedback.record([review], store=store)[0]["label"] == "confirmed"
    with pytest.raises(ConfigError, match=r"a flag_review label is one of confirmed, false_positive \(got 'yes'\)"):
        feedback.record([{**review, "label": "yes"}], store=store)


def test_a_refused_item_stores_nothing_of_its_write(store, run):
    trace_id, steps = run
    good = {"trace_id": trace_id, "span_id": steps[2]["span_id"], "name": "correction", "author": "alice",
            "kind": "correction", "value": {"output": "Refunded 20 EUR."}}
    bad = {**good, "span_id": steps[1]["span_id"], "value": {"tool_calls": [{"name": "refund", "arguments": {}}]}}
    with pytest.raises(ConfigError, match=r"^item 1: tool call 0 \(refund\)"):
        feedback.record([good, bad], store=store)
    with pytest.raises(TraceNotFoundError, match=r"item 1: no trace id starts with 'abcdef'"):
        feedback.record([good, {**good, "trace_id": "abcdef"}], store=store)
    assert _count(store) == 0
    assert feedback.record([good], store=store)[0]["value"] == {"output": "Refunded 20 EUR.", "tool_calls": []}


def test_an_ambiguous_trace_prefix_is_refused(store):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from tracemill.collector.ingest.rows import request_to_rows

    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for n in (1, 2):
        spans.add(name="run", trace_id=bytes.fromhex(f"abcdef{n:02x}" + "0" * 24), span_id=bytes([n] * 8),
                  start_time_unix_nano=1, end_time_unix_nano=2)
    store.insert_spans(request_to_rows(request))
    with pytest.raises(TraceNotFoundError, match=r"item 0: trace id prefix 'abcdef' is ambiguous: abcdef01.*, "
                                                 r"abcdef02.*; give more digits"):
        feedback.outcome("abcdef", success=True, author="a", store=store)
    assert _count(store) == 0
    assert feedback.outcome("abcdef01", success=True, author="a", store=store)["trace_id"].startswith("abcdef01")
