"""The store's tables, created and migrated in numbered steps recorded in ``tracemill_schema``.

Migration 1 creates the OpenTelemetry Collector ClickHouse exporter's traces tables exactly as the
exporter does (``CREATE TABLE IF NOT EXISTS``), so a table the official collector made is adopted
as is and the official collector can write into ours. Later migrations only add to it (materialized
convenience columns, insert deduplication, compact parts for small inserts) and create tracemill's
own tables; none changes a column the exporter writes.

Every statement is idempotent (``IF NOT EXISTS``), and a version is recorded only after all its
statements ran, so an interrupted or concurrent migration is finished by the next one.

With ``cluster`` set, every statement runs ``ON CLUSTER`` and tables use Replicated* engines; the
replica path follows ClickHouse's documented ``/clickhouse/tables/{shard}/{database}/{table}``
convention, so the servers need the ``shard`` and ``replica`` macros.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tracemill.collector.store import schema_versions
from tracemill.errors import ConfigError, SchemaError, StoreError

__all__ = [
    "COMPACT_PART_MAX_BYTES",
    "DEAD_LETTERS_TABLE",
    "EVAL_CASES_TABLE",
    "EVAL_RESULTS_TABLE",
    "EVAL_RUNS_TABLE",
    "EVAL_SUITES_TABLE",
    "FEEDBACK_KINDS",
    "FEEDBACK_TABLE",
    "FLAGS_TABLE",
    "JUDGE_CACHE_TABLE",
    "MIGRATIONS",
    "MINER_RUNS_TABLE",
    "SCHEMA_TABLE",
    "SPANS_TABLE",
    "TAXONOMY_TABLE",
    "TRACE_ID_TS_TABLE",
    "TRACE_ID_TS_VIEW",
    "TRACE_SCORES_TABLE",
    "Migration",
    "SchemaOptions",
    "applied_versions",
    "migrate",
    "quote_identifier",
    "quote_literal",
]

logger = logging.getLogger(__name__)

SPANS_TABLE = "otel_traces"
TRACE_ID_TS_TABLE = "otel_traces_trace_id_ts"
TRACE_ID_TS_VIEW = "otel_traces_trace_id_ts_mv"
FEEDBACK_TABLE = "tracemill_feedback"
FLAGS_TABLE = "tracemill_flags"
TRACE_SCORES_TABLE = "tracemill_trace_scores"
MINER_RUNS_TABLE = "tracemill_miner_runs"
TAXONOMY_TABLE = "tracemill_taxonomy"
SCHEMA_TABLE = "tracemill_schema"
DEAD_LETTERS_TABLE = "tracemill_dead_letters"
JUDGE_CACHE_TABLE = "tracemill_judge_cache"
EVAL_SUITES_TABLE = "tracemill_eval_suites"
EVAL_CASES_TABLE = "tracemill_eval_cases"
EVAL_RUNS_TABLE = "tracemill_eval_runs"
EVAL_RESULTS_TABLE = "tracemill_eval_results"

FEEDBACK_KINDS = ("correction", "score", "label", "preference", "outcome", "decisive")
"""The kinds of feedback the trainer knows; the feedback table refuses others."""

DEDUP_WINDOW = 10_000
"""How many recent inserts into otel_traces remember their deduplication token."""


@dataclass(frozen=True)
class SchemaOptions:
    """What the DDL depends on besides the migration itself."""

    database: str
    cluster: str | None = None
    """Cluster name for ``ON CLUSTER`` and Replicated* engines; None for a single server or chDB."""
    ttl_days: int | None = None
    """Drop spans older than this many days (set when otel_traces is created, as the exporter does)."""

    def __post_init__(self) -> None:
        if self.ttl_days is not None and (
            isinstance(self.ttl_days, bool) or not isinstance(self.ttl_days, int) or self.ttl_days < 1
        ):
            raise ConfigError(f"ttl_days must be a positive whole number of days or None (got {self.ttl_days!r})")
        if self.cluster is not None and not self.cluster.strip():
            raise ConfigError(f"cluster must be a cluster name or None (got {self.cluster!r})")


@dataclass(frozen=True)
class Migration:
    """One schema step: its statements are rendered for the target database and cluster."""

    version: int
    name: str
    statements: Callable[[SchemaOptions], list[str]]


def quote_identifier(name: str) -> str:
    """Quote a ClickHouse identifier with backticks."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_literal(text: str) -> str:
    """Quote a ClickHouse string literal (for SQL text that is no query parameter: patterns, keys, paths)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _table(o: SchemaOptions, name: str) -> str:
    return f"{quote_identifier(o.database)}.{quote_identifier(name)}"


def _on_cluster(o: SchemaOptions) -> str:
    return f" ON CLUSTER {quote_identifier(o.cluster)}" if o.cluster else ""


def _engine(o: SchemaOptions, family: str, *args: str) -> str:
    """``family(args)``, or its Replicated form on a cluster."""
    if o.cluster:
        args = ("'/clickhouse/tables/{shard}/{database}/{table}'", "'{replica}'", *args)
        family = "Replicated" + family
    return f"{family}({', '.join(args)})"


def _ttl(o: SchemaOptions, column: str) -> str:
    return f"TTL {column} + toIntervalDay({o.ttl_days})\n" if o.ttl_days else ""


# -- migration 1: the exporter's tables --------------------------------------------------------

_MAP = "Map(LowCardinality(String), String)"


def _exporter_tables(o: SchemaOptions) -> list[str]:
    # Column for column the clickhouseexporter traces template (bloom-filter index variant), so the
    # official collector's INSERT and Grafana's ClickHouse trace view work on this table.
    spans = f"""CREATE TABLE IF NOT EXISTS {_table(o, SPANS_TABLE)}{_on_cluster(o)} (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes {_MAP} CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes {_MAP} CODEC(ZSTD(1)),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes {_MAP}
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes {_MAP}
    ) CODEC(ZSTD(1)),
    ResourceAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), CAST(ResourceAttributes, 'Array(Tuple(String, String))')),
    SpanAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), CAST(SpanAttributes, 'Array(Tuple(String, String))')),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_lower_span_name lower(SpanName) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
) ENGINE = {_engine(o, "MergeTree")}
PARTITION BY toDate(Timestamp)
PRIMARY KEY (ServiceName, SpanName, toDateTime(Timestamp))
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)
{_ttl(o, "toDateTime(Timestamp)")}SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1"""  # noqa: E501
    return [spans, *_trace_id_lookup(o)]


def _trace_id_lookup(o: SchemaOptions) -> list[str]:
    """The exporter's trace-id → time range table and the view that fills it (Grafana's trace lookup)."""
    lookup = f"""CREATE TABLE IF NOT EXISTS {_table(o, TRACE_ID_TS_TABLE)}{_on_cluster(o)} (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime) CODEC(ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime) CODEC(ZSTD(1))
) ENGINE = {_engine(o, "AggregatingMergeTree")}
PARTITION BY toStartOfWeek(Start)
ORDER BY (TraceId)
{_ttl(o, "toDateTime(Start)")}SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1"""
    view = f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {_table(o, TRACE_ID_TS_VIEW)}{_on_cluster(o)}
TO {_table(o, TRACE_ID_TS_TABLE)}
AS SELECT
    TraceId,
    min(toDateTime(Timestamp)) AS Start,
    max(toDateTime(Timestamp)) AS End
FROM {_table(o, SPANS_TABLE)}
WHERE TraceId != ''
GROUP BY TraceId"""
    return [lookup, view]


