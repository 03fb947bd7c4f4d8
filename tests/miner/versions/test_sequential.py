"""The rollout's sequential test: it halts a clearly worse candidate fast and an equal one rarely, however
often it is looked at (a fixed-n test looked at as often would not)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tracemill.miner.versions.sequential import ALPHA, MIN_RUNS, mixture_ratio, msprt


def _first_halt(rng: np.random.Generator, p_control: float, p_candidate: float, *, share: float, runs: int,
                look_every: int, test) -> int | None:
    """Runs until the first look at which ``test(x_c, n_c, x_t, n_t)`` halts, or None."""
    candidate = rng.random(runs) < share
    failed = np.where(candidate, rng.random(runs) < p_candidate, rng.random(runs) < p_control)
    n_t, x_t = np.cumsum(candidate), np.cumsum(failed & candidate)
    x_c = np.cumsum(failed & ~candidate)
    for end in range(look_every, runs + 1, look_every):
        k = end - 1
        if test(int(x_c[k]), int(end - n_t[k]), int(x_t[k]), int(n_t[k])):
            return end
    return None


def _msprt(x_c: int, n_c: int, x_t: int, n_t: int) -> bool:
    return msprt(x_c, n_c, x_t, n_t).worse


def _fixed_z(x_c: int, n_c: int, x_t: int, n_t: int) -> bool:
    """A one-sided two-proportion z-test at 5 %, fine once, wrong when repeated."""
    if min(n_c, n_t) < MIN_RUNS:
        return False
    pooled = (x_c + x_t) / (n_c + n_t)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
    return se > 0 and (x_t / n_t - x_c / n_c) / se > 1.645


@pytest.mark.parametrize(("rate", "share"), [(0.02, 0.5), (0.1, 0.2), (0.3, 0.5)])
def test_equal_candidate_false_halt_rate_stays_under_alpha_across_repeated_looks(rate, share):
    rng = np.random.default_rng(11)
    trials = 400
    halts = sum(_first_halt(rng, rate, rate, share=share, runs=2000, look_every=25, test=_msprt) is not None
                for _ in range(trials))
    assert halts / trials < ALPHA, f"{halts}/{trials} false halts"


def test_fixed_n_test_at_every_look_would_halt_an_equal_candidate_far_more_often():
    rng = np.random.default_rng(11)
    trials = 200
    halts = sum(_first_halt(rng, 0.1, 0.1, share=0.5, runs=2000, look_every=25, test=_fixed_z) is not None
                for _ in range(trials))
    assert halts / trials > 3 * ALPHA


def test_candidate_failing_40_percent_against_2_is_halted_within_a_few_hundred_runs():
    rng = np.random.default_rng(5)
    firsts = [_first_halt(rng, 0.02, 0.40, share=0.5, runs=1000, look_every=25, test=_msprt) for _ in range(100)]
    assert all(f is not None and f <= 300 for f in firsts), firsts


def test_better_candidate_is_never_halted():
    assert not msprt(40, 200, 2, 200).worse
    assert msprt(2, 200, 40, 200).worse


def test_no_evidence_before_both_arms_have_runs_or_failures():
    assert mixture_ratio(0, 0, 5, 10) == 1.0
    assert mixture_ratio(0, 100, 0, 100) == 1.0
    assert not msprt(0, 10, 9, 10).worse  # clear but too few runs for the approximation


def test_p_value_never_rises_between_looks():
    first = msprt(2, 100, 12, 100)
    later = msprt(5, 300, 15, 300, previous_p=first.p_value)
    assert later.p_value <= first.p_value
