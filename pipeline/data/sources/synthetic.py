"""Seeded synthetic applicants: the embedded default data set.

Default risk is driven by affordability (debt-to-income, residual income after living
costs, utilisation) and by repayment behaviour (delinquency history, payment ratios),
through a latent "financial stress" factor plus noise; granted limits grow with income
and shrink with risk. The models therefore have real, known signal to find.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import FeatureConfig, SyntheticSource
from pipeline.data.contract import HOUSING

PROTECTED_GENDER = ("female", "male")


def _intercept_for_rate(score: np.ndarray, rate: float) -> float:
    """Bisection on the intercept so that the mean default probability equals `rate`."""
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-(mid + score)))) > rate:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


def generate(cfg: SyntheticSource, history_months: int, features: FeatureConfig | None = None) -> pd.DataFrame:
    """Return `cfg.rows` applicants in contract columns, identical for the same seed.

    Every draw comes from one generator, and the order of the draws is what makes a seed reproduce
    the same data set: each step below draws in turn, in the order they are called (and in a fixed
    order inside each), so reordering the calls, or adding a draw anywhere but at the end, would
    silently change every committed number.
    """
    features = features or FeatureConfig()
    rng = np.random.default_rng(cfg.seed)
    n = cfg.rows
    person = _person(rng, n)
    stress = rng.normal(0, 1, n)  # latent financial stress, unobserved
    credit = {**_borrowing(rng, n, person, stress), **_delinquencies(rng, stress)}
    history, history_term = _repayment_history(rng, n, history_months, credit["revolving_balance"], stress)
    risk = _risk(rng, n, person, credit, history_term, stress, features)
    p_default = 1 / (1 + np.exp(-(_intercept_for_rate(risk, cfg.base_default_rate) + risk)))
    defaulted = (rng.random(n) < p_default).astype(int)
    granted_limit = _granted_limit(rng, n, person["monthly_income"], risk)
    request = _request(rng, n, cfg, person["monthly_income"])
    gender = rng.choice(PROTECTED_GENDER, n)
    frame = _frame(cfg, n, person, credit, history, request, defaulted, granted_limit, gender)
    # Real files have gaps: ~1% unknown income, ~3% unknown employment length.
    frame.loc[rng.random(n) < 0.01, "monthly_income"] = np.nan
    frame.loc[rng.random(n) < 0.03, "employment_years"] = np.nan
    return frame


def _person(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Age, employment length, housing, dependents and monthly income."""
    age = rng.integers(18, 76, n)
    employment_years = np.minimum(np.round(rng.gamma(2.0, 3.0, n), 1), age - 18).astype(float)
    housing = rng.choice(HOUSING, n, p=[0.30, 0.35, 0.25, 0.05, 0.05])
    dependents = np.clip(rng.poisson(0.9, n), 0, 8)
    log_income = np.log(2800) + 0.012 * np.clip(age - 22, 0, 30) + 0.02 * employment_years + rng.normal(0, 0.45, n)
    monthly_income = np.round(np.exp(log_income), 2)
    return {
        "age": age,
        "employment_years": employment_years,
        "housing": housing,
        "dependents": dependents,
        "monthly_income": monthly_income,
    }


def _borrowing(
    rng: np.random.Generator, n: int, person: dict[str, np.ndarray], stress: np.ndarray
) -> dict[str, np.ndarray]:
    """Debt-to-income and debt payments, credit lines, revolving limit, utilisation and balance, history length."""
    monthly_income, age = person["monthly_income"], person["age"]
    dti = np.clip(rng.beta(2.0, 6.0, n) * 1.1 + 0.06 * stress, 0, 1.5)
    monthly_debt_payments = np.round(dti * monthly_income, 2)
    open_credit_lines = rng.poisson(3, n)
    revolving_limit = np.round(monthly_income * np.exp(rng.normal(np.log(1.5), 0.4, n)), -2)
    utilization = np.clip(rng.beta(1.6, 3.0, n) + 0.12 * stress, 0, 1.3)
    revolving_balance = np.round(utilization * revolving_limit, 2)
    credit_history_months = np.minimum((age - 18) * 12, np.round(rng.gamma(3.0, 30.0, n))).astype(int)
    return {
        "dti": dti,
        "monthly_debt_payments": monthly_debt_payments,
        "open_credit_lines": open_credit_lines,
        "revolving_limit": revolving_limit,
        "utilization": utilization,
        "revolving_balance": revolving_balance,
        "credit_history_months": credit_history_months,
    }


def _delinquencies(rng: np.random.Generator, stress: np.ndarray) -> dict[str, np.ndarray]:
    """Counts of 30-, 60- and 90-day delinquencies, each a subset of the one before."""
    delinquency_rate = np.exp(-2.2 + 0.9 * stress)
    delinquencies_30d = rng.poisson(delinquency_rate)
    delinquencies_60d = rng.binomial(delinquencies_30d, 0.4)
    delinquencies_90d = rng.binomial(delinquencies_60d, 0.4)
    return {
        "delinquencies_30d": delinquencies_30d,
        "delinquencies_60d": delinquencies_60d,
        "delinquencies_90d": delinquencies_90d,
    }


