"""Grouped cross-validation of the decisive-step ranker against the baselines it must beat.

Folds group runs by task (runs of one task share their steps' wording, so a fold never trains on a run
of a task it is tested on). For each held-out marked run the ranker's top candidate (and top three)
are compared with the marked step, and the agent of its top candidate with the marked step's agent.
The baselines on the same runs: the first step, the last step, and the rule detectors' decisive spans
(their most confident flag's span; a run no rule flagged counts as a miss).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tracemill.miner.decisive.ranker import Mark, train
from tracemill.miner.decisive.spans import Run

__all__ = ["cross_validate"]

Picker = Callable[[Run], list[int]]


def cross_validate(
    runs: Sequence[Run], marks: Mapping[str, Mark], kinds: Mapping[str, str], rules: Mapping[str, list[str]], *,
    folds: int = 5,
) -> dict[str, Any]:
    """``{"runs", "folds", "model": {...}, "first_step": {...}, "last_step": {...}, "rules": {...}}``, each
    with ``top1``, ``top3`` and ``agent`` accuracy over the marked runs a reviewer marked."""
    from sklearn.model_selection import GroupKFold

    marked = [run for run in runs if run.trace_id in marks and marks[run.trace_id].weight >= 1.0
              and run.index_of(marks[run.trace_id].span_id) is not None]
    groups = [run.task_id or run.trace_id for run in marked]
    folds = min(folds, len(set(groups)))
    if folds < 2:
        raise ValueError("cross-validation needs marked runs of at least two tasks")
    predicted: dict[str, list[int]] = {}
    for train_index, test_index in GroupKFold(n_splits=folds).split(marked, groups=groups):
        held_out = {marked[i].trace_id for i in test_index}
        # Judge marks may help training, never on a held-out run's own task.
        training = [run for run in runs if run.trace_id in marks and run.trace_id not in held_out]
        ranker = train([marked[i] for i in train_index] + [r for r in training if marks[r.trace_id].weight < 1.0],
                       marks, kinds, rules)
        for i in test_index:
            run = marked[i]
            predicted[run.trace_id] = [j for j, _ in ranker.rank(run, kinds.get(run.trace_id, ""),
                                                                 rules.get(run.trace_id, ()))]
    pickers: dict[str, Picker] = {
        "model": lambda run: predicted[run.trace_id],
        "first_step": lambda run: _steps(run),
        "last_step": lambda run: _steps(run)[::-1],
        "rules": lambda run: [i for i in (run.index_of(s) for s in rules.get(run.trace_id, [])) if i is not None],
    }
    report: dict[str, Any] = {"runs": len(marked), "folds": folds}
    for name, pick in pickers.items():
        report[name] = _score(marked, marks, pick)
    return report


def _steps(run: Run) -> list[int]:
    """LLM and tool steps first, in order (what "the first step" and "the last step" mean to a reader)."""
    return [i for i, step in enumerate(run.steps) if step.kind in ("llm", "tool")]


def _score(runs: Sequence[Run], marks: Mapping[str, Mark], pick: Picker) -> dict[str, float]:
    top1 = top3 = agent = 0
    for run in runs:
        target = run.index_of(marks[run.trace_id].span_id)
        assert target is not None
        ranked = pick(run)
        top1 += bool(ranked) and ranked[0] == target
        top3 += target in ranked[:3]
        agent += bool(ranked) and run.steps[ranked[0]].agent == run.steps[target].agent
    n = max(1, len(runs))
    return {"top1": round(top1 / n, 3), "top3": round(top3 / n, 3), "agent": round(agent / n, 3)}
