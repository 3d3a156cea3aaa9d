"""The synthetic portfolio: seeded, valid under the contract, and job losses raise default risk via behaviour."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.accounts.behaviour import available_specs, compute_behaviour
from pipeline.accounts.contract import validate_accounts
from pipeline.accounts.model import early_warning_numbers, fit_accounts
from pipeline.accounts.review import review_accounts
from pipeline.accounts.settings import AccountSettings, SyntheticPortfolioSettings
from pipeline.accounts.synthetic import synthetic_portfolio
from pipeline.config import parse_config

S = SyntheticPortfolioSettings(accounts=6000)


@pytest.fixture(scope="module")
def book() -> pd.DataFrame:
    return synthetic_portfolio(S)


def test_same_seed_same_book_other_seed_other_book(book):
    small = SyntheticPortfolioSettings(accounts=200)
    pd.testing.assert_frame_equal(synthetic_portfolio(small), synthetic_portfolio(small))
    assert not synthetic_portfolio(small).equals(synthetic_portfolio(small.model_copy(update={"seed": 7})))


def test_valid_under_the_contract_with_one_row_per_account_and_month():
    multi = synthetic_portfolio(SyntheticPortfolioSettings(accounts=300, snapshots=3))
    result = validate_accounts(multi, S.history)
    assert result.rows_rejected == 0 and len(multi) == 900
    assert multi.groupby("account_id")["snapshot_month"].nunique().eq(3).all()


def test_job_loss_lowers_income_and_payments_worsens_status_and_raises_default(book):
    lost = book["job_loss"].to_numpy()
    assert 0.04 < lost.mean() < 0.12  # job_loss_share 0.08, all losses before the snapshot
    f = compute_behaviour(book, AccountSettings().history)
    known = book["monthly_income"].notna().to_numpy()
    assert book["monthly_income"][lost & known].median() < 0.5 * book["monthly_income"][~lost & known].median()
    assert f["payment_ratio_latest"][lost].mean() < f["payment_ratio_latest"][~lost].mean() - 0.1
    assert f["worst_status"][lost].mean() > f["worst_status"][~lost].mean() + 1
    y = book["defaulted_next"].to_numpy()
    assert y[lost].mean() > 3 * y[~lost].mean()
    assert abs(y.mean() - S.base_default_rate) < 0.015


def test_behaviour_pd_ranks_job_losers_higher_and_beats_the_late_rule(book):
    """Trained by the pipeline's PD recipe (fit_accounts -> train_pd), judged on its own test part."""
    cfg = parse_config({"kind": "accounts", "pd_model": {"monotone": "prior", "calibration": "isotonic"}})
    s = cfg.accounts
    specs = available_specs(book.columns, s.history)
    out = fit_accounts(book, compute_behaviour(book, s.history, specs), specs, cfg)
    te = out.splits["test"]
    test = book.iloc[te].reset_index(drop=True)
    y = test["defaulted_next"].to_numpy(float)
    pd_ = out.scorer.predict(test)
    review = review_accounts(test, pd_, s).frame
    status = test["repayment_status_m1"].to_numpy(float)
    m = early_warning_numbers(y, pd_, review["early_warning_rank"].to_numpy(), status, s.model)
    assert m["auc"] > 0.85 and m["ece"] < 0.03
    assert m["auc"] == out.metrics["test_roc_auc"]  # the stage's number is the one judged here
    assert pd_[test["job_loss"].to_numpy()].mean() > 2 * pd_[~test["job_loss"].to_numpy()].mean()
    assert m["top_same_volume_as_rule"]["defaults_captured"] >= m["rule"]["defaults_captured"]