def _repayment_history(
    rng: np.random.Generator, n: int, history_months: int, revolving_balance: np.ndarray, stress: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Statement, payment and repayment status per past month, and the history's term in the risk score."""
    cols: dict[str, np.ndarray] = {}
    status_sum = np.zeros(n)
    ratio_sum = np.zeros(n)
    for m in range(1, history_months + 1):
        statement = np.round(revolving_balance * np.exp(rng.normal(-0.03 * m, 0.2, n)), 2)
        pay_share = np.clip(rng.beta(3.0, 2.0, n) - 0.15 * stress, 0.0, 1.0)
        payment = np.round(statement * pay_share, 2)
        late = rng.random(n) < 1 / (1 + np.exp(-(-3.0 + 1.1 * stress)))
        status = np.where(late, rng.integers(1, 4, n), np.where(statement <= 0, -2, np.where(pay_share > 0.95, -1, 0)))
        status = np.clip(status, -2, 9)
        status_sum += np.clip(status, 0, None)
        ratio_sum += pay_share
        cols[f"statement_balance_m{m}"] = statement
        cols[f"payment_amount_m{m}"] = payment
        cols[f"repayment_status_m{m}"] = status
    history_term = 0.45 * status_sum / max(history_months, 1) - 0.8 * (ratio_sum / max(history_months, 1))
    return cols, history_term


def _risk(
    rng: np.random.Generator,
    n: int,
    person: dict[str, np.ndarray],
    credit: dict[str, np.ndarray],
    history_term: np.ndarray,
    stress: np.ndarray,
    features: FeatureConfig,
) -> np.ndarray:
    """The latent risk score: affordability, utilisation, delinquencies, repayment history, stress and noise."""
    residual = (
        person["monthly_income"]
        - credit["monthly_debt_payments"]
        - (features.living_cost_base + features.living_cost_per_dependent * person["dependents"])
    )
    return (
        3.2 * credit["dti"]
        + 1.0 * (residual < 0)
        - 0.25 * np.tanh(residual / 2000)
        + 1.4 * credit["utilization"]
        + 0.35 * credit["delinquencies_30d"]
        + 0.5 * credit["delinquencies_90d"]
        + history_term
        - 0.03 * person["employment_years"]
        + 0.35 * stress
        + rng.normal(0, 0.5, n)
    )


def _granted_limit(rng: np.random.Generator, n: int, monthly_income: np.ndarray, risk: np.ndarray) -> np.ndarray:
    """Limits grow with income and shrink with risk."""
    risk_z = (risk - risk.mean()) / risk.std()
    return np.clip(np.round(monthly_income * 2.2 * np.exp(-0.45 * risk_z + rng.normal(0, 0.2, n)), -2), 300, 60_000)


def _request(rng: np.random.Generator, n: int, cfg: SyntheticSource, monthly_income: np.ndarray) -> dict[str, Any]:
    """The application: requested amount (scaled to income) and term, and the application date."""
    requested_amount = np.round(monthly_income * np.exp(rng.normal(np.log(2.0), 0.5, n)), -1)
    requested_term_months = rng.choice([6, 12, 24, 36, 48, 60], n)
    start = np.datetime64(cfg.start_date, "D")
    days = rng.integers(0, cfg.months * 30, n)
    application_date = pd.to_datetime(start + days.astype("timedelta64[D]"))
    return {
        "requested_amount": requested_amount,
        "requested_term_months": requested_term_months,
        "application_date": application_date,
    }


def _frame(
    cfg: SyntheticSource,
    n: int,
    person: dict[str, np.ndarray],
    credit: dict[str, np.ndarray],
    history: dict[str, np.ndarray],
    request: dict[str, Any],
    defaulted: np.ndarray,
    granted_limit: np.ndarray,
    gender: np.ndarray,
) -> pd.DataFrame:
    """The contract columns, in the data set's column order (no draws here)."""
    return pd.DataFrame(
        {
            "applicant_id": [f"SYN{cfg.seed:04d}-{i:07d}" for i in range(n)],
            "application_date": request["application_date"].astype("datetime64[ns]"),
            "age": person["age"].astype(float),
            "monthly_income": person["monthly_income"],
            "employment_years": person["employment_years"],
            "housing": person["housing"].astype(object),
            "dependents": person["dependents"].astype(float),
            "monthly_debt_payments": credit["monthly_debt_payments"],
            "open_credit_lines": credit["open_credit_lines"].astype(float),
            "revolving_balance": credit["revolving_balance"],
            "revolving_limit": credit["revolving_limit"],
            "delinquencies_30d": credit["delinquencies_30d"].astype(float),
            "delinquencies_60d": credit["delinquencies_60d"].astype(float),
            "delinquencies_90d": credit["delinquencies_90d"].astype(float),
            "credit_history_months": credit["credit_history_months"].astype(float),
            **{k: np.asarray(v, dtype=float) for k, v in history.items()},
            "requested_amount": request["requested_amount"],
            "requested_term_months": request["requested_term_months"].astype(float),
            "defaulted": defaulted.astype(float),
            "granted_limit": granted_limit,
            "gender": gender.astype(object),
        }
    )
