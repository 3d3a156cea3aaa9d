"""Exact TreeSHAP must equal LightGBM's pred_contrib on every row, including NaN rows and categoricals."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from pipeline.decision.forest import Forest
from pipeline.decision.treeshap import (
    ShapForest,
    expected_value,
    shap_forest,
    shap_values,
    top_k_exact,
)

N_FEATURES = 7
CAT = 4  # categorical column: float codes 0..11, NaN when missing (as boosters.to_matrix makes them)
TOL = 1e-9


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """~10% NaN in every column, exact zeros, few distinct values, and NaN-ness that carries signal."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    X[:, 1] = np.where(rng.random(n) < 0.35, 0.0, np.abs(X[:, 1]))
    X[:, 2] = np.round(X[:, 2] * 3)
    X[:, CAT] = rng.integers(0, 12, n).astype(float)
    missing = rng.random(X.shape) < 0.10
    logit = (
        X[:, 0]
        + 0.8 * X[:, 1]
        - 0.5 * X[:, 2]
        + 1.5 * np.isin(X[:, CAT], [2, 5, 9])
        + 0.9 * missing[:, 3]
        - 0.7 * missing[:, 0]
        + 0.6 * X[:, 5] * X[:, 6]
    )
    X[missing] = np.nan
    y = (logit + rng.logistic(size=n) > 0.3).astype(float)
    return X, y


_BOOSTERS: dict[tuple[str, int], lgb.Booster] = {}


def _train(params: dict, rounds: int = 30, target=None) -> lgb.Booster:
    """Train (or reuse: the guard test and the exactness tests share models, keeping the suite fast)."""
    key = (repr(sorted(params.items())), rounds)
    if target is None and key in _BOOSTERS:
        return _BOOSTERS[key]
    X, y = _data(3000, 0)
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
        "seed": 0,
    }
    booster = lgb.train({**base, **params}, lgb.Dataset(X, y, categorical_feature=[CAT]), num_boost_round=rounds)
    if target is None:
        _BOOSTERS[key] = booster
    return booster


def _probe(booster: lgb.Booster) -> np.ndarray:
    """Fresh rows plus hostile ones: all-NaN, zeros, |x| <= 1e-35, thresholds and their neighbours, odd categories."""
    X, _ = _data(1000, 1)
    rng = np.random.default_rng(1)
    rows = [X, np.full((3, N_FEATURES), np.nan), np.zeros((3, N_FEATURES)), np.full((2, N_FEATURES), 1e-36)]
    forest = Forest.from_booster(booster)
    for node in np.flatnonzero((forest.flags & 1) == 0)[:150]:
        for value in (forest.threshold[node], np.nextafter(forest.threshold[node], np.inf)):
            row = X[rng.integers(len(X))].copy()
            row[forest.feature[node]] = value
            rows.append(row[None, :])
    odd = X[:100].copy()
    odd[:, CAT] = rng.choice([-1.0, -0.5, 0.5, 2.9, 11.0, 12.0, 40.0, 1e9, np.nan], 100)
    rows.append(odd)
    return np.vstack(rows)


