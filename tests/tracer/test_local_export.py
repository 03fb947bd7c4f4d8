"""The zero-config exporter: one attempt at the local collector, the outbox whenever that fails."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tracemill.tracer import outbox
from tracemill.tracer.local_export import LocalExporter


@contextmanager
def collector(status: int) -> Iterator[tuple[str, list[bytes]]]:
    """A local HTTP endpoint answering every POST with ``status``; yields its URL and the bodies it got."""
    bodies: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", bodies
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _trace_one(exporter: LocalExporter, name: str) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("test").start_span(name).end()
    provider.shutdown()


def _names(payload: bytes) -> list[str]:
    request = ExportTraceServiceRequest.FromString(payload)
    return [s.name for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_a_collector_that_answers_gets_the_batch_and_the_outbox_stays_empty(tmp_path):
    with collector(200) as (url, bodies):
        exporter = LocalExporter(url, str(tmp_path / "outbox"))
        _trace_one(exporter, "sent")
    assert [_names(b) for b in bodies] == [["sent"]]
    assert outbox.pending(str(tmp_path / "outbox")) == []


def test_a_collector_that_refuses_leaves_the_batch_in_the_outbox(tmp_path):
    with collector(503) as (url, bodies):
        exporter = LocalExporter(url, str(tmp_path / "outbox"))
        _trace_one(exporter, "kept")
    (name,) = outbox.pending(str(tmp_path / "outbox"))
    assert len(bodies) == 1  # one attempt, no retries
    assert _names((tmp_path / "outbox" / name).read_bytes()) == ["kept"]


def test_nothing_listening_leaves_the_batch_in_the_outbox(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exporter = LocalExporter(f"http://127.0.0.1:{port}/v1/traces", str(tmp_path / "outbox"))
    _trace_one(exporter, "offline")
    (name,) = outbox.pending(str(tmp_path / "outbox"))
    assert _names((tmp_path / "outbox" / name).read_bytes()) == ["offline"]
    assert exporter.outbox_batches == 1 and exporter.sent_batches == 0
