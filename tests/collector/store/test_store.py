from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import uuid

import pytest

from tracemill.collector.ingest.rows import SPAN_COLUMNS, empty_rows, row_count, sdk_spans_to_rows
from tracemill.collector.store.store import Store
from tracemill.errors import MissingDependencyError, StoreError, StoreLockedError

# Every column the exporter writes, with DateTime64 values read back as exact nanoseconds.
READ_BACK = ", ".join(
    f"arrayMap(t -> toUnixTimestamp64Nano(t), `{c}`)"
    if c == "Events.Timestamp"
    else "toUnixTimestamp64Nano(Timestamp)"
    if c == "Timestamp"
    else f"`{c}`"
    for c in SPAN_COLUMNS
)


def _stored(store: Store) -> dict[str, dict[str, object]]:
    """Rows of otel_traces as {span name: {column: value}}."""
    result = store.query(f"SELECT {READ_BACK} FROM otel_traces")
    return {
        row[SPAN_COLUMNS.index("SpanName")]: dict(zip(SPAN_COLUMNS, row, strict=True)) for row in result.result_rows
    }


def _expected(rows) -> dict[str, dict[str, object]]:
    names = rows[SPAN_COLUMNS.index("SpanName")]
    return {names[i]: {c: rows[j][i] for j, c in enumerate(SPAN_COLUMNS)} for i in range(row_count(rows))}


def _count(store: Store, table: str = "otel_traces") -> int:
    return store.query(f"SELECT count() FROM {table}").result_rows[0][0]


def test_open_creates_store_directory(tmp_path, chdb_dir):
    # chDB allows one directory per process, so the new directory is checked on the shared one.
    assert chdb_dir.is_dir() or not chdb_dir.exists()
    with Store.open(f"chdb://{chdb_dir}", database="default") as store:
        assert chdb_dir.is_dir()
        assert store.embedded and store.location == str(chdb_dir)


def test_sdk_spans_round_trip_through_store_with_every_value(store, sdk_spans):
    rows = sdk_spans_to_rows(sdk_spans)
    assert store.insert_spans(rows) == 2
    stored = _stored(store)
    expected = _expected(rows)
    assert stored.keys() == expected.keys() == {"chat gpt-4o", "invoke_agent planner"}
    for name, row in expected.items():
        for column, value in row.items():
            assert stored[name][column] == value, f"{name}: {column}"
    child = stored["chat gpt-4o"]
    sdk_child = next(s for s in sdk_spans if s.name == "chat gpt-4o")
    assert child["Timestamp"] == sdk_child.start_time
    assert child["SpanAttributes"]["gen_ai.usage.input_tokens"] == "1234"
    assert child["Events.Attributes"][0] == {"index": "0", "finish_reason": "stop", "score": "0.25"}
    assert child["Links.Attributes"] == [{"link.reason": "caused_by", "link.n": "2"}]
    assert child["StatusCode"] == "Error"


def test_convenience_columns_are_filled_from_inserted_spans(store, sdk_spans):
    store.insert_spans(sdk_spans_to_rows(sdk_spans))
    rows = store.query(
        "SELECT SpanName, GenAiOperation, AgentName, ConversationId, TaskId, InputTokens, OutputTokens "
        "FROM otel_traces ORDER BY SpanName"
    ).result_rows
    assert rows == [
        ("chat gpt-4o", "chat", "", "conv-1", "", 1234, 56),
        ("invoke_agent planner", "invoke_agent", "planner", "", "task-7", 0, 0),
    ]


