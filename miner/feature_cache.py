"""Each mined trace's span features, kept in a table: a re-score reads one row per trace, not all its spans.

When the outcome labels change, every trace is scored again by the new model; without this table that meant
aggregating every span of the store again (the bulk of a re-score's time). A trace's span features are
computed once, inside ClickHouse (``INSERT ... SELECT``: nothing travels through Python), and read back
joined with the trace's current feedback, which is the part that changes. Its final action, which is read in
Python from those features (:mod:`tracemill.miner.final_action`), is kept beside them in a second table,
tied to the feature row it was read from, and so are its conversation features (a third table, computed in
the background by the run that computes the features, whether or not it trains the supervised scorer: the
re-score after the first labels then reads them too).

A trace is taken as complete once mined, as the incremental miner already does; ``since`` and ``remine``
(``tracemill mine --since``, ``--all``) compute the features of the traces they select again. The tables'
names carry a digest of the feature and conversation queries, the final-action patterns and the setting they
read, so a new miner version or loop setting starts new tables and drops the older ones. They hold nothing
that cannot be computed again: dropping them costs one re-computation.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from concurrent.futures import Future, wait
from typing import TYPE_CHECKING, Any

from tracemill.collector.store.query import attribute
from tracemill.collector.store.schema import SPANS_TABLE, quote_identifier
from tracemill.errors import StoreError
from tracemill.miner.config import MINER_VERSION
from tracemill.miner.features import MAX_DEFINITIONS, Frame, any_trace, tool_schema_check
from tracemill.miner.final_action import COLUMNS as FINAL_INPUTS
from tracemill.miner.final_action import (
    FINAL_COLUMNS,
    GIVE_UP_PATTERN,
    HANDOFF_PATTERN,
    HANDOFF_TOOL_PATTERN,
    final_columns,
)
from tracemill.miner.scoring.model_scope import version_digest
from tracemill.miner.scoring.text_features import conversation_sql
from tracemill.miner.sql import FEEDBACK_COLUMNS, FEEDBACK_PER_TRACE, QUERY_SETTINGS, trace_features_sql

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["PREFIX", "FeatureCache", "load_features"]

PREFIX = "tracemill_trace_features_"

_SQL_ONLY = ("first_llm_user", "first_flat_user", "root_input")
"""Feature columns that only go into others (``first_user``): kept, not read back."""

_ONE_ROW_PER_TRACE = "optimize_on_insert = 0"
"""Inserts of rows grouped by trace skip the engine's pass that replaces rows of one key within the inserted
block: there is one row per trace already (the features of 147k traces were kept in 2.7 s instead of 3.2-3.4 s)."""

_ADAPTIVE_AGGREGATOR = "enable_adaptive_aggregator"
"""The setting of newer engines (ClickHouse 26) that freezes each thread's ``GROUP BY`` table at 4 MB and stages the
rows of other keys for the final merge. A trace's feature states take about 2.7 KB, so the table froze at about
1,500 of 147k traces and 400 MB of span rows were staged: the features of 1M spans took 2.2 s to compute in a fresh
process instead of 2.0 s. It is turned off where the engine has it (an older server rejects an unknown setting)."""

_VERSION = "toUInt64(toUnixTimestamp64Micro(now64(6)))"
"""A feature row's version (``cached_at``): the newest computation of a trace wins, and its final action names it."""


