"""The tracer never breaks the traced program: internal failures are logged once, never raised."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

import tracemill
from tracemill.tracer import runtime


class ExplodingExporter(SpanExporter):
    def __init__(self):
        self.calls = 0

    def export(self, spans):
        self.calls += 1
        raise RuntimeError("exporter is broken")

    def shutdown(self):
        pass


def test_broken_exporter_does_not_disturb_the_function(caplog):
    exporter = ExplodingExporter()
    tracemill.init(processor=SimpleSpanProcessor(exporter), env={})
    try:
        @tracemill.tool
        def add(a, b):
            return a + b

        assert [add(i, 1) for i in range(3)] == [1, 2, 3]
        assert exporter.calls == 3
    finally:
        tracemill.shutdown()


def test_unserializable_arguments_and_results_do_not_disturb_the_function(spans):
    class Hostile:
        def __repr__(self):
            raise RuntimeError("repr fails")

        def __getattr__(self, name):
            raise RuntimeError(f"attribute {name} fails")

    hostile = Hostile()

    @tracemill.step(name="takes_hostile")
    def takes_hostile(value):
        return value

    assert takes_hostile(hostile) is hostile
    assert spans.named("takes_hostile").attributes["tracemill.input"] == '{"value":"<Hostile object>"}'


def test_internal_failure_runs_function_once_untraced_and_logs_once(spans, monkeypatch, caplog):
    calls = []

    @tracemill.step(name="counted")
    def counted(x):
        calls.append(x)
        return x

    def broken_start_span(*args, **kwargs):
        raise RuntimeError("tracer internals broke")

    monkeypatch.setattr(runtime.RUNTIME.tracer, "start_span", broken_start_span)
    with caplog.at_level(logging.WARNING, logger="tracemill"):
        assert counted(1) == 1
        assert counted(2) == 2
    assert calls == [1, 2]
    assert spans.finished == []
    warnings = [r for r in caplog.records if "could not start a span for counted" in r.getMessage()]
    assert len(warnings) == 1


def test_internal_failure_in_async_and_generator_paths_is_contained(spans, monkeypatch):
    monkeypatch.setattr(runtime.RUNTIME.tracer, "start_span", lambda *a, **k: 1 / 0)

    @tracemill.step
    async def acall(x):
        return x + 1

    @tracemill.step
    def gen(n):
        yield from range(n)

    @tracemill.step
    async def agen(n):
        for i in range(n):
            yield i

    async def collect():
        return [i async for i in agen(3)]

    assert asyncio.run(acall(1)) == 2
    assert list(gen(3)) == [0, 1, 2]
    assert asyncio.run(collect()) == [0, 1, 2]
    assert spans.finished == []


def test_user_exceptions_still_pass_through_when_recording_them_fails(spans, monkeypatch):
    monkeypatch.setattr("tracemill.tracer.spans.Status", None)  # set_status would now fail

    @tracemill.step(name="raises")
    def raises():
        raise KeyError("user error")

    with pytest.raises(KeyError, match="user error"):
        raises()
    assert spans.named("raises") is not None


def test_disabled_tracing_calls_functions_directly(monkeypatch):
    tracemill.init(disabled=True, env={})
    try:
        @tracemill.agent
        def plain(x):
            return x * 2

        @tracemill.step
        def gen(n):
            yield from range(n)

        assert plain(2) == 4
        assert list(gen(2)) == [0, 1]
        assert runtime.RUNTIME.tracer is None
    finally:
        tracemill.shutdown()


def test_zero_config_exports_otlp_from_environment_and_flushes_at_exit(tmp_path):
    """A fresh process that never calls init(): the first decorated call sets tracing up from
    TRACEMILL_* variables, and interpreter exit flushes the spans over OTLP/HTTP."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    received: list[bytes] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    script = tmp_path / "agent.py"
    script.write_text(textwrap.dedent("""
        import tracemill

        @tracemill.tool
        def ping():
            return "pong"

        print(ping())
    """))
    env = {**os.environ, "TRACEMILL_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
           "TRACEMILL_SERVICE_NAME": "zero-config-agent"}
    try:
        done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "pong"
    request = ExportTraceServiceRequest()
    request.ParseFromString(b"".join(received))
    (resource_spans,) = request.resource_spans
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
    assert service == "zero-config-agent"
    names = [s.name for scope in resource_spans.scope_spans for s in scope.spans]
    assert names == ["execute_tool ping"]
