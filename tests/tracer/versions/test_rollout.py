"""tracemill.rollout: sticky arms, the kill switch's state, and never raising into the agent."""

from __future__ import annotations

import json

import pytest

import tracemill
from tracemill.tracer.versions.rollout import clear_state_cache, set_state_reader, state_file


@pytest.fixture
def state():
    """The rollout state every read sees, set by the test."""
    current = {"state": None}
    set_state_reader(lambda name: current["state"])
    try:
        yield current
    finally:
        set_state_reader(None)


def test_same_key_same_arm_and_share_is_respected(state):
    arms = [tracemill.rollout("prompt-v2", share=0.3, key=f"user-{i}") for i in range(2000)]
    assert arms == [tracemill.rollout("prompt-v2", share=0.3, key=f"user-{i}") for i in range(2000)]
    assert 0.26 < arms.count("candidate") / len(arms) < 0.34


def test_without_key_arms_are_random_at_the_share(state):
    arms = [tracemill.rollout("prompt-v2", share=0.5) for _ in range(2000)]
    assert 0.45 < arms.count("candidate") / len(arms) < 0.55


def test_halted_gives_control_and_promoted_gives_candidate_to_every_key(state):
    state["state"] = "halted"
    assert {tracemill.rollout("adapter", share=1.0, key=str(i)) for i in range(50)} == {"control"}
    state["state"] = "promoted"
    clear_state_cache()
    assert {tracemill.rollout("adapter", share=0.0, key=str(i)) for i in range(50)} == {"candidate"}


def test_state_is_cached_between_reads(state):
    reads = []
    set_state_reader(lambda name: reads.append(name) or "running")
    for i in range(20):
        tracemill.rollout("cached", share=0.5, key=str(i))
    assert reads == ["cached"]


def test_arm_recorded_on_the_current_run(spans, state):
    with tracemill.run("support-agent"):
        arm = tracemill.rollout("adapter", share=1.0, key="u1")
    root = spans.named("invoke_workflow support-agent")
    assert (root.attributes["tracemill.rollout.name"], root.attributes["tracemill.rollout.arm"]) == ("adapter", arm)
    assert arm == "candidate"


@pytest.mark.parametrize(("name", "share"), [("adapter", 1.5), ("adapter", "half"), ("bad name!", 0.5), (None, 0.5)])
def test_bad_arguments_answer_control_without_raising(state, name, share):
    assert tracemill.rollout(name, share=share, key="u1") == "control"


def test_reader_failure_answers_control_without_raising():
    def broken(name: str) -> str:
        raise OSError("disk gone")

    set_state_reader(broken)
    try:
        assert tracemill.rollout("adapter", share=1.0, key="u1") == "control"
    finally:
        set_state_reader(None)


def test_state_file_is_read_when_no_server_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEMILL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRACEMILL_SERVER", "http://127.0.0.1:9")
    path = state_file("adapter")
    (tmp_path / "rollouts").mkdir()
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"state": "halted"}, f)
    set_state_reader(None)
    assert tracemill.rollout("adapter", share=1.0, key="u1") == "control"