class FeatureCache:
    """The kept features of one feature query and setting (``loop_min``) in ``store``."""

    def __init__(self, store: Store, loop_min: int) -> None:
        self.store, self.loop_min = store, loop_min
        self.created = True
        """Whether the features table exists, as far as :meth:`create` found (taken to, without it)."""
        self.conversations_created = True
        """Whether the conversations table exists, as far as :meth:`create` found: the first
        :meth:`keep_conversations` creates it with its rows, off the run's own path when that runs in the
        background."""
        self.holds_only: str | None = None
        """The condition whose traces were the rows of the features table when this cache created it with them."""
        digest = version_digest([MINER_VERSION, trace_features_sql(where="1"), f"loop_min={loop_min}",
                                 GIVE_UP_PATTERN, HANDOFF_PATTERN, HANDOFF_TOOL_PATTERN, conversation_sql("1")])
        self.table = PREFIX + digest
        self.endings = self.table + "_endings"
        self.conversations = self.table + "_conversations"

    def create(self) -> FeatureCache:
        """Create this cache's tables when missing, and drop those of other versions or settings. A missing features
        table is left to the first :meth:`compute`, which creates it with its rows: the feature query is then
        planned once, not twice (on a fresh store, about 0.15 s of a first mine). A missing conversations table is
        left to the first :meth:`keep_conversations`."""
        found = {row[0] for row in self.store.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() AND startsWith(name, {prefix:String})",
            {"prefix": PREFIX},
        ).result_rows}  # fmt: skip
        self.created = self.table in found
        if self.endings not in found:
            columns = ", ".join(f"{name} {kind}" for name, kind in FINAL_COLUMNS.items())
            self.store.command(
                f"CREATE TABLE IF NOT EXISTS {quote_identifier(self.endings)} (trace_id String, "
                f"features_at UInt64, {columns}) ENGINE = ReplacingMergeTree(features_at) ORDER BY trace_id"
            )
        self.conversations_created = self.conversations in found
        for stale in sorted(found - {self.table, self.endings, self.conversations}):
            self.store.command(f"DROP TABLE IF EXISTS {quote_identifier(stale)}")
        return self

    def create_features_table(self, query: str, params: dict[str, Any], where: str | None = None) -> bool:
        """Create the features table with the rows of ``query`` (the feature query of the traces selected by
        ``where``); False when another process created it first (its rows are then to be inserted)."""
        created = self._create_with_rows(
            self.table, "cached_at", "trace_id",
            f"SELECT *, {_VERSION} AS cached_at FROM ({query}) SETTINGS {self._computing()}",
            {**params, "loop_min": self.loop_min},
        )  # fmt: skip
        self.created = True
        if created:
            self.holds_only = where
        return created

    def _create_with_rows(self, table: str, version: str, key: str, rows: str, params: dict[str, Any]) -> bool:
        """Create ``table`` (a ``ReplacingMergeTree(version)`` ordered by ``key``) with the rows of the query
        ``rows``: the query is planned once, not once for an empty table and again for its rows. False when
        another process created the table first (the rows are then to be inserted)."""
        try:
            self.store.command(
                f"CREATE TABLE {quote_identifier(table)} ENGINE = ReplacingMergeTree({version}) ORDER BY {key} "
                f"AS {rows}",
                params,
            )
        except StoreError as exc:
            if "TABLE_ALREADY_EXISTS" not in str(exc):
                raise
            return False
        return True

    def missing(self, where: str) -> str:
        """The traces selected by ``where`` whose features are not kept, as a condition on ``otel_traces``."""
        if not self.created:
            return where
        return f"({where}) AND TraceId NOT IN (SELECT trace_id FROM {quote_identifier(self.table)})"

    def compute(self, where: str, params: dict[str, Any], *, bad_args_check: str) -> None:
        """Compute the features of the traces selected by ``where`` and keep them (replacing earlier ones)."""
        query = trace_features_sql(where=where, bad_args_check=bad_args_check, settings=False)
        if not self.created and self.create_features_table(query, params, where):
            return
        self.store.command(
            f"INSERT INTO {quote_identifier(self.table)} SELECT *, {_VERSION} FROM ({query}) "
            f"SETTINGS {self._computing()}",
            {**params, "loop_min": self.loop_min},
        )

    def _computing(self) -> str:
        """The settings the feature query is computed and kept with."""
        adaptive = self.store.query("SELECT count() FROM system.settings WHERE name = {name:String}",
                                    {"name": _ADAPTIVE_AGGREGATOR}).result_rows[0][0]
        return f"{QUERY_SETTINGS}, {_ONE_ROW_PER_TRACE}" + (f", {_ADAPTIVE_AGGREGATOR} = 0" if adaptive else "")

    def read(self, where: str, params: dict[str, Any]) -> Any:
        """The kept features and final actions of the traces selected by ``where`` (and still stored), with their
        current feedback, ordered by trace id. A trace whose final action is not kept has an empty
        ``final_kind``; ``features_at`` names the feature row for :meth:`keep_final_actions`. The columns a final
        action is read from (:data:`~tracemill.miner.final_action.COLUMNS`, the run's longest texts) are read only
        for those traces: the others' come back empty. Columns that only go into others are not read back."""
        # Every trace of a table this run created from all the spans is stored and selected: no look needed.
        stored = ("" if where == self.holds_only == "1" else
                  f"WHERE t.trace_id IN (SELECT TraceId FROM {SPANS_TABLE} WHERE TraceId != '' AND {where}) ")
        finals = ", ".join(f"e.{name}" for name in FINAL_COLUMNS)
        left_out = ("cached_at", *_SQL_ONLY, *FINAL_INPUTS)
        inputs = ", ".join(f"if(e.ending_of = '', t.{name}, defaultValueOfArgumentType(t.{name})) AS {name}"
                           for name in FINAL_INPUTS)
        texts = ", ".join(f"toLowCardinality(t.{name}) AS {name}" for name in self._texts() if name not in left_out)
        return self.store.query(
            f"SELECT t.* EXCEPT ({', '.join(left_out)}){f' REPLACE ({texts})' if texts else ''}, "
            f"t.cached_at AS features_at, {inputs}, "
            f"{finals}, {FEEDBACK_COLUMNS} "
            f"FROM {quote_identifier(self.table)} AS t FINAL "
            f"LEFT JOIN (SELECT * EXCEPT (trace_id, features_at), trace_id AS ending_of, features_at AS ending_at "
            f"FROM {quote_identifier(self.endings)} FINAL) AS e "
            "ON e.ending_of = t.trace_id AND e.ending_at = t.cached_at "
            f"LEFT JOIN ({FEEDBACK_PER_TRACE}) AS fb ON fb.TraceId = t.trace_id "
            f"{stored}ORDER BY t.trace_id SETTINGS {QUERY_SETTINGS}",
            params,
        )

    def _texts(self) -> list[str]:
        """The features table's text columns but the trace id. They are read back dictionary-encoded
        (``LowCardinality``): most are empty or repeat across traces (span names, tools, error texts of the few
        failed runs), and the client then makes one string per distinct value of a block, not one per row (the
        features of 147k traces read in 0.45 s instead of 0.55 s)."""
        return [row[0] for row in self.store.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {table:String} "
            "AND type = 'String' AND name != 'trace_id' ORDER BY position",
            {"table": self.table},
        ).result_rows]  # fmt: skip

    def keep_final_actions(self, traces: Sequence[str], features_at: Sequence[int],
                           columns: dict[str, list[Any]]) -> None:
        """Keep the final actions read from the feature rows ``(traces, features_at)``."""
        if traces:
            self.store.insert(self.endings, [list(traces), list(features_at), *columns.values()],
                              ["trace_id", "features_at", *columns], column_oriented=True)

    def keep_conversations(self, where: str, params: dict[str, Any]) -> None:
        """Compute and keep the conversation features (:func:`~tracemill.miner.scoring.text_features.conversation_sql`)
        of the traces selected by ``where`` whose kept features have none yet. In the embedded store the engine
        works on them with one thread: it runs beside the run's own Python work and shares the machine's cores
        with it (a server's cores are its own)."""
        table = quote_identifier(self.conversations)
        features = f"(SELECT trace_id, cached_at FROM {quote_identifier(self.table)} FINAL)"
        settings = _ONE_ROW_PER_TRACE + (", max_threads = 1" if self.store.embedded else "")

        def rows(condition: str) -> str:  # each conversation with the version of the feature row it came from
            return (f"SELECT q.*, f.cached_at AS features_at FROM ({conversation_sql(condition)}) AS q "
                    f"INNER JOIN {features} AS f ON f.trace_id = q.TraceId SETTINGS {settings}")

        if not self.conversations_created:  # none kept yet: the first keep creates the table with its rows
            created = self._create_with_rows(self.conversations, "features_at", "TraceId", rows(where), params)
            self.conversations_created = True
            if created:
                return
        current = (f"SELECT c.TraceId FROM {table} AS c INNER JOIN {features} AS f "
                   "ON f.trace_id = c.TraceId AND f.cached_at = c.features_at")
        self.store.command(f"INSERT INTO {table} {rows(f'({where}) AND TraceId NOT IN ({current})')}", params)

    def read_conversations(self, where: str, params: dict[str, Any]) -> Any:
        """The conversation features of the traces selected by ``where``, ordered by trace id, as a
        ``pyarrow.Table``: read from the conversations of their kept features, computed (and kept) first for
        those that have none."""
        self.keep_conversations(where, params)
        return self.store.query_arrow(
            f"SELECT * EXCEPT features_at FROM {quote_identifier(self.conversations)} FINAL "
            f"WHERE TraceId IN (SELECT TraceId FROM {SPANS_TABLE} WHERE TraceId != '' AND {where}) ORDER BY TraceId",
            params,
        )

    def conversations_in_background(self, where: str, params: dict[str, Any], *, read: bool) -> Future[Any]:
        """:meth:`read_conversations` (or, without ``read``, :meth:`keep_conversations`: the future's result is
        then None) on a second connection, in a thread. The engine computes and reads them while the run's Python
        work (final actions, detectors, calibration) goes on: chDB and a server's client release the interpreter
        while a query runs, so the two share the machine's cores instead of taking turns."""
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        connection = self.store.another_connection()

        def work() -> None:
            other = copy.copy(self)
            other.store = connection
            try:
                try:
                    table = None
                    if read:
                        table = other.read_conversations(where, params)
                    else:
                        other.keep_conversations(where, params)
                finally:  # before the result is handed over: nothing of the read is left once it is
                    connection.close()
            except BaseException as exc:  # handed to whoever waits for the result
                future.set_exception(exc)
            else:
                future.set_result(table)

        threading.Thread(target=work, name="tracemill-conversations", daemon=True).start()
        return future


