"""The spool writer on a real chDB store: merged inserts, exactly-once replays, poison batches, workers."""

from __future__ import annotations

import pytest

from tests.servers import make_request
from tracemill.collector.ingest.blocks import encode_payloads, insert_block, payloads_to_rows, span_column_types
from tracemill.collector.ingest.rows import SPAN_COLUMNS
from tracemill.collector.ingest.spool import Spool
from tracemill.collector.ingest.writer import SpoolWriter
from tracemill.collector.store.connection import StoreLink


def _writer(spool: Spool, store, **kwargs) -> SpoolWriter:
    return SpoolWriter(spool, StoreLink(lambda: store, location=store.location), **kwargs)


def _run_until_idle(writer: SpoolWriter, timeout_s: float = 30) -> None:
    """Start the writer, wait until the spool is empty, stop it (whatever happened)."""
    writer.start()
    try:
        assert writer.wait_idle(timeout_s)
    finally:
        writer.stop()


def _span_counts(store) -> tuple[int, int]:
    return tuple(store.query("SELECT count(), uniqExact(SpanId) FROM otel_traces").result_rows[0])


def test_waiting_batches_are_merged_into_one_insert(tmp_path, store):
    with Spool.open(str(tmp_path)) as spool:
        for seed in range(5):
            spool.append(make_request(100, seed=seed).SerializeToString(), 100)
        writer = _writer(spool, store, batch_spans=1000, flush_interval_s=0.05)
        _run_until_idle(writer)
        assert writer.inserted_groups == 1
        assert writer.inserted_spans == 500
        assert _span_counts(store) == (500, 500)
        assert spool.stats().batches == 0


def test_groups_hold_at_most_batch_spans_spans(tmp_path, store):
    with Spool.open(str(tmp_path)) as spool:
        for seed in range(6):
            spool.append(make_request(100, seed=seed).SerializeToString(), 100)
        writer = _writer(spool, store, batch_spans=200, flush_interval_s=0.05)
        _run_until_idle(writer)
        assert writer.inserted_groups == 3
        assert _span_counts(store) == (600, 600)


def test_group_inserted_before_a_crash_is_replayed_without_storing_a_span_twice(tmp_path, store):
    with Spool.open(str(tmp_path)) as spool:
        for seed in range(3):
            spool.append(make_request(40, seed=seed).SerializeToString(), 40)
        group = spool.record_group(spool.unclaimed(max_spans=1000))
        # The writer inserted the group, then the process died before confirming it in the spool.
        block = encode_payloads(spool.payloads(group.batch_ids), span_column_types(store))
        insert_block(store, block, dedup_token=group.token)
        assert _span_counts(store) == (120, 120)
    with Spool.open(str(tmp_path)) as spool:  # the restarted server
        spool.append(make_request(10, seed=9).SerializeToString(), 10)
        writer = _writer(spool, store, flush_interval_s=0.05)
        _run_until_idle(writer)
        assert writer.replayed_groups == 1
        assert _span_counts(store) == (130, 130)
        assert spool.recorded_groups() == [] and spool.stats().batches == 0


def test_group_recorded_but_not_inserted_before_a_crash_is_stored_once(tmp_path, store):
    with Spool.open(str(tmp_path)) as spool:
        spool.append(make_request(25).SerializeToString(), 25)
        spool.record_group(spool.unclaimed(max_spans=1000))
    with Spool.open(str(tmp_path)) as spool:
        writer = _writer(spool, store, flush_interval_s=0.05)
        _run_until_idle(writer)
        assert _span_counts(store) == (25, 25)


def test_batch_that_cannot_be_converted_is_set_aside_and_the_rest_is_stored(tmp_path, store, caplog):
    with Spool.open(str(tmp_path)) as spool:
        spool.append(make_request(10, seed=1).SerializeToString(), 10)
        bad = spool.append(b"\x0a\xff\xff\xff\xff\x0f not protobuf", 3)
        spool.append(make_request(10, seed=2).SerializeToString(), 10)
        writer = _writer(spool, store, flush_interval_s=0.05)
        _run_until_idle(writer)
        assert _span_counts(store) == (20, 20)
        assert writer.buried_batches == 1
        assert spool.stats().dead_batches == 1
        assert f"spooled batch {bad} cannot be converted" in caplog.text


def test_stop_drains_batches_that_were_not_yet_due(tmp_path, store):
    with Spool.open(str(tmp_path)) as spool:
        spool.append(make_request(7).SerializeToString(), 7)
        writer = _writer(spool, store, batch_spans=10_000, flush_interval_s=3600)
        writer.start()
        writer.stop(drain_timeout_s=30)
        assert _span_counts(store) == (7, 7)


