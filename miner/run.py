"""One mining run: select traces, compute features in ClickHouse, detect, localize, score, group, write.

Incremental and idempotent: a run mines the traces that have no row in ``tracemill_trace_scores``
yet (every mined trace gets one), those whose feedback changed since, and the labelled ones the
scorer trains on, or nothing when no trace is new or changed and the labels are unchanged; ``since``
mines every trace with a span after that time instead. Flags land in
``tracemill_flags``, keyed (TraceId, Detector, SpanId) in a ReplacingMergeTree, and a re-mined
trace's earlier flags are deleted first, so mining again never duplicates a flag.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import wait
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import msgspec

from tracemill.collector.store.schema import FLAGS_TABLE, SPANS_TABLE, TRACE_SCORES_TABLE
from tracemill.gc_paused import cyclic_gc_paused
from tracemill.miner.config import MINER_VERSION, MinerConfig
from tracemill.miner.detectors import Context, Flag, detect
from tracemill.miner.feature_cache import load_features
from tracemill.miner.features import Frame, anything_new, candidate_condition
from tracemill.miner.peers import PeerStats
from tracemill.miner.quality.miner_runs import record_run
from tracemill.miner.quality.taxonomy_store import store_taxonomy
from tracemill.miner.result import MineResult
from tracemill.miner.scoring.model_scope import model_changed, model_family
from tracemill.miner.sql import span_columns
from tracemill.miner.taxonomy import Message, build_taxonomy

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["Progress", "mine_store"]

Progress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)`` while a run advances."""

STAGES = ("select", "features", "detect", "localize", "score", "taxonomy", "write", "regressions")

_FLAG_COLUMNS = ("RunId", "MinerVersion", "TraceId", "SpanId", "Detector", "DetectorVersion", "Category", "Kind",
                 "Severity", "Confidence", "Evidence", "CreatedAt", "Muted")  # fmt: skip
_SCORE_COLUMNS = ("TraceId", "ModelVersion", "FailureProbability", "CreatedAt", "PeerGroup", "Steps", "Tokens",
                  "DurationS")  # fmt: skip
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@cyclic_gc_paused()  # a 1M-span run's rows and flags: the collector's passes cost it 0.3-0.6 s
def mine_store(
    store: Store,
    *,
    since: str | float | None = None,
    config: MinerConfig | None = None,
    remine: bool = False,
    progress: Progress | None = None,
    rescore: bool = False,
) -> MineResult:
    """Mine ``store``; see :func:`tracemill.mine`. ``rescore`` mines every trace, reading the span features kept
    from earlier runs (``remine`` computes them again)."""
    from tracemill.collector.store.query import parse_since
    from tracemill.miner.scoring.scorer import UNSUPERVISED, planned_version_in_store

    config = config or MinerConfig()
    started = time.perf_counter()
    result = MineResult(run_id=uuid.uuid4().hex[:16], miner_version=MINER_VERSION)
    clock = _Clock(result, progress)

    since_s = None if since is None else parse_since(since)
    planned = planned_version_in_store(store, config)
    where, params, fresh = candidate_condition(store, since_s=since_s, remine=remine or rescore)
    if where != "1" and _labels_changed(store, planned):
        where, params = "1", {}  # the stored scores come from another model: re-score (and re-flag) every trace
    elif since_s is None and where != "1" and not anything_new(store, params):
        where = "0"  # nothing new or changed, and the same labels: the stored scores and flags stand
    clock.done("select")

    frame = load_features(store, where, params, loop_min=config.loop_min_repeats,
                          again=remine or since_s is not None, conversations=planned != UNSUPERVISED,
                          keep_conversations=True)
    try:
        mined = _mine_frame(store, frame, config, result, clock, started, fresh=fresh, full=where == "1")
    finally:  # no read of this run's outlives it
        wait([f for f in (frame.conversations, frame.keeping) if f is not None])
    if frame.keeping is not None:
        frame.keeping.result()  # raises what went wrong in keeping them
    if mined is None:  # another model wrote the stored scores: re-score (and re-flag) every trace with this one
        return mine_store(store, config=config, rescore=True, progress=progress)
    return mined


def _mine_frame(store: Store, frame: Frame, config: MinerConfig, result: MineResult, clock: _Clock, started: float,
                *, fresh: bool, full: bool) -> MineResult | None:
    """Detect, score, write and report on the traces of ``frame``; None when the stored scores come from another
    model, so every trace must be mined again."""
    result.traces = len(frame)
    clock.done("features")
    if not len(frame):
        result.regressions = _regressions(store)
        _versions_and_rollouts(store, result)
        result.duration_s = round(time.perf_counter() - started, 3)
        return result

    scored = _flag_and_score(store, frame, config, result, clock, full=full)
    if scored is None:
        return None

    _write(store, result, frame, scored.probabilities, scored.model_version, replace_old=not fresh,
           every_trace=full)
    _predict_decisive(store, config, result)
    result.top_steps = _top_steps(store, result.run_id)
    record_run(store, result)
    store_taxonomy(store, result.run_id, result.taxonomy)
    clock.done("write")

    result.regressions = _regressions_of_run(store, frame, result.flags, full=full)
    _versions_and_rollouts(store, result)
    clock.done("regressions")
    result.duration_s = round(time.perf_counter() - started, 3)
    return result