# -- migration 2: tracemill's additions to otel_traces ------------------------------------------

# (column, type, expression): derived from SpanAttributes at insert time, so the exporter's INSERT,
# which names its 22 columns, fills them too.
SPAN_CONVENIENCE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("GenAiOperation", "LowCardinality(String)", "SpanAttributes['gen_ai.operation.name']"),
    ("ToolName", "LowCardinality(String)", "SpanAttributes['gen_ai.tool.name']"),
    ("AgentName", "LowCardinality(String)", "SpanAttributes['gen_ai.agent.name']"),
    ("ConversationId", "String", "SpanAttributes['gen_ai.conversation.id']"),
    ("TaskId", "String", "SpanAttributes['tracemill.task.id']"),
    ("InputTokens", "UInt64", "toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens'])"),
    ("OutputTokens", "UInt64", "toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens'])"),
)


def _span_additions(o: SchemaOptions) -> list[str]:
    clauses = [
        f"ADD COLUMN IF NOT EXISTS {name} {type_} MATERIALIZED {expr} CODEC(ZSTD(1))"
        for name, type_, expr in SPAN_CONVENIENCE_COLUMNS
    ]
    clauses += [
        "ADD INDEX IF NOT EXISTS idx_conversation_id ConversationId TYPE bloom_filter(0.01) GRANULARITY 1",
        "ADD INDEX IF NOT EXISTS idx_task_id TaskId TYPE bloom_filter(0.01) GRANULARITY 1",
    ]
    statements = [f"ALTER TABLE {_table(o, SPANS_TABLE)}{_on_cluster(o)}\n    " + ",\n    ".join(clauses)]
    if not o.cluster:
        # A replayed batch carries the same insert_deduplication_token and is then stored once.
        # Replicated tables deduplicate by default; plain MergeTree needs this window.
        statements.append(
            f"ALTER TABLE {_table(o, SPANS_TABLE)} MODIFY SETTING non_replicated_deduplication_window = {DEDUP_WINDOW}"
        )
    return statements


