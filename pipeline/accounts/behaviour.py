"""Behaviour features of an existing account and their dictionary: one place, pure vectorised functions.

Why: once an account is open, how it is used and repaid predicts default far better than the
application did. Every feature has a dictionary entry (formula, inputs, risk direction, plain-words
reason) so the same list drives training (monotone constraints), scoring and reason texts.

Conventions (shared with the applicant features): history columns are latest first (m1 = latest);
`payment_amount_mj` is paid against `statement_balance_mj`. Defined edge cases: a zero limit gives
utilisation `utilisation_cap` when a balance is owed and 0 otherwise; a statement <= 0 (nothing owed)
gives payment ratio 1; unknown or zero income gives missing limit_to_income (never inf); a missing
month is ignored by counts, means and trends; a fully missing history gives missing features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.accounts.settings import HistorySettings

Compute = Callable[[pd.DataFrame, HistorySettings], np.ndarray]


@dataclass(frozen=True)
class BehaviourSpec:
    """One feature; `name`, `direction` and `categorical` match what the PD trainer reads from a FeatureSpec."""

    name: str
    formula: str
    inputs: tuple[str, ...]  # column prefixes or names; history prefixes need every month present
    direction: int  # +1 riskier as it grows, -1 safer as it grows
    reason: str
    compute: Compute = field(repr=False, compare=False)
    categorical: bool = False

    def available(self, columns: set[str], months: int) -> bool:
        return not self.missing(columns, months)

    def missing(self, columns: set[str], months: int) -> list[str]:
        """Inputs the frame lacks (a history prefix counts as missing unless every month is there)."""
        return [name for name in self.inputs if not _present(name, columns, months)]


def _present(name: str, columns: set[str], months: int) -> bool:
    if name in HISTORY:
        return all(f"{name}_m{m}" in columns for m in range(1, months + 1))
    return name in columns


HISTORY = ("statement_balance", "payment_amount", "repayment_status")


def history(df: pd.DataFrame, prefix: str, months: int) -> np.ndarray:
    """Rows x months matrix, latest month first."""
    return df[[f"{prefix}_m{m}" for m in range(1, months + 1)]].to_numpy(dtype=float)


def _ratio(num: np.ndarray, den: np.ndarray, cap: float) -> np.ndarray:
    """num / den in [-cap, cap]; den <= 0 -> cap if num > 0 else 0; NaN in -> NaN out."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(num > 0, cap, 0.0))
    return np.clip(np.where(np.isnan(num) | np.isnan(den), np.nan, out), -cap, cap)


def _nanmean(m: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, m, 0.0).sum(axis=1) / ok.sum(axis=1)


def slope(m: np.ndarray) -> np.ndarray:
    """Least-squares slope per row per month forward in time (column j is month -j); < 2 known months -> NaN."""
    t = -np.arange(1, m.shape[1] + 1, dtype=float)
    ok = ~np.isnan(m)
    n = ok.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_mean = np.where(ok, t, 0.0).sum(axis=1) / n
        y = np.where(ok, m, 0.0)
        dt = np.where(ok, t - t_mean[:, None], 0.0)
        out = (dt * (y - (y.sum(axis=1) / n)[:, None])).sum(axis=1) / (dt * dt).sum(axis=1)
    return np.where(n >= 2, out, np.nan)


def payment_ratios(df: pd.DataFrame, months: int) -> np.ndarray:
    """Share of each statement repaid, in [0, 1]; 1 when nothing was owed (statement <= 0)."""
    pay, stmt = history(df, "payment_amount", months), history(df, "statement_balance", months)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(stmt > 0, pay / np.where(stmt > 0, stmt, 1.0), 1.0)
    return np.clip(np.where(np.isnan(pay) | np.isnan(stmt), np.nan, ratio), 0.0, 1.0)


def utilisation_now(df: pd.DataFrame, s: HistorySettings) -> np.ndarray:
    bal = np.maximum(df["balance"].to_numpy(float), 0.0)
    return np.clip(_ratio(bal, df["credit_limit"].to_numpy(float), s.utilisation_cap), 0, s.utilisation_cap)


def utilisation_mean(df: pd.DataFrame, s: HistorySettings) -> np.ndarray:
    stmt = np.maximum(history(df, "statement_balance", s.months), 0.0)
    limit = df["credit_limit"].to_numpy(float)[:, None]
    return _nanmean(np.clip(_ratio(stmt, np.broadcast_to(limit, stmt.shape), s.utilisation_cap), 0, s.utilisation_cap))


def payment_ratio_latest(df: pd.DataFrame, s: HistorySettings) -> np.ndarray:
    return payment_ratios(df, s.months)[:, 0]


def payment_ratio_mean(df: pd.DataFrame, s: HistorySettings) -> np.ndarray:
    return _nanmean(payment_ratios(df, s.months))


def payment_ratio_min(df: pd.DataFrame, s: HistorySettings) -> np.ndarray:
    r = payment_ratios(df, s.months)
    return np.where(np.isnan(r).all(axis=1), np.nan, np.fmin.reduce(r, axis=1))


