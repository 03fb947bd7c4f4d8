"""Random valid OTLP field values through the receiver's checks and both conversions, on a real chDB store.

The property that keeps one span from stopping ingestion: a request is either refused at the
receiver (400, or the span counted in ``partial_success``), or every span it accepted is stored by
the Python conversion, with nothing set aside; the conversion in ClickHouse stores the same rows
or refuses the group before writing anything (then the Python one takes it). Nothing accepted can
stay in the spool.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from tracemill.collector.ingest.blocks import encode_payloads, insert_block, span_column_types
from tracemill.collector.ingest.otlp import decode_request
from tracemill.collector.ingest.rows import SPAN_COLUMNS
from tracemill.collector.ingest.rows_sql import NeedsReferenceConversion, insert_requests
from tracemill.errors import PayloadError

_tokens = itertools.count()
_COLUMNS = ", ".join(f"`{c}`" for c in SPAN_COLUMNS)

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=10)
# Most spans are drawn with values the store holds (so they reach both conversions), the others with
# any value the OTLP fields allow (ids of any length, times up to 2**64 - 1).
_time = st.one_of(st.integers(min_value=0, max_value=2**63 - 1), st.sampled_from([0, 2**63 - 1]))
_any_time = st.one_of(st.integers(min_value=0, max_value=2**64 - 1), st.sampled_from([2**63, 2**64 - 1]))
_i32 = st.one_of(st.integers(min_value=-(2**31), max_value=2**31 - 1), st.integers(min_value=-1, max_value=6))


def _id(size: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=size, max_size=size).map(lambda b: b if any(b) else b"\x01" + b[1:])


_any_id = st.one_of(st.binary(max_size=20), st.sampled_from([b"", bytes(8), bytes(16)]))


_scalar = st.one_of(
    _text.map(lambda s: AnyValue(string_value=s)),
    st.booleans().map(lambda b: AnyValue(bool_value=b)),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(lambda i: AnyValue(int_value=i)),
    st.floats().map(lambda f: AnyValue(double_value=f)),
    st.binary(max_size=10).map(lambda b: AnyValue(bytes_value=b)),
    st.just(AnyValue()),
)
_value = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda items: AnyValue(array_value=ArrayValue(values=items))),
        st.lists(st.tuples(_text, inner), max_size=3).map(
            lambda kvs: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs]))
        ),
    ),
    max_leaves=8,
)
_attributes = st.lists(st.tuples(_text, _value), max_size=4)  # duplicate keys included


def _add_attributes(target, pairs) -> None:
    target.extend(KeyValue(key=k, value=v) for k, v in pairs)


@st.composite
def _requests(draw) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        resource_spans = request.resource_spans.add()
        _add_attributes(resource_spans.resource.attributes, draw(_attributes))
        if draw(st.booleans()):
            resource_spans.resource.attributes.add(key="service.name", value=AnyValue(string_value=draw(_text)))
        for _ in range(draw(st.integers(min_value=1, max_value=2))):
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name, scope_spans.scope.version = draw(_text), draw(_text)
            for _ in range(draw(st.integers(min_value=0, max_value=3))):
                span = scope_spans.spans.add()
                fits = draw(st.integers(min_value=0, max_value=4)) > 0
                time = _time if fits else _any_time
                span.trace_id = draw(_id(16) if fits else _any_id)
                span.span_id = draw(_id(8) if fits else _any_id)
                span.parent_span_id = draw(st.one_of(st.just(b""), _id(8)) if fits else _any_id)
                span.trace_state, span.name = draw(_text), draw(_text)
                span.kind = draw(_i32)
                span.start_time_unix_nano, span.end_time_unix_nano = draw(time), draw(time)
                _add_attributes(span.attributes, draw(_attributes))
                span.status.code, span.status.message = draw(_i32), draw(_text)
                for _ in range(draw(st.integers(min_value=0, max_value=2))):
                    event = span.events.add(name=draw(_text), time_unix_nano=draw(time))
                    _add_attributes(event.attributes, draw(_attributes))
                for _ in range(draw(st.integers(min_value=0, max_value=2))):
                    link = span.links.add(trace_id=draw(_any_id), span_id=draw(_any_id), trace_state=draw(_text))
                    _add_attributes(link.attributes, draw(_attributes))
    return request


def _rows(store) -> list[str]:
    rows = store.query(f"SELECT {_COLUMNS} FROM otel_traces").result_rows
    store.command("TRUNCATE TABLE otel_traces")
    return sorted(repr(row) for row in rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(request=_requests())
def test_drawn_requests_are_stored_by_both_conversions_or_refused_at_the_receiver(store, request):
    try:
        decoded = decode_request(
            request.SerializeToString(), content_type="application/x-protobuf", max_bytes=1 << 20
        )
    except PayloadError:
        event("refused at the receiver")
        return  # refused at the receiver: the client is told, nothing is spooled
    event(f"{decoded.accepted_spans} accepted, {decoded.rejected_spans} rejected")
    n = next(_tokens)
    block = encode_payloads([(1, decoded.payload)], span_column_types(store))
    assert (block.failed, block.dead) == ([], []), "an accepted span could not be stored"
    assert block.rows == decoded.accepted_spans
    insert_block(store, block, dedup_token=f"python-{n}")
    reference = _rows(store)
    assert len(reference) == decoded.accepted_spans
    try:
        insert_requests(store, [decoded.payload], dedup_token=f"clickhouse-{n}")
    except NeedsReferenceConversion as exc:
        assert exc.expected, f"the SQL conversion failed unexpectedly: {exc}"
        assert _rows(store) == []  # refused before writing anything
        event("the SQL conversion refused")
        return
    assert _rows(store) == reference
    event("both conversions stored the same rows")
