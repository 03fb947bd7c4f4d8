"""The learned scorer: failure probability from trace features, tool sequences and error text.

With enough ``outcome`` feedback it trains a scikit-learn Pipeline (numeric features + hashed tool
sequence bigrams + hashed error words → logistic regression), measures it with cross-validation
grouped by task (no task in both train and test) next to the rule detectors alone, picks the flag
threshold on the cross-validated predictions, and scores every trace. With too few labels it falls
back to an IsolationForest anomaly score, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tracemill.deps import require
from tracemill.miner.config import MINER_VERSION, MinerConfig
from tracemill.miner.detectors import DETECTORS, Flag, outcome_failed
from tracemill.miner.features import Frame
from tracemill.miner.model_scope import version_digest

__all__ = ["NUMERIC_FEATURES", "ScoreResult", "score_traces"]

NUMERIC_FEATURES = (
    "spans", "llm_calls", "tool_calls", "errors", "tool_errors", "result_errors", "llm_errors", "timeouts",
    "bad_args_calls", "tokens", "duration_s", "max_repeats", "retries", "depth", "root_error", "final_empty",
    "final_gives_up",
)  # fmt: skip
"""Trace features the scorer reads (never feedback: that is the label)."""

# Detectors that read the outcome label cannot be compared with a model that predicts it.
_LABEL_DETECTORS = {"negative_feedback", "outcome_near_threshold", "outcome_model"}


@dataclass
class ScoreResult:
    """Probabilities for the frame's traces, the model's name, its quality report and its flags."""

    probabilities: np.ndarray
    model_version: str
    report: dict[str, Any]
    flags: list[Flag] = field(default_factory=list)


def labels_of(frame: Frame, config: MinerConfig) -> np.ndarray:
    """1 failure, 0 success, -1 unlabelled, from each trace's outcome feedback."""
    out = np.full(len(frame), -1, dtype=int)
    for i in range(len(frame)):
        if frame["has_outcome"][i]:
            failed = outcome_failed(frame["outcome_label"][i], frame["outcome_score"][i], 1, config.outcome_threshold)
            out[i] = int(failed)
    return out


def _numeric(frame: Frame, rows: Sequence[int] | slice = slice(None)) -> np.ndarray:
    matrix = np.column_stack([np.asarray(frame[name], dtype=float) for name in NUMERIC_FEATURES])
    return matrix[rows]


def _log1p(x: np.ndarray) -> np.ndarray:
    return np.log1p(np.maximum(np.asarray(x, dtype=float), 0.0))


def _texts(frame: Frame) -> tuple[list[str], list[str]]:
    sequences = [f"START {s} END" for s in frame["tool_sequence"]]
    errors = [f"{a} {b}" for a, b in zip(frame["first_error_text"], frame["first_tool_error_text"], strict=True)]
    return sequences, errors


def _pipeline() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    n = len(NUMERIC_FEATURES)
    columns = ColumnTransformer([
        ("numeric", Pipeline([("log", FunctionTransformer(_log1p)), ("scale", StandardScaler())]), list(range(n))),
        ("tools", HashingVectorizer(n_features=2**12, token_pattern=r"[^ ]+", ngram_range=(1, 2), lowercase=False,
                                    alternate_sign=False, norm="l2"), n),
        ("errors", HashingVectorizer(n_features=2**12, ngram_range=(1, 1), alternate_sign=False, norm="l2"), n + 1),
    ])  # fmt: skip
    return Pipeline([("features", columns), ("model", LogisticRegression(C=1.0, max_iter=2000))])


def _design(frame: Frame) -> np.ndarray:
    sequences, errors = _texts(frame)
    design = np.empty((len(frame), len(NUMERIC_FEATURES) + 2), dtype=object)
    design[:, : len(NUMERIC_FEATURES)] = _numeric(frame)
    design[:, -2] = sequences
    design[:, -1] = errors
    return design


def score_traces(frame: Frame, config: MinerConfig, rule_flags: Sequence[Flag],
                 group_keys: Sequence[str] | None = None) -> ScoreResult:
    """Train (or fall back), evaluate, and score every trace of ``frame``; cross-validation is grouped by
    ``group_keys`` (see :mod:`tracemill.miner.grouping`; by default the peer groups)."""
    require("sklearn", extra="miner", feature="The miner's scorer")
    labels = labels_of(frame, config)
    labelled = np.flatnonzero(labels >= 0)
    keys = group_keys if group_keys is not None else [frame.peer_group(i) for i in range(len(frame))]
    groups = np.asarray(list(keys), dtype=object)
    positives = int(labels[labelled].sum()) if labelled.size else 0
    negatives = int(labelled.size - positives)
    group_count = len(set(groups[labelled])) if labelled.size else 0
    enough = (
        labelled.size >= config.min_labels
        and min(positives, negatives) >= config.min_per_class
        and group_count >= 3
    )
    if not enough:
        why = (
            f"too few outcome labels for a supervised scorer ({labelled.size} traces with outcome feedback "
            f"({positives} failures, {negatives} successes, "
            f"{group_count} task groups); the scorer needs at least {config.min_labels}, with "
            f"{config.min_per_class} of each and 3 groups)"
        )
        return _anomaly(frame, why)
    try:
        return _supervised(frame, config, labels, labelled, groups, rule_flags)
    except ValueError as exc:  # e.g. a fold whose training tasks hold one class only
        return _anomaly(frame, f"the grouped cross-validation could not train: {exc}")


