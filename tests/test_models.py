"""PD and limit models: inputs, constraints, calibration, splits, cross-validation."""

import numpy as np
import pandas as pd

from helpers import small_config
from pipeline.features import categories
from pipeline.model.boosters import to_matrix
from pipeline.model.splits import make_splits
from pipeline.model.train import fit


def test_protected_attributes_are_inputs_of_neither_model(trained):
    cfg, valid, result = trained
    pd_inputs = set(result.scorer.pd_model.booster.feature_name())
    limit_inputs = set(result.scorer.limit_model.booster.feature_name())
    for attr in cfg.contract.protected:
        assert attr in valid.columns  # present in the data...
        assert attr not in pd_inputs and attr not in limit_inputs  # ...but never a model input
    # and changing it changes no score
    flipped = valid.head(500).copy()
    flipped["gender"] = np.where(flipped["gender"] == "male", "female", "male")
    a = result.scorer.score_valid(valid.head(500))
    b = result.scorer.score_valid(flipped)
    pd.testing.assert_frame_equal(a, b)


def test_limit_model_never_sees_limit_derived_features(trained):
    _, _, result = trained
    uses_limit = {s.name for s in result.scorer.specs if s.uses_limit}
    assert uses_limit  # utilisation and friends exist in this data
    assert not uses_limit & set(result.scorer.limit_model.booster.feature_name())


def test_pd_is_monotone_in_features_with_a_risk_direction(trained):
    cfg, valid, result = trained
    scorer = result.scorer
    X = scorer.matrix(valid.head(200))
    for name in ("debt_to_income", "utilization", "months_delinquent", "payment_ratio_mean"):
        i = scorer.feature_names.index(name)
        direction = next(s.direction for s in scorer.specs if s.name == name)
        grid = np.nanquantile(X[:, i], np.linspace(0, 1, 12))
        preds = []
        for value in grid:
            Xg = X.copy()
            Xg[:, i] = value
            preds.append(scorer.pd_model.raw(Xg))
        diffs = np.diff(np.array(preds), axis=0) * direction
        assert np.all(diffs >= -1e-12), name


def test_pd_is_calibrated_probability(trained):
    cfg, valid, result = trained
    p = result.test_scores["pd"].to_numpy()
    assert np.all((p >= 0) & (p <= 1))
    assert result.metrics["test_ece"] < 0.05
    observed = valid.iloc[result.splits["test"]]["defaulted"].mean()
    assert abs(p.mean() - observed) < 0.03  # no class re-weighting distorting the level
    assert result.metrics["test_roc_auc"] > 0.7


def test_out_of_time_split_puts_the_latest_applications_in_test(trained):
    cfg, valid, result = trained
    dates = valid["application_date"]
    parts = result.splits
    assert dates.iloc[parts["test"]].min() >= dates.iloc[parts["train"]].max()
    assert result.split_method.startswith("out-of-time")
    all_idx = np.concatenate(list(parts.values()))
    assert len(all_idx) == len(np.unique(all_idx)) == len(valid)


def test_stratified_split_without_dates(trained):
    cfg, valid, _ = trained
    parts, how = make_splits(valid.drop(columns=["application_date"]), "defaulted", cfg.split)
    assert how == "stratified random"
    rate = valid["defaulted"].mean()
    for name, idx in parts.items():
        assert abs(valid["defaulted"].iloc[idx].mean() - rate) < 0.01, name
    assert abs(len(parts["train"]) / len(valid) - cfg.split.train) < 0.01


def test_cross_validation_and_bounded_search(tmp_path):
    cfg = small_config(
        tmp_path,
        rows=1500,
        split={"cv_folds": 3},
        # monotone "prior": the search and the folds are under test, not the evidence check (test_monotone.py)
        pd_model={"search": {"trials": 2, "time_budget_s": 60}, "calibration": "sigmoid", "monotone": "prior"},
    )
    from pipeline.data.sources import load_source

    frame = load_source(cfg).frame
    result = fit(frame, cfg)
    assert result.metrics["cv_folds"] == 3
    assert 0.5 < result.metrics["cv_roc_auc_mean"] <= 1 and result.metrics["cv_roc_auc_std"] >= 0
    assert len(result.search["trials"]) == 3  # the config's parameters plus two sampled