# -- migration 3: feedback ---------------------------------------------------------------------


def _feedback(o: SchemaOptions) -> list[str]:
    # One current row per (trace, span, name, author): a later UpdatedAt replaces an earlier one,
    # IsDeleted = 1 is a tombstone. Read with FINAL. Different authors never overwrite each other,
    # so conflicting judgements on one span stay visible. SpanId '' is feedback on the whole trace.
    kinds = ", ".join(f"'{k}'" for k in FEEDBACK_KINDS)
    return [
        f"""CREATE TABLE IF NOT EXISTS {_table(o, FEEDBACK_TABLE)}{_on_cluster(o)} (
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    Name LowCardinality(String) CODEC(ZSTD(1)),
    Author LowCardinality(String) CODEC(ZSTD(1)),
    Kind LowCardinality(String) CODEC(ZSTD(1)),
    Value String CODEC(ZSTD(1)),
    Score Nullable(Float64),
    Label LowCardinality(String) CODEC(ZSTD(1)),
    Comment String CODEC(ZSTD(1)),
    CreatedAt DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    UpdatedAt DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    IsDeleted UInt8 DEFAULT 0,
    CONSTRAINT kind_known CHECK Kind IN ({kinds}),
    CONSTRAINT value_is_json CHECK Value = '' OR isValidJSON(Value)
) ENGINE = {_engine(o, "ReplacingMergeTree", "UpdatedAt", "IsDeleted")}
ORDER BY (TraceId, SpanId, Name, Author)"""
    ]


# -- migration 4: miner flags ------------------------------------------------------------------


def _flags(o: SchemaOptions) -> list[str]:
    # One row per (trace, detector, span); a later mining run replaces the earlier row.
    return [
        f"""CREATE TABLE IF NOT EXISTS {_table(o, FLAGS_TABLE)}{_on_cluster(o)} (
    RunId String CODEC(ZSTD(1)),
    MinerVersion LowCardinality(String) CODEC(ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    Detector LowCardinality(String) CODEC(ZSTD(1)),
    DetectorVersion LowCardinality(String) CODEC(ZSTD(1)),
    Category LowCardinality(String) CODEC(ZSTD(1)),
    Severity LowCardinality(String) CODEC(ZSTD(1)),
    Confidence Float64,
    Evidence String CODEC(ZSTD(1)),
    CreatedAt DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1))
) ENGINE = {_engine(o, "ReplacingMergeTree", "CreatedAt")}
ORDER BY (TraceId, Detector, SpanId)"""
    ]


# -- migration 5: compact parts for the collector's inserts -------------------------------------

COMPACT_PART_MAX_BYTES = 64 << 20
"""Parts of ``otel_traces`` below this many uncompressed bytes are written in ClickHouse's Compact format."""


