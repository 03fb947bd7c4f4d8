"""A learned ranker of the decisive step: which candidate span of a failed run is where it went wrong.

Trained on reviewers' decisive marks (and, at a lower weight, a judge model's marks on runs no
reviewer marked). Each candidate step is one example (the marked step positive, the others negative)
of a logistic regression over hashed features (:mod:`tracemill.miner.decisive.features`); within a run,
a softmax over the candidates' scores turns them into probabilities that sum to 1, so the top
candidate's probability says how sure the ranker is against the run's other steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tracemill.miner.decisive.features import run_features
from tracemill.miner.decisive.spans import Run

__all__ = ["JUDGE_WEIGHT", "Mark", "Ranker", "train"]

JUDGE_WEIGHT = 0.3
"""How much a judge model's mark counts against a reviewer's (1.0)."""

_HASH_FEATURES = 2**12


@dataclass(frozen=True)
class Mark:
    """The step a run's decisive mark names, and how much the mark counts."""

    span_id: str
    weight: float = 1.0


def _hasher() -> Any:
    from sklearn.feature_extraction import FeatureHasher

    return FeatureHasher(n_features=_HASH_FEATURES, input_type="dict", alternate_sign=False)


@dataclass
class Ranker:
    """A fitted model; :meth:`rank` orders a run's candidates, most likely decisive first."""

    model: Any

    def rank(self, run: Run, failure_kind: str = "", rule_spans: Sequence[str] = ()) -> list[tuple[int, float]]:
        """``[(candidate index, probability)]``, most likely first; empty for a run without candidates."""
        if not run.steps:
            return []
        scores = self.model.decision_function(_hasher().transform(run_features(run, failure_kind, rule_spans)))
        scores = np.atleast_1d(scores)
        weights = np.exp(scores - scores.max())
        probabilities = weights / weights.sum()
        order = sorted(range(len(run.steps)), key=lambda i: (-probabilities[i], i))
        return [(i, float(probabilities[i])) for i in order]


def train(runs: Sequence[Run], marks: Mapping[str, Mark], kinds: Mapping[str, str] | None = None,
          rules: Mapping[str, Sequence[str]] | None = None) -> Ranker:
    """Fit on the marked runs among ``runs`` (a mark on a span that is not a candidate is skipped)."""
    from sklearn.linear_model import LogisticRegression

    kinds, rules = kinds or {}, rules or {}
    rows: list[dict[str, float]] = []
    labels: list[int] = []
    weights: list[float] = []
    for run in runs:
        mark = marks.get(run.trace_id)
        target = run.index_of(mark.span_id) if mark else None
        if mark is None or target is None:
            continue
        features = run_features(run, kinds.get(run.trace_id, ""), rules.get(run.trace_id, ()))
        rows.extend(features)
        labels.extend(int(i == target) for i in range(len(features)))
        # Each run counts as much as any other, however many steps it has: its marked step as much as the rest.
        weights.extend([mark.weight / max(1, len(features) - 1)] * len(features))
        weights[len(weights) - len(features) + target] = mark.weight
    if len(set(labels)) < 2:
        raise ValueError("the ranker needs marked runs with more than one candidate step")
    model = LogisticRegression(C=0.5, max_iter=2000, solver="liblinear")
    model.fit(_hasher().transform(rows), np.array(labels), sample_weight=np.array(weights))
    return Ranker(model)
