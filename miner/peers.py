"""Robust statistics of runs' cost within peer groups (runs of the same task, else the same agent).

Median and MAD, so a few runaway runs do not move the yardstick they are measured against. The
peers of a run include earlier mined runs, read from the cost columns of ``tracemill_trace_scores``.
Runs are added and scored a column at a time (NumPy), not a run at a time: a mine holds 10^5 runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

__all__ = ["METRICS", "PeerStats", "numbered"]

METRICS = ("steps", "tokens", "duration_s")

H = TypeVar("H", bound=Hashable)


def numbered(values: Sequence[H]) -> tuple[np.ndarray, list[H]]:
    """Each value's number (in order of first appearance; equal values numbered alike), and the values in that
    order."""
    seen: dict[H, int] = {}
    codes = np.fromiter((seen.setdefault(v, len(seen)) for v in values), dtype=np.int64, count=len(values))
    return codes, list(seen)


class PeerStats:
    """Per group and metric: (count, median, robust scale)."""

    def __init__(self, min_peers: int) -> None:
        self.min_peers = min_peers
        self._values: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
        self._stats: dict[tuple[str, str], tuple[int, float, float]] = {}
        self._coded: tuple[Sequence[str], np.ndarray, list[str]] | None = None

    def _codes(self, groups: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """:func:`numbered` of ``groups``, computed once for the same list (a run adds and scores the frame's peer
        groups, one list, for each metric)."""
        if self._coded is None or self._coded[0] is not groups:
            self._coded = (groups, *numbered(groups))
        return self._coded[1], self._coded[2]

    def add_many(self, rows: Iterable[Sequence[Any]]) -> None:
        """Add (group, steps, tokens, duration_s) rows."""
        columns = list(zip(*rows, strict=True))
        if columns:
            self.add_columns(*columns)

    def add_columns(self, groups: Sequence[str], steps: Sequence[float], tokens: Sequence[float],
                    duration_s: Sequence[float]) -> None:
        """Add one run per position of the columns."""
        codes, names = self._codes(groups)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        for metric, values in zip(METRICS, (steps, tokens, duration_s), strict=True):
            ordered = np.asarray(values, dtype=float)[order]
            for k, group in enumerate(names):
                self._values[(group, metric)].append(ordered[bounds[k]:bounds[k + 1]])

    def finish(self) -> PeerStats:
        for key, parts in self._values.items():
            array = np.concatenate(parts)
            median = float(np.median(array))
            mad = float(np.median(np.abs(array - median))) * 1.4826
            if mad == 0.0:
                q1, q3 = np.percentile(array, [25, 75])
                mad = float(q3 - q1) / 1.349
            # Peers that are all alike would make any difference infinitely significant.
            scale = max(mad, 0.1 * abs(median), 1.0 if key[1] == "steps" else 1e-9)
            self._stats[key] = (len(array), median, scale)
        self._values.clear()
        return self

    def score(self, group: str, metric: str, value: float) -> tuple[float, float]:
        """(robust z-score, peers' median); z is 0 when the group has fewer than ``min_peers`` runs."""
        stats = self._stats.get((group, metric))
        if stats is None or stats[0] < self.min_peers:
            return 0.0, 0.0
        _, median, scale = stats
        return (float(value) - median) / scale, median

    def scores(self, groups: Sequence[str], metric: str, values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`score` of every run at once: (robust z-scores, peers' medians) as arrays."""
        if not len(groups):
            return np.zeros(0), np.zeros(0)
        codes, names = self._codes(groups)
        known = [self._stats.get((group, metric)) for group in names]
        usable = np.asarray([s is not None and s[0] >= self.min_peers for s in known])[codes]
        medians = np.asarray([s[1] if s is not None else 0.0 for s in known])[codes]
        scales = np.asarray([s[2] if s is not None else 1.0 for s in known])[codes]
        median = np.where(usable, medians, 0.0)
        return np.where(usable, (np.asarray(values, dtype=float) - median) / scales, 0.0), median

    def groups(self) -> dict[str, int]:
        return {group: stats[0] for (group, metric), stats in self._stats.items() if metric == "steps"}