def _compact_span_parts(o: SchemaOptions) -> list[str]:
    # A collector insert of 20,000 spans is about 10 MiB, right at ClickHouse's default threshold
    # (10 MiB) for Wide parts: one file per column stream, about 150 files for this table. Creating
    # and deleting those files, on every insert and merge, cost more CPU than writing the data.
    # A Compact part keeps the columns in one file; merges still make Wide parts of large data.
    return [
        f"ALTER TABLE {_table(o, SPANS_TABLE)}{_on_cluster(o)} "
        f"MODIFY SETTING min_bytes_for_wide_part = {COMPACT_PART_MAX_BYTES}"
    ]


# -- migration 6: spans the store refused -------------------------------------------------------


def _dead_letters(o: SchemaOptions) -> list[str]:
    # One row per span the writer could not store in otel_traces (a value the table cannot hold,
    # a row the store refused), so the rest of its group could land. Request is the span as a
    # one-span OTLP ExportTraceServiceRequest (protobuf), ready to inspect or send again. Keyed by
    # where it was spooled, so a replayed group stores each dead span once.
    statements = [
        f"""CREATE TABLE IF NOT EXISTS {_table(o, DEAD_LETTERS_TABLE)}{_on_cluster(o)} (
    FailedAt DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    Source String CODEC(ZSTD(1)),
    BatchId UInt64,
    Ordinal UInt32,
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    SpanName String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Reason String CODEC(ZSTD(1)),
    Request String CODEC(ZSTD(1))
) ENGINE = {_engine(o, "ReplacingMergeTree", "FailedAt")}
ORDER BY (Source, BatchId, Ordinal)"""
    ]
    if not o.cluster:
        statements.append(
            f"ALTER TABLE {_table(o, DEAD_LETTERS_TABLE)} MODIFY SETTING non_replicated_deduplication_window = 1000"
        )
    return statements
# -- migration 7: the miner's trace scores and the kind of each flag ---------------------------------


def _trace_scores(o: SchemaOptions) -> list[str]:
    # One current row per trace: a later mining run replaces it (read with FINAL). Every mined trace
    # gets a row, so the table doubles as the record of what was mined; the peer columns let a later
    # run compare new traces with old ones without recomputing the old ones' features.
    return [
        f"""CREATE TABLE IF NOT EXISTS {_table(o, TRACE_SCORES_TABLE)}{_on_cluster(o)} (
    TraceId String CODEC(ZSTD(1)),
    ModelVersion LowCardinality(String) CODEC(ZSTD(1)),
    FailureProbability Float64,
    CreatedAt DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    PeerGroup String CODEC(ZSTD(1)),
    Steps UInt32,
    Tokens UInt64,
    DurationS Float64
) ENGINE = {_engine(o, "ReplacingMergeTree", "CreatedAt")}
ORDER BY TraceId""",
        f"ALTER TABLE {_table(o, FLAGS_TABLE)}{_on_cluster(o)} "
        "ADD COLUMN IF NOT EXISTS Kind LowCardinality(String) DEFAULT '' CODEC(ZSTD(1)) AFTER Category",
    ]


# -- migration 8: the review UI's agent version column ----------------------------------------


def _agent_version(o: SchemaOptions) -> list[str]:
    # The review UI's failure rate per agent version and its version filter group every agent
    # span by version; reading the version out of the attribute map cost most of that query.
    # Rows stored before this migration compute it on read (same result, the old speed).
    return [
        f"ALTER TABLE {_table(o, SPANS_TABLE)}{_on_cluster(o)} ADD COLUMN IF NOT EXISTS AgentVersion "
        "LowCardinality(String) MATERIALIZED SpanAttributes['gen_ai.agent.version'] CODEC(ZSTD(1))"
    ]


# -- migration 14: decisive-step marks ----------------------------------------------------------


def _decisive_kind(o: SchemaOptions) -> list[str]:
    # The feedback table's kind check, rebuilt so that it accepts decisive-step marks.
    kinds = ", ".join(f"'{k}'" for k in FEEDBACK_KINDS)
    table = f"{_table(o, FEEDBACK_TABLE)}{_on_cluster(o)}"
    return [f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS kind_known",
            f"ALTER TABLE {table} ADD CONSTRAINT kind_known CHECK Kind IN ({kinds})"]


