"""The judge: an OpenAI-compatible model names the decisive step of failed runs, or says whether runs succeeded.

Its verdicts are feedback of author ``judge:<model>``, kept apart from people's: the ranker and the
stepwise export prefer a reviewer's mark, the ranker counts a judge's at a lower weight, and where a
judge and a reviewer disagree the conflict is listed like any other (``tracemill feedback conflicts``).
Answers are cached by (trace, model, prompt version, task, strategy), so asking again costs nothing;
refused answers are not cached (nor stored) and are asked again next time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tracemill.collector.feedback.feedback import record_feedback
from tracemill.collector.store.schema import FEEDBACK_TABLE, JUDGE_CACHE_TABLE, SPANS_TABLE
from tracemill.miner.decisive.marks import JUDGE_PREFIX, failed_runs, load_marks
from tracemill.miner.decisive.spans import Run, load_runs
from tracemill.miner.judge.client import BudgetSpent, ChatClient
from tracemill.miner.judge.prompt import PROMPT_VERSION, Refused, messages, parse

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["JudgeReport", "judge"]

TASKS = ("decisive", "outcome")


@dataclass
class JudgeReport:
    """What a judge run did; ``evaluation`` compares the judge with people on runs both judged."""

    model: str
    task: str
    strategy: str
    asked: int = 0
    cached: int = 0
    stored: int = 0
    refused: list[dict[str, str]] = field(default_factory=list)
    not_asked: int = 0  # left when the token budget was spent
    tokens: int = 0
    calls: int = 0
    rate_limited: int = 0
    evaluation: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def judge(store: Store, client: ChatClient, *, task: str = "decisive", strategy: str = "all-at-once",
          limit: int | None = None, concurrency: int = 4, evaluate: bool = False) -> JudgeReport:
    """Ask the model about the runs that need it (with ``evaluate``: the runs people judged) and store the verdicts."""
    report = JudgeReport(client.model, task, strategy)
    runs = [run for run in load_runs(store, _targets(store, task, evaluate)[:limit]).values() if run.steps]
    runs.sort(key=lambda run: run.trace_id)
    cache = _cached(store, client.model, task, strategy, [run.trace_id for run in runs])
    verdicts = dict(cache)
    report.cached = len(cache)
    fresh = [run for run in runs if run.trace_id not in cache]
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        outcomes = list(pool.map(lambda run: _ask(client, run, task, strategy), fresh))
    for run, outcome in zip(fresh, outcomes, strict=True):
        if isinstance(outcome, BudgetSpent):
            report.not_asked += 1
        elif isinstance(outcome, Exception):
            report.refused.append({"trace_id": run.trace_id, "reason": str(outcome)})
        else:
            verdicts[run.trace_id] = outcome
    report.asked = len(fresh) - report.not_asked
    _remember(store, client.model, task, strategy, {t: verdicts[t] for t in verdicts if t not in cache})
    report.stored = _store(store, client.model, task, verdicts)
    report.tokens, report.calls, report.rate_limited = client.spent, client.calls, client.rate_limited
    if evaluate:
        report.evaluation = agreement(store, client.model, task)
    return report


def _targets(store: Store, task: str, evaluate: bool) -> list[str]:
    if task == "decisive":
        failed = failed_runs(store)
        people = set(load_marks(store, judges=False))
        return sorted(t for t in failed if (t in people) == evaluate)
    judged = {row[0] for row in store.query(
        f"SELECT DISTINCT TraceId FROM {FEEDBACK_TABLE} FINAL WHERE IsDeleted = 0 AND Kind = 'outcome' "
        f"AND NOT startsWith(Author, '{JUDGE_PREFIX}')").result_rows}
    roots = [row[0] for row in store.query(
        f"SELECT DISTINCT TraceId FROM {SPANS_TABLE} WHERE ParentSpanId = '' ORDER BY TraceId").result_rows]
    return [t for t in roots if (t in judged) == evaluate]


def _ask(client: ChatClient, run: Run, task: str, strategy: str) -> dict[str, Any] | Exception:
    """One run's verdict, or the Refused / BudgetSpent that stopped it (threads return, never raise those)."""
    try:
        if task == "outcome":
            return parse(client.ask(messages(run, task)), "success")
        if strategy == "all-at-once":
            return parse(client.ask(messages(run, task)), "span_id", {step.span_id for step in run.steps})
        return _step_by_step(client, run) if strategy == "step-by-step" else _binary(client, run)
    except (Refused, BudgetSpent) as exc:
        return exc


