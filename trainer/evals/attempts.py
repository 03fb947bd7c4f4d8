"""One attempt at one case, traced: a decision asked of a model, or a run of the team's agent.

Every attempt is the root of a trace of its own (``tracemill.run``) tagged with the eval run, suite and case, so
eval runs are ordinary traces the miner and the UI open like any other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tracemill
from tracemill.tracer.tools.replay import Recording, Replay, replaying
from tracemill.trainer.chat import openai_messages
from tracemill.trainer.evals.cases import Case
from tracemill.trainer.evals.models import Decider
from tracemill.trainer.evals.scoring import Scorer, as_verdict, score_decision

__all__ = ["EVAL_CASE", "EVAL_RUN", "EVAL_SUITE", "Attempt", "decision_attempt", "run_attempt"]

EVAL_RUN = "tracemill.eval.run_id"
EVAL_SUITE = "tracemill.eval.suite"
EVAL_CASE = "tracemill.eval.case_id"


@dataclass(frozen=True)
class Attempt:
    """Where an attempt runs: the eval run's id and suite, the case, the attempt number."""

    run_id: str
    suite: str
    case: Case
    number: int

    def tags(self) -> dict[str, Any]:
        return {EVAL_RUN: self.run_id, EVAL_SUITE: self.suite, EVAL_CASE: self.case.case_id,
                "tracemill.eval.attempt": self.number}


def _result(attempt: Attempt, passed: bool | None, trace_id: str | None, started: float, output: Any,
            detail: dict[str, Any]) -> dict[str, Any]:
    return {"case_id": attempt.case.case_id, "attempt": attempt.number, "passed": passed, "trace_id": trace_id or "",
            "duration_s": time.perf_counter() - started, "output": output, "detail": detail}


def _llm_inputs(case: Case) -> tuple[str | None, list[dict[str, Any]]]:
    system = next((m.get("content") for m in case.prompt if m.get("role") == "system"), None)
    return system, openai_messages([m for m in case.prompt if m.get("role") != "system"])


def decision_attempt(attempt: Attempt, decider: Decider, scorer: Scorer | None) -> dict[str, Any]:
    """Ask ``decider`` for the case's decision inside a traced run and score it."""
    case, started = attempt.case, time.perf_counter()
    system, messages = _llm_inputs(case)
    with tracemill.run(f"eval {attempt.suite}", task_id=case.group or None, new_trace=True,
                       attributes=attempt.tags()) as run:
        call = tracemill.llm_call(provider=decider.provider, model=decider.name, input_messages=messages,
                                  system_instructions=system, tool_definitions=case.tools or None, temperature=0)
        try:
            with call:
                decision = decider.decide(case)
                call.record_output(content=decision["output"], tool_calls=[
                    {"id": f"call_{i}", "name": c["name"], "arguments": c["arguments"]}
                    for i, c in enumerate(decision["tool_calls"])])
        except Exception as exc:  # the candidate failed: the case fails, the eval goes on
            return _result(attempt, False, run.trace_id, started, None, {"error": f"{type(exc).__name__}: {exc}"})
        passed, why = as_verdict(scorer(case, decision)) if scorer else score_decision(case.expected, decision)
        run.set_output(decision)
    return _result(attempt, passed, run.trace_id, started, decision, {"reason": why})


def run_attempt(attempt: Attempt, agent: Callable[[Any], Any], scorer: Scorer | None,
                replay_tools: bool) -> dict[str, Any]:
    """Call the agent on the case's input inside a traced run, tools answered from the recording if asked.

    ``passed`` is None when no scorer judges the run: the miner does, once the run's trace is stored.
    """
    case, started = attempt.case, time.perf_counter()
    replay = Replay([Recording(r["name"], r["arguments"], r.get("result"), r.get("error"), r.get("error_type") or "")
                     for r in case.recording])
    output: Any = None
    error: str | None = None
    with tracemill.run(f"eval {attempt.suite}", task_id=case.group or None, input=case.input, new_trace=True,
                       attributes=attempt.tags()) as run:
        try:
            if replay_tools:
                with replaying(replay):
                    output = agent(case.input)
            else:
                output = agent(case.input)
            run.set_output(output)
        except Exception as exc:  # the agent failed on this case: recorded, the eval goes on
            error = f"{type(exc).__name__}: {exc}"
    detail: dict[str, Any] = {}
    if replay_tools:
        detail["replayed"] = replay.answered
        detail["drift"] = {"unmatched_calls": replay.unmatched, "unused_recordings": replay.unused}
    if error is not None:
        detail["error"] = error
        return _result(attempt, False, run.trace_id, started, None, detail)
    passed: bool | None = None
    if scorer is not None:
        passed, detail["reason"] = as_verdict(scorer(case, output))
    return _result(attempt, passed, run.trace_id, started, _plain(output), detail)


def _plain(value: Any) -> Any:
    """The agent's result as JSON can hold it."""
    import json

    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return repr(value)
