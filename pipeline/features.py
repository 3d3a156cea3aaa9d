"""Affordability features and their dictionary: one place, pure vectorised functions.

Every feature has a dictionary entry (formula, unit, inputs, risk direction, reason
text, whether it derives from the current credit limit, documented range). Training
computes every feature whose inputs are present and reports the rest as skipped; the
scoring artifact then computes exactly the trained list with these same functions.

Edge cases have one defined result each (see `docs/features.md`): a ratio with a zero
denominator and a positive numerator is capped at `ratio_cap`; a missing input gives
NaN (LightGBM routes missing values itself), never inf.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pa

from pipeline.config import ContractConfig, FeatureConfig
from pipeline.contract import HOUSING, contract_columns

Compute = Callable[[pd.DataFrame, FeatureConfig], pd.Series]


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    formula: str
    unit: str
    inputs: tuple[tuple[str, ...], ...]  # alternatives: the feature needs every column of one of them
    direction: int  # +1 riskier as it grows, -1 safer as it grows, 0 no constraint
    reason: str
    compute: Compute = field(repr=False, compare=False)
    uses_limit: bool = False
    lo: float | None = None
    hi: float | None = None
    categorical: bool = False
    history: bool = False  # inputs are the monthly history columns

    def available(self, columns: set[str]) -> bool:
        return any(all(c in columns for c in alt) for alt in self.inputs)


# ---------------------------------------------------------------- pure helpers

def safe_ratio(num: pd.Series, den: pd.Series, cap: float) -> pd.Series:
    """num / den for den > 0; 0 when both are 0; `cap` when den is 0 and num positive; NaN if missing."""
    num = num.astype(float)
    den = den.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, num / den, np.where(num > 0, cap, 0.0))
    out = np.where(num.isna() | den.isna(), np.nan, out)
    return pd.Series(np.clip(out, None, cap), index=num.index)


def monthly_instalment(amount: pd.Series, term: pd.Series, apr: float) -> pd.Series:
    """Annuity payment on `amount` over `term` months at `apr`; amount / term at zero rate."""
    r = apr / 12
    if r == 0:
        return amount / term
    return amount * r / (1 - (1 + r) ** (-term))


def history_months(df: pd.DataFrame, prefix: str) -> list[str]:
    """Present history columns for a prefix, latest first (m1, m2, ...)."""
    cols = []
    m = 1
    while f"{prefix}_m{m}" in df.columns:
        cols.append(f"{prefix}_m{m}")
        m += 1
    return cols


def _matrix(df: pd.DataFrame, prefix: str) -> np.ndarray:
    return df[history_months(df, prefix)].to_numpy(dtype=float)


def payment_ratios(df: pd.DataFrame) -> np.ndarray:
    """Share of each month's statement repaid, in [0, 1]; 1 when nothing was owed (statement <= 0)."""
    pay = _matrix(df, "payment_amount")
    stmt = _matrix(df, "statement_balance")
    k = min(pay.shape[1], stmt.shape[1])
    pay, stmt = pay[:, :k], stmt[:, :k]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(stmt > 0, pay / stmt, 1.0)
    ratio = np.where(np.isnan(pay) | np.isnan(stmt), np.nan, ratio)
    return np.clip(ratio, 0.0, 1.0)


def _nan_reduce(fn, m: np.ndarray) -> np.ndarray:
    out = np.full(m.shape[0], np.nan)
    ok = ~np.all(np.isnan(m), axis=1) if m.shape[1] else np.zeros(m.shape[0], bool)
    if ok.any():
        out[ok] = fn(m[ok], axis=1)
    return out