def _step_by_step(client: ChatClient, run: Run) -> dict[str, Any]:
    for i in range(len(run.steps)):
        answer = parse(client.ask(messages(run, "decisive", "step-by-step", run.steps[: i + 1])), "decisive")
        if answer["decisive"]:
            return {"span_id": run.steps[i].span_id, "reason": answer["reason"]}
    raise Refused("the model named no step as the one where the run went wrong")


def _binary(client: ChatClient, run: Run) -> dict[str, Any]:
    low, high, reason = 0, len(run.steps), ""
    while high - low > 1:
        half = (high - low) // 2
        answer = parse(client.ask(messages(run, "decisive", "binary", run.steps[low:high], half)), "half")
        low, high = (low, low + half) if answer["half"] == "first" else (low + half, high)
        reason = answer["reason"]
    return {"span_id": run.steps[low].span_id, "reason": reason}


def _cached(store: Store, model: str, task: str, strategy: str, traces: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not traces:
        return {}
    rows = store.query(
        f"SELECT TraceId, Verdict FROM {JUDGE_CACHE_TABLE} FINAL WHERE TraceId IN {{t:Array(String)}} "
        "AND Model = {m:String} AND PromptVersion = {v:String} AND Task = {k:String} AND Strategy = {s:String}",
        {"t": list(traces), "m": model, "v": PROMPT_VERSION, "k": task, "s": _strategy_key(task, strategy)},
    ).result_rows
    return {trace_id: json.loads(verdict) for trace_id, verdict in rows}


def _remember(store: Store, model: str, task: str, strategy: str, verdicts: dict[str, dict[str, Any]]) -> None:
    if verdicts:
        now = datetime.now(timezone.utc)
        store.insert(JUDGE_CACHE_TABLE, [[t, model, PROMPT_VERSION, task, _strategy_key(task, strategy),
                                          json.dumps(v), 0, now] for t, v in verdicts.items()],
                     ["TraceId", "Model", "PromptVersion", "Task", "Strategy", "Verdict", "Tokens", "CreatedAt"])


def _strategy_key(task: str, strategy: str) -> str:
    return "" if task == "outcome" else strategy  # an outcome is asked one way


def _store(store: Store, model: str, task: str, verdicts: dict[str, dict[str, Any]]) -> int:
    author = f"{JUDGE_PREFIX}{model}"
    if task == "decisive":
        items = [{"trace_id": t, "span_id": v["span_id"], "name": "decisive", "author": author, "kind": "decisive",
                  "comment": v["reason"]} for t, v in verdicts.items()]
    else:
        items = [{"trace_id": t, "name": "outcome", "author": author, "kind": "outcome",
                  "value": {"success": v["success"]}, "comment": v["reason"]} for t, v in verdicts.items()]
    for start in range(0, len(items), 500):
        record_feedback(store, items[start:start + 500])
    return len(items)


def agreement(store: Store, model: str, task: str) -> dict[str, Any]:
    """How often the judge agrees with people on the runs both judged: the step and its agent, or the outcome."""
    author = f"{JUDGE_PREFIX}{model}"
    kind = "decisive" if task == "decisive" else "outcome"
    rows = store.query(
        f"SELECT TraceId, SpanId, Author, Score FROM {FEEDBACK_TABLE} FINAL "
        "WHERE IsDeleted = 0 AND Kind = {k:String}",
        {"k": kind},
    ).result_rows
    theirs = {t: (s, score) for t, s, a, score in rows if a == author}
    people: dict[str, list[tuple[str, Any]]] = {}
    for t, s, a, score in rows:
        if not a.startswith(JUDGE_PREFIX):
            people.setdefault(t, []).append((s, score))
    both = sorted(set(theirs) & set(people))
    if not both:
        return {"runs": 0}
    if kind == "outcome":
        same = sum((theirs[t][1] >= 0.5) == (people[t][0][1] >= 0.5) for t in both)
        return {"runs": len(both), "outcome": round(same / len(both), 3)}
    runs = load_runs(store, both)
    step = agent = 0
    for t in both:
        mine, human = theirs[t][0], people[t][0][0]
        step += mine == human
        run = runs.get(t)
        agents = {s.span_id: s.agent for s in run.steps} if run else {}
        agent += mine in agents and agents.get(mine) == agents.get(human)
    return {"runs": len(both), "step": round(step / len(both), 3), "agent": round(agent / len(both), 3)}
