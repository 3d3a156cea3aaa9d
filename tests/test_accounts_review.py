"""Property tests of the monthly review's guard rails, on random portfolios and random settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import examples
from pipeline.accounts.review import REASONS, exposure_at_default, review_accounts
from pipeline.accounts.settings import AccountSettings

MONTHS = 6
SNAPSHOT = pd.Timestamp("2025-06-01")
EPS = 1e-6


@st.composite
def portfolios(draw) -> tuple[pd.DataFrame, np.ndarray]:
    """Accounts with any mix of limits, balances (credit, over limit), histories, income and review history."""
    n = draw(st.integers(1, 30))
    ints = lambda lo, hi: draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))  # noqa: E731
    limit = np.array(ints(0, 60)) * 1000.0 + np.array(ints(0, 1)) * 500.0
    balance = limit * np.array(ints(-10, 15)) / 10.0
    clean = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    status = np.where(clean[:, None], np.array(ints(-2, 0))[:, None], np.array([ints(-2, 9) for _ in range(MONTHS)]).T)
    income = np.array([draw(st.one_of(st.just(np.nan), st.floats(0, 20_000))) for _ in range(n)])
    debts = np.array([draw(st.one_of(st.just(np.nan), st.floats(0, 3_000))) for _ in range(n)])
    ago = np.array(ints(-1, 24), dtype=float)  # -1: never changed
    direction = np.array([draw(st.sampled_from(["increase", "decrease"])) for _ in range(n)], dtype=object)
    frame = pd.DataFrame(
        {
            "account_id": [f"A{i}" for i in range(n)],
            "snapshot_month": SNAPSHOT,
            "credit_limit": limit,
            "balance": balance,
            "months_on_book": ints(0, 120),
            **{f"repayment_status_m{m}": status[:, m - 1].astype(float) for m in range(1, MONTHS + 1)},
            **{f"statement_balance_m{m}": balance for m in range(1, MONTHS + 1)},
            **{f"payment_amount_m{m}": np.zeros(n) for m in range(1, MONTHS + 1)},
            "monthly_income": income,
            "monthly_debt_payments": debts,
            "last_limit_change_month": [pd.NaT if a < 0 else SNAPSHOT - pd.DateOffset(months=int(a)) for a in ago],
            "last_limit_change_direction": np.where(ago < 0, None, direction),
            "contacts_this_month": np.array(ints(0, 4), dtype=float),
        }
    )
    pd_ = np.array([draw(st.one_of(st.floats(0, 1), st.sampled_from([0.0, 0.01, 0.5, 0.99]))) for _ in range(n)])
    return frame, pd_


@st.composite
def account_settings(draw) -> AccountSettings:
    max_pd = draw(st.sampled_from([0.02, 0.05, 0.2]))
    return AccountSettings.model_validate(
        {
            "early_warning": {"pd_threshold": draw(st.floats(0.1, 0.9)), "rank_share": draw(st.floats(0, 0.5))},
            "limits": {
                "step": draw(st.sampled_from([1.0, 500.0, 1000.0, 5000.0])),
                "cooling_off_months": draw(st.integers(0, 12)),
                "increase": {
                    "max_pd": max_pd,
                    "clean_months": draw(st.integers(1, MONTHS)),
                    "step_share": draw(st.floats(0.05, 1.0)),
                    "min_months_on_book": draw(st.integers(0, 24)),
                    "max_payment_to_income": draw(st.floats(0.1, 0.6)),
                },
                "decrease": {
                    "trigger_pd": draw(st.floats(max_pd + 0.01, 0.9)),
                    "desired_cut_share": draw(st.floats(0.05, 1.0)),
                    "max_share": draw(st.floats(0.05, 1.0)),
                    "notice_days": draw(st.integers(0, 90)),
                    "balance_headroom_share": draw(st.floats(0, 0.2)),
                },
            },
            "treatments": {"max_contacts_per_month": draw(st.integers(0, 3))},
            "plans": {"apr": draw(st.sampled_from([0.0, 0.1])), "living_cost": draw(st.floats(0, 1000))},
        }
    )


def months_since(frame: pd.DataFrame) -> np.ndarray:
    last = frame["last_limit_change_month"]
    out = (SNAPSHOT.year - last.dt.year) * 12 + (SNAPSHOT.month - last.dt.month)
    return out.to_numpy(dtype=float, na_value=np.nan)


FAST = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(portfolios(), account_settings())
def test_increase_needs_low_pd_clean_history_affordability_and_no_recent_cut(data, s):
    frame, pd_ = data
    out = review_accounts(frame, pd_, s).frame
    inc = s.limits.increase
    up = (out["limit_action"] == "increase").to_numpy()
    status = frame[[f"repayment_status_m{m}" for m in range(1, inc.clean_months + 1)]].to_numpy()
    income = frame["monthly_income"].to_numpy()
    debts = np.nan_to_num(frame["monthly_debt_payments"].to_numpy(), nan=0.0)
    new = out["new_limit"].to_numpy()
    recent_cut = (months_since(frame) < s.limits.cooling_off_months) & (
        frame["last_limit_change_direction"] == "decrease"
    ).to_numpy()
    assert (pd_[up] <= inc.max_pd).all()
    assert (status[up] <= 0).all()
    assert (income[up] > 0).all()
    pti = (inc.min_payment_rate * new[up] + debts[up]) / income[up]
    assert (pti <= inc.max_payment_to_income + EPS).all()
    assert (new[up] > frame["credit_limit"].to_numpy()[up]).all()
    assert (new[up] <= frame["credit_limit"].to_numpy()[up] * (1 + inc.step_share) + EPS).all()
    assert not (up & out["early_warning"].to_numpy()).any()
    assert not (up & recent_cut).any()
    assert (frame["months_on_book"].to_numpy()[up] >= inc.min_months_on_book).all()
    assert (out.loc[up, "limit_effective_date"] == SNAPSHOT).all()


@FAST
@given(portfolios(), account_settings())
def test_decrease_never_below_balance_within_max_share_with_notice_and_no_recent_raise(data, s):
    frame, pd_ = data
    result = review_accounts(frame, pd_, s)
    out = result.frame
    dec = s.limits.decrease
    down = (out["limit_action"] == "decrease").to_numpy()
    limit, new = frame["credit_limit"].to_numpy(), out["new_limit"].to_numpy()
    owed = np.maximum(frame["balance"].to_numpy(), 0)
    assert (new[down] >= owed[down] - EPS).all()  # never below the balance
    assert (new[down] >= limit[down] * (1 - dec.max_share) - EPS).all()  # falls at most max_share
    assert (new[down] < limit[down]).all()
    assert (pd_[down] >= dec.trigger_pd).all()
    notice = out.loc[down, "limit_effective_date"] - out.loc[down, "snapshot_month"]
    assert (notice == pd.Timedelta(days=dec.notice_days)).all()
    recent_raise = (months_since(frame) < s.limits.cooling_off_months) & (
        frame["last_limit_change_direction"] == "increase"
    ).to_numpy()
    assert not (down & recent_raise).any()
    keep = (out["limit_action"] == "keep").to_numpy()
    assert (new[keep] == limit[keep]).all() and out.loc[keep, "limit_effective_date"].isna().all()
    wanted = int((pd_ >= dec.trigger_pd).sum())
    assert 0 <= result.softened_decreases <= wanted
    assert all(0 <= v <= wanted for v in result.softened_by.values())


@FAST
@given(portfolios(), account_settings())
def test_contacts_capped_plans_affordable_and_early_warning_ranked(data, s):
    frame, pd_ = data
    out = review_accounts(frame, pd_, s).frame
    contacted = (out["treatment"] != "none").to_numpy()
    assert (frame["contacts_this_month"].to_numpy()[contacted] < s.treatments.max_contacts_per_month).all()
    plan = (out["treatment"] == "repayment_plan").to_numpy()
    assert (out.loc[plan, "plan_payment"] <= out.loc[plan, "affordable_payment"] + EPS).all()
    assert out.loc[plan, "plan_term_months"].isin(s.plans.terms_months).all()
    assert out.loc[~plan, ["plan_term_months", "plan_payment", "plan_total"]].isna().all().all()
    rank = out["early_warning_rank"].to_numpy()
    assert sorted(rank) == list(range(1, len(out) + 1))
    by_rank = pd_[np.argsort(rank)]
    assert (np.diff(by_rank) <= 0).all()  # rank 1 = riskiest
    top = int(np.floor(s.early_warning.rank_share * len(out)))
    assert (out["early_warning"] == ((pd_ >= s.early_warning.pd_threshold) | (rank <= top))).all()
    ead = exposure_at_default(frame["credit_limit"].to_numpy(), frame["balance"].to_numpy(), s.loss)
    assert np.allclose(out["expected_loss"], pd_ * ead * s.loss.lgd)
    assert out["reasons"].map(lambda r: all(p in REASONS.values() for p in r.split("; ") if p)).all()


def _one(**overrides) -> pd.DataFrame:
    row = {
        "account_id": "A1",
        "snapshot_month": SNAPSHOT,
        "credit_limit": 10_000.0,
        "balance": 2_000.0,
        "months_on_book": 36,
        **{f"repayment_status_m{m}": 0.0 for m in range(1, MONTHS + 1)},
        "monthly_income": 5_000.0,
        "monthly_debt_payments": 500.0,
        "last_limit_change_month": pd.NaT,
        "last_limit_change_direction": None,
        "contacts_this_month": 0.0,
    }
    return pd.DataFrame([{**row, **overrides}])


def test_cooling_off_blocks_opposite_moves_only_inside_the_window():
    s = AccountSettings()
    cut_2m_ago = {
        "last_limit_change_month": SNAPSHOT - pd.DateOffset(months=2),
        "last_limit_change_direction": "decrease",
    }
    raised_2m_ago = {**cut_2m_ago, "last_limit_change_direction": "increase"}
    raised_7m_ago = {**raised_2m_ago, "last_limit_change_month": SNAPSHOT - pd.DateOffset(months=7)}
    assert review_accounts(_one(), [0.01], s).frame.at[0, "limit_action"] == "increase"
    blocked_up = review_accounts(_one(**cut_2m_ago), [0.01], s).frame
    assert blocked_up.at[0, "limit_action"] == "keep" and REASONS["INC_COOLING"] in blocked_up.at[0, "reasons"]
    blocked_down = review_accounts(_one(**raised_2m_ago), [0.9], s)
    assert blocked_down.frame.at[0, "limit_action"] == "keep" and blocked_down.softened_decreases == 1
    assert review_accounts(_one(**raised_7m_ago), [0.9], s).frame.at[0, "limit_action"] == "decrease"
    assert review_accounts(_one(**cut_2m_ago), [0.9], s).frame.at[0, "limit_action"] == "decrease"  # same way: ok


def test_decrease_is_softened_by_max_share_and_by_the_balance():
    s = AccountSettings()  # desired cut 50%, max 25% per review
    r = review_accounts(_one(balance=1_000.0), [0.9], s)
    assert r.frame.at[0, "new_limit"] == 8_000.0 and r.softened_decreases == 1  # 7,500 rounded up to the step
    r = review_accounts(_one(balance=9_200.0), [0.9], s)
    assert r.frame.at[0, "new_limit"] == 10_000.0 and r.frame.at[0, "limit_action"] == "keep"  # 9,200 -> 10,000
    r = review_accounts(_one(balance=8_100.0), [0.9], s)
    assert r.frame.at[0, "new_limit"] == 9_000.0  # rounded UP to the step, never below the balance
    unsoftened = s.model_copy(update={"limits": s.limits.model_copy(update={"decrease": s.limits.decrease.model_copy(
        update={"max_share": 0.5})})})  # fmt: skip
    r = review_accounts(_one(balance=1_000.0), [0.9], unsoftened)
    assert r.frame.at[0, "new_limit"] == 5_000.0 and r.softened_decreases == 0
    assert r.frame.at[0, "limit_effective_date"] == SNAPSHOT + pd.Timedelta(days=30)


def test_increase_is_capped_by_ability_to_pay_and_refused_without_income():
    s = AccountSettings()  # (0.05 x L + 500) / 5000 <= 0.35  ->  L <= 25,000; +20% of 10,000 = 12,000
    assert review_accounts(_one(), [0.01], s).frame.at[0, "new_limit"] == 12_000.0
    tight = review_accounts(_one(monthly_debt_payments=1_200.0), [0.01], s).frame  # 0.05 L <= 550: L <= 11,000
    assert tight.at[0, "new_limit"] == 11_000.0 and REASONS["INC_AFFORD_CAP"] in tight.at[0, "reasons"]
    no_income = review_accounts(_one(monthly_income=np.nan), [0.01], s).frame
    assert no_income.at[0, "limit_action"] == "keep" and REASONS["INC_INCOME_UNKNOWN"] in no_income.at[0, "reasons"]
    late_once = review_accounts(_one(repayment_status_m4=1.0), [0.01], s).frame
    assert late_once.at[0, "limit_action"] == "keep"


def test_treatments_follow_arrears_and_the_contact_cap():
    s = AccountSettings()
    reminder = review_accounts(_one(repayment_status_m1=1.0), [0.1], s).frame
    assert reminder.at[0, "treatment"] == "reminder"
    plan = review_accounts(_one(repayment_status_m1=2.0), [0.1], s).frame  # affordable: 0.5 x (5000-500-600)
    assert plan.at[0, "treatment"] == "repayment_plan" and plan.at[0, "plan_term_months"] == 3
    hardship = review_accounts(_one(repayment_status_m1=2.0, monthly_income=np.nan), [0.1], s).frame
    assert hardship.at[0, "treatment"] == "hardship_review"
    capped = review_accounts(_one(repayment_status_m1=2.0, contacts_this_month=2.0), [0.1], s).frame
    assert capped.at[0, "treatment"] == "none" and capped.at[0, "treatment_deferred"]


def test_pd_must_match_the_rows():
    with pytest.raises(ValueError, match="one known PD per row"):
        review_accounts(_one(), [0.1, 0.2], AccountSettings())
    with pytest.raises(ValueError, match="one known PD per row"):
        review_accounts(_one(), [np.nan], AccountSettings())