def load_features(store: Store, where: str, params: dict[str, Any], *, loop_min: int, again: bool = False,
                  conversations: bool = False, keep_conversations: bool = False) -> Frame:
    """The features and final actions of the traces selected by ``where``: the kept ones read back, the others
    (every one when ``again``) computed from their spans and kept first. With ``conversations`` (the run expects
    to train the supervised scorer), their conversations are read in the background from then on
    (:attr:`Frame.conversations`): the engine works on them while Python reads the features and runs the
    detectors. With ``keep_conversations``, the conversations of the traces whose features this call computes
    are computed and kept in the background (:attr:`Frame.keeping`), though this run does not read them: when
    the first labels come, the re-score of every trace then reads them instead of reading every span again."""
    cache = FeatureCache(store, loop_min).create()
    wanted = where if again else cache.missing(where)
    computed = where != "0" and (again or any_trace(store, wanted, params))  # a re-score has every trace kept
    if computed:
        definitions = [
            row[0]
            for row in store.query(
                f"SELECT any(d) FROM (SELECT {attribute('gen_ai.tool.definitions')} AS d FROM {SPANS_TABLE} "
                f"WHERE TraceId != '' AND {wanted} AND d != '') GROUP BY cityHash64(d) LIMIT {MAX_DEFINITIONS}",
                params,
            ).result_rows
        ]
        cache.compute(wanted, params, bad_args_check=tool_schema_check(definitions))
    elif not cache.created:  # nothing to compute on a fresh store: the table, without rows
        cache.create_features_table(trace_features_sql(where="0", settings=False), {})
    result = cache.read(where, params)
    read = conversations and where != "0"
    # Started once the engine has read the features: the two reads would only share the cores.
    later = (cache.conversations_in_background(where, params, read=read)
             if read or (keep_conversations and computed) else None)  # fmt: skip
    try:
        frame = Frame(dict(zip(result.column_names, result.result_columns or [[] for _ in result.column_names],
                               strict=True)), where, params, cache,
                      conversations=later if read else None, keeping=None if read else later)  # fmt: skip
        _add_final_actions(frame, cache)
    except BaseException:
        if later is not None:
            wait([later])
        raise
    return frame


def _add_final_actions(frame: Frame, cache: FeatureCache) -> None:
    """Read the final action of each trace whose action is not kept yet, and keep it."""
    rows = [i for i, kind in enumerate(frame.columns.get("final_kind", ())) if not kind]
    if not rows:
        return
    computed = final_columns(frame, rows)
    for name, values in computed.items():
        if len(rows) == len(frame):
            frame.columns[name] = values
        else:
            column = frame.columns[name]
            for i, value in zip(rows, values, strict=True):
                column[i] = value
    ids, versions = frame["trace_id"], frame["features_at"]
    cache.keep_final_actions([ids[i] for i in rows], [versions[i] for i in rows], computed)
