"""The compiled forest must score exactly like LightGBM, including missing values and categoricals."""

from __future__ import annotations

import pickle

import lightgbm as lgb
import numpy as np
import pytest

from pipeline.decision.forest import Forest

N_FEATURES = 6
CAT = 4  # categorical column: float codes 0..11, NaN when missing (as models.to_matrix makes them)


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    X[:, 1] = np.where(rng.random(n) < 0.35, 0.0, np.abs(X[:, 1]))  # many exact zeros
    X[:, 2] = np.round(X[:, 2] * 3)  # few distinct values, exact thresholds
    X[:, CAT] = rng.integers(0, 12, n).astype(float)
    X[rng.random(n) < 0.15, 0] = np.nan
    X[rng.random(n) < 0.10, CAT] = np.nan
    X[rng.random(n) < 0.05, 3] = np.nan
    logit = (
        np.nan_to_num(X[:, 0], nan=1.0)
        + 0.8 * X[:, 1]
        - 0.5 * X[:, 2]
        + 1.5 * np.isin(X[:, CAT], [2, 5, 9])
        + 0.7 * np.isnan(X[:, 3])
    )
    y = (logit + rng.logistic(size=n) > 0.5).astype(float)
    return X, y


def _train(params: dict, rounds: int = 60, seed: int = 0, target=None) -> tuple[lgb.Booster, np.ndarray]:
    X, y = _data(6000, seed)
    y = y if target is None else target(X, y)
    base = {
        "verbose": -1,
        "num_leaves": 31,
        "min_data_in_leaf": 10,
        "min_data_per_group": 10,
        "cat_smooth": 1,
        "num_threads": 2,
        "deterministic": True,
        "force_row_wise": True,
        "seed": seed,
    }
    train = lgb.Dataset(X, y, categorical_feature=[CAT], free_raw_data=False)
    return lgb.train({**base, **params}, train, num_boost_round=rounds), X


def _probe(booster: lgb.Booster, seed: int = 1) -> np.ndarray:
    """Fresh rows plus hostile ones: NaN everywhere, zeros, tiny values, thresholds and their neighbours,
    negative, fractional and unseen category codes."""
    X, _ = _data(3000, seed)
    rng = np.random.default_rng(seed)
    rows = [
        X,
        np.full((5, N_FEATURES), np.nan),
        np.zeros((5, N_FEATURES)),
        np.full((3, N_FEATURES), 1e-36),
        np.full((3, N_FEATURES), -1e-36),
    ]
    forest = Forest.from_booster(booster)
    numeric = (forest.flags & 1) == 0
    for node in np.flatnonzero(numeric)[:400]:
        for value in (
            forest.threshold[node],
            np.nextafter(forest.threshold[node], np.inf),
            np.nextafter(forest.threshold[node], -np.inf),
        ):
            row = X[rng.integers(len(X))].copy()
            row[forest.feature[node]] = value
            rows.append(row[None, :])
    odd = X[:200].copy()
    odd[:, CAT] = rng.choice([-1.0, -0.5, 0.5, 2.9, 11.0, 12.0, 40.0, 1e9, np.nan], 200)
    rows.append(odd)
    return np.vstack(rows)


def _assert_same(booster: lgb.Booster, X: np.ndarray) -> float:
    forest = Forest.from_booster(booster)
    expected = booster.predict(X, raw_score=True)
    got = forest.margin(X)
    diff = float(np.max(np.abs(got - expected)))
    assert diff <= 1e-9, diff
    np.testing.assert_allclose(forest.predict(X), booster.predict(X), rtol=0, atol=1e-12)
    return diff


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"objective": "binary"}, id="binary-nan-missing"),
        pytest.param({"objective": "binary", "zero_as_missing": True}, id="binary-zero-missing"),
        pytest.param({"objective": "binary", "use_missing": False}, id="binary-no-missing"),
        pytest.param(
            {
                "objective": "binary",
                "monotone_constraints": [1, 1, -1, 0, 0, 0],
                "monotone_constraints_method": "advanced",
            },
            id="binary-monotone",
        ),
        pytest.param({"objective": "binary", "max_cat_to_onehot": 32}, id="binary-onehot-cats"),
    ],
)
def test_margin_matches_lightgbm(params):
    booster, _ = _train(params)
    _assert_same(booster, _probe(booster))


