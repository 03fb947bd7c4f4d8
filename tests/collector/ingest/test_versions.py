"""Configuration versions at ingest: spans from plain OTel GenAI instrumentation get the tracer's version."""

from __future__ import annotations

import json

from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tracemill
from tracemill.collector.ingest.exporter import StoreSpanExporter
from tracemill.collector.ingest.otlp import decode_request
from tracemill.collector.ingest.rows import request_to_rows, sdk_spans_to_request
from tracemill.collector.ingest.versions import record_versions
from tracemill.collector.store.schema_versions import CONFIG_VERSIONS_TABLE
from tracemill.tracer.versions.config_version import CONFIG_VERSION

SYSTEM = "You are a travel agent. Book only refundable fares."
TOOLS = [{"type": "function", "name": "search_flights", "description": "Find flights",
          "parameters": {"type": "object", "properties": {"to": {"type": "string"}}}}]


def _plain_genai_spans(system: str = SYSTEM) -> list:
    """An LLM span as plain OTel GenAI instrumentation writes it: attributes only, no tracemill."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("plain.genai").start_as_current_span("chat gpt-4o", kind=trace.SpanKind.CLIENT) as span:
        span.set_attributes({
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
            "gen_ai.request.temperature": 0.2, "gen_ai.request.max_tokens": 300,
            "gen_ai.input.messages": json.dumps([
                {"role": "system", "parts": [{"type": "text", "content": system}]},
                {"role": "user", "parts": [{"type": "text", "content": "Oslo to Rome, Friday"}]}]),
            "gen_ai.tool.definitions": json.dumps(TOOLS),
        })
    provider.shutdown()
    return list(memory.get_finished_spans())


def _tracer_version(spans) -> str:
    with tracemill.llm_call(provider="openai", model="gpt-4o", system_instructions=SYSTEM, tool_definitions=TOOLS,
                            temperature=0.2, max_tokens=300, input_messages="Bergen to Paris"):
        pass
    return spans.finished[-1].attributes[CONFIG_VERSION]


def _stamped(payload: bytes) -> dict[str, str]:
    request = ExportTraceServiceRequest.FromString(payload)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    return {kv.key: kv.value.string_value for kv in span.attributes}


def test_plain_otel_span_gets_the_tracer_version_at_ingest(spans):
    body = sdk_spans_to_request(_plain_genai_spans()).SerializeToString()
    decoded = decode_request(body, content_type="application/x-protobuf", max_bytes=1 << 20)
    assert _stamped(decoded.payload)[CONFIG_VERSION] == _tracer_version(spans)


def test_changed_system_prompt_at_ingest_gives_another_version():
    def version(system: str) -> str:
        body = sdk_spans_to_request(_plain_genai_spans(system)).SerializeToString()
        return _stamped(decode_request(body, content_type="application/x-protobuf", max_bytes=1 << 20).payload)[
            CONFIG_VERSION]

    assert version(SYSTEM) != version(SYSTEM + " Prefer trains.")


def test_span_with_a_version_is_kept_byte_for_byte():
    request = sdk_spans_to_request(_plain_genai_spans())
    added = request.resource_spans[0].scope_spans[0].spans[0].attributes.add()
    added.key, added.value.string_value = CONFIG_VERSION, "abc123abc123"
    body = request.SerializeToString()
    assert decode_request(body, content_type="application/x-protobuf", max_bytes=1 << 20).payload == body


def test_versions_table_holds_each_version_once_with_its_content(store):
    exporter = StoreSpanExporter(store)
    exporter.export(_plain_genai_spans())
    exporter.export(_plain_genai_spans())
    exporter.export(_plain_genai_spans(SYSTEM + " Prefer trains."))
    record_versions(store)
    assert record_versions(store) == 0  # nothing new the second time
    rows = store.query(f"SELECT Version, Model, Content FROM {CONFIG_VERSIONS_TABLE} FINAL").result_rows
    assert len(rows) == 2
    contents = sorted((json.loads(content) for _, _, content in rows), key=lambda c: len(c["system"][0]))
    assert [c["system"] for c in contents] == [[SYSTEM], [SYSTEM + " Prefer trains."]]
    assert contents[0]["tools"][0]["name"] == "search_flights"
    assert contents[0]["params"] == {"gen_ai.request.max_tokens": 300, "gen_ai.request.temperature": 0.2}
    assert {model for _, model, _ in rows} == {"gpt-4o"}


def _conversation_span(turns: int, system_in_messages: bool) -> ExportTraceServiceRequest:
    """A plain GenAI span of one configuration on its ``turns``-th turn (the conversation grows)."""
    messages = [{"role": "user", "parts": [{"type": "text", "content": f"turn {i}"}]} for i in range(turns)]
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                  "gen_ai.input.messages": json.dumps(messages), "gen_ai.tool.definitions": json.dumps(TOOLS)}
    if system_in_messages:
        messages.insert(0, {"role": "system", "parts": [{"type": "text", "content": SYSTEM}]})
        attributes["gen_ai.input.messages"] = json.dumps(messages)
    else:
        attributes["gen_ai.system_instructions"] = json.dumps([{"type": "text", "content": SYSTEM}])
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("plain.genai").start_as_current_span("chat", kind=trace.SpanKind.CLIENT) as span:
        span.set_attributes(attributes)
    provider.shutdown()
    return sdk_spans_to_request(list(memory.get_finished_spans()))


def test_versions_of_a_growing_conversation_match_the_uncached_computation():
    """The cache leaves out input messages that name no system role; the versions must not change."""
    from tracemill.collector.ingest.versions import stamp_request
    from tracemill.tracer.versions.config_version import attributes_content, version_of

    for system_in_messages in (False, True):
        versions = set()
        for turns in (1, 2, 5):
            request = _conversation_span(turns, system_in_messages)
            span = request.resource_spans[0].scope_spans[0].spans[0]
            expected = version_of(attributes_content({kv.key: kv.value.string_value for kv in span.attributes}))
            assert stamp_request(request) == 1
            versions.add(_stamped(request.SerializeToString())[CONFIG_VERSION])
            assert versions == {expected}
        assert len(versions) == 1  # one configuration, however long the conversation


class _CountingStore:
    """The real store, counting the queries made through it."""

    def __init__(self, store) -> None:
        self.store, self.queries = store, 0

    def query(self, *args, **kwargs):
        self.queries += 1
        return self.store.query(*args, **kwargs)

    def insert(self, *args, **kwargs):
        return self.store.insert(*args, **kwargs)


def test_recorder_looks_again_only_for_versions_the_receiver_saw(store):
    from tracemill.collector.ingest.versions import SIGHTINGS, VersionRecorder, stamp_request

    SIGHTINGS.take()
    counting = _CountingStore(store)
    recorder = VersionRecorder(interval_s=0, full_interval_s=3600)

    def ingest(system: str) -> None:
        request = sdk_spans_to_request(_plain_genai_spans(system))
        stamp_request(request)
        store.insert_spans(request_to_rows(request))
        recorder.after_insert(counting)

    def stored() -> int:
        return store.query(f"SELECT count() FROM {CONFIG_VERSIONS_TABLE} FINAL").result_rows[0][0]

    ingest(SYSTEM)  # the first look is a full one
    assert stored() == 1
    first = counting.queries
    ingest(SYSTEM)  # the same version again: nothing to look for
    assert counting.queries == first
    ingest(SYSTEM + " Prefer trains.")  # a new version: looked for at once, and stored
    assert counting.queries > first
    assert stored() == 2
