"""Which tool results report a failure in their text: the patterns run in ClickHouse, as the miner runs them."""

from __future__ import annotations

import pytest

from tracemill.miner.sql import RESULT_ERROR_LEAD_CHARS, RESULT_ERROR_LEAD_PATTERN, RESULT_ERROR_PATTERN

_LONG_PAGE = "Results for 'hotel rome': " + "Hotel Artemide, Via Nazionale 22, rated 4.6. " * 10

FAILURES = [
    "Error: flight AZ610 does not exist",
    '{"error": "quota exceeded"}',
    '{"errors": [{"code": 42}]}',
    '{"status": "failed", "reason": "card declined"}',
    '{"success": false}',
    "User not found",
    "Invalid date: 2026-02-30",
    "Traceback (most recent call last):\n  File \"x.py\", line 1",
    "HTTP 503 Server Error: Service Unavailable",
]

NOT_FAILURES = [
    '{"error": null, "rooms": 3}',
    '{"error": "", "rooms": 3}',
    '{"error": false}',
    '{"errors": []}',
    '{"error": 0}',
    "3 rooms available",
    _LONG_PAGE + "The page you asked for was not found in the archive, an invalid link.",
]


def _matches(store, texts: list[str]) -> list[int]:
    rows = store.query(
        "SELECT match(t, {strong:String}) OR match(substring(t, 1, {lead_chars:UInt32}), {lead:String}) "
        "FROM (SELECT arrayJoin({texts:Array(String)}) AS t)",
        {"strong": RESULT_ERROR_PATTERN, "lead": RESULT_ERROR_LEAD_PATTERN, "lead_chars": RESULT_ERROR_LEAD_CHARS,
         "texts": texts},
    ).result_rows
    return [int(row[0]) for row in rows]


@pytest.mark.parametrize("text", FAILURES)
def test_a_result_that_reports_a_failure_is_an_error(store, text):
    assert _matches(store, [text]) == [1]


@pytest.mark.parametrize("text", NOT_FAILURES)
def test_a_result_that_only_mentions_error_words_is_not_an_error(store, text):
    assert _matches(store, [text]) == [0]