# -- migration 15: the judge model's answers ------------------------------------------------------


def _judge_cache(o: SchemaOptions) -> list[str]:
    # One answer per (trace, model, prompt version, task, strategy): asking again reuses it.
    return [
        f"""CREATE TABLE IF NOT EXISTS {_table(o, JUDGE_CACHE_TABLE)}{_on_cluster(o)} (
    TraceId String CODEC(ZSTD(1)),
    Model LowCardinality(String) CODEC(ZSTD(1)),
    PromptVersion LowCardinality(String) CODEC(ZSTD(1)),
    Task LowCardinality(String) CODEC(ZSTD(1)),
    Strategy LowCardinality(String) CODEC(ZSTD(1)),
    Verdict String CODEC(ZSTD(1)),
    Tokens UInt64,
    CreatedAt DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1))
) ENGINE = {_engine(o, "ReplacingMergeTree", "CreatedAt")}
ORDER BY (TraceId, Model, PromptVersion, Task, Strategy)"""
    ]


# -- migrations 18 and 19: configuration versions and rollouts -----------------------------------


def _config_versions(o: SchemaOptions) -> list[str]:
    # One row per configuration version (see tracemill.collector.store.schema_versions).
    table = _table(o, schema_versions.CONFIG_VERSIONS_TABLE)
    return schema_versions.config_versions_ddl(table, _on_cluster(o), _engine(o, "ReplacingMergeTree", "RecordedAt"))


def _rollouts(o: SchemaOptions) -> list[str]:
    # Each rollout's state, newest row wins.
    table = _table(o, schema_versions.ROLLOUTS_TABLE)
    return schema_versions.rollouts_ddl(table, _on_cluster(o), _engine(o, "ReplacingMergeTree", "UpdatedAt"))


# -- migration 11: muted flags (the miner's calibration) --------------------------------------------


def _muted_flags(o: SchemaOptions) -> list[str]:
    # 1 = the flag's detector does not beat the base failure rate on this store's labelled runs.
    return [f"ALTER TABLE {_table(o, FLAGS_TABLE)}{_on_cluster(o)} ADD COLUMN IF NOT EXISTS Muted UInt8 DEFAULT 0"]


# -- migration 12: the miner's quality, one row per labelled run --------------------------------------


