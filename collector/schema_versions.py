"""Tables for configuration versions (migration 18) and rollout state (migration 19).

Kept apart from :mod:`tracemill.collector.schema` so the migration list only names them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tracemill.collector.schema import SchemaOptions

__all__ = ["CONFIG_VERSIONS_TABLE", "ROLLOUTS_TABLE", "config_versions_ddl", "rollouts_ddl"]

CONFIG_VERSIONS_TABLE = "tracemill_config_versions"
ROLLOUTS_TABLE = "tracemill_rollouts"


def config_versions_ddl(o: SchemaOptions) -> list[str]:
    # One row per version: its content once, however many spans carry it. A second writer that saw
    # the same version first in another process inserts the same content; the replacing engine keeps one.
    from tracemill.collector.schema import _engine, _on_cluster, _table

    return [
        f"""CREATE TABLE IF NOT EXISTS {_table(o, CONFIG_VERSIONS_TABLE)}{_on_cluster(o)} (
    Version String CODEC(ZSTD(1)),
    Provider LowCardinality(String) CODEC(ZSTD(1)),
    Model LowCardinality(String) CODEC(ZSTD(1)),
    Content String CODEC(ZSTD(3)),
    PromptName String CODEC(ZSTD(1)),
    PromptVersion String CODEC(ZSTD(1)),
    FirstSeen DateTime64(9, 'UTC') CODEC(Delta(8), ZSTD(1)),
    RecordedAt DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1))
) ENGINE = {_engine(o, "ReplacingMergeTree", "RecordedAt")}
ORDER BY Version"""
    ]


def rollouts_ddl(o: SchemaOptions) -> list[str]:
    # The current state of each rollout is its newest row (read with FINAL); the older rows stay until
    # merged and say nothing the newest does not.
    from tracemill.collector.schema import _engine, _on_cluster, _table

    return [
        f"""CREATE TABLE IF NOT EXISTS {_table(o, ROLLOUTS_TABLE)}{_on_cluster(o)} (
    Name String CODEC(ZSTD(1)),
    State LowCardinality(String) CODEC(ZSTD(1)),
    Reason String CODEC(ZSTD(1)),
    Author String CODEC(ZSTD(1)),
    Test String CODEC(ZSTD(1)),
    UpdatedAt DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1))
) ENGINE = {_engine(o, "ReplacingMergeTree", "UpdatedAt")}
ORDER BY Name"""
    ]
