"""The miner's settings, each documented once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tracemill.errors import ConfigError

__all__ = ["MINER_VERSION", "MinerConfig"]

MINER_VERSION = "3"
"""Written with every flag; bump when detector semantics change in a way readers should know, or the scorer's
features do (a supervised model's version names it, so its scores are then written again)."""


@dataclass(frozen=True)
class MinerConfig:
    """Thresholds of the detectors and the scorer. The defaults suit agents of a few to a few dozen steps."""

    loop_min_repeats: int = 3
    """The same tool with the same arguments this many times in one run is a loop."""
    min_peers: int = 8
    """Peer comparisons (excess steps, tokens, time; latency outliers) need at least this many runs in the group."""
    excess_z: float = 3.5
    """Robust z-score (median/MAD) above which a run uses far more than its peers (near-miss)."""
    excess_ratio: float = 1.5
    """...and at least this multiple of the peers' median."""
    min_excess_s: float = 1.0
    """A run is slow against its peers only when it also takes this many seconds more than their median
    (sub-second differences are scheduling noise, not agent behaviour)."""
    latency_z: float = 6.0
    """Robust z-score of a run's duration above which it is a latency outlier (failure)."""
    latency_ratio: float = 3.0
    """...and at least this multiple of the peers' median duration."""
    outcome_threshold: float = 0.5
    """A reward or score below this is a failure."""
    near_threshold_margin: float = 0.1
    """A reward or score in [threshold, threshold + margin) is a near-miss."""
    min_labels: int = 20
    """The supervised scorer needs this many traces with outcome feedback..."""
    min_per_class: int = 5
    """...with at least this many failures and this many successes, in at least 3 task groups."""
    min_model_auroc: float = 0.7
    """The scorer flags traces (``outcome_model``) only when its cross-validated AUROC reaches this."""
    flag_precision: float = 0.7
    """The ``outcome_model`` threshold is the lowest whose cross-validated precision reaches this with
    ``flag_confidence``; when none does, the scorer flags nothing."""
    flag_confidence: float = 0.8
    """How sure the cross-validated precision must be to reach ``flag_precision`` (the one-sided confidence of
    Wilson's lower bound; 0.5 takes the measured precision as it is). The lowest threshold whose measured
    precision reaches the target is where chance lifted it there, so its precision on new runs is usually lower;
    the bound asks more of a few flags than of many."""
    cv_folds: int = 5
    """Folds of the grouped cross-validation (fewer when there are fewer groups)."""
    max_training_runs: int = 5_000
    """The scorer is cross-validated and trained on at most this many labelled runs: a fixed sample chosen by
    trace id, so the same labels give the same model, and re-scoring a large store stays bounded (the AUROC and
    precision estimates barely move beyond a few thousand runs, while five folds of every candidate cost more
    with each run)."""
    calibration_min_runs: int = 5
    """A detector's confidence becomes its measured precision, and a failure detector whose lift is not above 1 is
    muted, once it fires on this many labelled runs. (A failure detector that fires on any labelled run is also
    muted while its precision is not shown to reach ``flag_precision`` with ``flag_confidence``.)"""
    handoff_failure_lift: float = 1.25
    """Hand-offs count as failures in a store where runs that hand off fail this many times the base rate, and
    their precision reaches ``flag_precision`` with ``flag_confidence``."""
    pinned: Mapping[str, bool] = field(default_factory=dict)
    """Detectors pinned on (True: never muted) or off (False: always muted), by name, whatever the labels say."""

    def __post_init__(self) -> None:
        if self.loop_min_repeats < 2:
            raise ConfigError(f"loop_min_repeats must be 2 or more (got {self.loop_min_repeats})")
        if self.min_peers < 3:
            raise ConfigError(f"min_peers must be 3 or more (got {self.min_peers})")
        if not 0.0 < self.outcome_threshold < 1.0:
            raise ConfigError(f"outcome_threshold must be between 0 and 1 (got {self.outcome_threshold})")
        if self.calibration_min_runs < 1:
            raise ConfigError(f"calibration_min_runs must be 1 or more (got {self.calibration_min_runs})")
        if self.max_training_runs < 20:
            raise ConfigError(f"max_training_runs must be 20 or more (got {self.max_training_runs})")
        if not 0.5 <= self.flag_confidence < 1.0:
            raise ConfigError(f"flag_confidence must be at least 0.5 and below 1 (got {self.flag_confidence})")
        if self.cv_folds < 2:
            raise ConfigError(f"cv_folds must be 2 or more (got {self.cv_folds})")
