"""The same conversations traced in three conventions mine alike: the GenAI conventions, OpenInference's
attributes, and the indexed attributes of OpenLLMetry's releases before the current GenAI conventions."""

from __future__ import annotations

from typing import Any

import pytest

import tracemill.miner as miner
from tracemill.miner.feature_cache import load_features

COMPARED = ("spans", "llm_calls", "tool_calls", "errors", "tool_errors", "result_errors", "tokens", "first_user",
            "final_kind", "final_output", "final_tool", "final_arguments", "final_handoff", "final_gives_up",
            "final_empty", "max_repeats", "tool_sequence")  # fmt: skip


def _mined(store: Any, traced: list[Any]) -> tuple[list[dict[str, Any]], list[set[str]]]:
    """Per conversation, in the corpus's order: the compared features and the detectors that flagged it."""
    result = miner.mine(store)
    frame = load_features(store, "1", {}, loop_min=3)
    rows = {trace: i for i, trace in enumerate(frame["trace_id"])}
    flagged: dict[str, set[str]] = {}
    for flag in result.flags:
        flagged.setdefault(flag.trace_id, set()).add(flag.detector)
    features = [{name: frame[name][rows[t.trace_id]] for name in COMPARED} for t in traced]
    return features, [flagged.get(t.trace_id, set()) for t in traced]


@pytest.fixture(scope="module")
def mined(new_database: Any, drop_database: Any, support: Any) -> dict[str, Any]:
    conversations = support.build(seed=9, tasks=8, trials=3)
    return {"conversations": conversations,
            **support.in_each_convention(new_database, drop_database, "conventions", conversations, _mined)}


@pytest.mark.parametrize("convention", ["openinference", "openllmetry"])
def test_each_convention_gives_the_genai_features_and_flags(mined: dict[str, Any], convention: str):
    genai_features, genai_flags = mined["genai"]
    features, flags = mined[convention]
    for i, (expected, got) in enumerate(zip(genai_features, features, strict=True)):
        assert got == expected, f"conversation {i}"
    assert flags == genai_flags


def test_the_corpus_exercises_what_is_compared(mined: dict[str, Any]):
    features, flags = mined["genai"]
    kinds = {row["final_kind"] for row in features}
    assert {"answer", "tool_call"} <= kinds
    assert any(row["final_handoff"] for row in features) and any(row["final_gives_up"] for row in features)
    assert any(row["result_errors"] for row in features) and all(row["tokens"] > 0 for row in features)
    assert any(flags) and all(row["first_user"] for row in features)