def test_matrix_uses_fixed_category_codes(trained):
    cfg, valid, result = trained
    feats = result.scorer.features(valid.head(50))
    X = to_matrix(feats, result.scorer.feature_names)
    i = result.scorer.feature_names.index("housing")
    expected = [categories(cfg.contract)["housing"].index(h) for h in valid["housing"].head(50)]
    assert X[:, i].tolist() == expected


def test_data_without_granted_limit_skips_the_limit_model(tmp_path):
    cfg = small_config(tmp_path, rows=1500, pd_model={"monotone": "prior"})  # the limit model is under test
    from pipeline.data.sources import load_source

    frame = load_source(cfg).frame.drop(columns=["granted_limit"])
    result = fit(frame, cfg)
    assert result.scorer.limit_model is None
    assert any("limit model skipped" in n for n in result.notes)
    approved = result.test_scores[result.test_scores["decision"] == "approve"]
    assert len(approved) and (approved["credit_limit"] > 0).all()


def test_calibrated_pd_never_claims_certainty():
    from pipeline.model.boosters import fit_calibrator

    raw = np.linspace(0.01, 0.9, 200)
    y = (raw > 0.5).astype(int)  # a perfectly separable calibration split: isotonic maps to 0 and 1
    for method in ("isotonic", "sigmoid", "none"):
        cal = fit_calibrator(raw, y, method, floor=0.0005)
        out = cal(np.array([0.0, 0.001, 0.999, 1.0]))
        assert out.min() >= 0.0005 and out.max() <= 0.9995, method
    iso = fit_calibrator(raw, y, "isotonic", floor=0.0005)
    assert iso(np.array([0.2]))[0] == 0.0005 and iso(np.array([0.8]))[0] == 0.9995


def test_limit_model_size_is_chosen_on_validation_loss():
    """One fit per candidate size; with size tolerance 0 the lowest validation quantile loss wins, ties to the
    smaller trees (tests/test_limit_size.py: the cheaper forests a positive tolerance keeps)."""
    from types import SimpleNamespace

    from pipeline.config import LimitModelConfig
    from pipeline.model.boosters import train_limit

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 4))
    limit = np.exp(8 + X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + 0.2 * rng.normal(size=3000))
    specs = [SimpleNamespace(name=f"f{i}", categorical=False) for i in range(4)]  # all _fit_booster reads
    cfg = LimitModelConfig(
        num_boost_round=60, early_stopping_rounds=10, num_leaves_candidates=[15, 3, 7], size_tolerance_se=0
    )
    model = train_limit(X[:2000], limit[:2000], X[2000:], limit[2000:], specs, cfg, seed=1)
    trials = model.report["trials"]
    assert [t["num_leaves"] for t in trials] == [3, 7, 15]
    losses = [t["valid_quantile_loss"] for t in trials]
    assert model.report["chosen_num_leaves"] == trials[int(np.argmin(losses))]["num_leaves"]
    assert max(t["num_leaves"] for t in model.booster.dump_model()["tree_info"]) <= model.report["chosen_num_leaves"]
    fixed_cfg = cfg.model_copy(update={"num_leaves_candidates": []})
    fixed = train_limit(X[:2000], limit[:2000], X[2000:], limit[2000:], specs, fixed_cfg, seed=1)
    assert fixed.report["chosen_num_leaves"] == cfg.params["num_leaves"]


def test_limit_model_candidates_need_two_leaves():
    import pytest

    from pipeline.config import LimitModelConfig

    with pytest.raises(ValueError, match="at least 2 leaves"):
        LimitModelConfig(num_leaves_candidates=[1, 7])
