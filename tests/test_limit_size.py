"""The limit model's forest size: the cheapest (leaves, trees) the validation rows cannot tell from the best."""

from __future__ import annotations

from types import SimpleNamespace

import lightgbm as lgb
import numpy as np
import pytest

from pipeline.config import LimitModelConfig
from pipeline.model.boosters import (
    _base_params,
    _fit_booster,
    _refit_to_best,
    choose_forest_size,
    pinball,
    train_limit,
    tree_depth,
)

SPECS = [SimpleNamespace(name=f"f{i}", categorical=False) for i in range(4)]  # all _fit_booster reads
OBJECTIVE = {"objective": "quantile", "alpha": 0.3, "metric": "quantile"}


@pytest.fixture(scope="module")
def rows():
    """Train and validation rows whose validation curve flattens well before early stopping ends it."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 4))
    limit = np.exp(8 + X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + 0.6 * rng.normal(size=3000))
    return X[:2000], limit[:2000], X[2000:], limit[2000:]


def config(tolerance: float, leaves: list[int] | None = None) -> LimitModelConfig:
    return LimitModelConfig(
        params={"learning_rate": 0.1, "num_leaves": 15, "min_data_in_leaf": 50},
        num_boost_round=300,
        early_stopping_rounds=20,
        num_leaves_candidates=[3, 7, 15] if leaves is None else leaves,
        size_tolerance_se=tolerance,
    )


def valid_losses(model, Xv, limit_v) -> np.ndarray:
    return pinball(np.log(limit_v), np.log(model.predict(Xv, compiled=False)), model.alpha)


def test_tolerance_zero_keeps_the_lowest_validation_loss(rows):
    """Size tolerance 0 is the earlier rule: the lowest early-stopped loss, ties to the smaller trees."""
    X, limit, Xv, limit_v = rows
    model = train_limit(X, limit, Xv, limit_v, SPECS, config(0.0), seed=1)
    trials = model.report["trials"]
    best = trials[int(np.argmin([t["valid_quantile_loss"] for t in trials]))]
    assert model.report["chosen_num_leaves"] == best["num_leaves"] == model.report["best_num_leaves"]
    assert model.report["chosen_trees"] == best["trees"] == model.report["best_trees"]
    assert model.booster.current_iteration() == best["trees"]
    # the earlier code path, written out: fit the winning size, keep its trees up to the best iteration
    params = _base_params({**config(0.0).params, "num_leaves": best["num_leaves"]}, 1)
    earlier = _refit_to_best(_fit_booster(X, np.log(limit), Xv, np.log(limit_v), SPECS, params, 300, 20, OBJECTIVE))
    assert model.booster.model_to_string() == earlier.model_to_string()


@pytest.mark.parametrize("tolerance", [1.0, 3.0])
def test_positive_tolerance_keeps_a_cheaper_forest_within_tolerance(rows, tolerance):
    X, limit, Xv, limit_v = rows
    best = train_limit(X, limit, Xv, limit_v, SPECS, config(0.0), seed=1)
    model = train_limit(X, limit, Xv, limit_v, SPECS, config(tolerance), seed=1)
    report = model.report
    assert report["chosen_cost"] == report["chosen_trees"] * tree_depth(report["chosen_num_leaves"])
    assert report["chosen_cost"] <= report["best_cost"]
    assert model.booster.current_iteration() == report["chosen_trees"]  # exactly the chosen trees are kept
    assert max(t["num_leaves"] for t in model.booster.dump_model()["tree_info"]) <= report["chosen_num_leaves"]
    # recomputed from the two kept boosters, not from the report: the paired difference is within tolerance
    diff = valid_losses(model, Xv, limit_v) - valid_losses(best, Xv, limit_v)
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    assert diff.mean() <= tolerance * se + 1e-12
    assert report["chosen_loss"] == pytest.approx(valid_losses(model, Xv, limit_v).mean(), rel=1e-9)
    assert report["best_loss"] == pytest.approx(valid_losses(best, Xv, limit_v).mean(), rel=1e-9)
    if tolerance >= 3.0:  # on these rows the curves are flat enough for a real cut
        assert report["chosen_cost"] < report["best_cost"]


def test_one_tree_size_keeps_fewer_or_equal_trees(rows):
    X, limit, Xv, limit_v = rows
    best = train_limit(X, limit, Xv, limit_v, SPECS, config(0.0, [7]), seed=1)
    for tolerance in (0.5, 1.0, 2.0):
        model = train_limit(X, limit, Xv, limit_v, SPECS, config(tolerance, [7]), seed=1)
        assert model.report["chosen_num_leaves"] == 7
        assert model.booster.current_iteration() == model.report["chosen_trees"] <= best.report["chosen_trees"]


def test_a_larger_tolerance_never_keeps_a_dearer_forest(rows):
    X, limit, Xv, limit_v = rows
    yv, leaves = np.log(limit_v), [3, 7, 15]
    fits = [
        _fit_booster(
            X,
            np.log(limit),
            Xv,
            yv,
            SPECS,
            _base_params({**config(0.0).params, "num_leaves": n}, 1),
            300,
            20,
            OBJECTIVE,
        )
        for n in leaves
    ]
    costs = [choose_forest_size(fits, leaves, Xv, yv, 0.3, k)[0].cost for k in (0.0, 0.5, 1.0, 2.0, 4.0, 1e6)]
    assert costs == sorted(costs, reverse=True)
    assert costs[-1] == min(tree_depth(n) for n in leaves)  # unbounded tolerance: one tree of the smallest size


def test_report_says_why(rows):
    X, limit, Xv, limit_v = rows
    report = train_limit(X, limit, Xv, limit_v, SPECS, config(1.0), seed=1).report
    for key in (
        "chosen_num_leaves",
        "chosen_trees",
        "chosen_loss",
        "chosen_cost",
        "best_num_leaves",
        "best_trees",
        "best_loss",
        "best_cost",
        "size_tolerance_se",
        "loss_se",
        "difference_se",
        "allowed_difference",
        "validation_rows",
        "trials",
    ):
        assert key in report, key
    assert report["size_tolerance_se"] == 1.0 and report["validation_rows"] == len(limit_v)
    assert report["loss_se"] > report["difference_se"] >= 0  # the paired error is the smaller one
    assert report["allowed_difference"] == pytest.approx(report["size_tolerance_se"] * report["difference_se"])
    assert report["chosen_loss"] - report["best_loss"] <= report["allowed_difference"] + 1e-12


def test_search_stays_within_early_stopping(rows):
    """A cluster fitter returns every round with best_iteration set: later rounds are never candidates."""
    X, limit, Xv, limit_v = rows

    def full_length(X, y, Xv, yv, specs, params, rounds, early, objective) -> lgb.Booster:
        booster = lgb.train({**params, **objective}, lgb.Dataset(X, y), num_boost_round=rounds)
        booster.best_iteration = 30
        losses = pinball(yv, np.asarray(booster.predict(Xv, raw_score=True, num_iteration=30)), objective["alpha"])
        booster.best_score = {"valid_0": {"quantile": float(losses.mean())}}
        return booster

    for tolerance in (0.0, 1.0):
        model = train_limit(X, limit, Xv, limit_v, SPECS, config(tolerance, [7, 15]), seed=1, fitter=full_length)
        assert model.report["best_trees"] == 30
        assert model.booster.current_iteration() == model.report["chosen_trees"] <= 30


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_config_rejects_a_negative_or_non_finite_tolerance(bad):
    with pytest.raises(ValueError, match="size_tolerance_se"):
        LimitModelConfig(size_tolerance_se=bad)