def _supervised(
    frame: Frame, config: MinerConfig, labels: np.ndarray, labelled: np.ndarray, groups: np.ndarray,
    rule_flags: Sequence[Flag],
) -> ScoreResult:
    from sklearn.model_selection import GroupKFold, cross_val_predict

    design = _design(frame)
    x, y, g = design[labelled], labels[labelled], groups[labelled]
    folds = min(config.cv_folds, len(set(g)))
    splits = GroupKFold(n_splits=folds)
    cv_probs = cross_val_predict(_pipeline(), x, y, groups=g, cv=splits, method="predict_proba")[:, 1]
    threshold = _best_threshold(y, cv_probs)
    quality = _quality(y, cv_probs, threshold)
    quality["folds"] = folds

    # The rule detectors alone, on the same traces: a trace's rule score is its strongest failure flag.
    index = {trace: i for i, trace in enumerate(frame["trace_id"])}
    rule_score = np.zeros(len(frame))
    for flag in rule_flags:
        if flag.category == "failure" and flag.detector not in _LABEL_DETECTORS and not flag.muted:
            i = index[flag.trace_id]
            rule_score[i] = max(rule_score[i], flag.confidence)
    rules = _quality(y, rule_score[labelled], 1e-9)

    model = _pipeline().fit(x, y)
    probabilities = model.predict_proba(design)[:, 1]
    digest = version_digest([MINER_VERSION, repr(config), *(f"{frame['trace_id'][i]} {labels[i]}" for i in labelled)])
    version = f"logreg-1-{digest}"
    unit = DETECTORS["outcome_model"]
    flags = []
    good_enough = quality["auroc"] is not None and quality["auroc"] >= config.min_model_auroc
    for i, p in enumerate(probabilities):
        if good_enough and p >= threshold and labels[i] < 0:
            span = frame["first_error_span"][i] or frame["last_llm_span"][i] or frame["root_span"][i]
            flags.append(Flag(frame["trace_id"][i], span, unit.name, unit.version, unit.category, unit.kind,
                              "high" if p >= 0.9 else "medium", round(float(p), 3),
                              f"failure probability {p:.2f} ≥ threshold {threshold:.2f} ({version})"))
    report = {
        "mode": "supervised",
        "model_version": version,
        "note": f"logistic regression on {len(NUMERIC_FEATURES)} trace features, tool-sequence bigrams and "
                f"error words; {folds}-fold cross-validation grouped by task"
                + ("" if good_enough else f"; its AUROC is below {config.min_model_auroc}, so it flags nothing"),
        "labelled": int(labelled.size),
        "failures": int(y.sum()),
        "groups": len(set(g)),
        "threshold": threshold,
        "model": quality,
        "rules": rules,
    }  # fmt: skip
    return ScoreResult(probabilities, version, report, flags)


def _anomaly(frame: Frame, why: str) -> ScoreResult:
    n = len(frame)
    note = f"{why}; scores are IsolationForest anomaly scores"
    report: dict[str, Any] = {"mode": "anomaly", "model_version": "isolation-forest-1", "note": note,
                              "labelled": None, "model": None, "rules": None, "threshold": None}
    if n < 2:
        report.update(mode="none", model_version="none", note=f"{n} trace(s): nothing to compare")
        return ScoreResult(np.zeros(n), "none", report)
    from sklearn.ensemble import IsolationForest

    x = _log1p(_numeric(frame))
    forest = IsolationForest(n_estimators=50, max_samples=min(256, n), random_state=0).fit(x)
    raw = -forest.score_samples(x)
    low, high = float(raw.min()), float(raw.max())
    probabilities = (raw - low) / (high - low) if high > low else np.zeros(n)
    return ScoreResult(probabilities, "isolation-forest-1", report)


def _best_threshold(y: np.ndarray, probs: np.ndarray) -> float:
    """The threshold with the best F1 on the cross-validated predictions."""
    best, best_f1 = 0.5, -1.0
    for t in np.unique(probs):
        predicted = probs >= t
        tp = int((predicted & (y == 1)).sum())
        if not tp:
            continue
        precision, recall = tp / int(predicted.sum()), tp / max(1, int((y == 1).sum()))
        f1 = 2 * precision * recall / (precision + recall)
        if f1 > best_f1:
            best, best_f1 = float(t), f1
    return round(best, 4)


def _quality(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """AUROC, precision and recall at the threshold, Brier score and reliability bins, ROC points."""
    from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve

    predicted = scores >= threshold
    tp = int((predicted & (y == 1)).sum())
    auroc = float(roc_auc_score(y, scores)) if len(set(y.tolist())) == 2 else None
    fpr, tpr, _ = roc_curve(y, scores) if auroc is not None else ([0.0, 1.0], [0.0, 1.0], None)
    step = max(1, len(fpr) // 200)
    bins = []
    clipped = np.clip(scores, 0.0, 1.0)
    for low in np.arange(0.0, 1.0, 0.1):
        inside = (clipped >= low) & ((clipped < low + 0.1) | (low >= 0.9))
        if inside.any():
            bins.append({"low": round(float(low), 1), "predicted": round(float(clipped[inside].mean()), 4),
                         "observed": round(float(y[inside].mean()), 4), "count": int(inside.sum())})
    return {
        "auroc": None if auroc is None else round(auroc, 4),
        "precision": round(tp / int(predicted.sum()), 4) if predicted.any() else 0.0,
        "recall": round(tp / max(1, int((y == 1).sum())), 4),
        "brier": round(float(brier_score_loss(y, clipped)), 4),
        "reliability": bins,
        "roc": {"fpr": [round(float(v), 4) for v in list(fpr)[::step]] + [1.0],
                "tpr": [round(float(v), 4) for v in list(tpr)[::step]] + [1.0]},
    }
