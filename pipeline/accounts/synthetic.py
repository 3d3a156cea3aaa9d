"""A seeded synthetic card portfolio: months of behaviour, some customers losing their job part-way.

Why: the review needs data with known signal to test against. Default next month is driven by
behaviour (repayment status, utilisation, share of the bill paid, no money left to pay) and an
unobserved stress factor; a job loss raises default risk only through that behaviour (income
falls, so payments fall and status worsens), which is exactly what the review must detect.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.accounts.settings import SyntheticPortfolioSettings


def _intercept_for_rate(score: np.ndarray, rate: float) -> float:
    """Bisection on the intercept so that the mean default probability equals `rate`."""
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if np.mean(1 / (1 + np.exp(-(mid + score)))) > rate else (mid, hi)
    return (lo + hi) / 2


def _accounts(s: SyntheticPortfolioSettings, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Static traits per account: income, debts, limit, habits, and whether and when a job loss comes."""
    n = s.accounts
    income = np.round(np.exp(rng.normal(np.log(3000), 0.45, n)), 2)
    stress = rng.normal(0, 1, n)
    transactor = rng.random(n) < s.transactor_share
    first_loss, last_loss = max(1, s.months - s.history), max(1, s.months - 2)
    return {
        "income": income,
        "debts": np.round(income * rng.beta(2, 8, n), 2),
        "limit": np.maximum(np.round(income * np.exp(rng.normal(np.log(1.5), 0.4, n)), -2), 500.0),
        "stress": stress,
        "pay_share": np.where(transactor, 1.0, np.clip(rng.beta(2, 3, n) - 0.1 * stress, s.min_payment_rate + 0.01, 1)),
        "spend_share": np.clip(rng.beta(2, 5, n) + 0.05 * stress, 0.01, 0.9),
        "miss_prob": 1 / (1 + np.exp(-(-4.0 + 0.8 * stress))),
        "job_loss": rng.random(n) < s.job_loss_share,
        "loss_month": rng.integers(first_loss, last_loss + 1, n),
        "mob0": rng.integers(3, 120, n),
        "income_known": rng.random(n) < s.income_known_share,
    }


def simulate(s: SyntheticPortfolioSettings) -> dict[str, np.ndarray]:
    """Months x accounts matrices of statement, payment, status, income and next-month default."""
    rng = np.random.default_rng(s.seed)
    a = _accounts(s, rng)
    n, months = s.accounts, s.months
    shape = (months, n)
    stmt, pay, status, income, capacity = (np.zeros(shape) for _ in range(5))
    balance, prev = np.zeros(n), np.zeros(n)
    for t in range(months):
        shocked = a["job_loss"] & (t >= a["loss_month"])
        income[t] = a["income"] * np.where(shocked, s.income_drop_to, 1.0)
        capacity[t] = np.maximum(income[t] - a["debts"] - s.living_cost, 0.0)
        wanted = a["spend_share"] * a["limit"] * rng.lognormal(0, 0.3, n) * np.where(shocked, s.shock_spend_factor, 1.0)
        stmt[t] = balance + np.minimum(wanted, np.maximum(a["limit"] - balance, 0.0))
        intended = a["pay_share"] * np.maximum(stmt[t], 0.0)
        missed = rng.random(n) < a["miss_prob"]
        pay[t] = np.round(np.where(missed, 0.0, np.minimum(intended, capacity[t] * rng.uniform(0.5, 1.0, n))), 2)
        late = (stmt[t] > 0) & (pay[t] < s.min_payment_rate * stmt[t] - 1e-9)
        paid_full = (stmt[t] > 0) & (pay[t] >= stmt[t])
        status[t] = np.where(
            stmt[t] <= 0, -2, np.where(paid_full, -1, np.where(late, np.minimum(np.maximum(prev, 0) + 1, 9), 0))
        )
        prev = status[t]
        owed = stmt[t] - pay[t]
        balance = np.where(owed > 0, owed * (1 + s.monthly_rate), owed)
    return {**a, "stmt": np.round(stmt, 2), "pay": pay, "status": status, "income_t": income, "capacity": capacity,
            "defaulted": _defaults(a, stmt, pay, status, capacity, s, rng)}  # fmt: skip