def _flag_and_score(store: Store, frame: Frame, config: MinerConfig, result: MineResult, clock: _Clock, *,
                    full: bool) -> Any:
    """Detect, localize, calibrate, score and classify: fills ``result``'s flags, summary and taxonomy; the
    scorer's output, or None when the stored scores come from another model (then every trace is mined again)."""
    from tracemill.miner.quality.calibration import calibrate_flags
    from tracemill.miner.scoring.scorer import planned_version, score_traces

    result.spans = int(sum(frame["spans"]))
    peers = _peers(store, frame, config, full=full)
    ctx = Context(frame=frame, config=config, peers=peers)
    flags = detect(ctx)
    clock.done("detect")

    flags = _localize_excess(store, frame, flags, peers)
    clock.done("localize")

    calibrated = calibrate_flags(frame, flags, config)
    flags = calibrated.flags
    result.detectors = [row.to_dict() for row in calibrated.table.values()]
    result.grouping = calibrated.grouping
    if not full and model_changed(store, planned_version(frame, config, calibrated.groups)):
        return None  # known before training: the labels or settings changed
    scored = score_traces(frame, config, flags, calibrated.groups, store)
    if not full and model_changed(store, scored.model_version):
        return None
    flags += scored.flags
    result.scorer = scored.report
    clock.done("score")

    result.flags = flags
    result.summarize()
    result.taxonomy = build_taxonomy(_messages(frame, flags))
    clock.done("taxonomy")

    return scored


def _labels_changed(store: Store, planned: str) -> bool:
    """Whether the outcome labels or the settings changed since the stored scores were written (``planned``: the
    scorer's version they call for)."""
    from tracemill.miner.quality.miner_runs import latest_run

    if not model_changed(store, planned):
        return False
    # Labels that could not train a model (too few task groups) were tried already: nothing to re-score.
    latest = latest_run(store)
    return not latest or latest["scorer"].get("labels_digest") != model_family(planned)


def _predict_decisive(store: Store, config: MinerConfig, result: MineResult) -> None:
    """The learned ranker's decisive_model flags on unmarked failed runs (written by it), added to the result."""
    from tracemill.miner.decisive.mine import predict_decisive

    decisive = predict_decisive(store, threshold=config.outcome_threshold, folds=config.cv_folds,
                                run_id=result.run_id, miner_version=result.miner_version)
    result.flags += decisive.flags
    result.decisive = decisive.to_dict()
    result.summarize()


def _regressions_of_run(store: Store, frame: Frame, flags: list[Flag], *, full: bool) -> Any:
    """Failure rates per configuration version: from this run's frame when it mined every trace, else the store."""
    if full:  # every trace was mined now: the frame and the flags hold all the report needs
        from tracemill.miner.regressions import report_from_traces

        failed = {f.trace_id for f in flags if f.category == "failure" and not f.muted}
        near = {f.trace_id for f in flags if f.category == "near_miss" and not f.muted}
        return report_from_traces(
            (v or "(none)", s, t in failed, t in near)
            for t, v, s in zip(frame["trace_id"], frame["version"], frame["start_s"], strict=True)
        )
    return _regressions(store)


class _Clock:
    def __init__(self, result: MineResult, progress: Progress | None) -> None:
        self.result, self.progress, self.last = result, progress, time.perf_counter()

    def done(self, stage: str) -> None:
        now = time.perf_counter()
        self.result.timings[stage] = round(now - self.last, 3)
        self.last = now
        if self.progress is not None:
            self.progress(stage, STAGES.index(stage) + 1, len(STAGES))


def _peers(store: Store, frame: Frame, config: MinerConfig, *, full: bool) -> PeerStats:
    """Peer statistics over this run's traces and, unless every trace is being mined, the earlier ones."""
    stats = PeerStats(config.min_peers)
    stats.add_columns(frame.peer_groups(), frame.steps(), frame["tokens"], frame["duration_s"])
    if not full:
        mine = set(frame["trace_id"])
        rows = store.query(
            f"SELECT TraceId, PeerGroup, Steps, Tokens, DurationS FROM {TRACE_SCORES_TABLE} FINAL"
        ).result_rows
        stats.add_many(row[1:] for row in rows if row[0] not in mine)
    return stats.finish()


def _localize_excess(store: Store, frame: Frame, flags: list[Flag], peers: PeerStats) -> list[Flag]:
    """Point excess-steps flags at the first step beyond the peers' median step count."""
    wanted = [f for f in flags if f.kind == "excess_steps"]
    if not wanted:
        return flags
    rows = store.query(
        f"SELECT TraceId, arrayMap(x -> x.2, arraySort(groupArray((start_ns, SpanId)))) FROM "
        f"(SELECT {span_columns('0')} FROM {SPANS_TABLE} WHERE TraceId IN {{ids:Array(String)}}) "
        "WHERE is_llm OR is_tool GROUP BY TraceId",
        {"ids": sorted({f.trace_id for f in wanted})},
    ).result_rows
    steps: dict[str, list[str]] = {row[0]: row[1] for row in rows}
    index = {trace: i for i, trace in enumerate(frame["trace_id"])}
    out = []
    for flag in flags:
        if flag.kind == "excess_steps" and steps.get(flag.trace_id):
            _, median = peers.score(frame.peer_group(index[flag.trace_id]), "steps", 0)
            ordered = steps[flag.trace_id]
            flag = msgspec.structs.replace(flag, span_id=ordered[min(len(ordered) - 1, int(median))])
        out.append(flag)
    return out


