"""The kill switch end to end: runs traced with tracemill.rollout, looks by `tracemill mine`, a halt that
every new process follows, and people's halt/resume/promote through the CLI."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import tracemill
from tracemill.miner import mine
from tracemill.miner.versions.rollouts import rollout_status
from tracemill.tracer.versions.rollout import clear_state_cache


def _corpus():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("versions_corpus", Path(__file__).with_name("versions_corpus.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


vc = _corpus()

ADAPTER_PROMPT = vc.PROMPT_A + "\nUse the fine-tuned adapter's tone."


@pytest.fixture
def rollout_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEMILL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRACEMILL_SERVER", "http://127.0.0.1:9")  # no server: state from the store's mirror file
    clear_state_cache()
    yield {**os.environ}
    clear_state_cache()


def _runs(store, rng: random.Random, start: int, count: int, *, candidate_fail: float, control_fail: float):
    def choose(i: int):
        arm = tracemill.rollout("adapter-v2", share=0.5, key=f"user-{i}")
        if arm == "candidate":
            return ADAPTER_PROMPT, "support-adapter-v2", [vc.LOOKUP, vc.HAND_OFF], candidate_fail
        return vc.PROMPT_A, "gpt-4o", [vc.LOOKUP, vc.HAND_OFF], control_fail

    outcomes = [vc.one_run(rng, i, system="", tools=[], model="", choose=choose, fail_rate=0.0)
                for i in range(start, start + count)]
    vc.record_outcomes(store, outcomes)


def _arm_in_new_process(env: dict[str, str], keys: int = 40) -> set[str]:
    code = ("import tracemill; print(sorted({tracemill.rollout('adapter-v2', share=0.5, key=f'u{i}') "
            f"for i in range({keys})}}))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(done.stdout.strip().replace("'", '"')))


def test_worse_candidate_is_halted_by_mine_and_new_processes_get_control(store, rollout_env):
    rng = random.Random(2)
    assert _arm_in_new_process(rollout_env) == {"control", "candidate"}
    vc.start_tracing(store)
    halted_after = None
    try:
        for look in range(8):
            _runs(store, rng, look * 50, 50, candidate_fail=0.40, control_fail=0.02)
            result = mine(store)
            (status,) = result.rollouts
            if status["state"] == "halted":
                halted_after = (look + 1) * 50
                break
    finally:
        tracemill.shutdown()
    assert halted_after is not None and halted_after <= 400, status
    assert status["test"]["worse"] and "mSPRT" in status["reason"]
    assert _arm_in_new_process(rollout_env) == {"control"}
    clear_state_cache()  # this process follows within the cache's 30 s
    assert {tracemill.rollout("adapter-v2", share=0.5, key=f"u{i}") for i in range(40)} == {"control"}
    arms = rollout_status(store, "adapter-v2")["arms"]
    assert arms["candidate"]["failure_rate"] > 0.2 > arms["control"]["failure_rate"]


def test_equal_candidate_keeps_running_and_people_halt_resume_promote(store, rollout_env):
    rng = random.Random(4)
    vc.start_tracing(store)
    try:
        for look in range(3):
            _runs(store, rng, look * 40, 40, candidate_fail=0.1, control_fail=0.1)
            assert [s["state"] for s in mine(store).rollouts] == ["running"]
    finally:
        tracemill.shutdown()
    from tracemill.collector.server.rollout_watch import RolloutWatcher

    watcher = RolloutWatcher(lambda: store, interval_s=60)  # what `tracemill serve` runs on its schedule
    assert [s["state"] for s in watcher.look()] == ["running"] and watcher.looks == 1
    from tracemill.cli.app import app

    dsn = f"chdb://{store.location}?database={store.database}"
    store.close()
    runner = CliRunner()
    shown = runner.invoke(app, ["rollout", "status", "adapter-v2", "--json", "--store", dsn])
    assert shown.exit_code == 0, shown.output
    status = json.loads(shown.output)
    assert status["state"] == "running" and sum(a["runs"] for a in status["arms"].values()) == 120
    assert runner.invoke(app, ["rollout", "halt", "adapter-v2", "--reason", "pager", "--store", dsn]).exit_code == 0
    assert _arm_in_new_process(rollout_env) == {"control"}
    assert runner.invoke(app, ["rollout", "promote", "adapter-v2", "--store", dsn]).exit_code == 0
    assert _arm_in_new_process(rollout_env) == {"candidate"}
    assert runner.invoke(app, ["rollout", "resume", "adapter-v2", "--store", dsn]).exit_code == 0
    assert _arm_in_new_process(rollout_env) == {"control", "candidate"}
    missing = runner.invoke(app, ["rollout", "status", "nope", "--store", dsn])
    assert missing.exit_code == 1 and "no rollout named 'nope'" in missing.output