def _defaults(a, stmt, pay, status, capacity, s, rng) -> np.ndarray:
    """Next-month default per month from behaviour; the intercept fixes the book's rate in the last month."""
    util = np.clip(stmt / a["limit"], 0, 1.5)
    ratio = np.where(stmt > 0, np.clip(pay / np.where(stmt > 0, stmt, 1.0), 0, 1), 1.0)
    late3 = sum((np.roll(status, k, axis=0) >= 1).astype(float) for k in range(3))  # wraps only for t < 2
    w = s.weights
    score = (w.status * np.clip(status, 0, w.status_cap) + w.utilisation * util + w.unpaid_share * (1 - ratio)
             + w.recent_late_months * late3 + w.no_capacity * (capacity <= 0) + w.stress * a["stress"])  # fmt: skip
    b0 = _intercept_for_rate(score[-1], s.base_default_rate)
    return (rng.random(score.shape) < 1 / (1 + np.exp(-(b0 + score)))).astype(float)


def synthetic_portfolio(s: SyntheticPortfolioSettings | None = None) -> pd.DataFrame:
    """Snapshot rows in contract columns (latest `snapshots` months per account), plus `job_loss` as ground truth.

    `job_loss` is not a contract column (validation lists it under ignored columns); tests use it.
    """
    s = s or SyntheticPortfolioSettings()
    sim = simulate(s)
    rng = np.random.default_rng(s.seed + 1)
    start = pd.Timestamp(s.start_month)
    frames = []
    for t in range(s.months - s.snapshots, s.months):
        month = start + pd.DateOffset(months=t)
        cols: dict[str, object] = {
            "account_id": [f"A{i:07d}" for i in range(s.accounts)],
            "snapshot_month": month,
            "product": "credit_card",
            "credit_limit": sim["limit"],
            "balance": sim["stmt"][t],
            "months_on_book": sim["mob0"] + t,
        }
        for m in range(1, s.history + 1):
            cols[f"statement_balance_m{m}"] = sim["stmt"][t - m + 1]
            cols[f"payment_amount_m{m}"] = sim["pay"][t - m + 1]
            cols[f"repayment_status_m{m}"] = sim["status"][t - m + 1]
        cols["monthly_income"] = np.where(sim["income_known"], np.round(sim["income_t"][t], 2), np.nan)
        cols["monthly_debt_payments"] = np.where(sim["income_known"], sim["debts"], np.nan)
        cols["defaulted_next"] = sim["defaulted"][t]
        cols.update(_review_history(month, sim["status"][t], s.accounts, rng))
        cols["job_loss"] = sim["job_loss"] & (sim["loss_month"] <= t)
        frames.append(pd.DataFrame(cols))
    return pd.concat(frames, ignore_index=True)


def _review_history(month: pd.Timestamp, status: np.ndarray, n: int, rng: np.random.Generator) -> dict:
    """Some accounts had a limit change in the last year; late accounts may already have been contacted."""
    changed = rng.random(n) < 0.2
    ago = rng.integers(0, 12, n)
    total = month.year * 12 + (month.month - 1) - ago  # whole months, vectorised
    when = pd.DatetimeIndex(pd.to_datetime({"year": total // 12, "month": total % 12 + 1, "day": 1}))
    return {
        "last_limit_change_month": when.where(changed, pd.NaT),
        "last_limit_change_direction": np.where(
            changed, rng.choice(["increase", "decrease"], n).astype(object), np.full(n, None, dtype=object)
        ),
        "contacts_this_month": np.where(status >= 1, rng.poisson(0.8, n), 0).astype(float),
    }
