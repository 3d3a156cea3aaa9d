"""Repayment plans: turn an arrears balance into an instalment the customer can actually meet.

Why: an unaffordable plan only delays default and harms the customer. The affordable payment is a
share of residual income (income - other debts - living cost). The shortest allowed term whose
instalment fits is offered; when none fits, or income is unknown (no plan can be shown affordable),
the account goes to a hardship review by a person instead. A balance <= 0 needs no plan.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.accounts.settings import PlanSettings

PLAN, HARDSHIP, NO_BALANCE = "repayment_plan", "hardship_review", "no_balance"
PLAN_COLUMNS = ["plan_outcome", "plan_term_months", "plan_payment", "plan_total", "affordable_payment"]


def instalment(amount: np.ndarray, term: int, apr: float) -> np.ndarray:
    """Level annuity payment on `amount` over `term` months; amount / term at zero APR."""
    r = apr / 12
    if r == 0:
        return amount / term
    return amount * r / (1 - (1 + r) ** (-term))


def affordable_payment(income: np.ndarray, debts: np.ndarray, s: PlanSettings) -> np.ndarray:
    """Share of residual income a plan may take, never negative; NaN when income is unknown.

    Unknown other debts count as none only when income is known: the customer declared income, and a
    missing debt field in the account data means no other debt was recorded.
    """
    income = np.asarray(income, dtype=float)
    debts = np.nan_to_num(np.asarray(debts, dtype=float), nan=0.0)
    residual = np.maximum(income - debts - s.living_cost, 0.0)
    return np.where(np.isnan(income), np.nan, s.affordable_share * residual)


def offer_plans(amount: np.ndarray, income: np.ndarray, debts: np.ndarray, s: PlanSettings) -> pd.DataFrame:
    """Per account: outcome, shortest fitting term, monthly payment, total repaid, affordable payment."""
    amount = np.asarray(amount, dtype=float)
    afford = affordable_payment(income, debts, s)
    n = len(amount)
    term, payment = np.full(n, np.nan), np.full(n, np.nan)
    owed = amount > 0
    for t in sorted(s.terms_months, reverse=True):  # shortest fitting term wins: it is written last
        pay_t = instalment(np.where(owed, amount, 0.0), t, s.apr)
        fits = owed & (pay_t <= afford)  # NaN afford (unknown income) never fits
        term = np.where(fits, float(t), term)
        payment = np.where(fits, pay_t, payment)
    has_plan = ~np.isnan(term)
    outcome = np.where(~owed, NO_BALANCE, np.where(has_plan, PLAN, HARDSHIP)).astype(object)
    return pd.DataFrame(
        {
            "plan_outcome": outcome,
            "plan_term_months": term,
            "plan_payment": payment,  # not rounded: a rounded-up cent could break the affordability promise
            "plan_total": payment * term,
            "affordable_payment": afford,
        }
    )


def required_income(amount: np.ndarray, debts: np.ndarray, s: PlanSettings) -> np.ndarray:
    """Smallest monthly income at which the longest allowed plan fits: what a hardship review must find.

    Needs no income, so it can be reported where income is unknown instead of inventing one.
    """
    longest = instalment(np.maximum(np.asarray(amount, dtype=float), 0.0), max(s.terms_months), s.apr)
    return longest / s.affordable_share + s.living_cost + np.nan_to_num(np.asarray(debts, dtype=float), nan=0.0)
