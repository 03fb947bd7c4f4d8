"""Detectors calibrated by outcomes: each detector's precision, recall and lift on this store's labelled runs.

Real agents are not the synthetic corpora: a refusal or a hand-off is often the correct ending, and most
failures raise nothing, so a rule's default confidence can point the wrong way. With outcome labels in the
store, each detector is measured on the labelled runs, weighted so that every task (group) counts once
however many trials it has: precision (the share of flagged runs that failed), recall, lift (precision over
the base failure rate) and support. A failure detector whose lift is not above 1 with enough support is
muted for this store: its flags are kept, marked muted, and left out of the review queue and of failure
counts. So is one whose precision on the labelled runs it fired on cannot reach ``flag_precision`` with
``flag_confidence``, the bar the learned scorer's flags meet: trials of one task look alike, so a rule that
fired on a few labelled runs says little about the next tasks, and a failure flag that is right half the
time costs a reviewer more than it finds. An unmuted detector's flag confidence is its measured precision.
A hand-off is a signal unless the outcomes say hand-offs fail here, by the same bar. ``MinerConfig.pinned``
forces a detector on (never muted) or off (muted).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import msgspec
import numpy as np

from tracemill.errors import ConfigError
from tracemill.miner.config import MinerConfig
from tracemill.miner.detectors import DETECTORS, Flag
from tracemill.miner.features import Frame

__all__ = ["LABEL_DETECTORS", "Calibrated", "DetectorStats", "apply_calibration", "calibrate", "calibrate_flags"]

LABEL_DETECTORS = frozenset({"negative_feedback", "outcome_near_threshold", "outcome_model"})
"""Detectors that read the outcome itself (or are calibrated by cross-validation): never measured here."""


@dataclass(frozen=True)
class DetectorStats:
    """One detector's row of the calibration table."""

    detector: str
    category: str
    runs: int  # labelled runs it fired on
    failed: int  # ...of which failed
    groups: int  # task groups among them
    precision: float | None
    recall: float | None
    lift: float | None
    base_rate: float | None
    muted: bool
    pinned: str  # "on", "off" or ""
    evidence: str
    trusted: bool = False  # its precision reaches flag_precision with flag_confidence

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_pins(config: MinerConfig) -> None:
    unknown = sorted(set(config.pinned) - set(DETECTORS))
    if unknown:
        raise ConfigError(f"pinned names unknown detector(s) {', '.join(unknown)}; the detectors are "
                          f"{', '.join(DETECTORS)}")


def calibrate(flags: Sequence[Flag], trace_ids: Sequence[str], labels: np.ndarray, groups: Sequence[str],
              config: MinerConfig) -> dict[str, DetectorStats]:
    """The calibration table: every detector but those that read the outcome, measured on labelled runs."""
    check_pins(config)
    labelled = [int(i) for i in np.flatnonzero(labels >= 0)]
    sizes: dict[str, int] = defaultdict(int)
    for i in labelled:
        sizes[groups[i]] += 1
    weight = {trace_ids[i]: 1.0 / sizes[groups[i]] for i in labelled}
    label = {trace_ids[i]: int(labels[i]) for i in labelled}
    group = {trace_ids[i]: groups[i] for i in labelled}
    total = sum(weight.values())
    failed_weight = sum(w for t, w in weight.items() if label[t])
    base = failed_weight / total if total else None
    fired: dict[str, set[str]] = defaultdict(set)
    for flag in flags:
        if flag.trace_id in weight:
            fired[flag.detector].add(flag.trace_id)
    table = {}
    for name, unit in DETECTORS.items():
        if name in LABEL_DETECTORS:
            continue
        traces = fired.get(name, set())
        table[name] = _row(name, unit.category, traces, weight, label, group, base, failed_weight, config)
    return table


