from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tracemill.collector.store import schema
from tracemill.collector.store.schema import MIGRATIONS, SchemaOptions, migrate
from tracemill.collector.store.store import Store
from tracemill.errors import ConfigError, SchemaError, StoreError

# The clickhouseexporter traces table (internal/sqltemplates/traces_table.sql), as ClickHouse reports it.
EXPORTER_COLUMNS = [
    ("Timestamp", "DateTime64(9)", "", "CODEC(Delta(8), ZSTD(1))"),
    ("TraceId", "String", "", "CODEC(ZSTD(1))"),
    ("SpanId", "String", "", "CODEC(ZSTD(1))"),
    ("ParentSpanId", "String", "", "CODEC(ZSTD(1))"),
    ("TraceState", "String", "", "CODEC(ZSTD(1))"),
    ("SpanName", "LowCardinality(String)", "", "CODEC(ZSTD(1))"),
    ("SpanKind", "LowCardinality(String)", "", "CODEC(ZSTD(1))"),
    ("ServiceName", "LowCardinality(String)", "", "CODEC(ZSTD(1))"),
    ("ResourceAttributes", "Map(LowCardinality(String), String)", "", "CODEC(ZSTD(1))"),
    ("ScopeName", "String", "", "CODEC(ZSTD(1))"),
    ("ScopeVersion", "String", "", "CODEC(ZSTD(1))"),
    ("SpanAttributes", "Map(LowCardinality(String), String)", "", "CODEC(ZSTD(1))"),
    ("Duration", "UInt64", "", "CODEC(T64, ZSTD(1))"),
    ("StatusCode", "LowCardinality(String)", "", "CODEC(ZSTD(1))"),
    ("StatusMessage", "String", "", "CODEC(ZSTD(1))"),
    ("Events.Timestamp", "Array(DateTime64(9))", "", "CODEC(ZSTD(1))"),
    ("Events.Name", "Array(LowCardinality(String))", "", "CODEC(ZSTD(1))"),
    ("Events.Attributes", "Array(Map(LowCardinality(String), String))", "", "CODEC(ZSTD(1))"),
    ("Links.TraceId", "Array(String)", "", "CODEC(ZSTD(1))"),
    ("Links.SpanId", "Array(String)", "", "CODEC(ZSTD(1))"),
    ("Links.TraceState", "Array(String)", "", "CODEC(ZSTD(1))"),
    ("Links.Attributes", "Array(Map(LowCardinality(String), String))", "", "CODEC(ZSTD(1))"),
    ("ResourceAttributeItems", "Array(String)", "ALIAS", ""),
    ("SpanAttributeItems", "Array(String)", "ALIAS", ""),
]

FLAG_COLUMNS = [
    "RunId", "MinerVersion", "TraceId", "SpanId", "Detector", "DetectorVersion", "Category", "Kind", "Severity",
    "Confidence", "Evidence", "CreatedAt", "Muted",
]  # fmt: skip

CONVENIENCE_COLUMNS = [
    ("GenAiOperation", "LowCardinality(String)"),
    ("ToolName", "LowCardinality(String)"),
    ("AgentName", "LowCardinality(String)"),
    ("ConversationId", "String"),
    ("TaskId", "String"),
    ("InputTokens", "UInt64"),
    ("OutputTokens", "UInt64"),
    ("AgentVersion", "LowCardinality(String)"),
]


def _columns(store: Store, table: str) -> list[tuple]:
    return store.query(
        "SELECT name, type, default_kind, compression_codec FROM system.columns "
        "WHERE database = {db:String} AND table = {t:String} ORDER BY position",
        {"db": store.database, "t": table},
    ).result_rows


def _table(store: Store, name: str) -> dict:
    result = store.query(
        "SELECT engine, partition_key, sorting_key, primary_key, engine_full FROM system.tables "
        "WHERE database = {db:String} AND name = {t:String}",
        {"db": store.database, "t": name},
    )
    assert result.result_rows, f"table {name} does not exist"
    return dict(zip(result.column_names, result.result_rows[0], strict=True))


def test_spans_table_matches_exporter_columns_then_adds_materialized_ones(store):
    columns = _columns(store, "otel_traces")
    assert [tuple(c) for c in columns[: len(EXPORTER_COLUMNS)]] == EXPORTER_COLUMNS
    extra = columns[len(EXPORTER_COLUMNS) :]
    assert [(name, type_) for name, type_, _, _ in extra] == CONVENIENCE_COLUMNS
    assert {kind for _, _, kind, _ in extra} == {"MATERIALIZED"}


