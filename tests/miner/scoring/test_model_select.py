"""The outcome_model threshold: the lowest whose cross-validated precision reaches the target (with the
confidence asked), kept exact."""

from __future__ import annotations

from typing import Any

import numpy as np

from tracemill.miner.scoring.model_select import precision_threshold


def test_a_threshold_below_four_decimals_is_kept_exact_and_flags_only_what_it_chose():
    # A model that separates perfectly can put the cut at a tiny probability; rounding it to 0 would flag every run.
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    probs = np.array([3e-5, 4e-5, 5e-5, 1e-7, 2e-7, 3e-7, 4e-7, 5e-7, 6e-7, 7e-7])
    threshold, precise = precision_threshold(y, probs, 0.8)
    assert precise and threshold == 3e-5
    assert ((probs >= threshold) == (y == 1)).all()


def test_without_a_precise_threshold_the_best_precision_is_returned():
    y = np.array([1, 0, 1, 0, 1, 0, 0, 1])
    probs = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    threshold, precise = precision_threshold(y, probs, 0.95)
    assert not precise and threshold == 0.7  # 2 of the 3 runs at or above 0.7 failed: the best with 3 flags


def test_the_threshold_asks_more_precision_of_a_few_flags_than_of_many():
    probs = np.linspace(0.99, 0.01, 400)
    few = np.array([1, 1, 1, 0] + [0] * 396)  # the top four: three failed, then only successes
    # Measured, 3 of 4 (0.75) reach 0.7; with 80% confidence only the top three (3 of 3) do.
    assert precision_threshold(few, probs, 0.7) == (probs[3], True)
    assert precision_threshold(few, probs, 0.7, confidence=0.8) == (probs[2], True)
    many = np.array([1, 1, 1, 0] * 100)  # 300 of 400 failed, spread evenly: 0.75 on 400 flags is sure enough
    assert precision_threshold(many, probs, 0.7, confidence=0.8) == (probs[-1], True)
    # 0.75 of 400 is not surely 0.74; of the smaller sets of flags, only the top three (3 of 3) are.
    assert precision_threshold(many, probs, 0.74, confidence=0.8) == (probs[2], True)


def test_the_wilson_lower_bound_is_the_share_itself_without_confidence_and_tightens_with_runs():
    from tracemill.miner.scoring.model_select import wilson_lower_bound

    bounds = wilson_lower_bound(np.array([0.75, 0.75, 0.75, 1.0]), np.array([4, 40, 400, 3]), 0.8)
    assert bounds[0] < bounds[1] < bounds[2] < 0.75
    assert 0.5 < bounds[0] < 0.6 and bounds[2] > 0.72 and 0.8 < bounds[3] < 0.82
    assert wilson_lower_bound(np.array([0.75]), np.array([4]), 0.5).tolist() == [0.75]


def _random_design(rng: np.random.Generator, rows: int, *, seeds: tuple[int, int, int]) -> Any:
    """A design of ``rows`` rows: five count columns, and three sparse hashed-count matrices of 256 columns."""
    from scipy import sparse

    from tracemill.miner.scoring.model_select import Design

    hashed = [sparse.random(rows, 2**8, density=0.05, format="csr", random_state=seed,
                            data_rvs=lambda n: rng.integers(1, 4, n)) for seed in seeds]
    return Design(rng.poisson(3.0, (rows, 5)).astype(float), *hashed)


def test_predicting_a_slice_at_a_time_gives_the_probabilities_of_every_row_at_once():
    from tracemill.miner.scoring.model_select import CANDIDATES, features, make_model, predict

    rng = np.random.default_rng(3)
    rows = 257
    design = _random_design(rng, rows, seeds=(1, 2, 3))
    train = np.arange(0, rows, 2)
    y = (design.numbers[train, 0] + rng.normal(0, 1, train.size) > 3).astype(int)
    for name in CANDIDATES:
        x = features(name, design, train, train)
        model = make_model(name).fit(x, y)
        whole = predict(name, model, design, train, chunk=rows)
        sliced = predict(name, model, design, train, chunk=10)
        assert whole.shape == (rows,) and np.array_equal(whole, sliced)
        assert 0.0 < whole.min() < whole.max() < 1.0


def test_candidates_cross_validated_and_fitted_side_by_side_score_as_each_alone():
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold, cross_val_predict

    from tracemill.miner.scoring.model_select import CANDIDATES, choose, features, make_model

    rng = np.random.default_rng(5)
    rows = 240
    design = _random_design(rng, rows, seeds=(4, 5, 6))
    train = np.arange(rows)
    y = (design.numbers[:, 0] + design.numbers[:, 1] % 2 + rng.normal(0, 1, rows) > 3.5).astype(int)
    groups = np.asarray([f"task-{i % 12}" for i in range(rows)], dtype=object)
    matrices = {name: features(name, design, train, train) for name in CANDIDATES}
    choice = choose(matrices, y, groups, 4)
    for name in CANDIDATES:
        alone = cross_val_predict(make_model(name), matrices[name], y, groups=groups, cv=GroupKFold(n_splits=4),
                                  method="predict_proba")[:, 1]
        assert choice.scores[name] == round(float(roc_auc_score(y, alone)), 4)
        if name == choice.name:
            assert np.array_equal(choice.out_of_fold, alone)
            fitted_alone = make_model(name).fit(matrices[name], y).predict_proba(matrices[name])
            assert np.array_equal(choice.model.predict_proba(matrices[name]), fitted_alone)
    assert 0.5 < choice.scores[choice.name] <= 1.0
