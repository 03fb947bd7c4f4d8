"""The user's turns in JSON chat messages, read in ClickHouse as the miner reads them (first user input, scorer)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tracemill.miner.sql import GENAI_USER_TURNS

CASES = [
    pytest.param([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is order A-17?"},
                  {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
                  {"role": "tool", "content": "shipped"}, {"role": "user", "content": "Thanks, refund it"}],
                 ["Where is order A-17?", "Thanks, refund it"], id="string-content"),
    pytest.param([{"role": "user", "parts": [{"type": "text", "content": "Cancel my"},
                                             {"type": "blob", "content": "aGk="},
                                             {"type": "text", "content": "plan"}]}],
                 ["Cancel my plan"], id="genai-parts"),
    pytest.param([{"role": "user", "content": [{"type": "text", "text": "What is in"},
                                               {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                                               {"type": "text", "text": "this picture?"}]}],
                 ["What is in this picture?"], id="openai-content-parts"),
    pytest.param([{"role": "user", "content": "[draft] résumé ✓"}], ["[draft] résumé ✓"], id="text-with-bracket"),
    pytest.param([{"role": "user", "content": ""}, {"role": "assistant", "content": "Hi"}], [], id="nothing-said"),
    pytest.param("not json at all", [], id="not-json"),
]  # fmt: skip


@pytest.mark.parametrize(("messages", "turns"), CASES)
def test_user_turns_of_each_message_shape(store: Any, messages: Any, turns: list[str]):
    text = messages if isinstance(messages, str) else json.dumps(messages)
    got = store.query(f"WITH {GENAI_USER_TURNS} SELECT genai_user_turns({{m:String}})", {"m": text}).result_rows[0][0]
    assert got == turns
