"""The learned scorer: failure probability from trace features, the conversation, tool sequences and errors.

With enough ``outcome`` feedback it builds one design row per trace (numeric trace features, the
conversation's features from :mod:`tracemill.miner.scoring.text_features`: hashed tokens of user turns, final
answer, tool arguments and results, write versus read calls, last actions, peer agreement), picks a model
by cross-validation grouped by task (:mod:`tracemill.miner.scoring.model_select`), calibrates it, chooses the flag
threshold for precision on the cross-validated predictions, reports its quality next to the rule detectors
alone, and scores every trace. With too few labels it falls back to an IsolationForest anomaly score, and
says so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tracemill.deps import require
from tracemill.miner.config import MINER_VERSION, MinerConfig
from tracemill.miner.detectors import DETECTORS, Flag, outcome_failed
from tracemill.miner.features import Frame
from tracemill.miner.scoring.model_scope import version_digest

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store
    from tracemill.miner.scoring.model_select import Design

__all__ = ["NUMERIC_FEATURES", "UNSUPERVISED", "ScoreResult", "planned_version", "planned_version_in_store",
           "score_traces"]

NUMERIC_FEATURES = (
    "spans", "llm_calls", "tool_calls", "errors", "tool_errors", "result_errors", "llm_errors", "timeouts",
    "bad_args_calls", "tokens", "duration_s", "max_repeats", "retries", "depth", "root_error", "final_empty",
    "final_gives_up",
)  # fmt: skip
"""Trace features the scorer reads (never feedback: that is the label)."""

UNSUPERVISED = "isolation-forest-1"
"""The version of the scores given without enough labels: anomaly scores."""

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
    label, score = frame["outcome_label"], frame["outcome_score"]
    rows = [i for i, has in enumerate(frame["has_outcome"]) if has]
    out[rows] = [outcome_failed(label[i], score[i], 1, config.outcome_threshold) for i in rows]
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


def _design(frame: Frame, store: Store | None, groups: Sequence[str] | None = None) -> Design:
    """Trace features and the conversation's numbers, its hashed tokens, the tool sequence and the error text:
    one row per trace (``groups``: the run's task groups, which name the peers)."""
    from tracemill.miner.scoring.model_select import Design
    from tracemill.miner.scoring.text_features import conversation_features, hashed_counts, peer_keys

    conversation = conversation_features(store, frame, peer_keys(frame, groups))
    sequences, errors = _texts(frame)
    steps = hashed_counts(sequences, columns=2**12, token_pattern=r"[^ ]+", lowercase=False, ngrams=(1, 2))
    return Design(np.hstack([_numeric(frame), conversation.numbers]), conversation.tokens, steps,
                  hashed_counts(errors, columns=2**12))


def score_traces(frame: Frame, config: MinerConfig, rule_flags: Sequence[Flag],
                 group_keys: Sequence[str] | None = None, store: Store | None = None) -> ScoreResult:
    """Train (or fall back), evaluate, and score every trace of ``frame``; cross-validation is grouped by
    ``group_keys`` (see :mod:`tracemill.miner.grouping`; by default the peer groups). With ``store``, the
    supervised scorer also reads the conversations (:mod:`tracemill.miner.scoring.text_features`)."""
    require("sklearn", extra="miner", feature="The miner's scorer")
    labels, labelled, groups = _labels_and_groups(frame, config, group_keys)
    why = _why_unsupervised(labels, labelled, groups, config)
    try:
        scored = _anomaly(frame, why) if why else _supervised(frame, config, labels, labelled, groups, rule_flags,
                                                              store)
    except ValueError as exc:  # e.g. a fold whose training tasks hold one class only
        scored = _anomaly(frame, f"the grouped cross-validation could not train: {exc}")
    if labelled.size:  # the labels this run tried, trained on or not (see planned_version_in_store)
        scored.report["labels_digest"] = _digest(frame, config, labels, labelled)
    return scored


def planned_version(frame: Frame, config: MinerConfig, group_keys: Sequence[str] | None = None) -> str:
    """The scorer's version as far as it is known before training: the unsupervised family, or the digest of
    what a supervised model depends on. An incremental run compares it with the stored scores' versions and
    mines every trace at once when they differ, instead of training a model on the run's traces first."""
    labels, labelled, groups = _labels_and_groups(frame, config, group_keys)
    if _why_unsupervised(labels, labelled, groups, config):
        return UNSUPERVISED
    return f"planned-2-{_digest(frame, config, labels, labelled)}"


def planned_version_in_store(store: Store, config: MinerConfig) -> str:
    """:func:`planned_version` from the store's outcome feedback alone, before any feature is computed: a run
    whose labels changed since the stored scores then mines every trace once, instead of mining the changed
    ones, finding the model changed, and starting over. (Whether the labels span three task groups needs
    the features; the run checks again after training.)"""
    from tracemill.collector.store.schema import SPANS_TABLE
    from tracemill.miner.sql import FEEDBACK_PER_TRACE

    outcomes = int(store.command(f"SELECT count() FROM ({FEEDBACK_PER_TRACE}) WHERE has_outcome > 0"))
    if outcomes < config.min_labels:  # too few, whatever their traces: no need to look for those in the spans
        return UNSUPERVISED
    rows = store.query(
        f"SELECT TraceId, outcome_label, outcome_score FROM ({FEEDBACK_PER_TRACE}) WHERE has_outcome > 0 "
        f"AND TraceId IN (SELECT TraceId FROM {SPANS_TABLE}) ORDER BY TraceId"
    ).result_rows
    labels = [(trace, int(outcome_failed(label, score, 1, config.outcome_threshold))) for trace, label, score in rows]
    positives = sum(label for _, label in labels)
    if not _enough_labels(len(labels), positives, config):
        return UNSUPERVISED
    return f"planned-2-{_digest_of(config, labels)}"


def _labels_and_groups(frame: Frame, config: MinerConfig,
                       group_keys: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = labels_of(frame, config)
    keys = group_keys if group_keys is not None else frame.peer_groups()
    return labels, np.flatnonzero(labels >= 0), np.asarray(list(keys), dtype=object)


def _why_unsupervised(labels: np.ndarray, labelled: np.ndarray, groups: np.ndarray, config: MinerConfig) -> str:
    """Why the labels cannot train a supervised scorer; '' when they can."""
    positives = int(labels[labelled].sum()) if labelled.size else 0
    negatives = int(labelled.size - positives)
    group_count = len(set(groups[labelled])) if labelled.size else 0
    if _enough_labels(int(labelled.size), positives, config) and group_count >= 3:
        return ""
    return (
        f"too few outcome labels for a supervised scorer ({labelled.size} traces with outcome feedback "
        f"({positives} failures, {negatives} successes, "
        f"{group_count} task groups); the scorer needs at least {config.min_labels}, with "
        f"{config.min_per_class} of each and 3 groups)"
    )


def _enough_labels(count: int, failures: int, config: MinerConfig) -> bool:
    """Enough outcome labels of each class for a supervised scorer (the task groups are checked apart)."""
    return count >= config.min_labels and min(failures, count - failures) >= config.min_per_class


def _digest(frame: Frame, config: MinerConfig, labels: np.ndarray, labelled: np.ndarray) -> str:
    return _digest_of(config, ((frame["trace_id"][i], int(labels[i])) for i in labelled))


def _digest_of(config: MinerConfig, labels: Iterable[tuple[str, int]]) -> str:
    """What a supervised model depends on: the miner version, the settings, each labelled trace (in trace id
    order) and its label."""
    return version_digest([MINER_VERSION, repr(config), *(f"{trace} {label}" for trace, label in labels)])


def _supervised(
    frame: Frame, config: MinerConfig, labels: np.ndarray, labelled: np.ndarray, groups: np.ndarray,
    rule_flags: Sequence[Flag], store: Store | None,
) -> ScoreResult:
    from tracemill.miner.scoring.model_select import (
        CANDIDATES,
        Platt,
        choose,
        features,
        precision_threshold,
        predict,
    )

    design = _design(frame, store, groups.tolist())
    train = _training_sample(frame, labelled, config.max_training_runs)
    matrices = {name: features(name, design, train, train) for name in CANDIDATES}
    y, g = labels[train], groups[train]
    folds = min(config.cv_folds, len(set(g)))
    choice = choose(matrices, y, g, folds)
    name, candidates = choice.name, choice.scores
    platt = Platt(choice.out_of_fold, y)
    cv_probs = platt(choice.out_of_fold)
    threshold, precise = precision_threshold(y, cv_probs, config.flag_precision, confidence=config.flag_confidence)
    quality = _quality(y, cv_probs, threshold)
    quality["folds"] = folds
    rules = _quality(y, _rule_scores(frame, rule_flags)[train], 1e-9)
    probabilities = platt(predict(name, choice.model, design, train))
    version = f"{name}-2-{_digest(frame, config, labels, labelled)}"
    good_enough = quality["auroc"] is not None and quality["auroc"] >= config.min_model_auroc and precise
    flags = _model_flags(frame, labels, probabilities, threshold, version) if good_enough else []
    why = ("" if good_enough else f"; it flags nothing: its AUROC is below {config.min_model_auroc}" if precise
           else f"; it flags nothing: no threshold reaches precision {config.flag_precision} with "
                f"{config.flag_confidence:.0%} confidence on the cross-validated predictions")  # fmt: skip
    report = {
        "mode": "supervised", "model_version": version, "model_name": name, "candidates": candidates,
        "note": f"{_NAMES[name]} chosen by {folds}-fold cross-validation grouped by task (AUROC "
                + ", ".join(f"{_NAMES[k]} {v}" for k, v in candidates.items())
                + f"), probabilities calibrated; threshold for precision {config.flag_precision} with "
                  f"{config.flag_confidence:.0%} confidence" + why
                + ("" if train.size == labelled.size else f"; trained on a fixed sample of {train.size} of the "
                   f"{labelled.size} labelled runs"),
        "labelled": int(labelled.size), "trained_on": int(train.size), "failures": int(y.sum()),
        "groups": len(set(g)), "threshold": threshold,
        "model": quality, "rules": rules,
    }  # fmt: skip
    return ScoreResult(probabilities, version, report, flags)


_NAMES = {"logreg": "logistic regression", "hgb": "gradient-boosted trees"}


def _training_sample(frame: Frame, labelled: np.ndarray, limit: int) -> np.ndarray:
    """The labelled rows the model learns from: all of them, or the ``limit`` whose trace ids hash lowest (the
    same labels give the same sample, whatever else a run mines)."""
    if labelled.size <= limit:
        return labelled
    ids = frame["trace_id"]
    chosen = sorted(labelled, key=lambda i: hashlib.blake2b(ids[i].encode(), digest_size=8).digest())[:limit]
    return np.sort(np.asarray(chosen, dtype=labelled.dtype))


def _rule_scores(frame: Frame, rule_flags: Sequence[Flag]) -> np.ndarray:
    """The rule detectors alone: a trace's score is its strongest unmuted failure flag."""
    index = {trace: i for i, trace in enumerate(frame["trace_id"])}
    scores = np.zeros(len(frame))
    for flag in rule_flags:
        if flag.category == "failure" and flag.detector not in _LABEL_DETECTORS and not flag.muted:
            i = index[flag.trace_id]
            scores[i] = max(scores[i], flag.confidence)
    return scores


def _model_flags(frame: Frame, labels: np.ndarray, probabilities: np.ndarray, threshold: float,
                 version: str) -> list[Flag]:
    unit = DETECTORS["outcome_model"]
    ids, error_span, last_llm, root = (frame[c] for c in ("trace_id", "first_error_span", "last_llm_span", "root_span"))
    flags = []
    for i in np.flatnonzero((probabilities >= threshold) & (labels < 0)):
        p = float(probabilities[i])
        flags.append(Flag(ids[i], error_span[i] or last_llm[i] or root[i], unit.name, unit.version, unit.category,
                          unit.kind, "high" if p >= 0.9 else "medium", round(p, 3),
                          f"failure probability {p:.2f} ≥ threshold {threshold:.2f} ({version})"))
    return flags


def _anomaly(frame: Frame, why: str) -> ScoreResult:
    n = len(frame)
    note = f"{why}; scores are IsolationForest anomaly scores"
    report: dict[str, Any] = {"mode": "anomaly", "model_version": UNSUPERVISED, "note": note,
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
    return ScoreResult(probabilities, UNSUPERVISED, report)


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
