"""Repayment plans fit the affordable payment, take the shortest term that fits, or become a hardship review."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from helpers import examples
from pipeline.accounts.plans import (
    HARDSHIP,
    NO_BALANCE,
    PLAN,
    affordable_payment,
    instalment,
    offer_plans,
    required_income,
)
from pipeline.accounts.settings import PlanSettings

plan_settings = st.builds(
    lambda terms, apr, share, living: PlanSettings(
        terms_months=terms, apr=apr, affordable_share=share, living_cost=living
    ),
    st.lists(st.integers(1, 120), min_size=1, max_size=6, unique=True),
    st.sampled_from([0.0, 0.05, 0.2]),
    st.floats(0.05, 1.0),
    st.floats(0, 2_000),
)
cases = st.lists(
    st.tuples(
        st.floats(-500, 100_000),
        st.one_of(st.just(np.nan), st.floats(0, 20_000)),
        st.one_of(st.just(np.nan), st.floats(0, 5_000)),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=examples(200), deadline=None)
@given(cases, plan_settings)
# no balance, a plan (12 x 100 fits 500 of room), hardship (room 0), unknown income: every branch runs
@example(
    [(0.0, 3000.0, 0.0), (1200.0, 3000.0, 0.0), (1200.0, 600.0, 0.0), (1200.0, np.nan, 0.0)],
    PlanSettings(terms_months=[12, 24], apr=0.0, affordable_share=0.25, living_cost=1000.0),
)
def test_a_plan_fits_and_is_the_shortest_or_else_hardship_review(rows, s):
    amount, income, debts = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    out = offer_plans(amount, income, debts, s)
    afford = affordable_payment(income, debts, s)
    for i, row in out.iterrows():
        fitting = [t for t in s.terms_months if amount[i] > 0 and instalment(amount[i], t, s.apr) <= afford[i]]
        if amount[i] <= 0:
            assert row["plan_outcome"] == NO_BALANCE
        elif row["plan_outcome"] == PLAN:
            assert row["plan_payment"] <= afford[i]
            assert row["plan_term_months"] == min(fitting)  # shortest term that fits
            assert row["plan_total"] >= amount[i] - 1e-6  # a plan never forgives principal
        else:
            assert row["plan_outcome"] == HARDSHIP
            assert not fitting  # no allowed term fits, or income is unknown (then nothing fits)
            assert np.isnan(row["plan_term_months"]) and np.isnan(row["plan_payment"])
    assert (out["plan_outcome"][np.isnan(income) & (amount > 0)] == HARDSHIP).all()


def test_instalment_annuity_and_zero_apr():
    assert np.isclose(instalment(np.array([1200.0]), 12, 0.0)[0], 100.0)
    assert np.isclose(instalment(np.array([1000.0]), 12, 0.12)[0], 88.8488, atol=1e-3)


def test_affordable_payment_uses_residual_income_and_never_goes_negative():
    s = PlanSettings(affordable_share=0.5, living_cost=600)
    got = affordable_payment(np.array([3000.0, 500.0, np.nan, 3000.0]), np.array([400.0, 0.0, 0.0, np.nan]), s)
    assert np.allclose(got[[0, 1, 3]], [1000.0, 0.0, 1200.0]) and np.isnan(got[2])


@settings(max_examples=examples(100), deadline=None)
@given(st.floats(1, 100_000), st.floats(0, 5_000), plan_settings)
def test_required_income_is_exactly_where_the_longest_plan_starts_to_fit(amount, debts, s):
    need = required_income(np.array([amount]), np.array([debts]), s)[0]
    fits = offer_plans(np.array([amount]), np.array([need * (1 + 1e-9) + 1e-6]), np.array([debts]), s)
    short = offer_plans(np.array([amount]), np.array([need * 0.99 - 1e-6]), np.array([debts]), s)
    assert fits.at[0, "plan_outcome"] == PLAN and fits.at[0, "plan_term_months"] <= max(s.terms_months)
    assert short.at[0, "plan_outcome"] == HARDSHIP