def test_exporter_insert_statement_works_on_our_table(store):
    # The 22-column INSERT of the OpenTelemetry Collector's clickhouseexporter, with literal values.
    columns = ",\n    ".join(SPAN_COLUMNS)
    store.command(
        f"""INSERT INTO {store.database}.otel_traces (
    {columns}
) VALUES (
    '2025-03-01 12:00:00.123456789', '5b8efff798038103d269b633813fc60c', 'eee19b7ec3c1b174',
    'eee19b7ec3c1b173', '', 'execute_tool search', 'Internal', 'agent-svc',
    map('service.name', 'agent-svc'), 'my.scope', '1.0', map('gen_ai.tool.name', 'search'),
    1500000, 'Error', 'boom',
    ['2025-03-01 12:00:00.200000000'], ['exception'], [map('exception.type', 'ValueError')],
    ['5b8efff798038103d269b633813fc60c'], ['eee19b7ec3c1b172'], [''], [map('k', 'v')]
)"""
    )
    row = store.query(
        "SELECT toUnixTimestamp64Nano(Timestamp), SpanName, Duration, StatusCode, ToolName, Events.Name, Links.SpanId "
        "FROM otel_traces"
    ).result_rows
    assert row == [
        (1740830400123456789, "execute_tool search", 1500000, "Error", "search", ["exception"], ["eee19b7ec3c1b172"])
    ]


def test_repeated_insert_with_same_dedup_token_stores_nothing(store, sdk_spans):
    rows = sdk_spans_to_rows(sdk_spans)
    store.insert_spans(rows, dedup_token="batch-1")
    store.insert_spans(rows, dedup_token="batch-1")
    assert _count(store) == 2
    store.insert_spans(rows, dedup_token="batch-2")
    assert _count(store) == 4


def test_identical_insert_without_token_is_dropped_as_duplicate(store, sdk_spans):
    rows = sdk_spans_to_rows(sdk_spans)
    store.insert_spans(rows)
    store.insert_spans(rows)
    assert _count(store) == 2


def test_dedup_token_survives_reopening_the_store(chdb_dsn, store, sdk_spans):
    rows = sdk_spans_to_rows(sdk_spans)
    store.insert_spans(rows, dedup_token="seg-1")
    store.close()
    with Store.open(chdb_dsn, database=store.database) as again:
        again.insert_spans(rows, dedup_token="seg-1")
        assert _count(again) == 2
        again.command(f"DROP DATABASE `{store.database}`")


def test_trace_id_lookup_gets_each_trace_time_range(store, sdk_spans):
    store.insert_spans(sdk_spans_to_rows(sdk_spans))
    rows = store.query("SELECT TraceId, min(Start), max(End) FROM otel_traces_trace_id_ts GROUP BY TraceId").result_rows
    trace_id = f"{sdk_spans[0].context.trace_id:032x}"
    assert [r[0] for r in rows] == [trace_id]
    spans = store.query("SELECT toDateTime(min(Timestamp)), toDateTime(max(Timestamp)) FROM otel_traces").result_rows[0]
    assert rows[0][1:] == spans


def test_insert_spans_with_no_rows_sends_nothing(store):
    assert store.insert_spans(empty_rows()) == 0
    assert _count(store) == 0


def test_insert_spans_with_wrong_column_count_raises_value_error(store):
    with pytest.raises(ValueError, match="takes 22 columns in SPAN_COLUMNS order"):
        store.insert_spans([[1], [2]])


def test_bad_sql_raises_store_error_naming_the_store(store):
    with pytest.raises(StoreError, match=rf"query failed in {store.location}: .*UNKNOWN_TABLE"):
        store.query("SELECT * FROM no_such_table")
    with pytest.raises(StoreError, match=rf"query failed in {store.location}: .*UNKNOWN_TABLE"):
        store.query_arrow("SELECT * FROM no_such_table")


def test_arrow_query_returns_array_columns_as_buffers(store):
    table = store.query_arrow("SELECT number AS n, range(toUInt16(number)) AS r FROM numbers({k:UInt32}) ORDER BY n",
                              {"k": 4})
    assert table.column("n").to_pylist() == [0, 1, 2, 3]
    assert table.column("r").combine_chunks().value_lengths().to_pylist() == [0, 1, 2, 3]
    assert table.column("r").combine_chunks().flatten().to_pylist() == [0, 0, 1, 0, 1, 2]


