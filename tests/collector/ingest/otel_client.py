"""A separate client process for the server tests: sends spans with the real OTel SDK, prints what it sent.

``python otel_client.py sdk URL`` uses the plain OpenTelemetry OTLP/HTTP exporter, as any
OTel-instrumented program would; ``python otel_client.py tracemill URL`` uses
``tracemill.init(endpoint=URL)`` and the decorators. Either way the last line of output is a
JSON description of the spans sent, with hex ids, for the test to compare with the store.
"""

from __future__ import annotations

import json
import sys


def send_with_sdk(url: str, token: str | None) -> list[dict]:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

    headers = {"Authorization": f"Bearer {token}"} if token else None
    exporter = OTLPSpanExporter(endpoint=url.rstrip("/") + "/v1/traces", headers=headers)
    results: list[SpanExportResult] = []
    export = exporter.export

    def recording_export(spans):
        result = export(spans)
        results.append(result)
        return result

    exporter.export = recording_export  # type: ignore[method-assign]
    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-client", "deployment.environment": "t"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("sdk.client.tests", "2.0.1")
    with tracer.start_as_current_span("invoke_agent planner", kind=trace.SpanKind.SERVER) as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        with tracer.start_as_current_span("chat gpt-4o", kind=trace.SpanKind.CLIENT) as llm:
            llm.set_attributes({
                "gen_ai.usage.input_tokens": 1234,
                "gen_ai.request.temperature": 0.5,
                "cached": True,
                "stop": ["\n", "END"],
            })
            llm.add_event("gen_ai.choice", {"index": 0, "finish_reason": "tool_calls"})
        with tracer.start_as_current_span(
            "execute_tool search",
            links=[trace.Link(llm.get_span_context(), {"link.kind": "caused_by"})],
        ) as tool:
            tool.set_status(trace.Status(trace.StatusCode.ERROR, "search backend timed out"))
            tool.add_event("exception", {"exception.type": "TimeoutError"})
    provider.shutdown()
    if results != [SpanExportResult.SUCCESS] * len(results) or not results:
        raise SystemExit(f"export failed: {results}")

    def ids(span) -> dict:
        ctx = span.get_span_context()
        return {"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}"}

    return [
        {**ids(root), "name": "invoke_agent planner"},
        {**ids(llm), "name": "chat gpt-4o", "parent": ids(root)["span_id"]},
        {**ids(tool), "name": "execute_tool search", "parent": ids(root)["span_id"], "link": ids(llm)["span_id"]},
    ]


def send_with_tracemill(url: str, token: str | None) -> list[dict]:
    from opentelemetry import trace

    import tracemill

    headers = {"Authorization": f"Bearer {token}"} if token else None
    tracemill.init(endpoint=url, service_name="tracemill-client", headers=headers)
    seen: dict[str, str] = {}

    @tracemill.tool
    def lookup(order_id: int) -> dict:
        return {"order": order_id, "status": "shipped"}

    @tracemill.agent
    def support(question: str) -> str:
        seen["trace_id"] = f"{trace.get_current_span().get_span_context().trace_id:032x}"
        return json.dumps(lookup(42))

    support("where is my order?")
    tracemill.shutdown()
    return [{"trace_id": seen["trace_id"], "names": ["invoke_agent support", "execute_tool lookup"]}]


if __name__ == "__main__":
    mode, url = sys.argv[1], sys.argv[2]
    token = sys.argv[3] if len(sys.argv) > 3 else None
    sent = send_with_sdk(url, token) if mode == "sdk" else send_with_tracemill(url, token)
    print(json.dumps(sent))
