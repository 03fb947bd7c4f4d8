"""Authors who disagree: listed by ``conflicts``, left out of exports unless a policy settles them."""

from __future__ import annotations

import json

import pytest

import tracemill.feedback as feedback
from tracemill.collector.feedback.conflicts import parse_policy
from tracemill.errors import ConfigError
from tracemill.trainer import export

from .conftest import BAD


@pytest.fixture
def disputed(agent, store):
    """The refund step of a bad run, corrected differently by alice (20) and bob and carol (25)."""
    trace_id = agent.run("refund-A17", BAD)
    span_id = agent.llm_spans(trace_id)[1]["span_id"]
    for author, amount in (("alice", 20), ("bob", 25), ("carol", 25)):
        feedback.correct(trace_id, span_id, author=author, store=store,
                         tool_calls=[{"name": "refund", "arguments": {"order_id": "A-17", "amount": amount}}])
    return trace_id, span_id


def _amounts(directory) -> list[int]:
    rows = [json.loads(line) for name in ("train", "eval") for line in
            (directory / f"{name}.jsonl").read_text().splitlines()]
    return [row["chosen"][0]["tool_calls"][0]["function"]["arguments"]["amount"] for row in rows]


def test_conflicting_corrections_are_listed_and_left_out_of_the_export(store, disputed, tmp_path):
    trace_id, span_id = disputed
    (conflict,) = feedback.conflicts(store=store)
    assert conflict["subject"] == {"kind": "correction", "trace_id": trace_id, "span_id": span_id}
    assert sorted(row["author"] for row in conflict["feedback"]) == ["alice", "bob", "carol"]
    assert feedback.conflicts(trace_id=trace_id[:8], store=store) == [conflict]

    manifest = export("dpo", store=store, output=tmp_path / "none", eval_fraction=0)
    assert manifest["splits"] == {"train": 0, "eval": 0}
    assert manifest["dropped"] == {"conflicting_feedback": 1}
    assert len(feedback.list(trace_id=trace_id, store=store)) == 3  # nothing was overwritten


@pytest.mark.parametrize(
    ("policy", "amounts"),
    [("latest", [25]), ("majority", [25]), ("author:alice,bob", [20]), ("author:dave,bob", [25]),
     ("author:dave", [])],
)
def test_policies_settle_conflicts(store, disputed, tmp_path, policy, amounts):
    manifest = export("dpo", store=store, output=tmp_path / "out", resolve=policy, eval_fraction=0)
    assert _amounts(tmp_path / "out") == amounts
    assert manifest["conflicts_settled"] == len(amounts)
    assert manifest["filters"]["resolve"] == policy


def test_a_majority_tie_settles_nothing_and_agreeing_authors_are_no_conflict(store, agent, tmp_path):
    trace_id = agent.run("refund-A17", BAD)
    span_id = agent.llm_spans(trace_id)[1]["span_id"]
    feedback.label(trace_id, "good", span_id=span_id, author="alice", store=store)
    feedback.label(trace_id, "thumbs_up", span_id=span_id, author="bob", store=store)
    assert feedback.conflicts(store=store) == []  # synonyms agree
    feedback.label(trace_id, "bad", span_id=span_id, author="carol", store=store)
    feedback.label(trace_id, "negative", span_id=span_id, author="dave", store=store)
    (conflict,) = feedback.conflicts(store=store)
    assert conflict["subject"]["kind"] == "label" and conflict["subject"]["name"] == "thumbs"
    tie = export("kto", store=store, output=tmp_path / "tie", resolve="majority", eval_fraction=0)
    assert tie["splits"]["train"] == 0 and tie["dropped"] == {"conflicting_feedback": 1}
    feedback.delete(trace_id, name="thumbs", span_id=span_id, author="dave", store=store)
    settled = export("kto", store=store, output=tmp_path / "settled", resolve="majority", eval_fraction=0)
    assert settled["counts"] == {"label": 1}
    row = json.loads((tmp_path / "settled" / "train.jsonl").read_text())
    assert row["label"] is True


def test_scores_far_apart_contradicting_outcomes_and_opposite_preferences_conflict(store, agent):
    good, bad = agent.run("refund-A17"), agent.run("refund-A17", BAD)
    feedback.score(good, 0.9, author="alice", store=store)
    feedback.score(good, 0.7, author="bob", store=store)
    assert feedback.conflicts(store=store) == []
    feedback.score(good, 0.1, author="carol", store=store)
    feedback.outcome(bad, success=False, author="ci", store=store)
    feedback.outcome(bad, reward=0.9, author="judge", store=store)
    g, b = agent.llm_spans(good)[1]["span_id"], agent.llm_spans(bad)[1]["span_id"]
    feedback.prefer(good, g, b, worse_trace_id=bad, author="alice", store=store)
    feedback.prefer(bad, b, g, worse_trace_id=good, author="bob", store=store)
    kinds = sorted(conflict["subject"]["kind"] for conflict in feedback.conflicts(store=store))
    assert kinds == ["outcome", "preference", "score"]


def test_a_bad_policy_is_refused_naming_the_forms():
    with pytest.raises(ConfigError, match=r"resolve must be latest, majority or author:NAME\[,NAME...\] "
                                          r"\(got 'newest'\)"):
        parse_policy("newest")
    with pytest.raises(ConfigError):
        parse_policy("author:")
    assert str(parse_policy("author: a, b")) == "author:a,b"