def _assert_exact(booster: lgb.Booster, X: np.ndarray, forest: ShapForest | None = None) -> None:
    """Per-entry equality with pred_contrib (NaN rows checked on their own), bias, additivity, top-4 reasons."""
    forest = forest or ShapForest.from_booster(booster)
    ref = booster.predict(X, pred_contrib=True)
    got = forest.shap_values(X)
    assert got.shape == (len(X), booster.num_feature())
    nan_rows = np.isnan(X).any(axis=1)
    assert nan_rows.sum() > 100, "the probe must contain many rows with missing values"
    assert np.max(np.abs(got[nan_rows] - ref[nan_rows, :-1])) <= TOL
    assert np.max(np.abs(got - ref[:, :-1])) <= TOL
    assert abs(forest.expected_value - ref[0, -1]) <= TOL
    raw = booster.predict(X, raw_score=True)
    assert np.max(np.abs(got.sum(axis=1) + forest.expected_value - raw)) <= TOL
    np.testing.assert_array_equal(top_k_exact(got, 4), top_k_exact(ref[:, :-1], 4))


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"objective": "binary"}, id="binary-nan-missing"),
        pytest.param({"objective": "binary", "zero_as_missing": True}, id="binary-zero-missing"),
        pytest.param({"objective": "binary", "use_missing": False}, id="binary-no-missing"),
        pytest.param({"objective": "binary", "max_cat_to_onehot": 32}, id="binary-onehot-cats"),
        pytest.param({"objective": "binary", "num_leaves": 2}, id="stumps"),
        pytest.param({"objective": "binary", "max_depth": 3, "num_leaves": 8}, id="depth-3"),
        pytest.param({"objective": "binary", "num_leaves": 100, "min_data_in_leaf": 5}, id="over-64-nodes"),
    ],
)
def test_equals_pred_contrib(params):
    booster = _train(params)
    _assert_exact(booster, _probe(booster))


def test_regression_objective_equals_pred_contrib():
    booster = _train({"objective": "regression"}, target=lambda X, y: np.nan_to_num(X[:, 0], nan=2.0) * 3 + y)
    _assert_exact(booster, _probe(booster))


def test_random_forest_averaged_output_equals_pred_contrib():
    """LightGBM's pred_contrib and raw_score of an rf model are sums over trees (not averages); so are ours."""
    booster = _train({"objective": "binary", "boosting": "rf", "bagging_fraction": 0.7, "bagging_freq": 1}, rounds=15)
    assert booster.dump_model().get("average_output")
    _assert_exact(booster, _probe(booster))


def test_polynomial_fallback_is_exact_too():
    """Leaves too deep for a table (max_bits) or beyond the byte budget use EXTEND/UNWIND; both must stay exact."""
    booster = _train({"objective": "binary"}, rounds=20)
    X = _probe(booster)
    for forest in (ShapForest.from_booster(booster, max_bits=2), ShapForest.from_booster(booster, max_table_bytes=0)):
        assert (forest.table_start < 0).any()
        _assert_exact(booster, X, forest)
    wide = _train({"objective": "binary", "num_leaves": 100, "min_data_in_leaf": 5}, rounds=5)
    forest = ShapForest.from_booster(wide, max_bits=3)
    assert forest.max_nodes > 64 and (forest.table_start < 0).any()
    _assert_exact(wide, _probe(wide), forest)


def test_models_exercise_missing_types_default_directions_and_categoricals():
    """Guards the tests above: NaN rows meet splits whose default direction goes either way, and categorical splits."""
    seen_missing, seen_default = set(), set()
    for params in ({"objective": "binary"}, {"objective": "binary", "zero_as_missing": True}):
        flags = Forest.from_booster(_train(params)).flags
        numeric = flags[(flags & 1) == 0]
        seen_missing |= {int(f) >> 2 for f in numeric}
        seen_default |= {int(f) & 2 for f in numeric if int(f) >> 2 == 2}
        assert ((flags & 1) == 1).any(), "no categorical split"
    assert {1, 2} <= seen_missing
    assert seen_default == {0, 2}, "NaN must go left at some nodes and right at others"


def test_single_leaf_trees_only_add_to_the_bias():
    X, y = _data(300, 0)
    booster = lgb.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 500}, lgb.Dataset(X, y), 3)
    ref = booster.predict(X, pred_contrib=True)
    got = shap_values(booster, X)
    np.testing.assert_array_equal(got, np.zeros_like(got))
    assert abs(expected_value(booster) - ref[0, -1]) <= TOL
    np.testing.assert_allclose(ref[:, :-1], 0.0, atol=0)


