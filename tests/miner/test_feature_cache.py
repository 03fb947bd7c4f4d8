"""Each trace's span features and final action are kept once mined: a re-score after labelling reads them with
the new feedback instead of aggregating the spans again; ``remine`` and another setting compute them again."""

from __future__ import annotations

from typing import Any

import tracemill.miner as miner
from tracemill.miner.feature_cache import PREFIX, FeatureCache, load_features
from tracemill.miner.final_action import COLUMNS as FINAL_INPUTS
from tracemill.miner.scoring.text_features import conversation_sql
from tracemill.miner.sql import QUERY_SETTINGS, trace_features_sql


def _kept(store: Any, cache: FeatureCache) -> dict[str, int]:
    return dict(store.query(f"SELECT trace_id, cached_at FROM {cache.table} FINAL").result_rows)


def _endings(store: Any, cache: FeatureCache) -> dict[str, tuple[int, str]]:
    rows = store.query(f"SELECT trace_id, features_at, final_kind FROM {cache.endings} FINAL").result_rows
    return {trace: (at, kind) for trace, at, kind in rows}


def _conversations(store: Any, cache: FeatureCache) -> dict[str, int]:
    return dict(store.query(f"SELECT TraceId, features_at FROM {cache.conversations} FINAL").result_rows)


def _root_errors(store: Any) -> list[int]:
    return list(load_features(store, "1", {}, loop_min=3)["root_error"])


def test_a_rescore_reads_the_kept_features_with_the_new_labels(store: Any, support: Any):
    traced = support.write_genai(store, support.build(seed=6, tasks=6, trials=4))
    ids = {t.trace_id for t in traced}
    first = miner.mine(store)
    cache = FeatureCache(store, 3)
    kept, endings = _kept(store, cache), _endings(store, cache)
    assert set(kept) == set(endings) == ids
    assert {at for at, _ in endings.values()} <= set(kept.values())
    assert {kind for _, kind in endings.values()} <= {"answer", "tool_call", "none"}
    # No labels yet, so no supervised scorer read the conversations; they were kept for the first one that will.
    assert first.scorer["mode"] == "anomaly" and _conversations(store, cache) == kept

    # The kept features are what the spans give when computed again.
    fresh = load_features(store, "1", {}, loop_min=3, again=True)
    kept_frame = load_features(store, "1", {}, loop_min=3)
    assert set(fresh.columns) == set(kept_frame.columns)
    read_apart = {"features_at", *FINAL_INPUTS}
    assert all(fresh[name] == kept_frame[name] for name in fresh.columns if name not in read_apart)
    # The texts a final action is read from come back only for traces whose final action is not kept.
    assert any(fresh["last_llm_output"]) and not any(any(kept_frame[name]) for name in FINAL_INPUTS)
    kept = _kept(store, cache)

    # Spans changed after mining are not read again: a trace is complete once mined.
    store.command("ALTER TABLE otel_traces UPDATE StatusCode = 'Error', StatusMessage = 'late' "
                  "WHERE ParentSpanId = '' SETTINGS mutations_sync = 1")
    support.record_outcomes(store, traced)
    rescored = miner.mine(store)
    assert first.scorer["mode"] == "anomaly" and rescored.scorer["mode"] == "supervised"
    assert rescored.traces == len(ids)  # every trace scored by the new model...
    assert _kept(store, cache) == kept and _endings(store, cache).keys() == ids  # ...from the kept rows
    assert _conversations(store, cache) == kept  # the supervised scorer read the kept conversations
    assert _root_errors(store) == list(kept_frame["root_error"]) and 0 in kept_frame["root_error"]
    labelled = load_features(store, "1", {}, loop_min=3)
    assert sum(labelled["has_outcome"]) == len(ids) > sum(kept_frame["has_outcome"])  # the feedback as it is now

    # remine computes them again from the spans, and reads the final actions again.
    again = miner.mine(store, remine=True)
    recomputed = _kept(store, cache)
    assert all(recomputed[t] > kept[t] for t in ids)
    assert {t: at for t, (at, _) in _endings(store, cache).items()} == recomputed
    assert _conversations(store, cache) == recomputed
    assert set(_root_errors(store)) == {1} and any(f.detector == "unhandled_error" for f in again.flags)


def test_another_setting_keeps_its_own_features_and_a_dropped_cache_is_computed_again(store: Any, support: Any):
    support.write_genai(store, support.build(seed=7, tasks=3, trials=3))
    default = load_features(store, "1", {}, loop_min=3)
    other = FeatureCache(store, 4)
    assert other.table != FeatureCache(store, 3).table
    looser = load_features(store, "1", {}, loop_min=4)
    names = {row[0] for row in store.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND startsWith(name, {p:String})",
        {"p": PREFIX}).result_rows}  # fmt: skip
    # The other setting's tables were dropped; no conversations were kept, so their table is not made yet.
    assert names == {other.table, other.endings}
    assert looser["trace_id"] == default["trace_id"]

    for table in (other.table, other.endings):
        store.command(f"DROP TABLE {table}")
    rebuilt = load_features(store, "1", {}, loop_min=4)
    assert all(rebuilt[name] == looser[name] for name in rebuilt.columns if name != "features_at")