def _miner_runs(o: SchemaOptions) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {_table(o, MINER_RUNS_TABLE)}{_on_cluster(o)} (
    RunId String CODEC(ZSTD(1)),
    CreatedAt DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    MinerVersion LowCardinality(String) CODEC(ZSTD(1)),
    ModelVersion LowCardinality(String) CODEC(ZSTD(1)),
    Mode LowCardinality(String) CODEC(ZSTD(1)),
    Grouping String CODEC(ZSTD(1)),
    Labelled UInt32,
    Auroc Nullable(Float64),
    Precision Nullable(Float64),
    Recall Nullable(Float64),
    RulesAuroc Nullable(Float64),
    RulesPrecision Nullable(Float64),
    RulesRecall Nullable(Float64),
    Threshold Nullable(Float64),
    Detectors String CODEC(ZSTD(1)),
    Scorer String CODEC(ZSTD(1))
) ENGINE = {_engine(o, "ReplacingMergeTree", "CreatedAt")}
ORDER BY RunId"""
    ]


# -- migration 13: the failure taxonomy ------------------------------------------------------------


def _taxonomy(o: SchemaOptions) -> list[str]:
    # The groups of the latest mining run that found failures (one row per group; read the latest RunId).
    return [
        f"""CREATE TABLE IF NOT EXISTS {_table(o, TAXONOMY_TABLE)}{_on_cluster(o)} (
    RunId String CODEC(ZSTD(1)),
    CreatedAt DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    Rank UInt32,
    Name String CODEC(ZSTD(1)),
    Traces UInt64,
    Templates Array(String) CODEC(ZSTD(1)),
    Tools Map(String, UInt64),
    Detectors Map(String, UInt64),
    Examples Array(String) CODEC(ZSTD(1)),
    ExampleMessage String CODEC(ZSTD(1))
) ENGINE = {_engine(o, "ReplacingMergeTree", "CreatedAt")}
ORDER BY (RunId, Rank)"""
    ]


# -- migration 9: who wrote each feedback row ---------------------------------------------------


def _written_by(o: SchemaOptions) -> list[str]:
    # The identity the server authenticated for the write (a reviewer, or 'admin' writing for an author);
    # '' where nobody was authenticated (a server without tokens, a store opened directly).
    return [f"ALTER TABLE {_table(o, FEEDBACK_TABLE)}{_on_cluster(o)} ADD COLUMN IF NOT EXISTS WrittenBy String "
            "DEFAULT '' CODEC(ZSTD(1))"]


# -- migrations 16 and 17: eval suites (immutable versions of cases), eval runs and their results ------


def _eval_suites(o: SchemaOptions) -> list[str]:
    # A suite version is written once and never changed: a rebuild is a new Version. Cases keep the JSON
    # the runner needs (prompt, tools, expected decision, run input, recorded tool calls) and their source span.
    return [
        f"""CREATE TABLE IF NOT EXISTS {_table(o, EVAL_SUITES_TABLE)}{_on_cluster(o)} (
    Suite String, Version UInt32, Source LowCardinality(String), Cases UInt32, Settings String CODEC(ZSTD(1)),
    CreatedAt DateTime64(6, 'UTC')
) ENGINE = {_engine(o, "ReplacingMergeTree", "CreatedAt")}
ORDER BY (Suite, Version)""",
        f"""CREATE TABLE IF NOT EXISTS {_table(o, EVAL_CASES_TABLE)}{_on_cluster(o)} (
    Suite String, Version UInt32, CaseId String, Kind LowCardinality(String), Source LowCardinality(String),
    TraceId String, SpanId String, MustPass UInt8, Outcome Nullable(Float64), GroupKey String,
    Prompt String CODEC(ZSTD(1)), Tools String CODEC(ZSTD(1)), Expected String CODEC(ZSTD(1)),
    Input String CODEC(ZSTD(1)), Recording String CODEC(ZSTD(1))
) ENGINE = {_engine(o, "ReplacingMergeTree")}
ORDER BY (Suite, Version, CaseId)""",
    ]


def _eval_runs(o: SchemaOptions) -> list[str]:
    # One row per eval run, one per (run, case, attempt); an attempt's trace is an ordinary trace.
    return [
        f"""CREATE TABLE IF NOT EXISTS {_table(o, EVAL_RUNS_TABLE)}{_on_cluster(o)} (
    RunId String, Suite String, Version UInt32, Candidate String, Repeat UInt32, Passed UInt32, Total UInt32,
    Settings String CODEC(ZSTD(1)), StartedAt DateTime64(6, 'UTC'), FinishedAt DateTime64(6, 'UTC')
) ENGINE = {_engine(o, "ReplacingMergeTree", "FinishedAt")}
ORDER BY RunId""",
        f"""CREATE TABLE IF NOT EXISTS {_table(o, EVAL_RESULTS_TABLE)}{_on_cluster(o)} (
    RunId String, CaseId String, Attempt UInt32, Passed UInt8, TraceId String, DurationS Float64,
    Output String CODEC(ZSTD(1)), Detail String CODEC(ZSTD(1))
) ENGINE = {_engine(o, "ReplacingMergeTree")}
ORDER BY (RunId, CaseId, Attempt)""",
    ]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "exporter traces tables", _exporter_tables),
    Migration(2, "span convenience columns and insert deduplication", _span_additions),
    Migration(3, "feedback table", _feedback),
    Migration(4, "flags table", _flags),
    Migration(5, "compact parts for span inserts", _compact_span_parts),
    Migration(6, "dead-letter table for spans the store refused", _dead_letters),
    Migration(7, "trace scores table and flag kinds", _trace_scores),
    Migration(8, "agent version column for the review UI", _agent_version),
    Migration(9, "who wrote each feedback row", _written_by),
    Migration(11, "muted column of flags", _muted_flags),
    Migration(12, "miner runs table", _miner_runs),
    Migration(13, "failure taxonomy table", _taxonomy),
    Migration(14, "decisive-step marks in the feedback kinds", _decisive_kind),
    Migration(15, "judge model answer cache", _judge_cache),
    Migration(16, "eval suites and cases", _eval_suites),
    Migration(17, "eval runs and results", _eval_runs),
    Migration(18, "configuration versions table", _config_versions),
    Migration(19, "rollout state table", _rollouts),
)


def bootstrap_statements(o: SchemaOptions) -> list[str]:
    """The database and the version table, which exist before any migration runs."""
    return [
        f"CREATE DATABASE IF NOT EXISTS {quote_identifier(o.database)}{_on_cluster(o)}",
        f"""CREATE TABLE IF NOT EXISTS {_table(o, SCHEMA_TABLE)}{_on_cluster(o)} (
    Version UInt32,
    Name String,
    AppliedAt DateTime64(6, 'UTC'),
    TracemillVersion String
) ENGINE = {_engine(o, "ReplacingMergeTree", "AppliedAt")}
ORDER BY Version""",
    ]


class SchemaTarget(Protocol):
    """What migrating needs of a :class:`~tracemill.collector.store.store.Store`, which imports this module to
    migrate on open (so this module names the verbs instead of importing the class back)."""

    @property
    def database(self) -> str: ...

    @property
    def location(self) -> str: ...

    def query(self, sql: str, parameters: dict[str, Any] | Sequence[Any] | None = None) -> Any: ...

    def command(self, sql: str, parameters: dict[str, Any] | Sequence[Any] | None = None) -> Any: ...

    def insert(self, table: str, data: Sequence[Sequence[Any]], column_names: Sequence[str]) -> Any: ...


def applied_versions(store: SchemaTarget) -> set[int]:
    """Versions recorded in the store's ``tracemill_schema`` table (empty if it does not exist)."""
    database = store.database
    exists = store.query(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": database, "t": SCHEMA_TABLE},
    ).result_rows[0][0]
    if not exists:
        return set()
    rows = store.query(f"SELECT DISTINCT Version FROM {quote_identifier(database)}.{SCHEMA_TABLE}").result_rows
    return {int(r[0]) for r in rows}


