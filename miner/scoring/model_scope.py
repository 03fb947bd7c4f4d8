"""Scores follow the model: whether a run's scorer differs from the one behind the stored scores.

The scorer's version names everything its scores depend on (the model family, the miner version, the
settings, the labelled traces and their labels). When a run's version differs from what any stored score
was written with, an incremental run would leave those traces with scores (and scorer flags) from another
model, so the order in which a user mines and labels would change the result; the run then mines every
trace instead. Unsupervised scores (an anomaly score, or none for a lone trace) are one family: a new
trace scored without labels does not make the whole store be re-scored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from tracemill.collector.store.schema import TRACE_SCORES_TABLE

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["UNSUPERVISED", "model_changed", "model_family", "version_digest"]

UNSUPERVISED = frozenset({"none", "isolation-forest-1"})


def model_family(version: str) -> str:
    """Unsupervised scores are one family; a supervised model is named by its digest (``NAME-2-DIGEST``): the
    same labels and settings choose and train the same model."""
    return "unsupervised" if version in UNSUPERVISED else version.rsplit("-2-", 1)[-1]


def model_changed(store: Store, version: str) -> bool:
    """True when some stored score was written by a scorer other than ``version``."""
    stored = store.query(f"SELECT DISTINCT ModelVersion FROM {TRACE_SCORES_TABLE} FINAL").result_rows
    return any(model_family(row[0]) != model_family(version) for row in stored)


def version_digest(parts: Iterable[str]) -> str:
    """A short digest of what a model depends on, for its version."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]
