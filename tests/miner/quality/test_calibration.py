"""Detectors calibrated by outcomes: precision, recall and lift on labelled runs grouped by task; muting."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

import tracemill.miner as miner
from tracemill.errors import ConfigError
from tracemill.miner.detectors import Flag
from tracemill.miner.quality.calibration import apply_calibration, calibrate


def _flag(trace: str, detector: str = "give_up", category: str = "failure") -> Flag:
    return Flag(trace, "s", detector, "1", category, detector, "medium", 0.8, "the final answer gives up")  # type: ignore[arg-type]


def _labelled(n: int, failed: set[int]) -> tuple[list[str], np.ndarray, list[str]]:
    traces = [f"t{i}" for i in range(n)]
    return traces, np.asarray([int(i in failed) for i in range(n)]), [f"task{i}" for i in range(n)]


def test_a_detector_that_fires_on_successes_is_muted_with_its_evidence():
    # 100 labelled runs, 58 failed; give_up fires on 13 runs, 1 of which failed.
    traces, labels, groups = _labelled(100, set(range(58)))
    flags = [_flag(t) for t in ["t0", *traces[60:72]]] + [_flag("t1", "tool_error")] * 1
    table = calibrate(flags, traces, labels, groups, miner.MinerConfig())
    row = table["give_up"]
    assert (row.runs, row.failed, row.muted) == (13, 1, True)
    assert row.evidence == "fires on 13 labelled runs, 1 failed; base rate 0.58"
    assert row.precision == pytest.approx(1 / 13, abs=1e-4) and row.lift == pytest.approx((1 / 13) / 0.58, abs=1e-3)
    # One failed run cannot show that tool_error's flags are right often enough to trust: muted until more are.
    assert table["tool_error"].muted and not table["tool_error"].trusted
    assert table["tool_error"].evidence == ("fires on 1 labelled run, 1 failed; base rate 0.58; precision 1.00, "
                                            "not shown to reach 0.70 with 80% confidence")
    assert not table["loop"].muted and table["loop"].evidence == "fires on no labelled run; base rate 0.58"
    out = apply_calibration(flags, table, miner.MinerConfig())
    assert all(f.muted for f in out if f.detector == "give_up")
    assert all(f.confidence == pytest.approx(1 / 13, abs=1e-3) for f in out if f.detector == "give_up")
    assert "[muted: fires on 13 labelled runs" in out[0].evidence
    pinned = calibrate(flags, traces, labels, groups, miner.MinerConfig(pinned={"give_up": True}))
    assert not pinned["give_up"].muted and pinned["give_up"].pinned == "on"
    off = calibrate(flags, traces, labels, groups, miner.MinerConfig(pinned={"loop": False}))
    assert off["loop"].muted and off["loop"].evidence.startswith("pinned off")
    with pytest.raises(ConfigError, match="unknown detector"):
        calibrate(flags, traces, labels, groups, miner.MinerConfig(pinned={"nope": True}))


def test_a_failure_detector_counts_once_its_precision_reaches_the_target_with_confidence():
    # 100 labelled runs, 58 failed. Every detector below beats the base rate; only the first two are trusted.
    traces, labels, groups = _labelled(100, set(range(58)))
    fired = {"tool_error": traces[:18] + traces[60:62],  # 18 of 20 failed
             "loop": traces[:3],  # 3 of 3
             "give_up": traces[:3] + traces[60:61],  # 3 of 4: lift 1.29, too few to show 0.70
             "llm_error": traces[:14] + traces[60:66]}  # 14 of 20: 0.70 measured, not with confidence
    flags = [_flag(t, name) for name, ts in fired.items() for t in ts]
    table = calibrate(flags, traces, labels, groups, miner.MinerConfig())
    assert {name: (table[name].trusted, table[name].muted) for name in fired} == {
        "tool_error": (True, False), "loop": (True, False), "give_up": (False, True), "llm_error": (False, True)}
    assert table["llm_error"].lift is not None and table["llm_error"].lift > 1
    # At confidence 0.5 the measured precision is taken as it is: 0.70 and 0.75 reach 0.70.
    loose = calibrate(flags, traces, labels, groups, miner.MinerConfig(flag_confidence=0.5))
    assert not loose["llm_error"].muted and not loose["give_up"].muted
    pinned = calibrate(flags, traces, labels, groups, miner.MinerConfig(pinned={"give_up": True}))
    assert not pinned["give_up"].muted


def test_a_tasks_trials_count_once_in_the_confidence_and_hand_offs_fail_only_where_trusted():
    # Ten trials of one task, all failed and flagged, are one task's evidence: too little to trust.
    traces = [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(30)]
    labels = np.asarray([1] * 10 + [1] * 10 + [0] * 20)
    one_task = calibrate([_flag(t) for t in traces[:10]], traces, labels, ["A"] * 10 + traces[10:],
                         miner.MinerConfig())["give_up"]
    assert one_task.precision == 1.0 and one_task.muted and not one_task.trusted
    ten_tasks = calibrate([_flag(t) for t in traces[:10]], traces, labels, traces, miner.MinerConfig())["give_up"]
    assert ten_tasks.trusted and not ten_tasks.muted
    # Hand-offs: 17 of 20 failed (base 0.5) are failures here; 5 of 7 are not shown to be, though their lift is 1.43.
    traces, labels, groups = _labelled(100, set(range(50)))
    config = miner.MinerConfig()
    for handing_off, promoted in ((traces[:17] + traces[50:53], True), (traces[:5] + traces[50:52], False)):
        flags = [_flag(t, "handoff", "signal") for t in handing_off]
        table = calibrate(flags, traces, labels, groups, config)
        assert table["handoff"].lift is not None and table["handoff"].lift > config.handoff_failure_lift
        out = apply_calibration(flags, table, config)
        assert {f.category for f in out} == ({"failure"} if promoted else {"signal"})
        assert not any(f.muted for f in out)


def test_trials_of_one_task_count_once():
    # Task A: 10 trials, all failed and flagged; 10 other tasks of one trial each, 1 failed and 5 flagged.
    traces = [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(10)]
    labels = np.asarray([1] * 10 + [1] + [0] * 9)
    groups = ["A"] * 10 + [f"B{i}" for i in range(10)]
    flags = [_flag(t) for t in traces[:10]] + [_flag(t) for t in ("b1", "b2", "b3", "b4", "b5")]
    row = calibrate(flags, traces, labels, groups, miner.MinerConfig())["give_up"]
    # Weighted by task: the base rate is 2 failed tasks of 11; the detector fires on 6 tasks, 1 failed.
    assert row.base_rate == pytest.approx(2 / 11, abs=1e-4)
    assert row.precision == pytest.approx(1 / 6, abs=1e-4)
    assert row.muted  # per run it would look good (10 of 15 flagged runs failed), per task it does not


def test_without_labels_the_defaults_stand():
    traces, _, groups = _labelled(10, set())
    flags = [_flag(t) for t in traces]
    table = calibrate(flags, traces, np.full(10, -1), groups, miner.MinerConfig())
    assert not any(row.muted for row in table.values())
    assert table["give_up"].evidence == "no labelled runs"
    assert apply_calibration(flags, table, miner.MinerConfig()) == flags


@pytest.fixture(scope="module")
def mined_support(new_database: Any, drop_database: Any, support: Any) -> Any:
    store = new_database("calibrated_support")
    conversations = support.build(seed=21, tasks=40, trials=5)
    traced = support.write_openinference(store, conversations)
    tasks = sorted({c.task.task_id for c in conversations})
    labelled = set(random.Random(3).sample(tasks, len(tasks) // 2))
    support.record_outcomes(store, traced, tasks=labelled)
    yield store, traced, labelled, miner.mine(store)
    drop_database(store)


def test_on_the_support_corpus_every_unmuted_measured_detector_beats_the_base_rate(mined_support: Any):
    store, traced, _, result = mined_support
    failed = {t.trace_id: not t.conversation.success for t in traced}
    base = sum(failed.values()) / len(failed)
    # Each run names its own session: its trials are grouped by the identifiers their user gave, one group a task.
    assert result.detectors and result.grouping == "user's identifiers (100 runs)"
    assert result.scorer["groups"] == len({t.conversation.task.task_id for t in traced}) // 2
    by_detector: dict[str, set[str]] = {}
    for flag in result.flags:
        if flag.category == "failure" and not flag.muted and flag.detector not in ("negative_feedback",):
            by_detector.setdefault(flag.detector, set()).add(flag.trace_id)
    measured = {d["detector"] for d in result.detectors if d["runs"] >= 5}
    for name, traces in by_detector.items():
        if name in measured or name == "outcome_model":
            rate = sum(failed[t] for t in traces) / len(traces)
            assert rate > base, (name, rate, base)
    muted = store.query("SELECT count() FROM tracemill_flags FINAL WHERE Muted = 1").result_rows[0][0]
    assert muted == sum(f.muted for f in result.flags)
    counted = {f.trace_id for f in result.flags if f.category == "failure" and not f.muted}
    assert result.counts["failure"] == len(counted)
