"""The conversation's features read the same from GenAI JSON messages and from the flattened ones of OpenInference
and OpenLLMetry."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tracemill.collector.store.store import StoreError
from tracemill.miner.feature_cache import load_features
from tracemill.miner.scoring.text_features import (
    TEXT_NUMERIC,
    VALUE_PATTERN,
    _tokens_sql,
    conversation_features,
    peer_keys,
)
from tracemill.miner.sql import _q


def _features(store: Any, traced: list[Any]) -> tuple[np.ndarray, Any]:
    frame = load_features(store, "1", {}, loop_min=3)
    features = conversation_features(store, frame, peer_keys(frame))
    order = [frame["trace_id"].index(t.trace_id) for t in traced]
    return features.numbers[order], features.tokens[order]


def test_each_convention_gives_the_same_conversation_features(new_database: Any, drop_database: Any, support: Any):
    conversations = support.build(seed=4, tasks=6, trials=3)
    features = support.in_each_convention(new_database, drop_database, "text", conversations, _features)
    numbers_g, tokens_g = features["genai"]
    column = {name: k for k, name in enumerate(TEXT_NUMERIC)}
    users = [sum(e.kind == "user" for e in c.events) for c in conversations]
    writes = [sum(e.kind == "tool" and e.tool not in support.READ_TOOLS for e in c.events) for c in conversations]
    assert numbers_g[:, column["user_turns"]].tolist() == users
    assert numbers_g[:, column["write_calls"]].tolist() == writes and max(writes) > 0
    assert tokens_g.nnz > 50 * len(conversations)  # user turns, arguments and results, not only the ending
    assert np.array_equal(numbers_g, features["openinference"][0])
    assert (tokens_g != features["openinference"][1]).nnz == 0
    # OpenLLMetry's tool spans wrap the arguments ({"args": [], "kwargs": {...}}) and JSON-encode the results: the
    # same numbers, and every token of the GenAI conversation, plus the wrapper's words.
    numbers_l, tokens_l = features["openllmetry"]
    assert np.array_equal(numbers_g, numbers_l)
    for genai_row, openllmetry_row in zip(tokens_g, tokens_l, strict=True):
        assert set(genai_row.indices) <= set(openllmetry_row.indices)


def test_hashed_counts_hash_each_distinct_text_once_and_match_the_vectorizer():
    from sklearn.feature_extraction.text import HashingVectorizer

    from tracemill.miner.scoring.text_features import hashed_counts

    texts = ["START lookup refund END", "", "START lookup refund END", "Order A-12 was refunded", "START END"]
    counts = hashed_counts(texts, columns=2**10, token_pattern=r"[^ ]+", lowercase=False, ngrams=(1, 2))
    direct = HashingVectorizer(n_features=2**10, token_pattern=r"[^ ]+", lowercase=False, ngram_range=(1, 2),
                               alternate_sign=False, norm=None).transform(texts)
    assert counts.shape == (5, 2**10) and (counts != direct).nnz == 0
    assert counts[0].sum() == 7  # four tokens and three pairs, counted again for the repeated text
    assert hashed_counts([], columns=16).shape == (0, 16)


def test_tokens_are_those_of_each_token_lower_cased_whatever_the_text_s_letters(store: Any):
    """The text is lower-cased once, in ASCII: the same tokens as lower-casing each token (in UTF-8) gives."""
    texts = ["Refund ORDER-4711 for €12.50 to Zoë", "ÉTÉ Straße İstanbul 42\u212a Kelvin", "ΣΊΣΥΦΟΣ 7Ω x", "", "A b CD"]
    tokens = _tokens_sql("x", "'u:'", 60)
    each_lowered = f"arrayMap(t -> concat('u:', lowerUTF8(t)), extractAll(x, {_q(VALUE_PATTERN)}))"
    rows = store.query(
        f"SELECT {tokens}, {each_lowered} FROM (SELECT arrayJoin({{texts:Array(String)}}) AS x)",
        {"texts": texts},
    ).result_rows
    assert len(rows) == len(texts) and all(new == old for new, old in rows)
    assert rows[0][0] == ["u:refund", "u:order", "u:4711", "u:for", "u:12.50", "u:to", "u:zo"]


def test_conversations_read_in_the_background_give_the_features_read_in_line(new_database: Any, drop_database: Any,
                                                                            support: Any):
    store = new_database("text_background")
    try:
        support.write_genai(store, support.build(seed=5, tasks=4, trials=3))
        background = load_features(store, "1", {}, loop_min=3, conversations=True)  # computes and keeps them
        assert background.conversations is not None
        from_background = conversation_features(store, background, peer_keys(background))
        in_line = load_features(store, "1", {}, loop_min=3)  # reads the kept ones
        assert in_line.conversations is None
        from_kept = conversation_features(store, in_line, peer_keys(in_line))
        assert background["trace_id"] == in_line["trace_id"] and len(in_line) == 12
        assert np.array_equal(from_background.numbers, from_kept.numbers)
        assert from_background.tokens.nnz > 0 and (from_background.tokens != from_kept.tokens).nnz == 0
    finally:
        drop_database(store)


def test_a_failed_background_read_raises_where_the_conversations_are_used(new_database: Any, drop_database: Any,
                                                                          support: Any):
    from concurrent.futures import Future

    store = new_database("text_background_error")
    try:
        support.write_genai(store, support.build(seed=5, tasks=3, trials=3))
        frame = load_features(store, "1", {}, loop_min=3)
        frame.conversations = frame.cache.conversations_in_background("no_such_column = 1", {}, read=True)
        with pytest.raises(StoreError, match="no_such_column"):
            conversation_features(store, frame, peer_keys(frame))
        assert isinstance(frame.conversations, Future) and frame.conversations.done()
    finally:
        drop_database(store)


def test_peers_are_the_trials_the_grouping_found_where_no_task_id_is_recorded(store: Any, support: Any):
    from tracemill.miner.grouping import group_keys

    conversations = support.build(seed=4, tasks=6, trials=3)
    traced = support.write_genai(store, conversations)  # plain OTel SDK: no task id, a conversation id per run
    frame = load_features(store, "1", {}, loop_min=3)
    groups, _ = group_keys(frame)
    column = {name: k for k, name in enumerate(TEXT_NUMERIC)}
    order = [frame["trace_id"].index(t.trace_id) for t in traced]
    by_group = conversation_features(store, frame, peer_keys(frame, groups)).numbers[order]
    by_input = conversation_features(store, frame, peer_keys(frame)).numbers[order]
    assert by_group[:, column["peers"]].tolist() == [2.0] * len(traced)  # the task's two other trials
    assert by_input[:, column["peers"]].min() < 2  # an opening phrased another way makes no peer of the same task
    writes = [sorted((e.tool, str(e.args)) for e in c.events if e.kind == "tool" and e.tool not in support.READ_TOOLS)
              for c in conversations]
    for i, c in enumerate(conversations):
        others = [j for j, o in enumerate(conversations) if o.task.task_id == c.task.task_id and j != i]
        agreeing = sum(writes[j] == writes[i] for j in others)
        assert by_group[i, column["peer_agreement"]] == pytest.approx(agreeing / 2)
    assert len(set(by_group[:, column["peer_agreement"]].tolist())) > 1  # some trials did what the others did not
