"""The PD model is refitted on training + validation rows once early stopping has chosen the tree count."""

from types import SimpleNamespace

import lightgbm as lgb
import numpy as np

from pipeline.config import PDModelConfig
from pipeline.model.boosters import _base_params, train_pd


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(4000, 4))
    logit = -1.5 + X[:, 0] - 0.7 * X[:, 1] + 0.5 * X[:, 2] * X[:, 3]
    y = (rng.random(4000) < 1 / (1 + np.exp(-logit))).astype(int)
    specs = [SimpleNamespace(name=f"f{i}", categorical=False, direction=0) for i in range(4)]
    return X, y, specs


def _train(refit: bool):
    X, y, specs = _data()
    cfg = PDModelConfig(num_boost_round=300, early_stopping_rounds=20, monotone="off", refit_with_validation=refit)
    tr, va, ca = slice(0, 2400), slice(2400, 3000), slice(3000, 4000)
    model, _ = train_pd(X[tr], y[tr], X[va], y[va], X[ca], y[ca], specs, cfg, seed=3)
    return model, cfg, (X, y, specs, tr, va)


def test_refit_uses_training_and_validation_rows_with_trees_scaled_by_rows():
    model, cfg, (X, y, specs, tr, va) = _train(refit=True)
    refit = model.report["refit"]
    early = refit["trees_early_stopped"]
    assert refit["refit"] and refit["rows"] == 3000
    assert refit["trees"] == round(early * 3000 / 2400) == model.booster.current_iteration() == model.best_iteration
    # the same booster, fitted by hand on both splits: the refit really saw the validation rows
    objective = {
        "objective": "binary",
        "metric": ["binary_logloss", "auc"],
        "monotone_constraints": [0, 0, 0, 0],
        "monotone_constraints_method": "intermediate",
    }
    data = lgb.Dataset(
        np.concatenate([X[tr], X[va]]), np.concatenate([y[tr], y[va]]), feature_name=["f0", "f1", "f2", "f3"]
    )
    by_hand = lgb.train({**_base_params(cfg.params, 3), **objective}, data, num_boost_round=refit["trees"])
    np.testing.assert_allclose(model.booster.predict(X[:500]), by_hand.predict(X[:500]), rtol=0, atol=1e-12)


def test_without_refit_the_early_stopped_booster_is_kept():
    model, _, (X, *_rest) = _train(refit=False)
    refit = model.report["refit"]
    assert refit == {"refit": False, "trees_early_stopped": model.booster.current_iteration()}
    with_refit, *_ = _train(refit=True)
    assert with_refit.report["refit"]["trees_early_stopped"] == refit["trees_early_stopped"]
    assert not np.allclose(model.booster.predict(X[:500]), with_refit.booster.predict(X[:500]))