def slope(m: np.ndarray) -> np.ndarray:
    """Least-squares slope per row over time, columns latest first; NaNs ignored, < 2 points -> NaN."""
    k = m.shape[1]
    t = np.arange(k, 0, -1, dtype=float)[None, :]  # m1 is the latest, so time runs k..1 -> reversed
    t = -t  # older months have smaller time values
    ok = ~np.isnan(m)
    n = ok.sum(axis=1)
    tt = np.where(ok, t, 0.0)
    yy = np.where(ok, m, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_mean = tt.sum(axis=1) / n
        y_mean = yy.sum(axis=1) / n
        cov = (np.where(ok, (t - t_mean[:, None]) * (m - y_mean[:, None]), 0.0)).sum(axis=1)
        var = (np.where(ok, (t - t_mean[:, None]) ** 2, 0.0)).sum(axis=1)
        out = cov / var
    return np.where(n >= 2, out, np.nan)


def _series(values: np.ndarray, df: pd.DataFrame) -> pd.Series:
    return pd.Series(values, index=df.index, dtype=float)


# ---------------------------------------------------------------- feature functions

def debt_to_income(df, cfg):
    return safe_ratio(df["monthly_debt_payments"], df["monthly_income"], cfg.ratio_cap)


def living_cost(df, cfg):
    dependents = df["dependents"].fillna(0) if "dependents" in df else 0
    return cfg.living_cost_base + cfg.living_cost_per_dependent * dependents


def residual_income(df, cfg):
    return df["monthly_income"] - df["monthly_debt_payments"] - living_cost(df, cfg)


def requested_instalment(df, cfg):
    if cfg.credit_type == "revolving":
        return df["requested_amount"] * cfg.min_payment_rate
    term = df["requested_term_months"].fillna(cfg.default_term_months) if "requested_term_months" in df else cfg.default_term_months
    return monthly_instalment(df["requested_amount"], term, cfg.apr)


def payment_to_income(df, cfg):
    return safe_ratio(requested_instalment(df, cfg), df["monthly_income"], cfg.ratio_cap)


def requested_to_income(df, cfg):
    return safe_ratio(df["requested_amount"], 12 * df["monthly_income"], cfg.ratio_cap)


def utilization(df, cfg):
    """Balance / limit, from the best columns present; credit (negative) balances count as 0."""
    cap = cfg.utilization_cap
    direct = df["revolving_utilization"].clip(0, cap) if "revolving_utilization" in df else None
    balance = None
    if "revolving_balance" in df:
        balance = df["revolving_balance"]
    elif "statement_balance_m1" in df:
        balance = df["statement_balance_m1"]
    if balance is not None and "revolving_limit" in df:
        ratio = safe_ratio(balance.clip(lower=0), df["revolving_limit"], cap).clip(0, cap)
        return ratio.fillna(direct) if direct is not None else ratio
    return direct


def statement_utilization_mean(df, cfg):
    stmt = _nan_reduce(np.nanmean, np.clip(_matrix(df, "statement_balance"), 0, None))
    return safe_ratio(_series(stmt, df), df["revolving_limit"], cfg.utilization_cap).clip(0, cfg.utilization_cap)


def payment_ratio_latest(df, cfg):
    return _series(payment_ratios(df)[:, 0], df)


def payment_ratio_mean(df, cfg):
    return _series(_nan_reduce(np.nanmean, payment_ratios(df)), df)


def payment_ratio_min(df, cfg):
    return _series(_nan_reduce(np.nanmin, payment_ratios(df)), df)


def months_delinquent(df, cfg):
    status = _matrix(df, "repayment_status")
    count = (status >= 1).sum(axis=1).astype(float)
    return _series(np.where(np.all(np.isnan(status), axis=1), np.nan, count), df)


def worst_status(df, cfg):
    return _series(_nan_reduce(np.nanmax, _matrix(df, "repayment_status")), df)


def latest_status(df, cfg):
    return df["repayment_status_m1"].astype(float)


def months_since_delinquent(df, cfg):
    """Months since the latest month past due (0 = the latest month); k when none in the k months seen."""
    status = _matrix(df, "repayment_status")
    late = status >= 1
    first = np.argmax(late, axis=1).astype(float)
    out = np.where(late.any(axis=1), first, status.shape[1])
    return _series(np.where(np.all(np.isnan(status), axis=1), np.nan, out), df)


def balance_trend(df, cfg):
    """Slope of statement balances per month, as a share of the mean absolute balance, in [-1, 1]."""
    stmt = _matrix(df, "statement_balance")
    scale = np.maximum(_nan_reduce(np.nanmean, np.abs(stmt)), 1.0)
    return _series(np.clip(slope(stmt) / scale, -1, 1), df)


def payment_trend(df, cfg):
    """Slope of the monthly payment ratio per month, in [-1, 1]; negative means paying less of each bill."""
    return _series(np.clip(slope(payment_ratios(df)), -1, 1), df)


def delinquency_severity(df, cfg):
    return df["delinquencies_30d"] + 2 * df["delinquencies_60d"] + 3 * df["delinquencies_90d"]


def credit_history_years(df, cfg):
    return df["credit_history_months"] / 12


def limit_to_income(df, cfg):
    return safe_ratio(df["revolving_limit"], 12 * df["monthly_income"], cfg.ratio_cap)


def passthrough(column: str) -> Compute:
    def compute(df, cfg):
        return df[column]

    compute.__name__ = f"passthrough_{column}"
    return compute


# ---------------------------------------------------------------- the dictionary

F = FeatureSpec
INC, DEBT = "monthly_income", "monthly_debt_payments"
STATUS = ("repayment_status_m1",)
PAYHIST = ("statement_balance_m1", "payment_amount_m1")

CORE_FEATURES: tuple[FeatureSpec, ...] = (
    F("debt_to_income", "monthly_debt_payments / monthly_income", "ratio", ((INC, DEBT),), 1,
      "Existing debt payments are high relative to income", debt_to_income, lo=0, hi=None),
    F("residual_income", "monthly_income - monthly_debt_payments - (living_cost_base + living_cost_per_dependent x dependents)",
      "currency / month", ((INC, DEBT),), -1, "Little income is left after debts and living costs", residual_income),
    F("payment_to_income", "instalment of the requested credit (annuity at apr over the term, or min_payment_rate x amount for revolving) / monthly_income",
      "ratio", ((INC, "requested_amount"),), 1, "Repayment of the requested credit is high relative to income",
      payment_to_income, lo=0),
    F("requested_to_income", "requested_amount / (12 x monthly_income)", "ratio", ((INC, "requested_amount"),), 1,
      "The amount requested is large relative to annual income", requested_to_income, lo=0),
    F("utilization", "revolving_balance (else statement_balance_m1), floored at 0, / revolving_limit; else revolving_utilization; capped at utilization_cap",
      "ratio", (("revolving_balance", "revolving_limit"), ("statement_balance_m1", "revolving_limit"), ("revolving_utilization",)),
      1, "Revolving credit is heavily used", utilization, uses_limit=True, lo=0),
    F("statement_utilization_mean", "mean of statement balances (floored at 0) over the history / revolving_limit, capped",
      "ratio", (("statement_balance_m1", "revolving_limit"),), 1, "Balances have been high relative to the limit",
      statement_utilization_mean, uses_limit=True, lo=0, history=True),
    F("payment_ratio_latest", "payment_amount_m1 / statement_balance_m1, in [0, 1]; 1 when nothing was owed",
      "ratio", (PAYHIST,), -1, "The latest payment covered little of the bill", payment_ratio_latest, lo=0, hi=1, history=True),
    F("payment_ratio_mean", "mean over the history of payment / statement, each in [0, 1]", "ratio", (PAYHIST,), -1,
      "Payments have covered little of the bills", payment_ratio_mean, lo=0, hi=1, history=True),
    F("payment_ratio_min", "minimum over the history of payment / statement, each in [0, 1]", "ratio", (PAYHIST,), -1,
      "At least one month's payment covered little of the bill", payment_ratio_min, lo=0, hi=1, history=True),
    F("months_delinquent", "number of history months with repayment_status >= 1", "months", (STATUS,), 1,
      "Several recent months with payments past due", months_delinquent, lo=0, history=True),
    F("worst_status", "maximum repayment_status over the history", "months past due", (STATUS,), 1,
      "Payments have recently been seriously late", worst_status, lo=-2, hi=9, history=True),
    F("latest_status", "repayment_status_m1", "months past due", (STATUS,), 1,
      "The latest payment was late", latest_status, lo=-2, hi=9, history=True),
    F("months_since_delinquent", "months since the latest month with repayment_status >= 1 (0 = latest); the number of months seen when none",
      "months", (STATUS,), -1, "A payment was late recently", months_since_delinquent, lo=0, history=True),
    F("balance_trend", "least-squares slope of statement balances per month / mean absolute balance, clipped to [-1, 1]",
      "share per month", (("statement_balance_m1",),), 1, "Balances have been rising", balance_trend, lo=-1, hi=1, history=True),
    F("payment_trend", "least-squares slope of monthly payment ratios per month, clipped to [-1, 1]",
      "ratio per month", (PAYHIST,), -1, "Payments have been falling relative to bills", payment_trend, lo=-1, hi=1, history=True),
    F("delinquency_severity", "delinquencies_30d + 2 x delinquencies_60d + 3 x delinquencies_90d", "weighted events",
      (("delinquencies_30d", "delinquencies_60d", "delinquencies_90d"),), 1, "Past due events in the last 24 months",
      delinquency_severity, lo=0),
    F("credit_history_years", "credit_history_months / 12", "years", (("credit_history_months",),), -1,
      "Short credit history", credit_history_years, lo=0),
    F("limit_to_income", "revolving_limit / (12 x monthly_income)", "ratio", ((INC, "revolving_limit"),), 0,
      "Existing credit limit relative to income", limit_to_income, uses_limit=True, lo=0),
    F("monthly_income", "as given", "currency / month", ((INC,),), -1, "Income is low", passthrough(INC), lo=0),
    F("age", "as given", "years", (("age",),), 0, "Age profile", passthrough("age"), lo=18, hi=100),
    F("employment_years", "as given", "years", (("employment_years",),), -1, "Short time in current employment",
      passthrough("employment_years"), lo=0, hi=60),
    F("dependents", "as given", "people", (("dependents",),), 0, "Number of dependents", passthrough("dependents"), lo=0, hi=20),
    F("open_credit_lines", "as given", "lines", (("open_credit_lines",),), 0, "Number of open credit lines",
      passthrough("open_credit_lines"), lo=0),
    F("delinquencies_90d", "as given", "events", (("delinquencies_90d",),), 1, "Serious (90+ days) past due events",
      passthrough("delinquencies_90d"), lo=0),
    F("requested_amount", "as given", "currency", (("requested_amount",),), 0, "Size of the requested credit",
      passthrough("requested_amount"), lo=0),
    F("requested_term_months", "as given", "months", (("requested_term_months",),), 0, "Term of the requested credit",
      passthrough("requested_term_months"), lo=1, hi=360),
    F("revolving_limit", "as given", "currency", (("revolving_limit",),), -1, "Existing credit limit is low",
      passthrough("revolving_limit"), uses_limit=True, lo=0),
    F("housing", "as given (categorical)", "category", (("housing",),), 0, "Housing situation", passthrough("housing"),
      categorical=True),
)

CATEGORIES = {"housing": list(HOUSING)}


def history_passthrough_specs(months: int) -> list[FeatureSpec]:
    """Raw monthly history as features, for data sets whose signal lives there (opt-in by config)."""
    specs = []
    for m in range(1, months + 1):
        specs += [
            F(f"repayment_status_m{m}", "as given", "months past due", ((f"repayment_status_m{m}",),), 1,
              f"Payment {m} month(s) ago was late", passthrough(f"repayment_status_m{m}"), lo=-2, hi=9, history=True),
            F(f"payment_amount_m{m}", "as given", "currency", ((f"payment_amount_m{m}",),), -1,
              f"Low payment {m} month(s) ago", passthrough(f"payment_amount_m{m}"), lo=0, history=True),
            F(f"statement_balance_m{m}", "as given", "currency", ((f"statement_balance_m{m}",),), 0,
              f"Statement balance {m} month(s) ago", passthrough(f"statement_balance_m{m}"), history=True),
        ]
    return specs


def extra_specs(contract: ContractConfig) -> list[FeatureSpec]:
    """Declared extra columns pass through as features with their declared direction and reason."""
    specs = []
    for extra in contract.extras:
        categorical = extra.dtype in ("category", "str")
        specs.append(
            F(extra.name, f"declared extra column ({extra.description or extra.dtype})", extra.dtype,
              ((extra.name,),), 0 if categorical else extra.risk_direction,
              extra.reason or f"{extra.name.replace('_', ' ').capitalize()}", passthrough(extra.name),
              lo=extra.min, hi=extra.max, categorical=categorical)
        )
    return specs


def feature_dictionary(contract: ContractConfig, history_passthrough: bool = False) -> list[FeatureSpec]:
    specs = list(CORE_FEATURES)
    if history_passthrough:
        specs += history_passthrough_specs(contract.history_months)
    return specs + extra_specs(contract)


def categories(contract: ContractConfig) -> dict[str, list[str]]:
    cats = dict(CATEGORIES)
    for col in contract_columns(contract):
        if col.allowed is not None and col.role == "feature":
            cats[col.name] = list(col.allowed)
    return cats


@dataclass
class FeatureSelection:
    used: list[FeatureSpec]
    skipped: dict[str, str]  # feature -> why


def select_features(columns: set[str], dictionary: list[FeatureSpec], empty: set[str] = frozenset()) -> FeatureSelection:
    """Features whose inputs are present (and not entirely empty); the rest with the reason they are skipped."""
    usable = columns - set(empty)
    used, skipped = [], {}
    for spec in dictionary:
        if spec.available(usable):
            used.append(spec)
        else:
            alts = " or ".join("+".join(alt) for alt in spec.inputs)
            absent = sorted({c for alt in spec.inputs for c in alt if c not in columns})
            blank = sorted({c for alt in spec.inputs for c in alt if c in empty})
            why = []
            if absent:
                why.append("absent: " + ", ".join(absent))
            if blank:
                why.append("all missing: " + ", ".join(blank))
            skipped[spec.name] = f"needs {alts} ({'; '.join(why)})"
    return FeatureSelection(used, skipped)


def compute_features(df: pd.DataFrame, specs: list[FeatureSpec], cfg: FeatureConfig, cats: dict[str, list[str]]) -> pd.DataFrame:
    """The feature matrix, one column per spec, in spec order; row order and count preserved."""
    out = {}
    for spec in specs:
        if spec.categorical:
            values = df[spec.name] if spec.name in df else pd.Series(np.nan, index=df.index)
            out[spec.name] = pd.Categorical(values.astype(object), categories=cats.get(spec.name))
            continue
        values = spec.compute(df, cfg)
        values = values.astype(float) if isinstance(values, pd.Series) else pd.Series(values, index=df.index, dtype=float)
        out[spec.name] = values.to_numpy()
    return pd.DataFrame(out, index=df.index)


def feature_schema(specs: list[FeatureSpec]) -> pa.DataFrameSchema:
    """Output check: every numeric feature finite or missing and within its documented range."""
    cols = {}
    for spec in specs:
        if spec.categorical:
            cols[spec.name] = pa.Column(nullable=True)
            continue
        checks = [pa.Check(lambda s: s.isna() | np.isfinite(s), name="finite")]
        if spec.lo is not None:
            checks.append(pa.Check(lambda s, lo=spec.lo: s.isna() | (s >= lo), name=f"min({spec.lo:g})"))
        if spec.hi is not None:
            checks.append(pa.Check(lambda s, hi=spec.hi: s.isna() | (s <= hi), name=f"max({spec.hi:g})"))
        cols[spec.name] = pa.Column(float, checks=checks, nullable=True)
    return pa.DataFrameSchema(cols, strict=True, name="features")


def dictionary_markdown(contract: ContractConfig, cfg: FeatureConfig) -> str:
    """docs/features.md, generated: a test fails when the committed file differs."""
    lines = [
        "# Feature dictionary",
        "",
        "Generated by `make docs` from `pipeline/features.py`; do not edit by hand.",
        "Risk direction: +1 riskier as the value grows, -1 safer as it grows, 0 no monotone constraint.",
        "`uses limit`: derived from the current credit limit, so the limit model never sees it.",
        "",
        "| feature | formula | unit | inputs (any one set) | direction | range | uses limit | reason text |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in feature_dictionary(contract, history_passthrough=False):
        inputs = " or ".join("+".join(alt) for alt in s.inputs)
        rng = f"{'' if s.lo is None else f'{s.lo:g}'}..{'' if s.hi is None else f'{s.hi:g}'}"
        lines.append(f"| `{s.name}` | {s.formula} | {s.unit} | {inputs} | {s.direction:+d} | {rng} | "
                     f"{'yes' if s.uses_limit else ''} | {s.reason} |")
    lines += ["", f"Defaults used in formulas: living_cost_base={cfg.living_cost_base:g}, "
              f"living_cost_per_dependent={cfg.living_cost_per_dependent:g}, apr={cfg.apr:g}, "
              f"min_payment_rate={cfg.min_payment_rate:g}, utilization_cap={cfg.utilization_cap:g}, ratio_cap={cfg.ratio_cap:g}.", ""]
    return "\n".join(lines)