def test_spans_table_has_exporter_engine_keys_and_settings(store):
    table = _table(store, "otel_traces")
    assert table["engine"] == "MergeTree"
    assert table["partition_key"] == "toDate(Timestamp)"
    assert table["sorting_key"] == "ServiceName, SpanName, toDateTime(Timestamp), Timestamp"
    assert table["primary_key"] == "ServiceName, SpanName, toDateTime(Timestamp)"
    assert "index_granularity = 8192" in table["engine_full"]
    assert "ttl_only_drop_parts = 1" in table["engine_full"]
    assert "non_replicated_deduplication_window = 10000" in table["engine_full"]
    assert "TTL" not in table["engine_full"]


def test_spans_table_has_exporter_skip_indexes(store):
    indexes = dict(
        store.query(
            "SELECT name, type_full FROM system.data_skipping_indices "
            "WHERE database = {db:String} AND table = 'otel_traces'",
            {"db": store.database},
        ).result_rows
    )
    assert indexes == {
        "idx_trace_id": "bloom_filter(0.001)",
        "idx_res_attr_key": "bloom_filter(0.01)",
        "idx_res_attr_value": "bloom_filter(0.01)",
        "idx_span_attr_key": "bloom_filter(0.01)",
        "idx_span_attr_value": "bloom_filter(0.01)",
        "idx_duration": "minmax",
        "idx_lower_span_name": "tokenbf_v1(32768, 3, 0)",
        "idx_conversation_id": "bloom_filter(0.01)",
        "idx_task_id": "bloom_filter(0.01)",
    }


def test_trace_id_lookup_table_and_view_match_exporter(store):
    assert [tuple(c[:2]) for c in _columns(store, "otel_traces_trace_id_ts")] == [
        ("TraceId", "String"),
        ("Start", "SimpleAggregateFunction(min, DateTime)"),
        ("End", "SimpleAggregateFunction(max, DateTime)"),
    ]
    lookup = _table(store, "otel_traces_trace_id_ts")
    assert (lookup["engine"], lookup["sorting_key"], lookup["partition_key"]) == (
        "AggregatingMergeTree",
        "(TraceId)",  # ORDER BY (TraceId), as the exporter writes it
        "toStartOfWeek(Start)",
    )
    view = _table(store, "otel_traces_trace_id_ts_mv")
    assert view["engine"] == "MaterializedView"


def test_feedback_and_flags_tables_have_replacing_keys(store):
    feedback = _table(store, "tracemill_feedback")
    assert feedback["engine"] == "ReplacingMergeTree"
    assert feedback["sorting_key"] == "TraceId, SpanId, Name, Author"
    assert "ReplacingMergeTree(UpdatedAt, IsDeleted)" in feedback["engine_full"]
    flags = _table(store, "tracemill_flags")
    assert flags["sorting_key"] == "TraceId, Detector, SpanId"
    assert [c[0] for c in _columns(store, "tracemill_flags")] == FLAG_COLUMNS
    scores = _table(store, "tracemill_trace_scores")
    assert (scores["engine"], scores["sorting_key"]) == ("ReplacingMergeTree", "TraceId")
    assert [c[0] for c in _columns(store, "tracemill_trace_scores")][:4] == [
        "TraceId", "ModelVersion", "FailureProbability", "CreatedAt"
    ]


def test_new_store_records_every_migration_once(store):
    rows = store.query("SELECT Version, Name FROM tracemill_schema ORDER BY Version").result_rows
    assert rows == [(m.version, m.name) for m in MIGRATIONS]


def test_migrate_again_applies_nothing_and_keeps_one_row_per_version(store):
    assert migrate(store) == []
    assert migrate(store) == []
    versions = store.query("SELECT Version FROM tracemill_schema ORDER BY Version").result_rows
    assert [v for (v,) in versions] == [m.version for m in MIGRATIONS]


def test_reopening_store_does_not_migrate_again(chdb_dsn, store):
    with Store.open(chdb_dsn, database=store.database) as again:
        count = again.query("SELECT count() FROM tracemill_schema").result_rows[0][0]
    assert count == len(MIGRATIONS)


