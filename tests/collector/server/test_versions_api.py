"""Versions and rollouts through a running server: plain OTel GenAI spans get versions at ingest, the CLI
reads versions and decides rollouts through the API, and traced processes follow the server's state."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from typer.testing import CliRunner

from tests.servers import clean_env, start_server
from tracemill.cli.app import app
from tracemill.collector.ingest.rows import sdk_spans_to_request

PROMPTS = ("You answer billing questions.", "You answer billing questions. Never promise refunds.")


def _plain_runs(system: str, runs: int) -> bytes:
    """Agent runs as plain OTel GenAI instrumentation records them: no tracemill attributes at all."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("plain.genai")
    for i in range(runs):
        with tracer.start_as_current_span("invoke_agent billing") as root:
            root.set_attributes({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "billing"})
            with tracer.start_as_current_span("chat gpt-4o", kind=trace.SpanKind.CLIENT) as span:
                span.set_attributes({
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
                    "gen_ai.system_instructions": json.dumps([{"type": "text", "content": system}]),
                    "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
                        {"type": "text", "content": f"Why was I charged twice ({i})?"}]}]),
                })
    provider.shutdown()
    return sdk_spans_to_request(memory.get_finished_spans()).SerializeToString()


def test_versions_and_rollouts_through_the_server(tmp_path, servers):
    server = start_server(tmp_path / "srv")
    servers.append(server)
    for system, runs in zip(PROMPTS, (3, 2), strict=True):
        assert server.post(_plain_runs(system, runs)).status_code == 200
    server.wait_inserted(10)

    runner = CliRunner()
    listed = runner.invoke(app, ["versions", "--server", server.url, "--agent", "billing", "--json"])
    assert listed.exit_code == 0, listed.output
    versions = json.loads(listed.stdout)["versions"]
    assert [(v["agent"], v["runs"]) for v in versions] == [("billing", 3), ("billing", 2)]
    assert versions[1]["changes"] == ["system prompt changed"]
    shown = runner.invoke(app, ["versions", "diff", versions[0]["version"], versions[1]["version"], "--server",
                                server.url, "--json"])
    assert "+You answer billing questions. Never promise refunds." in json.loads(shown.stdout)["diffs"][0]["system"][
        "diff"]

    assert httpx.get(f"{server.url}/api/rollouts/billing-v2/state").json() == {"name": "billing-v2",
                                                                               "state": "running"}
    halted = runner.invoke(app, ["rollout", "halt", "billing-v2", "--server", server.url, "--reason", "refund spike"])
    assert halted.exit_code == 0 and "billing-v2 is now halted" in halted.output
    status = json.loads(runner.invoke(app, ["rollout", "status", "billing-v2", "--server", server.url,
                                            "--json"]).stdout)
    assert (status["state"], status["reason"]) == ("halted", "refund spike")
    code = "import tracemill; print({tracemill.rollout('billing-v2', share=1.0, key=str(i)) for i in range(20)})"
    env = clean_env(TRACEMILL_SERVER=server.url, TRACEMILL_DATA_DIR=str(tmp_path / "elsewhere"))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "{'control'}", done.stderr
    assert httpx.post(f"{server.url}/api/rollouts/billing-v2/explode").status_code == 404
