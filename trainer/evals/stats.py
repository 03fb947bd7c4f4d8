"""Paired tests for two eval runs over the same cases.

- One attempt per case: exact McNemar, a two-sided binomial test on the discordant cases (improved vs regressed,
  p = 0.5 under no difference); concordant cases carry no information about the difference.
- Several attempts: a paired bootstrap of the mean per-case difference in pass rate (cases resampled with
  replacement, the same resample for both runs); the two-sided p-value is twice the smaller tail of the
  resampled differences at zero.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["mcnemar_exact", "paired_bootstrap"]


def mcnemar_exact(improved: int, regressed: int) -> float:
    """Two-sided exact McNemar p-value; 1.0 when no case changed."""
    if improved + regressed == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(k=improved, n=improved + regressed, p=0.5).pvalue)


def paired_bootstrap(baseline: Sequence[float], candidate: Sequence[float], *, resamples: int = 10_000,
                     seed: int = 0) -> tuple[float, float]:
    """(mean difference candidate - baseline, two-sided p-value) over paired per-case pass rates."""
    differences = [c - b for b, c in zip(baseline, candidate, strict=True)]
    n = len(differences)
    if n == 0 or all(d == 0 for d in differences):
        return 0.0, 1.0
    import numpy as np

    values = np.asarray(differences, dtype=float)
    rng = np.random.default_rng(seed)
    at_or_below = at_or_above = 0
    for start in range(0, resamples, 1000):  # in blocks: resamples x cases indices at once would be large
        means = values[rng.integers(0, n, size=(min(1000, resamples - start), n))].mean(axis=1)
        at_or_below += int((means <= 0).sum())
        at_or_above += int((means >= 0).sum())
    return float(values.mean()), min(1.0, 2 * min(at_or_below, at_or_above) / resamples)
