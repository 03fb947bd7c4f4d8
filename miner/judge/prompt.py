"""What the judge model is asked, and which of its answers are accepted.

The prompt lists the run's steps, each with its span id, agent, kind and a cut of what it read and
wrote, and asks for a JSON object with a reason. Three strategies for the decisive step:
``all-at-once`` (the whole run, name the span), ``step-by-step`` (one step at a time, in order: is this
where it went wrong?) and ``binary`` (is the mistake in the first or the second half? halving until one
step is left). ``outcome`` asks whether the run did what it was asked. An answer that is not the JSON
asked for, or names a span that is not a step of the run, is refused (:class:`Refused`).
"""

from __future__ import annotations

import json
from typing import Any

from tracemill.miner.decisive.spans import Candidate, Run

__all__ = ["PROMPT_VERSION", "STRATEGIES", "Refused", "describe_steps", "messages", "parse"]

PROMPT_VERSION = "1"
"""Part of the cache key: change it when the prompts change, so cached verdicts are not reused."""

STRATEGIES = ("all-at-once", "step-by-step", "binary")
_CUT = 600

_SYSTEM = ("You review runs of an AI agent system. Runs are lists of steps (model calls, tool calls, agents). "
           "Answer with one JSON object only, no other text.")


class Refused(ValueError):
    """The model's answer cannot be used: not the JSON asked for, or not naming a step of the run."""


def describe_steps(steps: list[Candidate]) -> str:
    return "\n".join(f"[{step.span_id}] {step.agent or '-'} · {step.kind} · {step.name}\n"
                     f"  input: {_cut(step.input_text)}\n  output: {_cut(step.output_text)}" for step in steps)


def messages(run: Run, task: str, strategy: str = "all-at-once", steps: list[Candidate] | None = None,
             half: int = 0) -> list[dict[str, str]]:
    """The chat messages of one question about ``run`` (``steps``: the step or range a strategy asks about)."""
    head = f"The user asked: {_cut(run.request)}\nThe run answered: {_cut(run.answer)}\n"
    if task == "outcome":
        ask = ('Did the run do what the user asked, correctly? Answer {"success": true|false, "reason": "..."}.\n'
               f"Steps:\n{describe_steps(run.steps)}")
    elif strategy == "all-at-once":
        ask = ("The run failed. Which step is where it went wrong (the earliest step whose mistake caused the "
               'failure)? Answer {"span_id": "<the id in brackets>", "reason": "..."}.\n'
               f"Steps:\n{describe_steps(run.steps)}")
    elif strategy == "step-by-step":
        assert steps is not None
        ask = ("The run failed. Steps so far:\n" + describe_steps(steps[:-1] or []) +
               f"\nIs this next step where it went wrong?\n{describe_steps(steps[-1:])}\n"
               'Answer {"decisive": true|false, "reason": "..."}.')
    else:
        assert steps is not None
        ask = ("The run failed. Steps:\n" + describe_steps(steps) +
               f"\nIs the step where it went wrong among the first {half} of these steps, or among the rest? "
               'Answer {"half": "first"|"second", "reason": "..."}.')
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": head + ask}]


def parse(text: str | None, expect: str, allowed: set[str] | None = None) -> dict[str, Any]:
    """The answer as a dict with ``expect`` (span_id, success, decisive or half) and ``reason``."""
    body = (text or "").strip()
    if body.startswith("```"):  # a fenced block
        body = body.strip("`").removeprefix("json").strip()
    try:
        answer = json.loads(body)
    except ValueError:
        raise Refused(f"the answer is not JSON: {body[:120]!r}") from None
    if not isinstance(answer, dict) or expect not in answer:
        raise Refused(f"the answer has no {expect!r}: {body[:120]!r}")
    value = answer[expect]
    reason = answer["reason"] if isinstance(answer.get("reason"), str) else ""
    named = value.strip().strip("[]").lower() if isinstance(value, str) else None
    if expect == "span_id" and named not in (allowed or set()):
        raise Refused(f"the answer names {value!r}, which is not a step of the run")
    if expect in ("success", "decisive") and not isinstance(value, bool):
        raise Refused(f"{expect} must be true or false (got {value!r})")
    if expect == "half" and value not in ("first", "second"):
        raise Refused(f"half must be first or second (got {value!r})")
    if expect == "span_id":
        value = named
    return {expect: value, "reason": reason[:2000]}


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _CUT else text[:_CUT] + "…"
