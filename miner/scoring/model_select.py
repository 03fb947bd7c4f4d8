"""Which model the scorer uses, chosen by grouped cross-validation, calibrated, with a threshold for precision.

Candidates are well-known scikit-learn models over the same features: an L2-regularised logistic regression
(numeric features scaled, hashed tokens sparse) and gradient-boosted trees (``HistGradientBoostingClassifier``
over the numeric features and the token counts folded onto a few dense columns). Each candidate's matrix is
built once for every trace, not again in every fold: hashing needs no fitting. Each is cross-validated with
folds grouped by task; the trees win only when their AUROC is at least 0.03 higher. Its probabilities are
calibrated by Platt scaling fitted on its out-of-fold predictions (what
``CalibratedClassifierCV(method="sigmoid", ensemble=False)`` does, without fitting every fold again), and the
``outcome_model`` flag threshold is the lowest one whose cross-validated precision reaches the target with the
confidence asked (the lower bound of its Wilson interval; ``MinerConfig.flag_confidence``, 80% by default), so
a failure flag is one a reviewer can trust: the lowest threshold whose measured precision reaches the target
is where chance lifted it there. Each fit runs on one thread: OpenMP's threads in the trees slow down by an
order of magnitude on a machine shared with other work. Every fold of both candidates is fitted in a pool of two
threads, each fold on the rows ``GroupKFold`` gives it, so the predictions are those of scikit-learn's
``cross_val_predict`` for each candidate alone.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CANDIDATES", "Choice", "Design", "Platt", "choose", "features", "make_model", "precision_threshold",
           "predict", "wilson_lower_bound"]

CANDIDATES = ("logreg", "hgb")


def _log1p(x: Any) -> Any:
    return np.log1p(np.maximum(np.asarray(x, dtype=float), 0.0))


@dataclass
class Design:
    """One row per trace: trace features (numbers), then hashed counts of the conversation's tokens, of the tool
    sequence's steps and step pairs, and of the error text's words (sparse matrices)."""

    numbers: np.ndarray
    tokens: Any
    sequences: Any
    errors: Any


def features(name: str, design: Design, fit_rows: np.ndarray, rows: np.ndarray | slice | None = None) -> Any:
    """Candidate ``name``'s feature matrix for ``rows`` of ``design`` (every row by default).

    Built once and sliced by the folds: hashing needs no fitting, and the numbers are scaled with
    statistics of ``fit_rows`` (the labelled traces, so a trace's score never depends on which unlabelled
    traces a run mines with it). No label is read here.
    """
    from scipy import sparse
    from sklearn.preprocessing import StandardScaler, normalize

    def take(matrix: Any) -> Any:  # every row: the matrix itself, not a copy
        return matrix if rows is None else matrix[rows]

    numeric = _log1p(take(design.numbers))
    if name == "logreg":
        scaled = StandardScaler().fit(_log1p(design.numbers[fit_rows])).transform(numeric)
        hashed = [normalize(take(design.tokens)), normalize(take(design.sequences)), normalize(take(design.errors))]
        return sparse.hstack([_dense_rows(scaled), *hashed], format="csr")
    # The trees split on a few dense counts: the hashed columns folded onto 64 and 16.
    return np.hstack([numeric, _fold(take(design.tokens), 2**6), _fold(take(design.sequences), 2**4)])


def _dense_rows(values: np.ndarray) -> Any:
    """A dense matrix as CSR as it stands, zeros kept: no search for the nonzero cells."""
    from scipy import sparse

    rows, columns = values.shape
    return sparse.csr_matrix((values.ravel(), np.tile(np.arange(columns, dtype=np.int32), rows),
                              np.arange(0, rows * columns + 1, columns, dtype=np.int64)), shape=values.shape)


def _fold(matrix: Any, columns: int) -> np.ndarray:
    """A hashed count matrix folded onto ``columns`` columns (a power of two, as is the matrix's width), dense."""
    from scipy import sparse

    csr = matrix.tocsr()  # the same rows with each column number folded; toarray sums the entries that meet
    folded = sparse.csr_matrix((csr.data, csr.indices & (columns - 1), csr.indptr), shape=(csr.shape[0], columns))
    return folded.toarray()


def make_model(name: str) -> Any:
    """Candidate ``name``'s estimator, over the matrix :func:`features` builds for it."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    if name == "logreg":
        return LogisticRegression(C=0.5, max_iter=3000)
    return HistGradientBoostingClassifier(max_iter=80, learning_rate=0.08, max_leaf_nodes=15, min_samples_leaf=8,
                                          l2_regularization=1.0, random_state=0)


@dataclass
class Choice:
    """The chosen candidate, every candidate's grouped-CV AUROC, the winner's out-of-fold probabilities, and the
    winner fitted on every labelled row."""

    name: str
    scores: dict[str, float]
    out_of_fold: np.ndarray
    model: Any


def choose(matrices: dict[str, Any], y: np.ndarray, groups: np.ndarray, folds: int) -> Choice:
    """The candidate with the best grouped-CV AUROC, fitted on every labelled row; ``matrices`` holds each
    candidate's features of the labelled traces."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold
    from threadpoolctl import threadpool_limits

    splits = list(GroupKFold(n_splits=folds).split(y, y, groups))
    fits = [(name, train, test) for name in CANDIDATES for train, test in splits]

    def out_of_fold(fit: tuple[str, np.ndarray, np.ndarray]) -> np.ndarray:
        name, train, test = fit
        with threadpool_limits(1):  # OpenMP's limit is the calling thread's: set in the pool's threads too
            model = make_model(name).fit(matrices[name][train], y[train])
            return model.predict_proba(matrices[name][test])[:, list(model.classes_).index(1)]

    # Every fold of every candidate, two at a time: the linear model's folds are quick, and the trees' then share
    # both threads (their histograms and the solver release the interpreter while they work).
    predictions = {name: np.empty(len(y)) for name in CANDIDATES}
    with ThreadPoolExecutor(2) as pool:
        for (name, _, test), predicted in zip(fits, pool.map(out_of_fold, fits), strict=True):
            predictions[name][test] = predicted
    scores = {name: round(float(roc_auc_score(y, predictions[name])), 4) for name in CANDIDATES}
    # The trees must beat the linear model clearly: on a few hundred runs, small AUROC differences are noise.
    best = "hgb" if scores["hgb"] >= scores["logreg"] + 0.03 else "logreg"
    with threadpool_limits(1):
        model = make_model(best).fit(matrices[best], y)
    return Choice(best, scores, predictions[best], model)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p)).reshape(-1, 1)


