"""Tables for configuration versions (migration 18) and rollout state (migration 19).

Kept apart from :mod:`tracemill.collector.store.schema`, whose migrations render the quoted table name, the
``ON CLUSTER`` clause and the engine for the target and pass them in (so this module imports nothing of it).
"""

from __future__ import annotations

__all__ = ["CONFIG_VERSIONS_TABLE", "ROLLOUTS_TABLE", "config_versions_ddl", "rollouts_ddl"]

CONFIG_VERSIONS_TABLE = "tracemill_config_versions"
ROLLOUTS_TABLE = "tracemill_rollouts"


def config_versions_ddl(table: str, on_cluster: str, engine: str) -> list[str]:
    """``engine`` is ReplacingMergeTree(RecordedAt) in the target's form."""
    # One row per version: its content once, however many spans carry it. A second writer that saw
    # the same version first in another process inserts the same content; the replacing engine keeps one.
    return [
        f"""CREATE TABLE IF NOT EXISTS {table}{on_cluster} (
    Version String CODEC(ZSTD(1)),
    Provider LowCardinality(String) CODEC(ZSTD(1)),
    Model LowCardinality(String) CODEC(ZSTD(1)),
    Content String CODEC(ZSTD(3)),
    PromptName String CODEC(ZSTD(1)),
    PromptVersion String CODEC(ZSTD(1)),
    FirstSeen DateTime64(9, 'UTC') CODEC(Delta(8), ZSTD(1)),
    RecordedAt DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1))
) ENGINE = {engine}
ORDER BY Version"""
    ]


def rollouts_ddl(table: str, on_cluster: str, engine: str) -> list[str]:
    """``engine`` is ReplacingMergeTree(UpdatedAt) in the target's form."""
    # The current state of each rollout is its newest row (read with FINAL); the older rows stay until
    # merged and say nothing the newest does not.
    return [
        f"""CREATE TABLE IF NOT EXISTS {table}{on_cluster} (
    Name String CODEC(ZSTD(1)),
    State LowCardinality(String) CODEC(ZSTD(1)),
    Reason String CODEC(ZSTD(1)),
    Author String CODEC(ZSTD(1)),
    Test String CODEC(ZSTD(1)),
    UpdatedAt DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1))
) ENGINE = {engine}
ORDER BY Name"""
    ]