def test_closed_store_raises_store_error_saying_reopen(store):
    store.close()
    with pytest.raises(StoreError, match="is closed; open it again"):
        store.query("SELECT 1")


def test_threads_share_one_store(store, sdk_spans):
    rows = sdk_spans_to_rows(sdk_spans)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                batch = [list(column) for column in rows]
                batch[SPAN_COLUMNS.index("SpanId")] = [uuid.uuid4().hex[:16] for _ in range(row_count(rows))]
                store.insert_spans(batch)
                store.query("SELECT count() FROM otel_traces")
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _count(store) == 4 * 5 * 2


def test_second_directory_in_same_process_raises_store_error_naming_both(store, tmp_path):
    other = tmp_path / "other"
    with pytest.raises(
        StoreError,
        match=rf"cannot open the embedded store {other}: this process already has"
        rf" the embedded store {store.location} open.*one store directory per process",
    ):
        Store.open(f"chdb://{other}")


HOLDER = textwrap.dedent(
    """
    import sys
    from tracemill.collector.store.store import Store
    store = Store.open(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.read()
    store.close()
    """
)


def test_store_held_by_another_process_raises_locked_error_with_fix(tmp_path):
    # Runs with no Store open in this process (no `store` fixture), so chDB may try another directory.
    directory = tmp_path / "held"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, f"chdb://{directory}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLockedError) as info:
            Store.open(f"chdb://{directory}")
        message = str(info.value)
        assert str(directory) in message
        assert f"pid {holder.pid}" in message
        assert "Stop that process" in message and "tracemill serve" in message
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
        holder.stdout.close()
    with Store.open(f"chdb://{directory}") as store:  # released once the holder is gone
        assert _count(store, "tracemill_schema") > 0


def test_missing_chdb_raises_missing_dependency_error_naming_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "chdb", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'tracemill\[server\]'"):
        Store.open(f"chdb://{tmp_path}/x")


def test_unreachable_server_raises_store_error_without_password():
    with pytest.raises(StoreError) as info:
        Store.open("http://bob:hunter2@127.0.0.1:1/traces")
    assert "cannot connect to the ClickHouse server at http://bob:***@127.0.0.1:1" in str(info.value)
    assert "hunter2" not in str(info.value)


SERVER = os.environ.get("TRACEMILL_TEST_CLICKHOUSE_URL")


@pytest.mark.skipif(not SERVER, reason="set TRACEMILL_TEST_CLICKHOUSE_URL to a ClickHouse server DSN to run")
def test_server_store_round_trips_spans_and_deduplicates(sdk_spans):
    database = f"tracemill_test_{uuid.uuid4().hex[:12]}"
    with Store.open(SERVER, database=database) as store:
        try:
            rows = sdk_spans_to_rows(sdk_spans)
            store.insert_spans(rows, dedup_token="server-1")
            store.insert_spans(rows, dedup_token="server-1")
            assert _count(store) == 2
            stored, expected = _stored(store), _expected(rows)
            for name, row in expected.items():
                for column, value in row.items():
                    assert stored[name][column] == value, f"{name}: {column}"
        finally:
            store.command(f"DROP DATABASE IF EXISTS `{database}`")


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) << 10 for line in status if line.startswith("VmRSS:"))


def test_release_free_memory_hands_back_what_a_large_query_freed(store):
    """The embedded engine keeps freed memory for reuse; the writer purges it once it has caught up."""
    before = _rss_bytes()
    store.query("SELECT length(groupArray(randomString(1000))) FROM numbers(100000)")
    grown = _rss_bytes() - before
    assert grown > 100 << 20, "the query should leave the engine holding freed memory"
    store.release_free_memory()
    assert _rss_bytes() - before < grown / 2