def _messages(frame: Frame, flags: list[Flag]) -> list[Message]:
    """The error message behind each failed trace, for the taxonomy."""
    index = {trace: i for i, trace in enumerate(frame["trace_id"])}
    first: dict[str, Flag] = {}
    for flag in flags:
        if flag.category == "failure" and not flag.muted:
            first.setdefault(flag.trace_id, flag)
    out = []
    for trace, flag in first.items():
        i = index[trace]
        text = (frame["first_tool_error_text"][i] or frame["first_llm_error_text"][i] or frame["first_error_text"][i]
                or frame["root_error_text"][i])
        if text:
            out.append(Message(trace, text, frame["first_tool_error_tool"][i], flag.detector))
    return out


def _write(store: Store, result: MineResult, frame: Frame, probabilities: Any, model_version: str, *,
           replace_old: bool, every_trace: bool) -> None:
    # CreatedAt as DateTime64(6) ticks: the client turns each datetime of a column into ticks one by one.
    created = (datetime.now(timezone.utc) - _EPOCH) // timedelta(microseconds=1)
    if replace_old and every_trace:  # every trace was mined again: no earlier flag stands (no list of ids)
        store.command(f"DELETE FROM {FLAGS_TABLE} WHERE RunId != {{run:String}}", {"run": result.run_id})
    elif replace_old:
        # A re-mined trace's flags are this run's: drop what earlier runs said about it. The traces are named by
        # the condition that selected them: a parameter listing 100,000 ids makes the delete take a minute.
        store.command(
            f"DELETE FROM {FLAGS_TABLE} WHERE TraceId IN (SELECT DISTINCT TraceId FROM {SPANS_TABLE} "
            f"WHERE TraceId != '' AND {frame.where}) AND RunId != {{run:String}}",
            {**frame.params, "run": result.run_id},
        )
    if result.flags:
        flags = result.flags
        columns: list[list[Any]] = [
            [result.run_id] * len(flags), [result.miner_version] * len(flags), [f.trace_id for f in flags],
            [f.span_id for f in flags], [f.detector for f in flags], [f.detector_version for f in flags],
            [f.category for f in flags], [f.kind for f in flags], [f.severity for f in flags],
            [float(f.confidence) for f in flags], [f.evidence for f in flags], [created] * len(flags),
            [int(f.muted) for f in flags],
        ]  # fmt: skip
        store.insert(FLAGS_TABLE, columns, _FLAG_COLUMNS, column_oriented=True)
    n = len(frame)
    scores: list[list[Any]] = [
        list(frame["trace_id"]), [model_version] * n, [float(p) for p in probabilities], [created] * n,
        list(frame.peer_groups()), [int(s) for s in frame.steps()],
        [int(t) for t in frame["tokens"]], [float(d) for d in frame["duration_s"]],
    ]  # fmt: skip
    store.insert(TRACE_SCORES_TABLE, scores, _SCORE_COLUMNS, column_oriented=True)


def _top_steps(store: Store, run_id: str, limit: int = 10) -> list[dict[str, Any]]:
    # The spans are narrowed by the flagged span ids, not trace ids: span ids are nearly unique, so the join
    # takes the few flagged spans, not every span of a flagged trace.
    rows = store.query(
        f"SELECT s.SpanName, count() AS n, groupUniqArray(f.Detector) FROM (SELECT TraceId, SpanId, SpanName "
        f"FROM {SPANS_TABLE} WHERE SpanId IN (SELECT SpanId FROM {FLAGS_TABLE} WHERE RunId = {{run:String}})) AS s "
        f"INNER JOIN (SELECT TraceId, SpanId, Detector FROM {FLAGS_TABLE} WHERE RunId = {{run:String}}) AS f "
        "ON s.TraceId = f.TraceId AND s.SpanId = f.SpanId "
        "GROUP BY s.SpanName ORDER BY n DESC, s.SpanName LIMIT {limit:UInt32}",
        {"run": run_id, "limit": limit},
    ).result_rows
    return [{"span_name": name, "count": n, "detectors": sorted(detectors)} for name, n, detectors in rows]


def _versions_and_rollouts(store: Store, result: MineResult) -> None:
    """Failure rates per configuration version (with what changed), and one look at every running rollout."""
    from tracemill.miner.versions.report import versions_report
    from tracemill.miner.versions.rollouts import check_rollouts

    result.regressions["config_versions"] = versions_report(store)["versions"]
    result.rollouts = check_rollouts(store)


def _regressions(store: Store) -> dict[str, Any]:
    from tracemill.miner.regressions import version_report

    return version_report(store)

