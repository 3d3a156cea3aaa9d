"""Behaviour features: defined edge cases, never inf, and risk directions that hold on the synthetic book."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from helpers import examples
from pipeline.accounts.behaviour import BY_NAME, DICTIONARY, available_specs, compute_behaviour
from pipeline.accounts.settings import HistorySettings, SyntheticPortfolioSettings
from pipeline.accounts.synthetic import synthetic_portfolio

H = HistorySettings(months=3)


def frame(limit, balance, stmt, pay, status, income=np.nan, mob=12.0) -> pd.DataFrame:
    row = {"credit_limit": limit, "balance": balance, "monthly_income": income, "months_on_book": mob}
    for m in range(3):
        row |= {f"statement_balance_m{m + 1}": stmt[m], f"payment_amount_m{m + 1}": pay[m]}
        row |= {f"repayment_status_m{m + 1}": status[m]}
    return pd.DataFrame([row])


def test_edge_cases_have_one_defined_result():
    zero_balance = compute_behaviour(frame(1000, 0, [0, 0, 0], [0, 0, 0], [-2, -2, -2]), H).iloc[0]
    assert zero_balance["utilisation_now"] == 0 and zero_balance["payment_ratio_latest"] == 1  # nothing owed
    assert zero_balance["months_since_delinquency"] == 3 and zero_balance["months_delinquent"] == 0
    zero_limit = compute_behaviour(frame(0, 50, [50, 0, 0], [0, 0, 0], [1, 0, 0]), H).iloc[0]
    assert zero_limit["utilisation_now"] == H.utilisation_cap and zero_limit["months_since_delinquency"] == 0
    assert compute_behaviour(frame(0, 0, [0, 0, 0], [0, 0, 0], [0, 0, 0]), H).iloc[0]["utilisation_now"] == 0
    assert np.isnan(compute_behaviour(frame(1000, 0, [0] * 3, [0] * 3, [0] * 3), H).iloc[0]["limit_to_income"])
    zero_income = compute_behaviour(frame(1000, 0, [0] * 3, [0] * 3, [0] * 3, income=0.0), H).iloc[0]
    assert np.isnan(zero_income["limit_to_income"])
    credit = compute_behaviour(frame(1000, -200, [-200, 100, 100], [0, 100, 50], [-1, -1, 0]), H).iloc[0]
    assert credit["utilisation_now"] == 0 and credit["payment_ratio_min"] == 0.5


def test_trends_point_forward_in_time():
    rising = compute_behaviour(frame(1000, 900, [900, 500, 100], [90, 50, 10], [0, 0, 0]), H).iloc[0]
    assert rising["balance_trend"] > 0
    falling_pay = compute_behaviour(frame(1000, 500, [500, 500, 500], [0, 250, 500], [0, 0, -1]), H).iloc[0]
    assert falling_pay["payment_trend"] < 0 and falling_pay["worst_status"] == 0


finite = st.one_of(st.just(np.nan), st.floats(-1e7, 1e7), st.sampled_from([0.0, 1e-300, -1e-300]))


@settings(max_examples=examples(100), deadline=None)
@given(st.lists(st.tuples(finite, finite, finite, finite, st.integers(-2, 9)), min_size=3, max_size=3), finite, finite)
def test_no_feature_is_ever_infinite(months, limit, income):
    stmt, pay, status = ([m[i] for m in months] for i in (1, 2, 4))
    out = compute_behaviour(frame(abs(limit), months[0][0], stmt, [abs(p) for p in pay], status, income=income), H)
    assert not np.isinf(out.to_numpy()).any()


def test_dictionary_is_complete_and_skips_what_the_data_lacks():
    assert len(BY_NAME) == len(DICTIONARY)
    for spec in DICTIONARY:
        assert spec.direction in (-1, 1) and spec.reason and spec.formula and spec.inputs
    cols = set(frame(1, 1, [1] * 3, [1] * 3, [0] * 3).drop(columns="monthly_income").columns)
    names = [s.name for s in available_specs(cols, H)]
    assert "limit_to_income" not in names and "utilisation_now" in names
    assert [s.name for s in available_specs(cols, HistorySettings(months=4))].count("worst_status") == 0


def test_risk_directions_hold_on_the_synthetic_portfolio():
    book = synthetic_portfolio(SyntheticPortfolioSettings(accounts=4000))
    features = compute_behaviour(book, HistorySettings())
    y = book["defaulted_next"].to_numpy()
    for spec in DICTIONARY:
        if spec.name == "months_on_book":  # the generator gives tenure no effect: nothing to check
            continue
        x = features[spec.name].to_numpy()
        ok = ~np.isnan(x)
        assert roc_auc_score(y[ok], spec.direction * x[ok]) > 0.5, spec.name
