"""``tracemill feedback ...`` and ``tracemill export ...`` as a user runs them: on the store when no server
runs, and through ``tracemill serve`` when it owns the store."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import tracemill
from tracemill.collector.ingest.exporter import StoreSpanExporter
from tracemill.collector.store.store import Store
from tracemill.tracer.causality import TOOL_CALLS

from .conftest import BAD, GOOD, Agent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACEMILL_", "OTEL_"))}
    return {**env, "COLUMNS": "200", "TRACEMILL_AUTHOR": "cli-user"}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tracemill.cli", *args], capture_output=True, text=True,
                          env=_env(), timeout=300)


def ok_json(result: subprocess.CompletedProcess[str]):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory):
    """A store directory holding a good and a bad run of one task, closed so commands can open it."""
    directory = tmp_path_factory.mktemp("cli") / "store"
    store = Store.open(f"chdb://{directory}")
    tracemill.init(processor=SimpleSpanProcessor(StoreSpanExporter(store)), service_name="cli-tests", env={})
    try:
        agent = Agent(store)
        good, bad = agent.run("refund-A17", GOOD), agent.run("refund-A17", BAD)
        steps = {"good": agent.llm_spans(good), "bad": agent.llm_spans(bad)}
    finally:
        tracemill.shutdown()
        TOOL_CALLS.clear()
        store.close()
    return {"dsn": f"chdb://{directory}", "good": good, "bad": bad, "steps": steps}


def test_feedback_and_export_on_the_store_without_a_server(traced, tmp_path):
    where = ["--store", traced["dsn"], "--server", f"http://127.0.0.1:{_free_port()}"]
    bad, span = traced["bad"], traced["steps"]["bad"][1]["span_id"]
    call = '{"name": "refund", "arguments": {"order_id": "A-17", "amount": 20}}'
    stored = ok_json(cli("feedback", "correct", bad[:10], span, "--tool-call", call, "--json", *where))
    assert stored["author"] == "cli-user" and stored["value"]["tool_calls"][0]["arguments"]["amount"] == 20

    refused = cli("feedback", "correct", bad, span, "--tool-call", '{"name": "refund", "arguments": {}}', *where)
    assert refused.returncode == 1
    assert "error: item 0: tool call 0 (refund): the arguments do not fit the tool's parameters: arguments: " \
           "'order_id' is a required property" in " ".join(refused.stderr.split())
    broken = cli("feedback", "correct", bad, span, "--tool-call", "{name: refund}", *where)
    assert broken.returncode == 1 and "--tool-call 0 is not JSON" in broken.stderr

    lines = [json.dumps({"trace_id": traced["good"], "name": "outcome", "kind": "outcome", "value": {"success": True}}),
             "", json.dumps({"trace_id": bad, "name": "outcome", "kind": "outcome", "value": {"success": False}}),
             '{"trace_id": "' + bad + '", "name": ']
    feed = tmp_path / "feedback.jsonl"
    feed.write_text("\n".join(lines) + "\n")
    result = cli("feedback", "import", str(feed), *where)
    assert result.returncode == 1
    assert f"{feed}: line 4 is not JSON: Expecting value" in " ".join(result.stderr.split())
    bad_span = json.dumps({"trace_id": bad, "name": "x", "kind": "score", "score": 0.5, "span_id": "zz"})
    feed.write_text("\n".join([*lines[:3], bad_span]) + "\n")
    result = cli("feedback", "import", str(feed), *where)
    assert result.returncode == 1
    assert f"{feed}: line 4: span_id 'zz' is not a span id" in " ".join(result.stderr.split())
    assert [row["kind"] for row in ok_json(cli("feedback", "list", "--json", *where))] == ["correction"]
    feed.write_text("\n".join(lines[:3]) + "\n")
    assert "stored 2 feedback items" in cli("feedback", "import", str(feed), *where).stdout
    imported = ok_json(cli("feedback", "list", "--kind", "outcome", "--json", *where))
    assert [row["author"] for row in imported] == ["cli-user", "cli-user"]  # TRACEMILL_AUTHOR, as for every command

    manifest = ok_json(cli("export", "dpo", "-o", str(tmp_path / "dpo"), "--eval-fraction", "0", "--json", *where))
    assert manifest["counts"] == {"correction": 1, "outcome_contrast": 1}
    assert manifest["splits"] == {"train": 2, "eval": 0} and manifest["kind"] == "dpo"
    assert sorted(os.listdir(tmp_path / "dpo")) == ["eval.jsonl", "eval.parquet", "manifest.json", "train.jsonl",
                                                    "train.parquet"]
    assert json.loads((tmp_path / "dpo" / "manifest.json").read_text())["content_hash"] == manifest["content_hash"]
    table = cli("feedback", "list", *where)
    assert table.returncode == 0 and "correction" in table.stdout and "outcome" in table.stdout
    unknown = cli("export", "ppo", "-o", str(tmp_path / "x"), *where)
    assert unknown.returncode == 1 and "dataset kind must be one of dpo, kto, sft, stepwise, openai, flags" \
        in unknown.stderr


def test_commands_go_through_the_server_that_owns_the_store(traced, tmp_path):
    port = _free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed after the server stops
    proc = subprocess.Popen([sys.executable, "-m", "tracemill.cli", "serve", "--store", traced["dsn"], "--spool",
                             str(tmp_path / "spool"), "--port", str(port)], env=_env(), stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/api/health").json()["store"]["available"]:
                    break
            except (httpx.TransportError, ValueError, KeyError):
                pass
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "server.log").read_text()
            time.sleep(0.1)
        where = ["--store", traced["dsn"], "--server", url]
        good, bad = traced["good"], traced["bad"]
        span = traced["steps"]["good"][2]["span_id"]
        ok_json(cli("feedback", "label", good, "bad", "--span", span, "--author", "ann", "--json", *where))
        ok_json(cli("feedback", "label", good, "thumbs_up", "--span", span, "--author", "ben", "--json", *where))
        (conflict,) = ok_json(cli("feedback", "conflicts", "--json", *where))
        assert conflict["subject"] == {"kind": "label", "trace_id": good, "span_id": span, "name": "thumbs"}
        assert "ann" in cli("feedback", "conflicts", *where).stdout

        manifest = ok_json(cli("export", "kto", "-o", str(tmp_path / "kto"), "--resolve", "author:ben",
                               "--eval-fraction", "0", "--json", *where))
        assert manifest["counts"] == {"label": 1} and manifest["conflicts_settled"] == 1
        row = json.loads((tmp_path / "kto" / "train.jsonl").read_text())
        assert row["label"] is True and row["span_id"] == span

        api = httpx.get(url + "/api/exports/kto", params={"resolve": "author:ann", "eval_fraction": "0"}).json()
        assert [r["label"] for r in api["train"]] == [False] and api["manifest"]["filters"]["resolve"] == "author:ann"
        assert httpx.get(url + "/api/exports/nope").status_code == 400
        assert httpx.get(url + "/api/exports/dpo", params={"resolve": "first"}).status_code == 400

        withdrawn = ok_json(cli("feedback", "delete", good, "--name", "thumbs", "--span", span, "--author", "ann",
                                "--json", *where))
        assert withdrawn["deleted"] is True
        assert ok_json(cli("feedback", "conflicts", "--json", *where)) == []
        outcome = cli("feedback", "outcome", bad, "--success", "--reward", "1", *where)
        assert outcome.returncode == 1 and "exactly one" in outcome.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        log.close()
