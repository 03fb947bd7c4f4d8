"""OpenInference attributes on forwarded OTLP requests (``tracemill serve --forward URL --openinference``).

The forwarder sends the validated protobuf the spool stores; with this transform each span of an
agent gains the attributes :mod:`tracemill.tracer.openinference` derives from its GenAI attributes,
and each resource names its Phoenix project (the service name unless it names one). It runs in the
forwarder's thread, off the request path; the stored spans are not changed.
"""

from __future__ import annotations

from typing import Any

from tracemill.tracer.openinference import PROJECT_NAME, openinference_attributes

__all__ = ["add_openinference"]


def _plain(value: Any) -> Any:
    """An OTLP ``AnyValue`` as the Python value the SDK would hold (None for kinds the mapping never reads)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "bool_value":
        return value.bool_value
    if which == "array_value":
        return tuple(_plain(v) for v in value.array_value.values)
    return None


def _set(any_value: Any, value: Any) -> None:
    if isinstance(value, bool):
        any_value.bool_value = value
    elif isinstance(value, int):
        any_value.int_value = value
    elif isinstance(value, float):
        any_value.double_value = value
    else:
        any_value.string_value = str(value)


def add_openinference(payload: bytes) -> bytes:
    """``payload`` (an ``ExportTraceServiceRequest``) with OpenInference attributes on every agent span."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest.FromString(payload)
    changed = False
    for resource_spans in request.resource_spans:
        converted = False
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                extra = openinference_attributes({kv.key: _plain(kv.value) for kv in span.attributes})
                for key, value in extra.items():
                    _set(span.attributes.add(key=key).value, value)
                converted = converted or bool(extra)
        resource = {kv.key: kv.value for kv in resource_spans.resource.attributes}
        if converted and PROJECT_NAME not in resource:
            service = resource["service.name"].string_value if "service.name" in resource else "default"
            resource_spans.resource.attributes.add(key=PROJECT_NAME).value.string_value = service
        changed = changed or converted
    return request.SerializeToString() if changed else payload
