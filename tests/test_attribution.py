"""Reason-code attribution: fast path attribution vs LightGBM's exact TreeSHAP."""

from __future__ import annotations

import pickle

import numpy as np

from pipeline.decision.reasons import agreement, contributions, exact, forest_of, top_reasons
from pipeline.features import compute_features
from pipeline.model.boosters import to_matrix


def _matrix(trained):
    cfg, valid, result = trained
    scorer = result.scorer
    X = to_matrix(compute_features(valid, scorer.specs, cfg.features, scorer.categories), scorer.feature_names)
    return scorer, X


def test_contributions_are_additive_on_the_log_odds(trained):
    scorer, X = _matrix(trained)
    booster = scorer.pd_model.booster
    contrib = contributions(scorer.pd_model, X)
    shap = booster.predict(X, pred_contrib=True)
    np.testing.assert_allclose(contrib.sum(axis=1) + shap[:, -1], booster.predict(X, raw_score=True), atol=1e-9)
    np.testing.assert_allclose(shap[:, :-1], exact(booster, X))


def test_any_model_handle_gives_the_same_attribution(trained):
    scorer, X = _matrix(trained)
    booster = scorer.pd_model.booster
    base = contributions(scorer.pd_model, X[:500])
    np.testing.assert_array_equal(contributions(booster, X[:500]), base)
    np.testing.assert_array_equal(contributions(forest_of(booster), X[:500]), base)
    assert forest_of(booster) is forest_of(booster)  # bare boosters are flattened once


def test_reason_codes_mostly_agree_with_treeshap(trained):
    """Agreement is measured and reported; the floor only catches a broken method (see docs/reason-codes.md)."""
    scorer, X = _matrix(trained)
    rates = agreement(contributions(scorer.pd_model, X), exact(scorer.pd_model.booster, X), k=3)
    print(f"\nreason agreement with TreeSHAP on {int(rates['rows'])} rows: {rates}")
    assert rates["top1"] > 0.6
    assert rates["top1_in_topk"] > 0.8


def test_agreement_of_identical_attributions_is_total():
    rng = np.random.default_rng(0)
    c = rng.normal(size=(100, 8))
    rates = agreement(c, c, k=3)
    assert rates["top1"] == rates["topk_set"] == rates["topk_order"] == 1.0


def test_scored_reasons_come_from_the_one_pass_attribution(trained):
    """With `exact_reasons: none` every row's reasons are the path attribution of the PD's own walk."""
    cfg, valid, result = trained
    scorer, X = _matrix(trained)
    scorer = pickle.loads(pickle.dumps(scorer))  # the fixture is shared: change a copy
    scorer.exact_reasons = "none"
    scored = scorer.score_valid(valid, X)
    assert (scored["reason_method"] == "path").all()
    texts = [s.reason for s in scorer.specs]
    expected = top_reasons(contributions(scorer.pd_model, X), texts, scorer.reason_k)
    assert scorer.reason_k > 0
    for i in range(scorer.reason_k):
        got = [None if not isinstance(v, str) else v for v in scored[f"reason_{i + 1}"]]
        assert got == list(expected[:, i])
    np.testing.assert_allclose(scored["pd"], scorer.pd_model.calibrator(scorer.pd_model.booster.predict(X)), atol=1e-12)
