"""What a mining run returns: :class:`MineResult`. Its attributes are a stable interface (the review UI,
the demo and the CLI read them); add to it, do not rename."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tracemill.miner.detectors import Flag

__all__ = ["MineResult"]


@dataclass
class MineResult:
    """The outcome of :func:`tracemill.mine`.

    Attributes:
        run_id: id of this run, written to every flag's ``RunId``.
        miner_version: :data:`tracemill.miner.config.MINER_VERSION`.
        traces: how many traces this run mined (new ones, ones with new feedback, labelled ones).
        spans: how many spans those traces hold.
        flags: every flag written by this run (:class:`~tracemill.miner.detectors.Flag`).
        counts: traces by outcome: ``{"failure": n, "near_miss": n, "clean": n}`` (a trace with a failure
            flag counts as failure only).
        by_kind, by_detector: flag counts by kind and by detector.
        kinds: flag counts by category and kind: ``[{"category", "kind", "flags"}]``, most first.
        top_steps: the span names most often decisive: ``[{"span_name", "count", "detectors"}]``.
        scorer: the scorer's report: ``mode`` ("supervised", "anomaly" or "none"), ``model_version``, ``note``,
            ``threshold``, and ``model``/``rules`` quality dicts (``auroc``, ``precision``, ``recall``, ``brier``,
            ``reliability`` bins, ``roc`` points) from cross-validation grouped by task; None in anomaly mode.
        taxonomy: failure groups: ``[{"name", "count", "templates", "tools", "detectors", "examples",
            "example_message"}]``, largest first.
        regressions: ``{"versions": [...], "by_day": [...], "comparison": {...} | None}`` (see
            :mod:`tracemill.miner.regressions`).
        decisive: the decisive-step ranker's stage: ``note``, ``marked_runs``, ``cv`` (grouped cross-validation:
            ``model``, ``first_step``, ``last_step``, ``rules``, each ``top1``/``top3``/``agent``), ``predicted``.
            :mod:`tracemill.miner.regressions`), with ``config_versions`` per configuration version.
        rollouts: each rollout's arms, sequential test and state after this look (see
            :mod:`tracemill.miner.versions.rollouts`).
        timings: seconds per stage; duration_s: the whole run.
        detectors: the calibration table, one row per detector: ``detector``, ``category``, ``runs`` and
            ``failed`` (labelled runs it fired on, and how many failed), ``groups``, ``precision``, ``recall``,
            ``lift``, ``base_rate`` (None without labels), ``muted``, ``pinned`` ("on", "off", ""), ``evidence``.
        grouping: how runs were grouped into tasks, e.g. "task id (200 runs)" (see
            :mod:`tracemill.miner.grouping`).

    A muted flag (``flag.muted``) is kept and listed but not counted as a failure or near miss.
    """

    run_id: str
    miner_version: str
    traces: int = 0
    spans: int = 0
    flags: list[Flag] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"failure": 0, "near_miss": 0, "clean": 0})
    by_kind: dict[str, int] = field(default_factory=dict)
    by_detector: dict[str, int] = field(default_factory=dict)
    kinds: list[dict[str, Any]] = field(default_factory=list)
    top_steps: list[dict[str, Any]] = field(default_factory=list)
    scorer: dict[str, Any] = field(default_factory=dict)
    taxonomy: list[dict[str, Any]] = field(default_factory=list)
    regressions: dict[str, Any] = field(default_factory=dict)
    decisive: dict[str, Any] = field(default_factory=dict)
    rollouts: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    duration_s: float = 0.0
    detectors: list[dict[str, Any]] = field(default_factory=list)
    grouping: str = ""

    def summarize(self) -> None:
        """Fill the counts from the flags."""
        self.by_kind = dict(Counter(f.kind for f in self.flags).most_common())
        self.by_detector = dict(Counter(f.detector for f in self.flags).most_common())
        self.kinds = [{"category": c, "kind": k, "flags": n}
                      for (c, k), n in Counter((f.category, f.kind) for f in self.flags).most_common()]
        failed = {f.trace_id for f in self.flags if f.category == "failure" and not f.muted}
        near = {f.trace_id for f in self.flags if f.category == "near_miss" and not f.muted} - failed
        self.counts = {"failure": len(failed), "near_miss": len(near), "clean": self.traces - len(failed) - len(near)}

    def to_dict(self, *, max_flags: int | None = 1000) -> dict[str, Any]:
        """JSON-ready; at most ``max_flags`` flags (the strongest first), ``flags_total`` says how many there are."""
        flags = sorted(self.flags, key=lambda f: (f.category != "failure", -f.confidence, f.trace_id, f.detector))
        return {
            "run_id": self.run_id,
            "miner_version": self.miner_version,
            "traces": self.traces,
            "spans": self.spans,
            "counts": self.counts,
            "by_kind": self.by_kind,
            "by_detector": self.by_detector,
            "kinds": self.kinds,
            "flags_total": len(self.flags),
            "flags": [f.to_dict() for f in (flags if max_flags is None else flags[:max_flags])],
            "top_steps": self.top_steps,
            "scorer": self.scorer,
            "taxonomy": self.taxonomy,
            "regressions": self.regressions,
            "decisive": self.decisive,
            "rollouts": self.rollouts,
            "timings": self.timings,
            "duration_s": self.duration_s,
            "detectors": self.detectors,
            "grouping": self.grouping,
        }
