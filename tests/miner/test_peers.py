"""Peer statistics: runs added and scored a column at a time agree with one run at a time."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import numpy as np

from tracemill.miner.peers import PeerStats

METRICS = ("steps", "tokens", "duration_s")


def _runs(seed: int) -> list[tuple[str, int, int, float]]:
    """Groups of 1 to 30 runs, some all alike (a zero MAD), some with a runaway run."""
    rnd, runs = random.Random(seed), []
    for g in range(40):
        size, alike = rnd.randint(1, 30), rnd.random() < 0.2
        for k in range(size):
            steps = 6 if alike else rnd.randint(3, 9) + (40 if k == 0 and g % 3 == 0 else 0)
            runs.append((f"task:{g}", steps, steps * rnd.randint(90, 110), round(rnd.uniform(1, 5), 3)))
    rnd.shuffle(runs)
    return runs


def test_columns_give_each_groups_count_and_median():
    runs = _runs(3)
    stats = PeerStats(min_peers=1)
    stats.add_columns(*(list(column) for column in zip(*runs, strict=True)))
    stats.add_many(runs[:10])  # earlier runs read from the store join the same groups
    stats.finish()
    everything = runs + runs[:10]
    assert stats.groups() == Counter(run[0] for run in everything)
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for group, *numbers in everything:
        for metric, value in zip(METRICS, numbers, strict=True):
            values[(group, metric)].append(value)
    for (group, metric), seen in values.items():
        assert stats.score(group, metric, 0.0)[1] == float(np.median(seen))


def test_scores_of_a_column_are_the_scores_of_each_run():
    runs = _runs(7)
    stats = PeerStats(min_peers=5)
    stats.add_columns(*(list(column) for column in zip(*runs, strict=True)))
    stats.finish()
    groups = [run[0] for run in runs] + ["task:unknown"]
    for position, metric in enumerate(METRICS, start=1):
        values = [run[position] for run in runs] + [3]
        z, median = stats.scores(groups, metric, values)
        expected = [stats.score(group, metric, value) for group, value in zip(groups, values, strict=True)]
        assert z.tolist() == [e[0] for e in expected]
        assert median.tolist() == [e[1] for e in expected]
        assert (z != 0).any() and (z == 0).any()  # groups above and below min_peers, and an unknown one


def test_scoring_no_runs_gives_empty_arrays():
    stats = PeerStats(min_peers=3)
    stats.add_many([])
    z, median = stats.finish().scores([], "steps", [])
    assert z.shape == median.shape == (0,)
    assert stats.score("task:x", "steps", 1.0) == (0.0, 0.0)
