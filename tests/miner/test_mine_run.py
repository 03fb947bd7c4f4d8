"""How a mining run treats the process it runs in: Python's cyclic garbage collector is paused while the run
works and left as it was found afterwards, and what it starts in the background is done when it returns."""

from __future__ import annotations

import gc
from typing import Any

import tracemill.miner as miner


def test_the_cyclic_collector_is_paused_during_a_run_and_restored_after(store: Any, support: Any):
    support.write_genai(store, support.build(seed=3, tasks=3, trials=2))
    seen: list[bool] = []
    assert gc.isenabled()
    miner.mine(store, progress=lambda stage, done, total: seen.append(gc.isenabled()))
    assert seen and not any(seen) and gc.isenabled()

    gc.disable()  # a caller that paused it keeps it paused
    try:
        miner.mine(store, remine=True)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_conversations_kept_in_the_background_are_kept_when_the_run_returns(store: Any, support: Any,
                                                                                monkeypatch: Any):
    import pytest

    from tracemill.errors import StoreError
    from tracemill.miner.feature_cache import FeatureCache

    traced = support.write_genai(store, support.build(seed=8, tasks=3, trials=2))
    miner.mine(store)  # no labels: the conversations are kept, not read
    kept = store.query(f"SELECT TraceId FROM {FeatureCache(store, 3).conversations} FINAL").result_rows
    assert {row[0] for row in kept} == {t.trace_id for t in traced}

    def broken(self: Any, where: str, params: dict[str, Any]) -> None:
        raise StoreError("the conversations could not be kept")

    monkeypatch.setattr(FeatureCache, "keep_conversations", broken)
    with pytest.raises(StoreError, match="could not be kept"):  # a failure in the background is the run's
        miner.mine(store, remine=True)