def _row(name: str, category: str, traces: set[str], weight: dict[str, float], label: dict[str, int],
         group: dict[str, str], base: float | None, failed_weight: float, config: MinerConfig) -> DetectorStats:
    pin = config.pinned.get(name)
    pinned = "" if pin is None else "on" if pin else "off"
    runs, failed = len(traces), sum(label[t] for t in traces)
    if base is None or not runs:
        note = "no labelled runs" if base is None else f"fires on no labelled run; base rate {base:.2f}"
        return DetectorStats(name, category, runs, failed, 0, None, None, None, base, pin is False, pinned,
                             _pinned_note(pinned, note))
    w = sum(weight[t] for t in traces)
    wf = sum(weight[t] for t in traces if label[t])
    precision = wf / w
    recall = wf / failed_weight if failed_weight else None
    lift = precision / base if base else None
    enough = runs >= config.calibration_min_runs
    trusted = _trusted(precision, w, config)
    note = f"fires on {runs} labelled run{'s' if runs != 1 else ''}, {failed} failed; base rate {base:.2f}"
    muted = pin is False
    if pin is None and category == "failure":
        if enough and lift is not None and lift <= 1.0:
            muted = True
        elif not trusted:
            muted = True
            note += (f"; precision {precision:.2f}, not shown to reach {config.flag_precision:.2f} with "
                     f"{config.flag_confidence:.0%} confidence")
    if not enough and not muted:
        note += f" (fewer than {config.calibration_min_runs} runs: default confidence)"
    return DetectorStats(name, category, runs, failed, len({group[t] for t in traces}), round(precision, 4),
                         None if recall is None else round(recall, 4), None if lift is None else round(lift, 4),
                         round(base, 4), muted, pinned, _pinned_note(pinned, note), trusted)


def _trusted(precision: float, tasks: float, config: MinerConfig) -> bool:
    """Whether ``precision``, measured on runs worth ``tasks`` tasks (a task's trials count once), reaches
    ``flag_precision`` with ``flag_confidence`` by Wilson's lower bound."""
    from tracemill.miner.scoring.model_select import wilson_lower_bound

    lower = wilson_lower_bound(np.asarray([precision]), np.asarray([tasks]), config.flag_confidence)
    return bool(lower[0] >= config.flag_precision)


def _pinned_note(pinned: str, note: str) -> str:
    return f"pinned {pinned}; {note}" if pinned else note


def apply_calibration(flags: Sequence[Flag], table: dict[str, DetectorStats], config: MinerConfig) -> list[Flag]:
    """Flags with measured confidence, muted where their detector is, hand-offs as failures where they fail."""
    out = []
    for flag in flags:
        stats = table.get(flag.detector)
        if stats is None:
            out.append(flag)
            continue
        changes: dict[str, Any] = {}
        if stats.muted:
            changes["muted"] = True
            changes["evidence"] = f"{flag.evidence} [muted: {stats.evidence}]"[:1000]
        measured = stats.runs >= config.calibration_min_runs and stats.precision is not None
        if measured and flag.category != "near_miss":
            changes["confidence"] = round(float(stats.precision or 0.0), 3)
        if (flag.category == "signal" and measured and not stats.muted and stats.trusted and stats.lift is not None
                and stats.lift >= config.handoff_failure_lift):
            changes["category"] = "failure"
            changes["evidence"] = f"{flag.evidence} [hand-offs fail here: {stats.evidence}]"[:1000]
        out.append(_changed(flag, changes) if changes else flag)
    return out


def _changed(flag: Flag, changes: dict[str, Any]) -> Flag:
    """``flag`` with ``changes`` (called for every flag of a muted or measured detector, tens of thousands in a
    large store)."""
    return msgspec.structs.replace(flag, **changes)


@dataclass
class Calibrated:
    """What calibration hands on: the flags, the table, and the labels and groups the scorer reuses."""

    flags: list[Flag]
    table: dict[str, DetectorStats]
    labels: np.ndarray
    groups: list[str]
    grouping: str


def calibrate_flags(frame: Frame, flags: Sequence[Flag], config: MinerConfig) -> Calibrated:
    """Group the runs, read their labels, measure every detector and apply the table to the flags."""
    from tracemill.miner.grouping import group_keys, grouping_note
    from tracemill.miner.scoring.scorer import labels_of

    labels = labels_of(frame, config)
    labelled = np.flatnonzero(labels >= 0)
    # The run reads the conversations when it expects to train the scorer: their user turns name the identifiers
    # that group trials of one task, and the scorer's peers. (Waited for only where a run has no task id: the
    # engine reads them while calibration goes on.) Without them, only the labelled runs, the ones calibration
    # measures, are grouped by identifiers.
    if frame.conversations is not None:
        groups, sources = group_keys(frame, frame.conversations.result)
    else:
        groups, sources = group_keys(frame, rows=labelled.tolist())
    table = calibrate(flags, frame["trace_id"], labels, groups, config)
    note = grouping_note([sources[i] for i in labelled]) if labelled.size else grouping_note(sources)
    return Calibrated(apply_calibration(flags, table, config), table, labels, groups, note)