def balance_trend(df: pd.DataFrame, s: HistorySettings) -> np.ndarray:
    """Slope of statement / limit per month: a balance growing towards the limit is the classic warning."""
    stmt = np.maximum(history(df, "statement_balance", s.months), 0.0)
    limit = np.maximum(df["credit_limit"].to_numpy(float), 1.0)[:, None]
    return np.clip(slope(stmt / limit), -1, 1)


def payment_trend(df: pd.DataFrame, s: HistorySettings) -> np.ndarray:
    return np.clip(slope(payment_ratios(df, s.months)), -1, 1)


def months_delinquent(df: pd.DataFrame, s: HistorySettings) -> np.ndarray:
    st = history(df, "repayment_status", s.months)
    return np.where(np.isnan(st).all(axis=1), np.nan, (st >= 1).sum(axis=1).astype(float))


def worst_status(df: pd.DataFrame, s: HistorySettings) -> np.ndarray:
    st = history(df, "repayment_status", s.months)
    return np.where(np.isnan(st).all(axis=1), np.nan, np.fmax.reduce(st, axis=1))


def latest_status(df: pd.DataFrame, s: HistorySettings) -> np.ndarray:
    return df["repayment_status_m1"].to_numpy(float)


def months_since_delinquency(df: pd.DataFrame, s: HistorySettings) -> np.ndarray:
    """m1 late -> 0, m2 late -> 1, ...; K (the window) when no month was late."""
    st = history(df, "repayment_status", s.months)
    late = st >= 1
    out = np.where(late.any(axis=1), np.argmax(late, axis=1).astype(float), float(s.months))
    return np.where(np.isnan(st).all(axis=1), np.nan, out)


def months_on_book(df: pd.DataFrame, s: HistorySettings) -> np.ndarray:
    return df["months_on_book"].to_numpy(float)


def limit_to_income(df: pd.DataFrame, s: HistorySettings) -> np.ndarray:
    """Limit / monthly income; unknown or zero income -> missing (no invented income)."""
    income = df["monthly_income"].to_numpy(float)
    limit = df["credit_limit"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(income > 0, np.clip(limit / np.where(income > 0, income, 1.0), 0, s.ratio_cap), np.nan)


B = BehaviourSpec
STMT, PAY, STATUS = HISTORY
DICTIONARY: list[BehaviourSpec] = [
    B("utilisation_now", "max(balance, 0) / credit_limit in [0, utilisation_cap]; limit 0 -> cap if owed else 0",
      ("balance", "credit_limit"), 1, "The card is heavily used", utilisation_now),
    B("utilisation_mean", "mean over months of max(statement, 0) / credit_limit, each in [0, utilisation_cap]",
      (STMT, "credit_limit"), 1, "Balances have been high relative to the limit", utilisation_mean),
    B("payment_ratio_latest", "payment_m1 / statement_m1 in [0, 1]; 1 when nothing was owed",
      (STMT, PAY), -1, "The latest payment covered little of the bill", payment_ratio_latest),
    B("payment_ratio_mean", "mean over months of payment / statement (each as payment_ratio_latest)",
      (STMT, PAY), -1, "Payments have covered little of the bills", payment_ratio_mean),
    B("payment_ratio_min", "minimum over months of payment / statement", (STMT, PAY), -1,
      "At least one month's payment covered little of the bill", payment_ratio_min),
    B("balance_trend", "least-squares slope of max(statement, 0) / credit_limit per month forward in time, "
      "in [-1, 1]", (STMT, "credit_limit"), 1, "Balances have been rising towards the limit", balance_trend),
    B("payment_trend", "least-squares slope of payment ratios per month forward in time, in [-1, 1]",
      (STMT, PAY), -1, "Payments have been falling relative to bills", payment_trend),
    B("months_delinquent", "number of months with repayment_status >= 1", (STATUS,), 1,
      "Several recent months with payments past due", months_delinquent),
    B("worst_status", "maximum repayment_status over the history", (STATUS,), 1,
      "Payments have recently been seriously late", worst_status),
    B("latest_status", "repayment_status_m1", (STATUS,), 1, "The latest payment was late", latest_status),
    B("months_since_delinquency", "months back to the latest late month (m1 -> 0); K when none was late",
      (STATUS,), -1, "A payment was late recently", months_since_delinquency),
    B("months_on_book", "months_on_book", ("months_on_book",), -1, "The account is new", months_on_book),
    B("limit_to_income", "credit_limit / monthly_income in [0, ratio_cap]; unknown or zero income -> missing",
      ("credit_limit", "monthly_income"), 1, "The limit is large relative to income", limit_to_income),
]  # fmt: skip
BY_NAME = {spec.name: spec for spec in DICTIONARY}


def available_specs(columns: set[str] | list[str], s: HistorySettings) -> list[BehaviourSpec]:
    """Features whose inputs the frame has; e.g. limit_to_income is skipped when no income column exists."""
    cols = set(columns)
    return [spec for spec in DICTIONARY if spec.available(cols, s.months)]


def compute_behaviour(df: pd.DataFrame, s: HistorySettings, specs: list[BehaviourSpec] | None = None) -> pd.DataFrame:
    """Feature frame in dictionary order (float64, never inf) for the given or all available specs."""
    specs = available_specs(df.columns, s) if specs is None else specs
    return pd.DataFrame({spec.name: spec.compute(df, s).astype(float) for spec in specs}, index=df.index)
