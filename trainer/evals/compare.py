"""Compare two eval runs case by case and give the CI gate's verdict.

Cases are paired by case id (runs of different versions of a suite pair on the cases they share). A case
*regressed* when its pass rate fell, *improved* when it rose. The verdict is ``regression`` when the candidate is
significantly worse at ``alpha`` or a must-pass case failed any attempt, ``improvement`` when it is significantly
better, else ``no significant change``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from tracemill.errors import ConfigError
from tracemill.trainer.evals.stats import mcnemar_exact, paired_bootstrap
from tracemill.trainer.evals.tables import load_results, load_run

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["Verdict", "compare_results", "compare_runs"]

Verdict = Literal["regression", "improvement", "no significant change"]


def _rates(results: Sequence[dict[str, Any]]) -> tuple[dict[str, float], dict[str, dict[str, Any]], int]:
    attempts: dict[str, list[bool]] = defaultdict(list)
    first: dict[str, dict[str, Any]] = {}
    for result in results:
        attempts[result["case_id"]].append(bool(result["passed"]))
        first.setdefault(result["case_id"], result)
    most = max((len(a) for a in attempts.values()), default=1)
    return {case: sum(a) / len(a) for case, a in attempts.items()}, first, most


def _case_row(case_id: str, before: float, after: float, base: dict[str, Any], cand: dict[str, Any]) -> dict:
    status = "regressed" if after < before else "improved" if after > before else "same"
    return {"case_id": case_id, "status": status, "baseline_pass_rate": before, "candidate_pass_rate": after,
            "baseline_trace_id": base["trace_id"], "candidate_trace_id": cand["trace_id"],
            "baseline_output": base["output"], "candidate_output": cand["output"],
            "candidate_detail": cand["detail"]}


def compare_results(baseline: Sequence[dict[str, Any]], candidate: Sequence[dict[str, Any]], *, alpha: float = 0.05,
                    must_pass: Sequence[str] = ()) -> dict[str, Any]:
    """The comparison of two runs' results (see the module's docstring)."""
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha must be between 0 and 1 (got {alpha})")
    before, base_first, base_k = _rates(baseline)
    after, cand_first, cand_k = _rates(candidate)
    paired = sorted(set(before) & set(after))
    if not paired:
        raise ConfigError("the two runs share no case; compare runs of the same suite")
    cases = [_case_row(c, before[c], after[c], base_first[c], cand_first[c]) for c in paired]
    regressed = [row["case_id"] for row in cases if row["status"] == "regressed"]
    improved = [row["case_id"] for row in cases if row["status"] == "improved"]
    if base_k == 1 and cand_k == 1:
        test, p_value = "exact McNemar", mcnemar_exact(len(improved), len(regressed))
        difference = (len(improved) - len(regressed)) / len(paired)
    else:
        test = "paired bootstrap of per-case pass rates"
        difference, p_value = paired_bootstrap([before[c] for c in paired], [after[c] for c in paired])
    failed_must = [c for c in paired if c in set(must_pass) and after[c] < 1.0]
    verdict: Verdict = "no significant change"
    if failed_must or (p_value < alpha and difference < 0):
        verdict = "regression"
    elif p_value < alpha and difference > 0:
        verdict = "improvement"
    return {"verdict": verdict, "p_value": p_value, "alpha": alpha, "test": test, "regressed": regressed,
            "improved": improved, "must_pass_failed": failed_must, "paired_cases": len(paired),
            "baseline_pass_rate": sum(before[c] for c in paired) / len(paired),
            "candidate_pass_rate": sum(after[c] for c in paired) / len(paired), "difference": difference,
            "only_in_baseline": len(set(before) - set(after)), "only_in_candidate": len(set(after) - set(before)),
            "cases": cases}


def compare_runs(store: Store, baseline: str, candidate: str, *, alpha: float = 0.05) -> dict[str, Any]:
    """Compare two stored runs (ids or unique prefixes); must-pass cases come from the candidate's suite."""
    base_run, cand_run = load_run(store, baseline), load_run(store, candidate)
    result = compare_results(load_results(store, base_run["run_id"]), load_results(store, cand_run["run_id"]),
                             alpha=alpha, must_pass=cand_run["summary"].get("must_pass", []))
    return {"baseline": _brief(base_run), "candidate": _brief(cand_run), **result}


def _brief(run: dict[str, Any]) -> dict[str, Any]:
    return {key: run[key] for key in ("run_id", "suite", "version", "candidate", "repeat", "passed", "total",
                                      "started_at")}
