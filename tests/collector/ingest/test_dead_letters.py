"""Spans the table cannot hold, or that the store refuses, are set aside as dead letters and everything else lands.

The spool here holds what an older receiver acknowledged before it checked times (a start at
2**63 ns), or spans a constraint of the store refuses: the writer must store every other span,
keep the bad ones with their reason in ``tracemill_dead_letters``, and leave the spool empty.
"""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.servers import make_request
from tracemill.collector.ingest.spool import Spool
from tracemill.collector.ingest.writer import SpoolWriter
from tracemill.collector.server.api import store_status
from tracemill.collector.store.connection import StoreLink


def _writer(spool: Spool, store, **kwargs) -> SpoolWriter:
    return SpoolWriter(spool, StoreLink(lambda: store, location=store.location), flush_interval_s=0.05, **kwargs)


def _drain(writer: SpoolWriter) -> None:
    writer.start()
    try:
        assert writer.wait_idle(60), writer.status()
    finally:
        writer.stop()


def _poisoned(spans: int, *, seed: int, bad: dict[int, str]) -> ExportTraceServiceRequest:
    """A request whose spans at the given positions have a start (or an event) at 2**63 ns."""
    request = make_request(spans, seed=seed)
    all_spans = request.resource_spans[0].scope_spans[0].spans
    for index, what in bad.items():
        span = all_spans[index]
        if what == "start":
            span.start_time_unix_nano = span.end_time_unix_nano = 2**63
        else:
            span.events.add(name="late", time_unix_nano=2**64 - 1)
    return request


def _stored_ids(store) -> set[str]:
    return {row[0] for row in store.query("SELECT SpanId FROM otel_traces").result_rows}


def _dead(store) -> list[tuple]:
    return store.client.query(
        "SELECT BatchId, Ordinal, SpanId, SpanName, ServiceName, Reason, Request FROM tracemill_dead_letters FINAL "
        "ORDER BY BatchId, Ordinal",
        column_formats={"Request": "bytes"},  # the span's protobuf bytes, not text
    ).result_rows


@pytest.mark.parametrize("convert_in_store", [True, False], ids=["clickhouse", "python"])
def test_poison_spans_become_dead_letters_and_every_other_span_is_stored(tmp_path, store, convert_in_store):
    first = _poisoned(10, seed=1, bad={3: "start"})
    second = _poisoned(10, seed=2, bad={0: "event", 9: "start"})
    good = make_request(10, seed=3)
    with Spool.open(str(tmp_path)) as spool:
        ids = [spool.append(r.SerializeToString(), 10) for r in (first, second, good)]
        writer = _writer(spool, store, convert_in_store=convert_in_store)
        _drain(writer)
        assert spool.stats().batches == 0 and spool.recorded_groups() == []
    dead = _dead(store)
    assert [(d[0], d[1]) for d in dead] == [(ids[0], 3), (ids[1], 0), (ids[1], 9)]
    assert all("does not fit the table's column" in d[5] and "Timestamp" in d[5] for d in dead), dead
    assert {d[4] for d in dead} == {"test-agent"}
    # The dead letter is the span itself, as a one-span OTLP request ready to inspect or send again.
    resent = ExportTraceServiceRequest.FromString(dead[0][6])
    assert [s.span_id.hex() for s in resent.resource_spans[0].scope_spans[0].spans] == [dead[0][2]]
    assert resent.resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano == 2**63
    bad_ids = {d[2] for d in dead}
    expected = {s.span_id.hex() for r in (first, second, good) for s in r.resource_spans[0].scope_spans[0].spans}
    assert _stored_ids(store) == expected - bad_ids
    assert store.query("SELECT count() FROM otel_traces").result_rows[0][0] == 27
    assert writer.dead_spans == 3 and writer.healthy
    summary = store_status(store)["dead_letters"]
    assert summary["spans"] == 3 and "does not fit the table's column" in summary["last_reason"]