def test_migrate_adopts_spans_table_created_by_the_exporter(chdb_dsn, database_name):
    # The official collector got there first: its table exists, tracemill's additions do not.
    with Store.open(chdb_dsn, migrate=False) as bare:
        bare.command(f"CREATE DATABASE `{database_name}`")
        for statement in MIGRATIONS[0].statements(SchemaOptions(database=database_name)):
            bare.command(statement)
    with Store.open(chdb_dsn, database=database_name, migrate=False) as bare:
        assert schema.applied_versions(bare) == set()
        assert migrate(bare) == [m.version for m in MIGRATIONS]
        names = [c[0] for c in _columns(bare, "otel_traces")]
        assert names[-len(CONVENIENCE_COLUMNS) :] == [name for name, _ in CONVENIENCE_COLUMNS]
        assert "min_bytes_for_wide_part" in _table(bare, "otel_traces")["engine_full"]
        bare.command(f"DROP DATABASE `{database_name}`")


def test_open_without_migrate_on_missing_database_raises_schema_error(chdb_dsn, database_name):
    with pytest.raises(SchemaError, match=rf"database '{database_name}' does not exist.*migrate=True"):
        Store.open(chdb_dsn, database=database_name, migrate=False)


def test_store_with_newer_schema_raises_schema_error_saying_upgrade(store):
    store.insert(
        "tracemill_schema",
        [[999, "from the future", datetime.now(timezone.utc), "9.9"]],
        ["Version", "Name", "AppliedAt", "TracemillVersion"],
    )
    with pytest.raises(SchemaError, match=r"schema version 999, newer than this tracemill knows.*upgrade tracemill"):
        migrate(store)


def test_failing_migration_raises_schema_error_naming_it(store, monkeypatch):
    next_version = MIGRATIONS[-1].version + 1
    broken = schema.Migration(next_version, "broken step", lambda o: ["ALTER TABLE nope ADD COLUMN x UInt8"])
    monkeypatch.setattr(schema, "MIGRATIONS", (*MIGRATIONS, broken))
    with pytest.raises(SchemaError, match=rf"migration {broken.version} \(broken step\) failed") as info:
        migrate(store)
    assert isinstance(info.value, StoreError)
    assert broken.version not in schema.applied_versions(store)


def test_ttl_days_puts_ttl_on_spans_and_lookup_tables(chdb_dsn, database_name):
    with Store.open(chdb_dsn, database=database_name, ttl_days=30) as store:
        assert "TTL toDateTime(Timestamp) + toIntervalDay(30)" in _table(store, "otel_traces")["engine_full"]
        assert "TTL toDateTime(Start) + toIntervalDay(30)" in _table(store, "otel_traces_trace_id_ts")["engine_full"]
        store.command(f"DROP DATABASE `{database_name}`")


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "7"])
def test_bad_ttl_days_raises_config_error(bad):
    with pytest.raises(ConfigError, match="ttl_days"):
        SchemaOptions(database="d", ttl_days=bad)


def test_cluster_ddl_runs_on_cluster_with_replicated_engines():
    options = SchemaOptions(database="traces", cluster="prod")
    statements = [s for m in MIGRATIONS for s in m.statements(options)]
    statements += schema.bootstrap_statements(options)
    for statement in statements:
        assert " ON CLUSTER `prod`" in statement.splitlines()[0], statement
    replica = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"
    text = "\n".join(statements)
    assert f"ENGINE = ReplicatedMergeTree({replica})" in text
    assert f"ENGINE = ReplicatedAggregatingMergeTree({replica})" in text
    assert f"ENGINE = ReplicatedReplacingMergeTree({replica}, UpdatedAt, IsDeleted)" in text
    assert f"ENGINE = ReplicatedReplacingMergeTree({replica}, CreatedAt)" in text
    assert "ENGINE = MergeTree(" not in text
    # Replicated tables deduplicate inserts by default; the non-replicated window is not set.
    assert "non_replicated_deduplication_window" not in text
    assert "CREATE DATABASE IF NOT EXISTS `traces` ON CLUSTER `prod`" in text


def test_single_server_ddl_has_no_cluster_clause():
    text = "\n".join(s for m in MIGRATIONS for s in m.statements(SchemaOptions(database="traces")))
    assert "ON CLUSTER" not in text and "Replicated" not in text


