"""The scoring path's speed features: compiled forests, the limit model only where it matters, exact reasons."""

from __future__ import annotations

import logging
import pickle
import threading
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_info

import pipeline.decision.scorer as scorer_module
from pipeline.config import ScoringConfig
from pipeline.decision.compiled import CompiledForest
from pipeline.decision.forest import Forest
from pipeline.decision.offers import offer_inputs_from_frame, search_offers
from pipeline.decision.policy import REASONS, decide
from pipeline.decision.reasons import top_reasons
from pipeline.decision.scorecard import pd_to_score, score_to_grade_index
from pipeline.decision.scorer import one_blas_thread
from pipeline.decision.treeshap import top_k_exact
from pipeline.features import living_cost


def _copy(scorer, **changes):
    """An independent scorer (the session fixture is shared: never mutate it)."""
    fresh = pickle.loads(pickle.dumps(scorer))
    for key, value in changes.items():
        setattr(fresh, key, value)
    return fresh


@pytest.fixture(scope="module")
def scored(trained):
    """The trained scorer with missing values injected into the matrix, so NaN paths are exercised."""
    cfg, valid, result = trained
    scorer = result.scorer
    X = scorer.matrix(valid)
    rng = np.random.default_rng(7)
    X[rng.random(X.shape) < 0.08] = np.nan
    compiled = _copy(scorer)
    compiled.compile(ScoringConfig())
    return cfg, valid, scorer, X, compiled


def _frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    for col in a.columns:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        if x.dtype.kind == "f":
            np.testing.assert_array_equal(x, y, err_msg=col)
        else:
            assert [None if v is None or v != v else v for v in x] == [None if v is None or v != v else v for v in y], (
                col
            )


# ------------------------------------------------------------------ compiled forests