def _columns(store: Any, table: str) -> list[tuple[str, str]]:
    return [(name, kind) for name, kind, *_ in store.query(f"DESCRIBE TABLE {table}").result_rows]


def test_the_first_computation_creates_the_features_table_with_its_rows(store: Any, support: Any, new_database: Any,
                                                                         drop_database: Any):
    traced = support.write_genai(store, support.build(seed=8, tasks=3, trials=2))
    cache = FeatureCache(store, 3).create()
    assert not cache.created and cache.missing("1") == "1"  # nothing kept: every trace is missing
    frame = load_features(store, "1", {}, loop_min=3)
    assert cache.table in {r[0] for r in store.query("SHOW TABLES").result_rows}
    assert set(frame["trace_id"]) == set(_kept(store, cache)) == {t.trace_id for t in traced}
    # A later run reads only the traces still stored.
    gone = traced[0].trace_id
    store.command("DELETE FROM otel_traces WHERE TraceId = {t:String}", {"t": gone})
    assert set(load_features(store, "1", {}, loop_min=3)["trace_id"]) == set(frame["trace_id"]) - {gone}

    # The same columns as a table created without rows, as a store with nothing to mine gets it.
    empty = new_database("features_empty")
    try:
        assert len(load_features(empty, "1", {}, loop_min=3)) == 0
        assert _columns(empty, cache.table) == _columns(store, cache.table)
    finally:
        drop_database(empty)


def test_a_features_table_created_by_another_miner_meanwhile_gets_the_rows(store: Any, support: Any):
    traced = support.write_genai(store, support.build(seed=9, tasks=2, trials=2))
    cache = FeatureCache(store, 3).create()
    assert not cache.created
    # Another miner creates the table (without rows) after this one looked and before it computes.
    other, without_rows = FeatureCache(store, 3).create(), trace_features_sql(where="0", settings=False)
    assert other.create_features_table(without_rows, {}) is True
    assert other.create_features_table(without_rows, {}) is False  # already there: nothing created
    cache.compute("1", {}, bad_args_check="0")  # inserted into the table the other one made
    assert cache.created and set(_kept(store, cache)) == {t.trace_id for t in traced}


def test_the_first_keep_creates_the_conversations_table_with_its_rows_and_one_made_meanwhile_gets_them(
        store: Any, support: Any):
    traced = support.write_genai(store, support.build(seed=11, tasks=3, trials=2))
    ids = {t.trace_id for t in traced}
    load_features(store, "1", {}, loop_min=3)
    cache = FeatureCache(store, 3).create()
    assert not cache.conversations_created  # the features were kept, their conversations not yet
    cache.keep_conversations("1", {})
    assert cache.conversations_created and set(_conversations(store, cache)) == ids
    # The query's columns, and the version of the feature row each was computed from.
    query = conversation_sql("1").split("SETTINGS")[0]
    described = [(name, kind) for name, kind, *_ in store.query(f"DESCRIBE ({query})").result_rows]
    assert _columns(store, cache.conversations) == [*described, ("features_at", "UInt64")]
    assert set(_conversations(store, cache).items()) <= set(_kept(store, cache).items())

    # Another miner found no table, and this one created it before the other kept its conversations: the other's
    # create finds the table there, and its rows are inserted into it.
    store.command(f"TRUNCATE TABLE {cache.conversations}")
    late = FeatureCache(store, 3)
    late.conversations_created = False
    late.keep_conversations("1", {})
    assert late.conversations_created and set(_conversations(store, cache)) == ids


def test_the_kept_features_are_the_feature_query_s_rows_as_the_engine_computes_them_by_default(store: Any,
                                                                                               support: Any):
    """Keeping turns the engine's adaptive aggregation off where it has it (a speed setting): the rows are the same."""
    support.write_genai(store, support.build(seed=10, tasks=3, trials=3))
    cache = FeatureCache(store, 3).create()
    known = store.query("SELECT count() FROM system.settings WHERE name = 'enable_adaptive_aggregator'").result_rows
    assert cache._computing().endswith(", enable_adaptive_aggregator = 0") == bool(known[0][0])  # where it has it
    cache.compute("1", {}, bad_args_check="0")
    kept = store.query(f"SELECT * EXCEPT cached_at FROM {cache.table} FINAL ORDER BY trace_id").result_rows
    plain = store.query(f"SELECT * FROM ({trace_features_sql(where='1', settings=False)}) ORDER BY trace_id "
                        f"SETTINGS {QUERY_SETTINGS}", {"loop_min": 3}).result_rows
    assert len(kept) == 9 and kept == plain
