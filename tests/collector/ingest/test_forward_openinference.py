"""``tracemill serve --forward URL --openinference``: forwarded spans carry OpenInference attributes."""

from __future__ import annotations

import json

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.servers import make_request, otlp_capture, start_server
from tracemill.collector.ingest.openinference_otlp import add_openinference


def _genai_request() -> ExportTraceServiceRequest:
    """Two spans as tracemill's tracer sends them: an LLM call and the tool it asked for, plus a plain span."""
    request = make_request(3, seed=91, service="weather-agent")
    llm, tool, plain = request.resource_spans[0].scope_spans[0].spans
    messages = [{"role": "user", "parts": [{"type": "text", "content": "Weather in Rome?"}]}]
    output = [{"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "weather",
                                               "arguments": {"city": "Rome"}}]}]
    for span, attributes in (
        (llm, {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m-1", "gen_ai.input.messages":
               json.dumps(messages), "gen_ai.output.messages": json.dumps(output), "gen_ai.usage.input_tokens": 5,
               "gen_ai.usage.output_tokens": 3}),
        (tool, {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "weather",
                "gen_ai.tool.call.arguments": '{"city":"Rome"}', "gen_ai.tool.call.result": '"sunny"'}),
    ):
        for key, value in attributes.items():
            any_value = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
            span.attributes.append(KeyValue(key=key, value=any_value))
    del plain
    return request


def _attributes(span) -> dict:
    out = {}
    for kv in span.attributes:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which)
    return out


def test_forwarded_request_gains_openinference_attributes_and_a_project():
    converted = ExportTraceServiceRequest.FromString(add_openinference(_genai_request().SerializeToString()))
    resource = {kv.key: kv.value.string_value for kv in converted.resource_spans[0].resource.attributes}
    assert resource["openinference.project.name"] == "weather-agent"
    llm, tool, plain = (_attributes(s) for s in converted.resource_spans[0].scope_spans[0].spans)
    assert llm["openinference.span.kind"] == "LLM" and llm["llm.model_name"] == "m-1"
    assert llm["llm.input_messages.0.message.content"] == "Weather in Rome?"
    assert llm["llm.output_messages.0.message.tool_calls.0.tool_call.function.name"] == "weather"
    assert llm["llm.token_count.total"] == 8
    assert (tool["openinference.span.kind"], tool["tool.name"], tool["output.value"]) == ("TOOL", "weather", "sunny")
    assert json.loads(tool["input.value"]) == {"city": "Rome"}
    assert "openinference.span.kind" not in plain


def test_request_without_agent_spans_is_forwarded_byte_for_byte():
    payload = make_request(4, seed=92).SerializeToString()
    assert add_openinference(payload) == payload


def test_serve_forward_openinference_converts_what_it_forwards_and_stores_the_original(tmp_path, servers):
    with otlp_capture() as target:
        server = start_server(tmp_path, args=("--forward", target.url, "--openinference"))
        servers.append(server)
        request = _genai_request()
        assert server.post(request.SerializeToString()).status_code == 200
        (forwarded,) = target.wait()
        llm = _attributes(ExportTraceServiceRequest.FromString(forwarded).resource_spans[0].scope_spans[0].spans[0])
        assert llm["openinference.span.kind"] == "LLM"
        server.wait_inserted(3)
        trace_id = request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
        stored = server.client.get(f"/api/traces/{trace_id}").json()
        assert "openinference.span.kind" not in json.dumps(stored)
