"""Robust statistics of runs' cost within peer groups (runs of the same task, else the same agent).

Median and MAD, so a few runaway runs do not move the yardstick they are measured against. The
peers of a run include earlier mined runs, read from the cost columns of ``tracemill_trace_scores``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["METRICS", "PeerStats"]

METRICS = ("steps", "tokens", "duration_s")


class PeerStats:
    """Per group and metric: (count, median, robust scale)."""

    def __init__(self, min_peers: int) -> None:
        self.min_peers = min_peers
        self._values: dict[tuple[str, str], list[float]] = defaultdict(list)
        self._stats: dict[tuple[str, str], tuple[int, float, float]] = {}

    def add(self, group: str, steps: float, tokens: float, duration_s: float) -> None:
        for metric, value in zip(METRICS, (steps, tokens, duration_s), strict=True):
            self._values[(group, metric)].append(float(value))

    def add_many(self, rows: Iterable[Sequence[Any]]) -> None:
        """Add (group, steps, tokens, duration_s) rows."""
        for row in rows:
            self.add(*row)

    def finish(self) -> PeerStats:
        for key, values in self._values.items():
            array = np.asarray(values)
            median = float(np.median(array))
            mad = float(np.median(np.abs(array - median))) * 1.4826
            if mad == 0.0:
                q1, q3 = np.percentile(array, [25, 75])
                mad = float(q3 - q1) / 1.349
            # Peers that are all alike would make any difference infinitely significant.
            scale = max(mad, 0.1 * abs(median), 1.0 if key[1] == "steps" else 1e-9)
            self._stats[key] = (len(values), median, scale)
        self._values.clear()
        return self

    def score(self, group: str, metric: str, value: float) -> tuple[float, float]:
        """(robust z-score, peers' median); z is 0 when the group has fewer than ``min_peers`` runs."""
        stats = self._stats.get((group, metric))
        if stats is None or stats[0] < self.min_peers:
            return 0.0, 0.0
        _, median, scale = stats
        return (float(value) - median) / scale, median

    def groups(self) -> dict[str, int]:
        return {group: stats[0] for (group, metric), stats in self._stats.items() if metric == "steps"}
