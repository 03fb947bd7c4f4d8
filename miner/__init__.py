"""The miner: flags failed and near-miss agent runs, points at the decisive step, learns from outcomes.

``tracemill.mine(store=...)`` runs it (see :func:`mine`); ``tracemill mine`` is the command line.
Detectors live in :mod:`tracemill.miner.detectors` (``DETECTORS``), per-trace features in
:mod:`tracemill.miner.sql`, the learned scorer in :mod:`tracemill.miner.scoring.scorer`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracemill.miner.config import MINER_VERSION, MinerConfig
from tracemill.miner.detectors import DETECTORS, Flag
from tracemill.miner.result import MineResult

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store
    from tracemill.miner.run import Progress

__all__ = ["DETECTORS", "MINER_VERSION", "Flag", "MineResult", "MinerConfig", "mine"]


def mine(
    store: Store | str | None = None,
    *,
    since: str | float | None = None,
    config: MinerConfig | None = None,
    remine: bool = False,
    progress: Progress | None = None,
) -> MineResult:
    """Mine the store's traces for failures and near-misses and write ``tracemill_flags`` and
    ``tracemill_trace_scores``.

    ``store`` is an open :class:`~tracemill.Store` (left open), a DSN (opened and closed here) or None
    (the default store). By default the run mines the traces not mined yet (plus those whose feedback
    changed and the labelled ones the scorer learns from); ``since`` (``"2h"``, ``"7d"``, an ISO-8601 time,
    Unix seconds) mines every trace with a span after that time instead, and ``remine=True`` mines them
    all; both compute the features of the traces they mine from the spans again, where other runs read the
    features kept since each trace was first mined (:mod:`tracemill.miner.feature_cache`). Mining again
    never duplicates a flag. ``progress(stage, done, total)`` is called per stage.
    """
    from tracemill.collector.store.store import using_store
    from tracemill.deps import require
    from tracemill.miner.run import mine_store

    require("sklearn", extra="miner", feature="The miner")
    with using_store(store) as opened:
        return mine_store(opened, since=since, config=config, remine=remine, progress=progress)


def __getattr__(name: str) -> Any:
    raise AttributeError(f"module 'tracemill.miner' has no attribute {name!r}")