def test_model_trees_use_every_missing_type_and_categorical_splits():
    """Guards the test above: the models really exercise the code paths they claim to."""
    seen = set()
    for params in ({"objective": "binary"}, {"objective": "binary", "zero_as_missing": True}):
        forest = Forest.from_booster(_train(params)[0])
        seen |= {int(f) >> 2 for f in forest.flags[(forest.flags & 1) == 0]}
        assert ((forest.flags & 1) == 1).any(), "no categorical split"
    assert {1, 2} <= seen


def test_quantile_regression_matches_lightgbm():
    booster, _ = _train({"objective": "quantile", "alpha": 0.3}, target=lambda X, y: np.log1p(np.abs(X[:, 2])) + y)
    X = _probe(booster)
    _assert_same(booster, X)
    np.testing.assert_allclose(Forest.from_booster(booster).predict(X), booster.predict(X), rtol=0, atol=1e-12)


def test_contributions_are_additive_and_share_treeshap_bias():
    booster, _ = _train({"objective": "binary"})
    forest = Forest.from_booster(booster)
    X = _probe(booster)
    margin, contrib = forest.margin_and_contrib(X)
    np.testing.assert_array_equal(margin, forest.margin(X))
    np.testing.assert_allclose(contrib.sum(axis=1) + forest.expected_value, margin, rtol=0, atol=1e-10)
    shap = booster.predict(X, pred_contrib=True)
    np.testing.assert_allclose(shap[:, -1], forest.expected_value, rtol=0, atol=1e-10)
    assert contrib.shape == (len(X), N_FEATURES)


def test_single_leaf_trees_and_empty_input():
    X, y = _data(200, 0)
    booster = lgb.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 500}, lgb.Dataset(X, y), 3)
    forest = Forest.from_booster(booster)
    np.testing.assert_allclose(forest.margin(X), booster.predict(X, raw_score=True), rtol=0, atol=1e-12)
    margin, contrib = forest.margin_and_contrib(X[:0])
    assert margin.shape == (0,) and contrib.shape == (0, N_FEATURES)


def test_wrong_column_count_is_refused():
    booster, X = _train({"objective": "binary"}, rounds=5)
    with pytest.raises(ValueError, match="columns"):
        Forest.from_booster(booster).margin(X[:, :3])


def test_forest_pickles_without_numba_objects():
    booster, X = _train({"objective": "binary"}, rounds=10)
    forest = Forest.from_booster(booster)
    again = pickle.loads(pickle.dumps(forest))
    np.testing.assert_array_equal(again.margin(X), forest.margin(X))


def test_pipeline_models_score_with_the_forest(trained):
    """PD and limit in the trained scorer equal LightGBM's, and the forest is built once."""
    from pipeline.features import compute_features
    from pipeline.model.boosters import to_matrix

    cfg, valid, result = trained
    scorer = result.scorer
    X = to_matrix(compute_features(valid, scorer.specs, cfg.features, scorer.categories), scorer.feature_names)
    pd_model = scorer.pd_model
    diff = np.max(np.abs(pd_model.raw(X) - pd_model.booster.predict(X)))
    assert diff <= 1e-12
    assert pd_model.forest is pd_model.forest  # cached on the object
    if scorer.limit_model is not None:
        cols = [scorer.feature_names.index(n) for n in scorer.limit_model.names]
        ref = np.exp(scorer.limit_model.booster.predict(X[:, cols]))
        np.testing.assert_allclose(scorer.limit_model.predict(X[:, cols]), ref, rtol=1e-12)
    copy = pickle.loads(pickle.dumps(pd_model))
    assert copy._forest is not None
    np.testing.assert_array_equal(copy.raw(X), pd_model.raw(X))