def test_convenience_columns_are_derived_from_span_attributes(store):
    store.command(
        "INSERT INTO otel_traces (TraceId, SpanName, SpanAttributes) VALUES ('t1', 'execute_tool search', "
        "map('gen_ai.operation.name', 'execute_tool', 'gen_ai.tool.name', 'search', 'gen_ai.agent.name', 'planner', "
        "'gen_ai.conversation.id', 'c9', 'tracemill.task.id', 'task-3', 'gen_ai.usage.input_tokens', '120', "
        "'gen_ai.usage.output_tokens', 'n/a', 'gen_ai.agent.version', '2.1'))"
    )
    row = store.query(
        "SELECT GenAiOperation, ToolName, AgentName, ConversationId, TaskId, InputTokens, OutputTokens, AgentVersion "
        "FROM otel_traces"
    ).result_rows
    assert row == [("execute_tool", "search", "planner", "c9", "task-3", 120, 0, "2.1")]


def test_collector_sized_inserts_are_written_as_compact_parts(store):
    # About 15 MiB uncompressed: over ClickHouse's default Wide threshold (10 MiB), under tracemill's.
    store.command(
        "INSERT INTO otel_traces (TraceId, SpanName, SpanAttributes) "
        "SELECT hex(number), 'chat', map('gen_ai.output.messages', repeat('x', 1000)) FROM numbers(15000)"
    )
    parts = store.query(
        "SELECT part_type, data_uncompressed_bytes FROM system.parts "
        "WHERE database = {db:String} AND table = 'otel_traces' AND active",
        {"db": store.database},
    ).result_rows
    assert len(parts) == 1
    part_type, size = parts[0]
    assert 10 << 20 < size < schema.COMPACT_PART_MAX_BYTES
    assert part_type == "Compact"
    assert f"min_bytes_for_wide_part = {schema.COMPACT_PART_MAX_BYTES}" in _table(store, "otel_traces")["engine_full"]


def _feedback_row(updated: datetime, **fields) -> dict:
    row = {
        "TraceId": "t1",
        "SpanId": "s1",
        "Name": "correctness",
        "Author": "alice",
        "Kind": "score",
        "Value": "{}",
        "Score": None,
        "Label": "",
        "Comment": "",
        "CreatedAt": updated,
        "UpdatedAt": updated,
        "IsDeleted": 0,
    }
    row.update(fields)
    return row


def _insert_feedback(store: Store, *rows: dict) -> None:
    names = list(rows[0])
    store.insert("tracemill_feedback", [[r[n] for n in names] for r in rows], names)


def test_feedback_keeps_latest_row_per_key_and_drops_tombstones(store):
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    _insert_feedback(store, _feedback_row(t0, Score=0.2), _feedback_row(t0, Author="bob", Score=0.9))
    _insert_feedback(store, _feedback_row(t0 + timedelta(seconds=1), Score=0.4, Comment="revised"))
    current = store.query("SELECT Author, Score, Comment FROM tracemill_feedback FINAL ORDER BY Author").result_rows
    assert current == [("alice", 0.4, "revised"), ("bob", 0.9, "")]
    _insert_feedback(store, _feedback_row(t0 + timedelta(seconds=2), Author="bob", IsDeleted=1))
    current = store.query("SELECT Author FROM tracemill_feedback FINAL").result_rows
    assert current == [("alice",)]


@pytest.mark.parametrize(("field", "value"), [("Kind", "thumbs"), ("Value", "{not json")])
def test_feedback_with_unknown_kind_or_bad_json_is_refused(store, field, value):
    with pytest.raises(StoreError, match=r"kind_known|value_is_json"):
        _insert_feedback(store, _feedback_row(datetime.now(timezone.utc), **{field: value}))


def test_flags_keep_one_row_per_trace_detector_span_from_the_latest_run(store):
    names = FLAG_COLUMNS[:-1]  # Muted has a default
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    store.insert(
        "tracemill_flags",
        [["r1", "0.1", "t1", "s1", "loop", "1", "failure", "loop", "high", 0.7, "3 repeats", t0]],
        names,
    )
    store.insert(
        "tracemill_flags",
        [["r2", "0.1", "t1", "s1", "loop", "1", "failure", "loop", "high", 0.9, "4 repeats", t0 + timedelta(1 / 1440)]],
        names,
    )
    rows = store.query("SELECT RunId, Confidence, Evidence FROM tracemill_flags FINAL").result_rows
    assert rows == [("r2", 0.9, "4 repeats")]