def migrate(store: SchemaTarget, *, cluster: str | None = None, ttl_days: int | None = None) -> list[int]:
    """Bring the store's schema up to date; return the versions applied now (empty if none were due).

    Raises :class:`SchemaError` when a statement fails or the store is newer than this tracemill.
    """
    options = SchemaOptions(database=store.database, cluster=cluster, ttl_days=ttl_days)
    try:
        for statement in bootstrap_statements(options):
            store.command(statement)
        done = applied_versions(store)
    except StoreError as exc:
        raise SchemaError(f"cannot create the tracemill schema in {store.location}: {exc}") from exc
    latest = max(m.version for m in MIGRATIONS)  # numbers are assigned ahead, so there may be gaps
    if done and max(done) > latest:
        raise SchemaError(
            f"the store at {store.location} has schema version {max(done)}, newer than this tracemill "
            f"knows ({latest}); upgrade tracemill (pip install -U tracemill)"
        )
    applied = []
    for migration in sorted(MIGRATIONS, key=lambda m: m.version):
        if migration.version in done:
            continue
        try:
            for statement in migration.statements(options):
                store.command(statement)
        except StoreError as exc:
            raise SchemaError(
                f"schema migration {migration.version} ({migration.name}) failed in {store.location}: {exc}"
            ) from exc
        _record(store, migration)
        applied.append(migration.version)
        logger.info("applied schema migration %d (%s) in %s", migration.version, migration.name, store.location)
    return applied


def _record(store: SchemaTarget, migration: Migration) -> None:
    from datetime import datetime, timezone

    store.insert(
        SCHEMA_TABLE,
        [[migration.version, migration.name, datetime.now(timezone.utc), _tracemill_version()]],
        ["Version", "Name", "AppliedAt", "TracemillVersion"],
    )


def _tracemill_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tracemill")
    except PackageNotFoundError:
        return "unknown"
