"""A sequential test of two failure rates that stays valid however often it is looked at (mSPRT).

The mixture sequential probability ratio test (Robbins; Johari, Pekelis and Walsh, "Always valid
inference", 2017) with a normal mixture N(0, tau^2) over the difference of the failure rates:

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 * d^2 / (2 V (V + tau^2)))

with d the candidate's failure rate minus control's and V = p(1-p)(1/n_c + 1/n_t) its variance
under the null (p pooled). Under equal rates Lambda is (asymptotically) a martingale, so the chance
that it *ever* reaches 1/alpha, at any number of looks, is at most alpha (Ville's inequality): a
rollout can be checked after every batch of runs without inflating false halts, unlike a fixed-n
test. The candidate is halted only when it is worse (d > 0) and Lambda >= 1/alpha; ``p_value``
(1/Lambda, never rising) is the always-valid p-value.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ALPHA", "MIN_RUNS", "TAU", "SequentialResult", "mixture_ratio", "msprt"]

ALPHA = 0.05
TAU = 0.1
"""Spread of the mixture over the difference in failure rates: the size of shift the test is tuned to find fast."""
MIN_RUNS = 30
"""Runs each arm needs before a halt: the normal approximation is poor below this."""


@dataclass(frozen=True)
class SequentialResult:
    """The test at one look."""

    control_runs: int
    control_failed: int
    candidate_runs: int
    candidate_failed: int
    difference: float
    likelihood_ratio: float
    p_value: float
    worse: bool
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mixture_ratio(x_c: int, n_c: int, x_t: int, n_t: int, *, tau: float = TAU) -> float:
    """Lambda for control x_c/n_c failed against candidate x_t/n_t (1.0 when there is no evidence yet)."""
    if n_c == 0 or n_t == 0:
        return 1.0
    pooled = (x_c + x_t) / (n_c + n_t)
    variance = pooled * (1 - pooled) * (1 / n_c + 1 / n_t)
    if variance <= 0:
        return 1.0
    d = x_t / n_t - x_c / n_c
    tau2 = tau * tau
    exponent = tau2 * d * d / (2 * variance * (variance + tau2))
    return math.sqrt(variance / (variance + tau2)) * math.exp(min(exponent, 700.0))


def msprt(
    x_c: int, n_c: int, x_t: int, n_t: int, *, alpha: float = ALPHA, tau: float = TAU, min_runs: int = MIN_RUNS,
    previous_p: float = 1.0,
) -> SequentialResult:
    """The test at this look; ``previous_p`` is the p-value of the last look (it never rises)."""
    ratio = mixture_ratio(x_c, n_c, x_t, n_t, tau=tau)
    d = (x_t / n_t if n_t else 0.0) - (x_c / n_c if n_c else 0.0)
    p_value = min(previous_p, 1.0 / ratio if ratio > 0 else 1.0)
    worse = n_c >= min_runs and n_t >= min_runs and d > 0 and ratio >= 1.0 / alpha
    return SequentialResult(n_c, x_c, n_t, x_t, round(d, 6), ratio, p_value, worse, alpha)