def test_compiled_scores_equal_the_numba_path(scored):
    _, valid, scorer, X, compiled = scored
    assert compiled.pd_model.compiled_blob and compiled.limit_model.compiled_blob
    assert isinstance(compiled.pd_model.engine(), CompiledForest)
    assert isinstance(compiled.limit_model.engine(), CompiledForest)
    numba = _copy(compiled, compiled=False)
    a, b = compiled.score_valid(valid, X), numba.score_valid(valid, X)
    np.testing.assert_allclose(a["pd"], b["pd"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(a["credit_limit"], b["credit_limit"], rtol=0, atol=1e-9)
    _frames_equal(a, b)  # in fact identical: the kernels add in the same order
    cols = [scorer.feature_names.index(n) for n in scorer.limit_model.names]
    ref = np.exp(scorer.limit_model.booster.predict(X[:, cols]))
    np.testing.assert_allclose(compiled.limit_model.predict(X[:, cols]), ref, rtol=1e-9)
    np.testing.assert_allclose(compiled.pd_model.raw(X), scorer.pd_model.booster.predict(X), rtol=0, atol=1e-9)


def test_compiled_blobs_travel_in_the_pickle_and_relink_lazily(scored):
    _, valid, _, X, compiled = scored
    compiled.pd_model.engine()
    state = compiled.pd_model.__getstate__()
    assert "_engine" not in state and state["compiled_blob"] == compiled.pd_model.compiled_blob
    again = pickle.loads(pickle.dumps(compiled))
    assert again.pd_model._engine is None
    _frames_equal(again.score_valid(valid, X), compiled.score_valid(valid, X))
    assert isinstance(again.pd_model._engine, CompiledForest)
    assert compiled.meta["compiled"]["pd"]["compiled"] and compiled.meta["compiled"]["limit"]["contrib"] is False


def test_a_corrupted_blob_falls_back_to_numba(scored, caplog):
    _, valid, _, X, compiled = scored
    broken = _copy(compiled)
    blob = bytearray(broken.pd_model.compiled_blob)
    blob[len(blob) // 2] ^= 0xFF
    broken.pd_model.compiled_blob = bytes(blob)
    with caplog.at_level(logging.INFO):
        out = broken.score_valid(valid, X)
    assert isinstance(broken.pd_model.engine(), Forest)
    assert "checksum mismatch" in caplog.text and "numba (compiled blob unusable here)" in caplog.text
    _frames_equal(out, compiled.score_valid(valid, X))


def test_compiled_switch_off_ships_no_blobs(scored):
    _, valid, scorer, X, _ = scored
    off = _copy(scorer)
    report = off.compile(ScoringConfig(compiled=False))
    assert report == {"enabled": False} and off.compiled is False
    assert off.pd_model.compiled_blob is None and isinstance(off.pd_model.engine(), Forest)


# ------------------------------------------------------------------ the limit model only where it matters


def _reference_decisions(scorer, valid: pd.DataFrame, X: np.ndarray, pd_, grade_idx) -> pd.DataFrame:
    """The policy and offers as they ran before: the limit model on every row, the offer search on every row."""
    cols = [scorer.feature_names.index(n) for n in scorer.limit_model.names]
    estimate = np.exp(scorer.limit_model.booster.predict(X[:, cols], raw_score=True))
    decisions = decide(scorer._policy_inputs(valid, pd_, grade_idx, estimate), scorer.policy, scorer.scorecard)
    if scorer.products is None:
        return decisions
    living = np.asarray(living_cost(valid, scorer.features_cfg), dtype=float)
    inputs = offer_inputs_from_frame(valid, pd_, grade_idx, living, decisions["risk_limit"].to_numpy(), scorer.products)
    offers = search_offers(inputs, scorer.products, pd_cutoff=scorer.policy.pd_cutoff)
    hard = decisions["hard_decline"].to_numpy(dtype=bool)
    codes = decisions["decision_reasons"].to_numpy(dtype=object)[hard]
    offers.loc[hard, [c for c in scorer.numeric_outputs if c in offers]] = np.nan
    offers.loc[hard, "offer_type"] = "decline"
    offers.loc[hard, "offer_codes"] = codes
    offers.loc[hard, "offer_reasons"] = [
        "; ".join(REASONS[c].lower() for c in str(row).split(";") if c in REASONS) for row in codes
    ]
    approved = offers["offer_type"].to_numpy() != "decline"
    offers["decision"] = np.where(approved, "approve", "decline").astype(object)
    offers["credit_limit"] = np.where(approved, offers["offer_amount"].to_numpy(dtype=float), 0.0)
    offers["decision_reasons"] = offers["offer_codes"].to_numpy(dtype=object)
    return offers


@pytest.mark.parametrize("with_products", [True, False])
def test_limit_model_skips_rows_declined_before_the_limit_with_the_same_outputs(scored, monkeypatch, with_products):
    _, valid, scorer, X, _ = scored
    scorer = _copy(scorer) if with_products else _copy(scorer, products=None)
    seen = []
    predict = type(scorer.limit_model).predict
    counted = lambda self, A, c=True: seen.append(len(A)) or predict(self, A, c)  # noqa: E731
    monkeypatch.setattr(type(scorer.limit_model), "predict", counted)
    out = _copy(scorer, exact_reasons="none").score_valid(valid, X)
    pd_ = out["pd"].to_numpy()
    grade_idx = score_to_grade_index(pd_to_score(pd_, scorer.scorecard), scorer.scorecard)
    ref = _reference_decisions(scorer, valid, X, pd_, grade_idx)
    offer_cols = [c for c in ref if c.startswith("offer") or c == "product"] if with_products else []
    for col in ["decision", "credit_limit", "decision_reasons", *offer_cols]:
        _frames_equal(out[[col]], ref[[col]].set_axis(out.index))
    skipped = len(valid) - seen[0]
    assert skipped > 0, "the fixture has declines before the limit step"
    if not with_products:  # PD above the cutoff is skipped too
        assert skipped == int((ref["hard_decline"].to_numpy() | (pd_ > scorer.policy.pd_cutoff)).sum())


def test_a_policy_that_disagrees_with_the_skip_gets_the_limit_recomputed(scored, monkeypatch, caplog):
    _, valid, scorer, X, _ = scored
    scorer = _copy(scorer, exact_reasons="none")
    expected = scorer.score_valid(valid, X)
    everything = lambda self, inputs: np.ones(len(inputs.pd), dtype=bool)  # noqa: E731 - claims every row
    monkeypatch.setattr(type(scorer), "_declined_before_limit", everything)
    with caplog.at_level(logging.WARNING):
        got = scorer.score_valid(valid, X)
    assert "rescored" in caplog.text
    _frames_equal(got, expected)


# ------------------------------------------------------------------ exact reasons where they matter


def test_adverse_rows_get_exactly_pred_contribs_top_k(scored):
    _, valid, scorer, X, compiled = scored
    out = compiled.score_valid(valid, X)
    adverse = out["offer_type"].isin(["decline", "counter_offer"]).to_numpy()
    assert 0 < adverse.sum() < len(out)
    assert (out["reason_method"].to_numpy() == np.where(adverse, "exact", "path")).all()
    texts = np.append(np.asarray([s.reason for s in scorer.specs], dtype=object), None)
    k = scorer.reason_k
    shap = scorer.pd_model.booster.predict(X[adverse], pred_contrib=True)[:, :-1]
    want = texts[top_k_exact(shap, k)]
    got = out.loc[adverse, [f"reason_{i}" for i in range(1, k + 1)]].to_numpy(dtype=object)
    assert np.isnan(X[adverse]).any(axis=1).sum() > 50  # rows with missing values are among them
    assert (np.where(pd.isna(got), None, got) == want).all()
    path = compiled.pd_model.forest.margin_and_contrib(X[~adverse])[1]
    got = out.loc[~adverse, [f"reason_{i}" for i in range(1, k + 1)]].to_numpy(dtype=object)
    assert (np.where(pd.isna(got), None, got) == top_reasons(path, list(texts[:-1]), k)).all()


@pytest.mark.parametrize("mode", ["all", "none"])
def test_exact_reasons_for_all_or_no_rows(scored, mode):
    _, valid, scorer, X, _ = scored
    out = _copy(scorer, exact_reasons=mode).score_valid(valid, X)
    assert set(out["reason_method"]) == {"exact" if mode == "all" else "path"}
    texts = [s.reason for s in scorer.specs]
    if mode == "all":
        contrib = scorer.pd_model.booster.predict(X, pred_contrib=True)[:, :-1]
    else:
        contrib = scorer.pd_model.forest.margin_and_contrib(X)[1]
    want = top_reasons(contrib, texts, scorer.reason_k)
    got = out[[f"reason_{i}" for i in range(1, scorer.reason_k + 1)]].to_numpy(dtype=object)
    assert (np.where(pd.isna(got), None, got) == want).all()


def test_without_products_declines_are_the_adverse_rows(scored):
    _, valid, scorer, X, _ = scored
    out = _copy(scorer, products=None).score_valid(valid, X)
    assert ((out["reason_method"] == "exact") == (out["decision"] == "decline")).all()


def test_top_reasons_share_the_exact_tie_rule():
    contrib = np.array([[0.2, 0.5, 0.5, -1.0, np.nan, 0.2], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [1, 2, 2, 2, 2, 0.1]])
    texts = list("abcdef")
    got = top_reasons(contrib, texts, 4)
    assert got.tolist() == [["b", "c", "a", "f"], [None] * 4, ["b", "c", "d", "e"]]
    idx = top_k_exact(contrib, 4)
    assert (np.where(idx >= 0, np.asarray(texts, dtype=object)[idx], None) == got).all()
    assert top_reasons(contrib[:, :2], texts[:2], 4).tolist()[0] == ["b", "a", None, None]


def test_output_columns_name_the_reason_method(scored):
    _, valid, scorer, X, _ = scored
    assert "reason_method" in scorer.output_columns
    assert scorer.output_columns[-3:] == ["decision_reasons", "model_name", "model_version"]
    assert list(scorer.score_valid(valid.head(50), X[:50]).columns) == scorer.output_columns
    assert "reason_method" not in replace(scorer, reason_k=0).output_columns


# ------------------------------------------------------------------ one BLAS thread


def _blas_threads() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_one_blas_thread_inside_scoring():
    before = _blas_threads()
    assert before, "numpy's OpenBLAS is loaded: the limiter has something to limit"
    with one_blas_thread():
        assert _blas_threads() == {1}
    assert _blas_threads() == before


def test_overlapping_users_restore_the_blas_threads_only_when_the_last_leaves(monkeypatch):
    """The counting, with a recording limiter (OpenBLAS itself is process-wide, as the counting assumes)."""
    events = []

    class Limiter:
        def __init__(self, limits, user_api):
            events.append(("limit", limits, user_api))

        def restore_original_limits(self):
            events.append(("restore",))

    class Controller:
        def limit(self, limits, user_api):
            return Limiter(limits, user_api)

    monkeypatch.setattr(scorer_module, "ThreadpoolController", Controller)
    helper = scorer_module._OneBlasThread()
    inside, release = threading.Event(), threading.Event()

    def other():
        with helper():
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=other)
    worker.start()
    inside.wait(10)
    with helper():
        with helper():
            pass
    assert events == [("limit", 1, "blas")]  # the worker is still inside
    release.set()
    worker.join()
    assert events == [("limit", 1, "blas"), ("restore",)]
