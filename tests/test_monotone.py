"""Monotone constraints from evidence: a wrong prior is relaxed, a right one kept, overrides win, budget holds."""

from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.model.monotone import (
    ConstraintSettings,
    choose_constraints,
    lightgbm_fitter,
    prior_directions,
    wrong_way_movement,
)

NAMES = ["u_shaped", "rising", "falling", "noise"]
PRIOR = [1, 1, -1, 0]  # the dictionary believes u_shaped is monotone rising: wrong


def data(n: int, u_shaped: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    first = 1.5 * X[:, 0] ** 2 if u_shaped else 0.8 * X[:, 0]
    z = -2.5 + first + 1.0 * X[:, 1] - 0.8 * X[:, 2]
    return X, (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)


@pytest.fixture(scope="module")
def fitter():
    return lightgbm_fitter({"num_threads": 1}, num_boost_round=150, early_stopping_rounds=20)


@pytest.fixture(scope="module")
def u_shaped_result(fitter):
    X, y = data(4000, u_shaped=True)
    return choose_constraints(X, y, PRIOR, fitter, names=NAMES)


def test_non_monotone_feature_is_relaxed_and_monotone_ones_kept(u_shaped_result):
    final, report = u_shaped_result
    assert final == [0, 1, -1, 0]
    rows = {r["feature"]: r for r in report["features"]}
    assert rows["u_shaped"]["status"] == "relaxed" and rows["u_shaped"]["auc_cost"] > 0.002
    assert rows["rising"]["status"] == "kept" and rows["falling"]["status"] == "kept"
    assert rows["noise"]["status"].startswith("unconstrained")
    assert report["relaxed"] == ["u_shaped"]
    assert report["fits"] <= ConstraintSettings().max_fits
    # the screen puts the wrong constraint first: it is the one the unconstrained models break most
    assert rows["u_shaped"]["wrong_way"] > 5 * max(rows["rising"]["wrong_way"], rows["falling"]["wrong_way"])


def test_overrides_win_over_evidence(fitter):
    X, y = data(4000, u_shaped=True)
    final, report = choose_constraints(
        X, y, PRIOR, fitter, names=NAMES, overrides={"u_shaped": 1, "rising": 0, "noise": -1}
    )
    assert final == [1, 0, -1, -1]
    rows = {r["feature"]: r for r in report["features"]}
    assert all(rows[n]["status"] == "override" for n in ("u_shaped", "rising", "noise"))


def test_override_of_unknown_feature_fails(fitter):
    X, y = data(500, u_shaped=False)
    with pytest.raises(ValueError, match="monthly_income"):
        choose_constraints(X, y, PRIOR, fitter, names=NAMES, overrides={"monthly_income": 0})


def test_right_priors_cost_two_cv_rounds_only(fitter):
    X, y = data(4000, u_shaped=False)
    final, report = choose_constraints(X, y, PRIOR, fitter, names=NAMES)
    assert final == PRIOR
    assert report["fits"] == 2 * ConstraintSettings().folds
    assert report["unconstrained_gain"] <= 0.002
    assert not report["relaxed"]


def test_fit_budget_is_respected(fitter):
    X, y = data(4000, u_shaped=True)
    settings = ConstraintSettings(max_fits=6)
    final, report = choose_constraints(X, y, PRIOR, fitter, names=NAMES, settings=settings)
    assert report["fits"] == 6
    assert final == PRIOR  # nothing tested, so the prior stands
    assert all(r["status"].startswith("kept (untested") for r in report["features"] if r["prior"])


def test_priors_from_feature_specs_leave_categoricals_unconstrained():
    specs = [
        SimpleNamespace(name="utilization", direction=1, categorical=False),
        SimpleNamespace(name="housing", direction=1, categorical=True),
        SimpleNamespace(name="monthly_income", direction=-1, categorical=False),
    ]
    assert prior_directions(specs) == (["utilization", "housing", "monthly_income"], [1, 0, -1])
    assert prior_directions([1, 0], ["a", "b"]) == (["a", "b"], [1, 0])


def test_wrong_way_movement_measures_only_moves_against_the_direction():
    X = np.random.default_rng(0).normal(size=(200, 2))
    rising = lambda Z: 1 / (1 + np.exp(-Z[:, 0]))  # noqa: E731
    u_shape = lambda Z: 1 / (1 + np.exp(-(Z[:, 0] ** 2)))  # noqa: E731
    assert wrong_way_movement(rising, X, 0, 1, 10) == 0.0
    assert wrong_way_movement(rising, X, 0, -1, 10) > 0.5
    assert wrong_way_movement(u_shape, X, 0, 1, 10) > 0.1