class Platt:
    """Sigmoid calibration of a model's probabilities, fitted on out-of-fold predictions."""

    def __init__(self, out_of_fold: np.ndarray, y: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        self.model = LogisticRegression(C=1e4, max_iter=1000).fit(_logit(out_of_fold), y)

    def __call__(self, probabilities: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(_logit(probabilities))[:, 1])


def predict(name: str, model: Any, design: Design, fit_rows: np.ndarray, *, chunk: int = 8192) -> np.ndarray:
    """Candidate ``name``'s fitted ``model``'s probabilities (uncalibrated) for every row of ``design`` (``fit_rows``:
    the rows it was fitted on, for scaling). The rows are built and predicted a slice at a time, two slices at once:
    a slice's matrix is small, where every row's at once takes hundreds of megabytes at a million spans."""
    from threadpoolctl import threadpool_limits

    rows = len(design.numbers)
    out = np.empty(rows)

    def predict_slice(start: int) -> None:
        part = slice(start, min(rows, start + chunk))
        with threadpool_limits(1):
            out[part] = model.predict_proba(features(name, design, fit_rows, part))[:, 1]

    with ThreadPoolExecutor(2) as pool:  # each slice sets its own thread limit
        list(pool.map(predict_slice, range(0, rows, chunk)))
    return out


def precision_threshold(y: np.ndarray, probs: np.ndarray, target: float, min_flags: int = 3,
                        confidence: float = 0.5) -> tuple[float, bool]:
    """(the lowest threshold at which the precision on ``probs`` reaches ``target`` with ``confidence``, with at
    least ``min_flags`` flags, True), else (the threshold of the best precision, False). The precision counts
    as reached when the one-sided lower bound of its Wilson score interval does (at ``confidence`` 0.5, the
    measured precision itself)."""
    from sklearn.metrics import precision_recall_curve

    precision, _, thresholds = precision_recall_curve(y, probs)
    flagged = np.asarray([int((probs >= t).sum()) for t in thresholds])
    lower = wilson_lower_bound(precision[:-1], flagged, confidence)
    ok = np.flatnonzero((lower >= target) & (flagged >= min_flags))
    if ok.size:
        return float(thresholds[ok[0]]), True
    usable = np.flatnonzero(flagged >= min_flags)
    if not usable.size:
        return float(thresholds[-1]), False
    best = usable[int(np.argmax(precision[:-1][usable]))]
    return float(thresholds[best]), False


def wilson_lower_bound(share: np.ndarray, count: np.ndarray, confidence: float) -> np.ndarray:
    """The one-sided lower bound, at ``confidence``, of the Wilson score interval of each ``share`` measured on
    ``count`` runs (the share itself at 0.5)."""
    from statistics import NormalDist

    share, count = np.asarray(share, dtype=float), np.maximum(np.asarray(count, dtype=float), 1.0)
    z = NormalDist().inv_cdf(confidence)
    if z <= 0:
        return share
    spread = z * np.sqrt(share * (1 - share) / count + z * z / (4 * count * count))
    return (share + z * z / (2 * count) - spread) / (1 + z * z / count)
