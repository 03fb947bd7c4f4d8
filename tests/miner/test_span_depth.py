"""The span tree's depth, a feature of the scorer, follows parent links inside ClickHouse (capped at 7)."""

from __future__ import annotations

from typing import Any

from tracemill.miner.feature_cache import load_features


def _chains(store: Any, support: Any, lengths: list[int]) -> list[str]:
    """One trace per length: a chain of nested spans that deep, plus a sibling of the root's first child."""
    from opentelemetry import trace

    traces = []
    with support.sdk_tracer(store) as tracer:
        for length in lengths:
            spans = [tracer.start_span("invoke_agent root")]
            for level in range(1, length):
                spans.append(tracer.start_span(f"step {level}", context=trace.set_span_in_context(spans[-1])))
            tracer.start_span("execute_tool sibling", context=trace.set_span_in_context(spans[0])).end()
            for span in reversed(spans):
                span.end()
            traces.append(format(spans[0].get_span_context().trace_id, "032x"))
    return traces


def test_depth_counts_nested_spans_up_to_seven(store: Any, support: Any):
    traces = _chains(store, support, [1, 2, 3, 5, 9])
    frame = load_features(store, "1", {}, loop_min=3)
    depth = dict(zip(frame["trace_id"], frame["depth"], strict=True))
    assert [depth[t] for t in traces] == [2, 2, 3, 5, 7]  # a lone root has its sibling child: depth 2


def test_a_parent_outside_the_trace_counts_as_one_level(store: Any, support: Any):
    """A root whose parent lives in another service's store (a remote parent) sits one level down."""
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    remote = SpanContext(trace_id=0x5EED, span_id=0xF00D, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with support.sdk_tracer(store) as tracer:
        root = tracer.start_span("invoke_agent root", context=trace.set_span_in_context(NonRecordingSpan(remote)))
        child = tracer.start_span("step", context=trace.set_span_in_context(root))
        tracer.start_span("execute_tool lookup", context=trace.set_span_in_context(child)).end()
        child.end()
        root.end()
    frame = load_features(store, "1", {}, loop_min=3)
    depth = dict(zip(frame["trace_id"], frame["depth"], strict=True))
    assert depth[format(0x5EED, "032x")] == 4  # the remote parent, the root, the step, the tool
