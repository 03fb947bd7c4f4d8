"""Zero-config tracing: a decorated program with nothing configured exits at once and loses nothing.

With no server running its spans go to the outbox under the data dir; ``tracemill traces`` (which
opens the store itself) and ``tracemill serve`` on the local port take them in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.servers import clean_env, free_port, make_request, run_cli, start_server
from tracemill.collector.ingest.outbox import ingest_into_store
from tracemill.collector.ingest.rows import request_to_rows
from tracemill.tracer import outbox

PROGRAM = textwrap.dedent(
    """
    import sys
    import tracemill

    @tracemill.agent
    def zero_config_agent(question):
        return question.upper()

    zero_config_agent("hello")
    print("END", flush=True)
    """
)


def _run_program(tmp_path: Path, env: dict[str, str]) -> tuple[float, str]:
    """Run PROGRAM; return the seconds between its last line and its exit, and its stderr."""
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    with subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        ended = time.monotonic()
        proc.wait(60)
        exit_delay = time.monotonic() - ended
        stderr = proc.stderr.read()
    assert line.strip() == "END" and proc.returncode == 0, stderr
    return exit_delay, stderr


def _zero_config_env(tmp_path: Path, port: int) -> dict[str, str]:
    # Only where files go and which port is "local" are pinned: the tracer itself is not configured.
    return clean_env(TRACEMILL_DATA_DIR=str(tmp_path / "data"), TRACEMILL_PORT=str(port))


def test_decorated_program_without_server_exits_quietly_and_its_run_shows_in_traces(tmp_path):
    env = _zero_config_env(tmp_path, free_port())
    exit_delay, stderr = _run_program(tmp_path, env)
    assert exit_delay < 3.0  # a generous bound; the figure is in benchmarks/bench_zero_config.py
    assert "retry" not in stderr.lower() and "error" not in stderr.lower(), stderr
    assert outbox.pending(str(tmp_path / "data" / "outbox"))

    listed = run_cli("traces", "--json", env={k: v for k, v in env.items() if k.startswith("TRACEMILL_")})
    assert listed.returncode == 0, listed.stderr
    names = [t["name"] for t in json.loads(listed.stdout)["traces"]]
    assert names == ["invoke_agent zero_config_agent"]
    assert outbox.pending(str(tmp_path / "data" / "outbox")) == []
    again = run_cli("traces", "--json", env={k: v for k, v in env.items() if k.startswith("TRACEMILL_")})
    assert len(json.loads(again.stdout)["traces"]) == 1  # taken in once, not on every command


def test_serve_on_the_local_port_takes_in_what_programs_kept_while_it_was_down(tmp_path, servers):
    port = free_port()
    env = _zero_config_env(tmp_path, port)
    _run_program(tmp_path, env)
    _run_program(tmp_path, env)
    server = start_server(tmp_path / "server", port=port, env={"TRACEMILL_DATA_DIR": env["TRACEMILL_DATA_DIR"],
                                                               "TRACEMILL_PORT": str(port)})
    servers.append(server)
    server.wait_inserted(2)
    assert outbox.pending(env["TRACEMILL_DATA_DIR"] + "/outbox") == []
    assert server.status()["outbox"]["ingested_spans"] == 2
    shown = run_cli("status", "--server", server.url)
    assert "2 spans taken in since start, 0 files waiting" in shown.stdout, shown.stderr


def test_decorated_program_with_server_running_sends_to_it(tmp_path, servers):
    port = free_port()
    env = _zero_config_env(tmp_path, port)
    server = start_server(tmp_path / "server", port=port, env={"TRACEMILL_DATA_DIR": env["TRACEMILL_DATA_DIR"],
                                                               "TRACEMILL_PORT": str(port)})
    servers.append(server)
    _run_program(tmp_path, env)
    server.wait_inserted(1)
    assert not os.path.exists(tmp_path / "data" / "outbox")


def test_outbox_file_the_receiver_would_refuse_is_set_aside_and_the_rest_stored(tmp_path, store):
    directory = str(tmp_path / "outbox")
    good = make_request(3, seed=7)
    outbox.write(directory, b"\xff\xff not protobuf")
    outbox.write(directory, good.SerializeToString())
    result = ingest_into_store(store, directory)
    assert (result.files, result.spans, result.rejected_files) == (1, 3, 1)
    assert store.query("SELECT count() FROM otel_traces").result_rows[0][0] == 3
    assert outbox.pending(directory) == []
    reasons = [p for p in os.listdir(os.path.join(directory, "rejected")) if p.endswith(".reason.txt")]
    assert len(reasons) == 1


def test_outbox_claim_of_a_dead_process_is_taken_over_and_stored_once(tmp_path, store):
    directory = str(tmp_path / "outbox")
    path = outbox.write(directory, make_request(2, seed=8).SerializeToString())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    claimed = f"{path}.claimed-{int(dead.stdout)}"
    os.rename(path, claimed)  # a reader that died after inserting, before deleting
    token = os.path.basename(path).removesuffix(outbox.SUFFIX)
    request = ExportTraceServiceRequest.FromString(Path(claimed).read_bytes())
    store.insert_spans(request_to_rows(request), dedup_token=f"outbox-{token}")
    assert ingest_into_store(store, directory).files == 1
    assert store.query("SELECT count() FROM otel_traces").result_rows[0][0] == 2
