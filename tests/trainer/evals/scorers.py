"""A user scorer for ``--scorer scorers:all_but_one``: the built-in scoring, except that the case named by
``$EVAL_FAIL_CASE`` always fails (a candidate that gets exactly one case wrong)."""

from __future__ import annotations

import os
from typing import Any

from tracemill.trainer.evals.scoring import score_decision


def all_but_one(case: Any, decision: dict[str, Any]) -> tuple[bool, str]:
    if case.case_id == os.environ.get("EVAL_FAIL_CASE"):
        return False, "failed on purpose"
    return score_decision(case.expected, decision)


def answered(case: Any, result: Any) -> bool:
    """A run passes when the agent gave a final answer."""
    return bool((result or {}).get("answer"))
