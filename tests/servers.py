"""Helpers for tests that run real ``tracemill serve`` processes, and OTLP request builders.

A server is a separate process on its own chDB directory (chDB allows one directory per
process, and the test process must stay free to open others). Its store is inspected through
its API, or, once it is stopped, by a short helper process (:func:`query_store`). The ``servers``
fixture (tests/conftest.py) stops what a test started.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON_HEADERS = {"Content-Type": "application/json"}
_counter = itertools.count()


# -- OTLP requests ----------------------------------------------------------------------------------


def make_request(spans: int, *, seed: int = 0, service: str = "test-agent", prefix: str = "") -> Any:
    """An OTLP request of ``spans`` spans with unique ids derived from ``seed``, ten spans per trace."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "tests"
    now = time.time_ns()
    for i in range(spans):
        span = scope_spans.spans.add()
        span.trace_id = (seed + 1).to_bytes(8, "big") + (i // 10).to_bytes(8, "big")
        span.span_id = (seed * 1_000_000 + i + 1).to_bytes(8, "big")
        if i % 10:
            span.parent_span_id = (seed * 1_000_000 + (i // 10) * 10 + 1).to_bytes(8, "big")
        span.name = f"{prefix}step {i}"
        span.kind = 1
        span.start_time_unix_nano = now + i
        span.end_time_unix_nano = now + i + 1000
        span.attributes.append(KeyValue(key="i", value=AnyValue(int_value=i)))
    return request


def add_span(scope: Any, trace_id: str, span: int, parent: int | None, name: str, *, start_ns: int,
             duration_ns: int, error: bool = False, attributes: Mapping[str, Any] | None = None) -> Any:
    """Add a span to an OTLP ``scope_spans``: ids from a hex trace id and small integers, attribute values
    as given (an ``AnyValue``) or as strings."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    s = scope.spans.add()
    s.trace_id = bytes.fromhex(trace_id)
    s.span_id = span.to_bytes(8, "big")
    if parent:
        s.parent_span_id = parent.to_bytes(8, "big")
    s.name = name
    s.start_time_unix_nano = start_ns
    s.end_time_unix_nano = start_ns + duration_ns
    if error:
        s.status.code = 2
    for key, value in (attributes or {}).items():
        value = value if isinstance(value, AnyValue) else AnyValue(string_value=str(value))
        s.attributes.append(KeyValue(key=key, value=value))
    return s


def span_ids(request: Any) -> set[str]:
    return {s.span_id.hex() for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans}


# -- server processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any TRACEMILL_* setting of the developer's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACEMILL_", "OTEL_"))}
    env.update(extra)
    return env


@dataclass
class ServerProcess:
    """A running ``tracemill serve``; ``client`` sends its token when it has one."""

    url: str
    store_dir: Path
    spool_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes]
    token: str | None = None
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=30.0)

    @property
    def dsn(self) -> str:
        return f"chdb://{self.store_dir}"

    def post(self, body: bytes, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        return self.client.post("/v1/traces", content=body, headers=headers or PROTOBUF, **kwargs)

    def health(self) -> dict[str, Any]:
        return self.client.get("/api/health").json()

    def status(self) -> dict[str, Any]:
        return self.client.get("/api/status").json()

    def wait_inserted(self, spans: int, *, timeout_s: float = 30.0) -> dict[str, Any]:
        """Wait until the writer has inserted ``spans`` spans and the spool is empty."""
        deadline = time.monotonic() + timeout_s
        health = self.health()
        while time.monotonic() < deadline:
            health = self.health()
            if health["inserted_spans"] >= spans and health["spooled_spans"] == 0:
                return health
            time.sleep(0.05)
        raise AssertionError(f"spans not inserted in {timeout_s}s: {health}\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        self.client.close()
        self.proc.kill()
        self.proc.wait(10)


def start_server(
    directory: Path,
    *,
    token: str | None = None,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    store_dsn: str | None = None,
    wait_for_store: bool = True,
    port: int | None = None,
) -> ServerProcess:
    """Start ``tracemill serve`` on a store and spool under ``directory`` and wait until it answers."""
    directory.mkdir(parents=True, exist_ok=True)
    store_dir = directory / "store"
    spool_dir = directory / "spool"
    port = port or free_port()
    log_path = directory / f"server-{next(_counter)}.log"
    settings = {"TRACEMILL_WRITER_PROCESSES": "0", "TRACEMILL_FLUSH_INTERVAL_S": "0.2", **(env or {})}
    if token:
        settings["TRACEMILL_TOKEN"] = token
    command = [
        sys.executable, "-m", "tracemill.cli", "serve",
        "--store", store_dsn or f"chdb://{store_dir}", "--spool", str(spool_dir),
        "--port", str(port), "--log-level", "info", *args,
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, env=clean_env(**settings), stdout=log, stderr=subprocess.STDOUT)
    server = ServerProcess(f"http://127.0.0.1:{port}", store_dir, spool_dir, log_path, proc, token)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"tracemill serve exited with {proc.returncode}:\n{server.log()}")
        try:
            health = server.health()
            if health.get("store", {}).get("available") or not wait_for_store:
                return server
        except (httpx.TransportError, ValueError):
            pass
        if time.monotonic() > deadline:
            server.kill()
            raise AssertionError(f"tracemill serve did not come up in 60s:\n{server.log()}")
        time.sleep(0.05)


def query_store(store_dir: Path, sql: str) -> list[list[Any]]:
    """Run one query on a stopped server's embedded store from a helper process; rows as JSON lists."""
    script = (
        "import json, sys\n"
        "from tracemill.collector.store.store import Store\n"
        "with Store.open(sys.argv[1]) as s:\n"
        "    print(json.dumps([list(r) for r in s.query(sys.argv[2]).result_rows], default=str))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, f"chdb://{store_dir}", sql],
        capture_output=True, text=True, env=clean_env(), timeout=120,
    )
    if result.returncode:
        raise AssertionError(f"query failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


class StoreHolder:
    """Another process holding an embedded store open (so it is locked) until released."""

    def __init__(self, store_dir: Path) -> None:
        script = (
            "import sys\n"
            "from tracemill.collector.store.store import Store\n"
            "s = Store.open(sys.argv[1])\n"
            "print('holding', flush=True)\n"
            "sys.stdin.read()\n"
            "s.close()\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, f"chdb://{store_dir}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=clean_env(),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == b"holding", line

    def release(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(30)
        self.proc.stdout.close()


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracemill.cli", *args],
        capture_output=True, text=True, env=clean_env(**{"COLUMNS": "200", **(env or {})}), timeout=timeout,
    )


# -- a stand-in OTLP backend ------------------------------------------------------------------------


@dataclass
class CapturedPosts:
    """What :func:`otlp_capture` received: the body of every POST, in order."""

    url: str
    bodies: list[bytes] = field(default_factory=list)

    def wait(self, count: int = 1, timeout_s: float = 20.0) -> list[bytes]:
        """The bodies once ``count`` have arrived (fewer when ``timeout_s`` passes first)."""
        deadline = time.monotonic() + timeout_s
        while len(self.bodies) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.bodies)


@contextmanager
def otlp_capture() -> Iterator[CapturedPosts]:
    """A local HTTP endpoint that answers 200 to every POST and keeps its body: the backend a server forwards to."""
    import http.server
    import threading

    captured = CapturedPosts("")

    class Capture(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            captured.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    target = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    captured.url = f"http://127.0.0.1:{target.server_port}"
    try:
        yield captured
    finally:
        target.shutdown()
        target.server_close()
