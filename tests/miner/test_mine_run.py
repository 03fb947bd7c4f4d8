"""How a mining run treats the process it runs in: Python's cyclic garbage collector is paused while the run
works and left as it was found afterwards."""

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