def test_encoded_block_holds_the_same_rows_as_the_column_insert(store):
    payloads = [(1, make_request(30, seed=1).SerializeToString()), (2, make_request(30, seed=2).SerializeToString())]
    rows, failed = payloads_to_rows(payloads)
    assert failed == []
    store.insert_spans(rows, dedup_token="column-insert")
    insert_block(store, encode_payloads(payloads, span_column_types(store)), dedup_token="native-block")
    columns = ", ".join(f"`{c}`" for c in SPAN_COLUMNS)
    stored = store.query(f"SELECT {columns} FROM otel_traces ORDER BY SpanId").result_rows
    assert len(stored) == 120
    # sorted by span id, the two copies of each span (one per insert path) are neighbours and equal
    assert all(stored[i] == stored[i + 1] for i in range(0, 120, 2))
    assert len({row[2] for row in stored}) == 60


@pytest.mark.timeout(120)
def test_writer_with_a_worker_process_stores_every_span(tmp_path, store):
    with Spool.open(str(tmp_path)) as spool:
        for seed in range(4):
            spool.append(make_request(50, seed=seed).SerializeToString(), 50)
        writer = _writer(
            spool, store, batch_spans=100, flush_interval_s=0.05, encoder_processes=1, convert_in_store=False
        )
        _run_until_idle(writer, 60)
        assert writer.status()["encoder_processes"] == 1
        assert writer.status()["conversion"] == "python"
        assert _span_counts(store) == (200, 200)


def test_group_the_store_refuses_to_convert_is_stored_by_the_python_conversion(tmp_path, store):
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList

    members = [KeyValue(key="b", value=AnyValue(int_value=1)), KeyValue(key="a", value=AnyValue())]
    nested = make_request(5, seed=3)
    nested.resource_spans[0].scope_spans[0].spans[0].attributes.append(
        KeyValue(key="m", value=AnyValue(kvlist_value=KeyValueList(values=members)))
    )
    with Spool.open(str(tmp_path)) as spool:
        spool.append(make_request(10, seed=1).SerializeToString(), 10)
        writer = _writer(spool, store, batch_spans=10, flush_interval_s=0.05)
        writer.start()
        try:
            assert writer.wait_idle(30)
            spool.append(nested.SerializeToString(), 5)
            writer.wake()
            assert writer.wait_idle(30)
        finally:
            writer.stop()
        assert writer.status()["conversion"] == "clickhouse"
        assert writer.reference_groups == 1
        assert writer.inserted_groups == 2
        assert _span_counts(store) == (15, 15)
        stored = store.query("SELECT SpanAttributes['m'] FROM otel_traces WHERE mapContains(SpanAttributes, 'm')")
        assert stored.result_rows == [('{"a":null,"b":1}',)]


def test_groups_are_claimed_and_inserted_while_an_earlier_insert_runs(tmp_path, store, monkeypatch):
    # The first group's insert is held up (a slow store); spans arriving meanwhile must not wait
    # for it: their group is claimed and its insert starts on the other inserter.
    import threading

    from tracemill.collector.ingest import writer as writer_module

    first_started, release, second_started = threading.Event(), threading.Event(), threading.Event()
    started: list[str] = []

    def slow_first_insert(connection, payloads, *, dedup_token):
        started.append(dedup_token)
        if len(started) == 1:
            first_started.set()
            release.wait(30)
        else:
            second_started.set()
        writer_module.insert_requests.__wrapped__(connection, payloads, dedup_token=dedup_token)

    slow_first_insert.__wrapped__ = writer_module.insert_requests
    monkeypatch.setattr(writer_module, "insert_requests", slow_first_insert)
    with Spool.open(str(tmp_path)) as spool:
        spool.append(make_request(100, seed=1).SerializeToString(), 100)
        writer = _writer(spool, store, batch_spans=100, flush_interval_s=0.05)
        writer.start()
        try:
            assert first_started.wait(10)
            spool.append(make_request(100, seed=2).SerializeToString(), 100)
            writer.wake()
            assert second_started.wait(10), "the second group waited for the first group's insert"
            release.set()
            assert writer.wait_idle(30)
        finally:
            release.set()
            writer.stop()
        assert len(started) == 2
        assert writer.inserted_groups == 2
        assert _span_counts(store) == (200, 200)
