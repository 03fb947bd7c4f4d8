"""Acknowledged means durable: kill -9 and restart, an unavailable store, a full spool."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.servers import PROTOBUF, StoreHolder, free_port, make_request, query_store, run_cli, span_ids, start_server


@pytest.mark.timeout(240)
def test_kill_9_while_clients_send_then_restart_stores_every_acknowledged_span_exactly_once(tmp_path, servers):
    settings = {"TRACEMILL_WRITER_PROCESSES": "1", "TRACEMILL_BATCH_SPANS": "400", "TRACEMILL_FLUSH_INTERVAL_S": "0.05"}
    server = start_server(tmp_path, env=settings)
    servers.append(server)
    acknowledged: list[set[str]] = [set() for _ in range(3)]
    stop = threading.Event()

    def client(k: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            seed = (k + 1) * 100_000
            while not stop.is_set():
                request = make_request(50, seed=seed, service=f"client-{k}")
                seed += 1
                try:
                    response = http.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)
                except httpx.TransportError:
                    return
                if response.status_code == 200:
                    acknowledged[k] |= span_ids(request)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # kill while inserts are under way and batches are still spooled
        health = server.health()
        if health["inserted_spans"] >= 2000 and health["spooled_spans"] > 0:
            break
        time.sleep(0.02)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(30)
    acked = set().union(*acknowledged)
    assert len(acked) >= 2000

    restarted = start_server(tmp_path, env=settings)
    servers.append(restarted)
    restarted.wait_inserted(0, timeout_s=60)  # the spool has drained
    restarted.stop()
    counts = dict(query_store(server.store_dir, "SELECT SpanId, count() FROM otel_traces GROUP BY SpanId"))
    missing = acked - counts.keys()
    assert not missing, f"{len(missing)} acknowledged spans were lost"
    doubled = {span: n for span, n in counts.items() if n != 1}
    assert not doubled, f"{len(doubled)} spans stored more than once"


@pytest.mark.timeout(180)
def test_unavailable_store_is_absorbed_by_the_spool_then_503_then_drained_when_it_returns(tmp_path, servers):
    holder = StoreHolder(tmp_path / "store")  # another process holds the embedded store
    try:
        server = start_server(tmp_path, env={"TRACEMILL_SPOOL_MAX_BYTES": "30000"}, wait_for_store=False)
        servers.append(server)
        acknowledged: set[str] = set()
        refused = None
        for seed in range(1, 500):
            request = make_request(20, seed=seed)
            response = server.post(request.SerializeToString())
            if response.status_code != 200:
                refused = response
                break
            acknowledged |= span_ids(request)
        assert len(acknowledged) >= 100, "the spool should have absorbed several batches first"
        assert refused is not None and refused.status_code == 503
        assert int(refused.headers["Retry-After"]) >= 1
        from google.rpc.status_pb2 import Status

        message = Status.FromString(refused.content).message
        assert "the store is unavailable and the spool is full" in message
        status = server.status()
        assert status["writer"]["healthy"] is False
        assert "in use by another process" in status["store"]["error"]
        assert status["spool"]["spans"] == len(acknowledged)
    finally:
        holder.release()
    server.wait_inserted(len(acknowledged), timeout_s=60)
    late = make_request(10, seed=999)
    assert server.post(late.SerializeToString()).status_code == 200
    server.wait_inserted(len(acknowledged) + 10, timeout_s=30)
    status = server.status()
    assert status["store"]["spans"] == len(acknowledged) + 10
    assert status["writer"]["healthy"] is True


def test_full_spool_with_a_healthy_store_answers_429_with_retry_after(tmp_path, servers):
    # The writer waits for 100000 spans or 60s, so nothing drains while the spool fills.
    env = {"TRACEMILL_SPOOL_MAX_BYTES": "4000", "TRACEMILL_BATCH_SPANS": "100000", "TRACEMILL_FLUSH_INTERVAL_S": "60"}
    server = start_server(tmp_path, env=env)
    servers.append(server)
    statuses = [server.post(make_request(20, seed=seed).SerializeToString()) for seed in range(1, 20)]
    codes = [r.status_code for r in statuses]
    assert codes[0] == 200 and 429 in codes
    throttled = statuses[codes.index(429)]
    assert throttled.headers["Retry-After"] == "1"
    assert set(codes[codes.index(429):]) == {429}


def test_server_on_an_unreachable_clickhouse_server_still_acknowledges_into_the_spool(tmp_path, servers):
    dsn = f"http://127.0.0.1:{free_port()}/traces"
    server = start_server(tmp_path, store_dsn=dsn, wait_for_store=False)
    servers.append(server)
    assert server.post(make_request(5).SerializeToString()).status_code == 200
    status = server.status()
    assert status["store"]["available"] is False
    assert "cannot connect to the ClickHouse server" in status["store"]["error"]
    assert status["spool"]["spans"] == 5
    response = server.client.get("/api/traces")
    assert response.status_code == 503
    assert "unavailable" in response.json()["error"]


def test_second_server_on_the_same_spool_is_refused_naming_the_first(tmp_path, servers):
    server = start_server(tmp_path)
    servers.append(server)
    result = run_cli(
        "serve", "--store", f"chdb://{tmp_path}/other", "--spool", str(server.spool_dir),
        "--port", str(free_port()), timeout=60,
    )
    assert result.returncode == 1
    assert f"in use by process {server.proc.pid}" in result.stderr
    assert "--spool" in result.stderr