def _insert_without_confirming(spool: Spool, store, monkeypatch, **kwargs) -> None:
    """Run the writer until its group is in the store, as a process that dies before confirming it would."""
    import time

    monkeypatch.setattr(spool, "confirm", lambda group: None)
    writer = _writer(spool, store, **kwargs)
    writer.start()
    try:
        deadline = time.monotonic() + 60
        while writer.inserted_groups < 1:
            assert time.monotonic() < deadline, writer.status()
            time.sleep(0.02)
    finally:
        writer.stop(drain_timeout_s=0)
    monkeypatch.undo()


@pytest.mark.parametrize("refused_by", ["conversion", "store"])
def test_a_group_with_dead_letters_replayed_after_a_crash_stores_each_span_once(
    tmp_path, store, monkeypatch, refused_by
):
    if refused_by == "conversion":
        request = _poisoned(30, seed=4, bad={5: "start"})
    else:
        store.command("ALTER TABLE otel_traces ADD CONSTRAINT no_step_5 CHECK SpanName != 'step 5'")
        request = make_request(30, seed=4)
    with Spool.open(str(tmp_path)) as spool:
        spool.append(request.SerializeToString(), 30)
        _insert_without_confirming(spool, store, monkeypatch)
        assert len(spool.recorded_groups()) == 1
    with Spool.open(str(tmp_path)) as spool:  # the restarted server replays the group
        writer = _writer(spool, store)
        _drain(writer)
        assert writer.replayed_groups == 1 and spool.stats().batches == 0
    assert store.query("SELECT count(), uniqExact(SpanId) FROM otel_traces").result_rows[0] == (29, 29)
    assert [d[3] for d in _dead(store)] == ["step 5"]
    assert store.query("SELECT count() FROM tracemill_dead_letters").result_rows[0][0] == 1


def test_spans_the_store_refuses_are_found_by_splitting_the_group(tmp_path, store, caplog):
    # A constraint the store enforces refuses one span: the group is halved until it is found.
    store.command("ALTER TABLE otel_traces ADD CONSTRAINT no_step_13 CHECK SpanName != 'step 13'")
    with Spool.open(str(tmp_path)) as spool:
        for seed in range(3):
            spool.append(make_request(20, seed=seed).SerializeToString(), 20)
        writer = _writer(spool, store, batch_spans=1000)
        _drain(writer)
        assert spool.stats().batches == 0
    dead = _dead(store)
    assert [(d[3], "VIOLATED_CONSTRAINT" in d[5] or "no_step_13" in d[5]) for d in dead] == [("step 13", True)] * 3
    assert store.query("SELECT count(), uniqExact(SpanId) FROM otel_traces").result_rows[0] == (57, 57)
    assert "splitting it to find the spans" in caplog.text
    assert writer.healthy


def test_tracemill_status_reports_the_dead_letters_of_a_running_server_and_of_its_store(tmp_path, servers):
    import subprocess
    import sys

    from tests.servers import clean_env, run_cli, start_server

    store_dir = tmp_path / "store"
    setup = (
        "import sys\n"
        "from tracemill.collector.store.store import Store\n"
        "with Store.open(sys.argv[1]) as s:\n"
        "    s.command(\"ALTER TABLE otel_traces ADD CONSTRAINT no_step_4 CHECK SpanName != 'step 4'\")\n"
    )
    subprocess.run([sys.executable, "-c", setup, f"chdb://{store_dir}"], check=True, env=clean_env(), timeout=120)
    server = start_server(tmp_path)
    servers.append(server)
    assert server.post(make_request(10, seed=31).SerializeToString()).status_code == 200
    server.wait_inserted(9)
    status = server.status()
    assert status["store"]["dead_letters"]["spans"] == 1
    assert "no_step_4" in status["store"]["dead_letters"]["last_reason"]
    assert status["writer"]["dead_spans"] == 1 and status["writer"]["healthy"]
    shown = run_cli("status", "--server", server.url)
    assert shown.returncode == 0, shown.stderr
    assert "dead letters" in shown.stdout and "1 span(s)" in shown.stdout and "tracemill_dead_letters" in shown.stdout
    server.stop()
    # With no server, the command reads the store itself and says the same.
    shown = run_cli("status", "--store", f"chdb://{store_dir}", "--server", "http://127.0.0.1:9")
    assert shown.returncode == 0, shown.stderr
    assert "dead letters" in shown.stdout and "1 span(s)" in shown.stdout