def test_api_caches_per_booster_and_accepts_model_handles():
    booster = _train({"objective": "binary"}, rounds=10)
    X = _probe(booster)[:300]
    assert shap_forest(booster) is shap_forest(booster)

    class Holder:  # stands in for PDModel / LimitModel, which hold their booster
        def __init__(self, b: lgb.Booster) -> None:
            self.booster = b

    base = shap_values(booster, X)
    np.testing.assert_array_equal(shap_values(Holder(booster), X), base)
    np.testing.assert_array_equal(shap_values(shap_forest(booster), X), base)
    np.testing.assert_array_equal(shap_values(booster, X, num_threads=1), base)
    np.testing.assert_array_equal(shap_values(booster, X[:1]), base[:1])
    assert shap_values(booster, X[:0]).shape == (0, N_FEATURES)
    assert expected_value(booster) == shap_forest(booster).expected_value
    with pytest.raises(TypeError, match="node counts"):
        shap_values(Forest.from_booster(booster), X)
    with pytest.raises(ValueError, match="columns"):
        shap_values(booster, X[:, :3])


def test_top_k_exact_rule():
    """Largest positive first, equal values to the lower feature index, -1 where fewer than k are positive."""
    contrib = np.array(
        [
            [0.1, 0.5, 0.5, -1.0, 0.0],
            [np.nan, -0.2, 0.3, 0.3, 0.3],
            [-1.0, -2.0, 0.0, -0.0, -3.0],
        ]
    )
    np.testing.assert_array_equal(top_k_exact(contrib, 4), [[1, 2, 0, -1], [2, 3, 4, -1], [-1, -1, -1, -1]])
    np.testing.assert_array_equal(top_k_exact(contrib, 7)[:, 5:], -1)
    assert top_k_exact(contrib, 0).shape == (3, 0)
    with pytest.raises(ValueError):
        top_k_exact(contrib[0], 2)


@settings(max_examples=examples(200), deadline=None)
@given(
    st.integers(1, 40),
    st.integers(0, 12),
    st.integers(0, 6),
    st.integers(0, 2**32 - 1),
)
def test_top_k_exact_equals_a_stable_sort(rows, features, k, seed):
    """The one-pass selection against the rule written as a sort: positive values by (-value, index), first k;
    values drawn from a few levels, so ties are common, with NaN, zeros and negatives."""
    rng = np.random.default_rng(seed)
    levels = np.array([np.nan, -1.0, -0.0, 0.0, 0.25, 0.5, 0.5, 1.0, 2.0])
    contrib = rng.choice(levels, size=(rows, features)) * rng.choice([1.0, 1.0, 1e-300, 1e300], size=(rows, features))
    want = np.full((rows, k), -1)
    for r in range(rows):
        ranked = sorted((i for i in range(features) if contrib[r, i] > 0), key=lambda i: (-contrib[r, i], i))[:k]
        want[r, : len(ranked)] = ranked
    np.testing.assert_array_equal(top_k_exact(contrib, k), want)


@pytest.mark.parametrize("k", [1, 3, 4, 9])
def test_top_k_exact_equals_a_sort_of_the_positive_values(k):
    """Against a plain sort by (value descending, feature ascending) of each row's positive values: many ties,
    NaN, zeros and negatives; rows longer than a parallel block."""
    rng = np.random.default_rng(k)
    contrib = rng.choice([-1.0, 0.0, 0.25, 0.5, 1.0, np.nan], size=(5000, 8)) * rng.choice([1.0, 1.0, 0.5], (5000, 1))
    contrib[::3] = rng.normal(size=(len(contrib[::3]), 8))
    want = np.full((len(contrib), k), -1)
    for r, row in enumerate(contrib):
        ranked = sorted((-v, i) for i, v in enumerate(row) if v > 0)[:k]
        want[r, : len(ranked)] = [i for _, i in ranked]
    np.testing.assert_array_equal(top_k_exact(contrib, k), want)
