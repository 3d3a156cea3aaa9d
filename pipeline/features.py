"""Affordability features and their dictionary: one place, pure vectorised functions.

Every feature has a dictionary entry (formula, unit, inputs, risk direction, reason
text, whether it derives from the current credit limit, documented range). Training
computes every feature whose inputs are present and reports the rest as skipped; the
scoring artifact then computes exactly the trained list with these same functions.

Edge cases have one defined result each (listed in `EDGE_CASES` and `docs/features.md`):
a ratio whose denominator is zero or negative is `cap` when the numerator is positive and
0 otherwise; a missing input gives NaN (LightGBM routes missing values itself); no
feature is ever +-inf. History columns are latest first: m1 is the latest month.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pa

from pipeline.config import Config, ContractConfig, FeatureConfig
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
    """num / den clipped to [-cap, cap], so a ratio is never inf.

    den <= 0 (no income, no limit; negative is out of contract) -> `cap` if num > 0 else 0;
    NaN if either input is missing.
    """
    n = np.asarray(num, dtype=float)
    d = np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.where(d > 0, n / d, np.where(n > 0, cap, 0.0))
    out = np.where(np.isnan(n) | np.isnan(d), np.nan, out)
    return pd.Series(np.clip(out, -cap, cap), index=num.index)


def monthly_instalment(amount: pd.Series, term: pd.Series, apr: float) -> pd.Series:
    """Annuity payment on `amount` over `term` months at `apr`; amount / term at zero rate."""
    r = apr / 12
    if r == 0:
        return amount / term
    return amount * r / (1 - (1 + r) ** (-term))


def history_months(df: pd.DataFrame, prefix: str) -> list[str]:
    """Present history columns for a prefix, latest first (m1, m2, ...), up to the first gap."""
    cols = []
    m = 1
    while f"{prefix}_m{m}" in df.columns:
        cols.append(f"{prefix}_m{m}")
        m += 1
    return cols


# Within one compute_features call the history matrices and payment ratios are shared by
# several features; memoising them there (and only there) reads a 1M-row history once.
_MEMO: ContextVar[dict | None] = ContextVar("feature_memo", default=None)


def _memo(key: tuple, make: Callable[[], np.ndarray]) -> np.ndarray:
    memo = _MEMO.get()
    if memo is None:
        return make()
    if key not in memo:
        value = make()
        value.flags.writeable = False  # shared between features: nobody may modify it
        memo[key] = value
    return memo[key]


def _matrix(df: pd.DataFrame, prefix: str) -> np.ndarray:
    return _memo((id(df), prefix), lambda: df[history_months(df, prefix)].to_numpy(dtype=float))


def payment_ratios(df: pd.DataFrame) -> np.ndarray:
    """Share of each month's statement repaid, in [0, 1]; 1 when nothing was owed (statement <= 0)."""
    return _memo((id(df), "payment_ratios"), lambda: _payment_ratios(df))


def _payment_ratios(df: pd.DataFrame) -> np.ndarray:
    pay = _matrix(df, "payment_amount")
    stmt = _matrix(df, "statement_balance")
    k = min(pay.shape[1], stmt.shape[1])
    pay, stmt = pay[:, :k], stmt[:, :k]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(stmt > 0, pay / stmt, 1.0)
    ratio = np.where(np.isnan(pay) | np.isnan(stmt), np.nan, ratio)
    return np.clip(ratio, 0.0, 1.0)


def _row_mean(m: np.ndarray) -> np.ndarray:
    """Mean of the non-missing values per row; NaN when a row has none (no warnings, no copies of rows)."""
    ok = ~np.isnan(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, m, 0.0).sum(axis=1) / ok.sum(axis=1)


def _row_max(m: np.ndarray) -> np.ndarray:
    """Max ignoring NaN (fmax), NaN only when the whole row is missing."""
    return np.fmax.reduce(m, axis=1) if m.shape[1] else np.full(m.shape[0], np.nan)


def _row_min(m: np.ndarray) -> np.ndarray:
    return np.fmin.reduce(m, axis=1) if m.shape[1] else np.full(m.shape[0], np.nan)


def _all_missing(m: np.ndarray) -> np.ndarray:
    return np.isnan(m).all(axis=1)


def slope(m: np.ndarray) -> np.ndarray:
    """Least-squares slope per row, per month forward in time; columns are latest first (m1 = latest).

    Month j is placed at time -j, so a series that grows towards the latest month has a
    positive slope. Missing months are ignored; fewer than 2 known months -> NaN. Complete
    rows take one matrix-vector product (fixed weights); only rows with gaps take the masked path.
    """
    n_rows, k = m.shape
    if k < 2:
        return np.full(n_rows, np.nan)
    t = -np.arange(1, k + 1, dtype=float)
    dt = t - t.mean()
    with np.errstate(invalid="ignore", over="ignore"):
        out = m @ (dt / (dt @ dt))
    gaps = np.isnan(out)
    if gaps.any():
        out[gaps] = _masked_slope(m[gaps], t)
    return out


def _masked_slope(m: np.ndarray, t: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(m)
    n = ok.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        t_mean = np.where(ok, t, 0.0).sum(axis=1) / n
        yy = np.where(ok, m, 0.0)
        y_mean = yy.sum(axis=1) / n
        dt = np.where(ok, t - t_mean[:, None], 0.0)
        cov = (dt * (yy - y_mean[:, None])).sum(axis=1)
        var = (dt * dt).sum(axis=1)
        out = cov / var
    return np.where(n >= 2, out, np.nan)


def _series(values: np.ndarray, df: pd.DataFrame) -> pd.Series:
    return pd.Series(values, index=df.index, dtype=float)


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name].astype(float)


# ---------------------------------------------------------------- feature functions


def debt_to_income(df, cfg):
    return safe_ratio(_col(df, "monthly_debt_payments").clip(lower=0), _col(df, "monthly_income"), cfg.ratio_cap)


def living_cost(df, cfg):
    """Living-cost allowance: base + per dependent; unknown dependents count as none."""
    dependents = _col(df, "dependents").fillna(0).clip(lower=0) if "dependents" in df else 0.0
    return cfg.living_cost_base + cfg.living_cost_per_dependent * dependents


def residual_income(df, cfg):
    return _col(df, "monthly_income") - _col(df, "monthly_debt_payments") - living_cost(df, cfg)


def requested_instalment(df, cfg):
    """Monthly repayment of the requested credit: annuity for instalment credit, minimum payment for revolving."""
    amount = _col(df, "requested_amount").clip(lower=0)
    if cfg.credit_type == "revolving":
        return amount * cfg.min_payment_rate
    if "requested_term_months" in df:
        term = _col(df, "requested_term_months").fillna(cfg.default_term_months).clip(lower=1)
    else:
        term = float(cfg.default_term_months)
    return monthly_instalment(amount, term, cfg.apr)


def payment_to_income(df, cfg):
    return safe_ratio(requested_instalment(df, cfg), _col(df, "monthly_income"), cfg.ratio_cap)


def requested_to_income(df, cfg):
    return safe_ratio(_col(df, "requested_amount").clip(lower=0), 12 * _col(df, "monthly_income"), cfg.ratio_cap)


def utilization(df, cfg):
    """Balance / limit, from the best columns present; credit (negative) balances count as 0."""
    cap = cfg.utilization_cap
    direct = _col(df, "revolving_utilization").clip(0, cap) if "revolving_utilization" in df else None
    balance = None
    if "revolving_balance" in df:
        balance = _col(df, "revolving_balance")
    elif "statement_balance_m1" in df:
        balance = _col(df, "statement_balance_m1")
    if balance is not None and "revolving_limit" in df:
        ratio = safe_ratio(balance.clip(lower=0), _col(df, "revolving_limit"), cap).clip(0, cap)
        return ratio.fillna(direct) if direct is not None else ratio
    return direct


def statement_utilization_mean(df, cfg):
    stmt = _row_mean(np.clip(_matrix(df, "statement_balance"), 0, None))
    return safe_ratio(_series(stmt, df), _col(df, "revolving_limit"), cfg.utilization_cap).clip(0, cfg.utilization_cap)


def payment_ratio_latest(df, cfg):
    return _series(payment_ratios(df)[:, 0], df)


def payment_ratio_mean(df, cfg):
    return _series(_row_mean(payment_ratios(df)), df)


def payment_ratio_min(df, cfg):
    return _series(_row_min(payment_ratios(df)), df)


def months_delinquent(df, cfg):
    status = _matrix(df, "repayment_status")
    count = (status >= 1).sum(axis=1).astype(float)
    return _series(np.where(_all_missing(status), np.nan, count), df)


def worst_status(df, cfg):
    return _series(_row_max(_matrix(df, "repayment_status")), df)


def latest_status(df, cfg):
    return _col(df, "repayment_status_m1")


def months_since_delinquent(df, cfg):
    """Months between the latest month and the latest past-due month (m1 late -> 0); k when none of k was late."""
    status = _matrix(df, "repayment_status")
    late = status >= 1
    first = np.argmax(late, axis=1).astype(float)
    out = np.where(late.any(axis=1), first, float(status.shape[1]))
    return _series(np.where(_all_missing(status), np.nan, out), df)


def balance_trend(df, cfg):
    """Slope of statement balances per month, as a share of the mean absolute balance, in [-1, 1]."""
    stmt = _matrix(df, "statement_balance")
    scale = np.maximum(_row_mean(np.abs(stmt)), 1.0)
    return _series(np.clip(slope(stmt) / scale, -1, 1), df)


def payment_trend(df, cfg):
    """Slope of the monthly payment ratio per month, in [-1, 1]; negative means paying less of each bill."""
    return _series(np.clip(slope(payment_ratios(df)), -1, 1), df)


def delinquency_severity(df, cfg):
    d30, d60, d90 = (_col(df, f"delinquencies_{d}d").clip(lower=0) for d in (30, 60, 90))
    return d30 + 2 * d60 + 3 * d90


def delinquency_count(df, cfg):
    """All past-due events the bureau reports, unweighted: one reason-code-friendly count."""
    d30, d60, d90 = (_col(df, f"delinquencies_{d}d").clip(lower=0) for d in (30, 60, 90))
    return d30 + d60 + d90


def credit_history_years(df, cfg):
    return _col(df, "credit_history_months") / 12


def limit_to_income(df, cfg):
    return safe_ratio(_col(df, "revolving_limit").clip(lower=0), 12 * _col(df, "monthly_income"), cfg.ratio_cap)


def passthrough(column: str) -> Compute:
    def compute(df, cfg):
        return df[column]

    compute.__name__ = f"passthrough_{column}"
    return compute


# ---------------------------------------------------------------- the dictionary

# fmt: off
# The dictionary is a table: one entry per feature, kept compact on purpose.
F = FeatureSpec
INC, DEBT = "monthly_income", "monthly_debt_payments"
STATUS = ("repayment_status_m1",)
PAYHIST = ("statement_balance_m1", "payment_amount_m1")
DELQ = ("delinquencies_30d", "delinquencies_60d", "delinquencies_90d")
# Optional inputs are listed as a richer first alternative: training records the first
# alternative present as required scoring columns, so scoring uses the same formula.
NO_INCOME = "monthly_income <= 0 -> ratio_cap if the numerator > 0, else 0; income missing -> missing"

CORE_FEATURES: tuple[FeatureSpec, ...] = (
    F("debt_to_income", f"monthly_debt_payments / monthly_income, in [0, ratio_cap]; {NO_INCOME}",
      "ratio", ((INC, DEBT),), 1,
      "Existing debt payments are high relative to income", debt_to_income, lo=0, hi=None),
    F("residual_income", "monthly_income - monthly_debt_payments - (living_cost_base + living_cost_per_dependent x "
      "dependents); dependents missing or absent -> 0; not capped, negative when obligations exceed income",
      "currency / month", ((INC, DEBT, "dependents"), (INC, DEBT)), -1,
      "Little income is left after debts and living costs", residual_income),
    F("payment_to_income", "monthly instalment of the requested credit / monthly_income, in [0, ratio_cap]; "
      "instalment = annuity at apr over requested_term_months (missing -> default_term_months) for instalment "
      f"credit, min_payment_rate x requested_amount for revolving credit; {NO_INCOME}",
      "ratio", ((INC, "requested_amount", "requested_term_months"), (INC, "requested_amount")), 1,
      "Repayment of the requested credit is high relative to income", payment_to_income, lo=0),
    F("requested_to_income", f"requested_amount / (12 x monthly_income), in [0, ratio_cap]; {NO_INCOME}",
      "ratio", ((INC, "requested_amount"),), 1,
      "The amount requested is large relative to annual income", requested_to_income, lo=0),
    F("utilization", "revolving_balance (else statement_balance_m1), floored at 0, / revolving_limit, in "
      "[0, utilization_cap]; limit 0 -> utilization_cap if a balance is owed, else 0; missing -> "
      "revolving_utilization (clipped to [0, utilization_cap]) when given",
      "ratio", (("revolving_balance", "revolving_limit"), ("statement_balance_m1", "revolving_limit"),
                ("revolving_utilization",)),
      1, "Revolving credit is heavily used", utilization, uses_limit=True, lo=0),
    F("statement_utilization_mean", "mean of the known statement balances (each floored at 0) / revolving_limit, in "
      "[0, utilization_cap]; limit 0 -> utilization_cap if a balance is owed, else 0; all months missing -> missing",
      "ratio", (("statement_balance_m1", "revolving_limit"),), 1, "Balances have been high relative to the limit",
      statement_utilization_mean, uses_limit=True, lo=0, history=True),
    F("payment_ratio_latest", "payment_amount_m1 / statement_balance_m1, clipped to [0, 1]; 1 when nothing was owed "
      "(statement <= 0); missing when either is missing",
      "ratio", (PAYHIST,), -1, "The latest payment covered little of the bill", payment_ratio_latest, lo=0, hi=1,
      history=True),
    F("payment_ratio_mean", "mean over the known history months of payment / statement (each as payment_ratio_latest)",
      "ratio", (PAYHIST,), -1,
      "Payments have covered little of the bills", payment_ratio_mean, lo=0, hi=1, history=True),
    F("payment_ratio_min", "minimum over the known history months of payment / statement (each as "
      "payment_ratio_latest)", "ratio", (PAYHIST,), -1,
      "At least one month's payment covered little of the bill", payment_ratio_min, lo=0, hi=1, history=True),
    F("months_delinquent", "number of known history months with repayment_status >= 1 (missing months not counted)",
      "months", (STATUS,), 1,
      "Several recent months with payments past due", months_delinquent, lo=0, history=True),
    F("worst_status", "maximum known repayment_status over the history", "months past due", (STATUS,), 1,
      "Payments have recently been seriously late", worst_status, lo=-2, hi=9, history=True),
    F("latest_status", "repayment_status_m1", "months past due", (STATUS,), 1,
      "The latest payment was late", latest_status, lo=-2, hi=9, history=True),
    F("months_since_delinquent", "months from the latest month back to the latest month with repayment_status >= 1 "
      "(m1 late -> 0, m2 -> 1, ...); the number of history months when none was late",
      "months", (STATUS,), -1, "A payment was late recently", months_since_delinquent, lo=0, history=True),
    F("balance_trend", "least-squares slope of statement balances per month forward in time (m1 latest) / "
      "max(mean absolute balance, 1), clipped to [-1, 1]; positive = balances rising; < 2 known months -> missing",
      "share per month", (("statement_balance_m1",),), 1, "Balances have been rising", balance_trend, lo=-1, hi=1,
      history=True),
    F("payment_trend", "least-squares slope of monthly payment ratios per month forward in time (m1 latest), "
      "clipped to [-1, 1]; negative = paying less of each bill; < 2 known months -> missing",
      "ratio per month", (PAYHIST,), -1, "Payments have been falling relative to bills", payment_trend, lo=-1, hi=1,
      history=True),
    F("delinquency_severity", "delinquencies_30d + 2 x delinquencies_60d + 3 x delinquencies_90d; any missing -> "
      "missing", "weighted events", (DELQ,), 1, "Serious past due events in the last 24 months",
      delinquency_severity, lo=0),
    F("delinquency_count", "delinquencies_30d + delinquencies_60d + delinquencies_90d (all reported past-due events, "
      "unweighted); any missing -> missing", "events", (DELQ,), 1,
      "Several past due events in the last 24 months", delinquency_count, lo=0),
    F("credit_history_years", "credit_history_months / 12", "years", (("credit_history_months",),), -1,
      "Short credit history", credit_history_years, lo=0),
    F("limit_to_income", f"revolving_limit / (12 x monthly_income), in [0, ratio_cap]; {NO_INCOME}", "ratio",
      ((INC, "revolving_limit"),), 0,
      "Existing credit limit relative to income", limit_to_income, uses_limit=True, lo=0),
    F("monthly_income", "as given", "currency / month", ((INC,),), -1, "Income is low", passthrough(INC), lo=0),
    F("age", "as given", "years", (("age",),), 0, "Age profile", passthrough("age"), lo=18, hi=100),
    F("employment_years", "as given", "years", (("employment_years",),), -1, "Short time in current employment",
      passthrough("employment_years"), lo=0, hi=60),
    F("dependents", "as given", "people", (("dependents",),), 0, "Number of dependents", passthrough("dependents"),
      lo=0, hi=20),
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

# fmt: on

CATEGORIES = {"housing": list(HOUSING)}

# fmt: off
EDGE_CASES: tuple[tuple[str, str], ...] = (
    ("Missing input", "A feature whose input is missing on a row is missing (NaN) on that row; LightGBM routes "
     "missing values itself. Nothing is imputed except where stated below."),
    ("Zero income", "debt_to_income, payment_to_income, requested_to_income and limit_to_income are ratio_cap when "
     "their numerator is positive and 0 when it is 0 (no debt and no income gives debt_to_income 0); "
     "residual_income is minus debts and living costs."),
    ("Negative income", "Rejected by the data contract. If it reaches the features anyway, the ratios treat it as "
     "zero income and residual_income uses it as given; nothing becomes infinite."),
    ("Negative debts, requests or limits", "Rejected by the data contract; floored at 0 inside the ratios, so "
     "debt_to_income, payment_to_income, requested_to_income and limit_to_income are never negative."),
    ("Ratio cap", "Every income ratio lies in [0, ratio_cap] and every utilisation in [0, utilization_cap]; "
     "debt_to_income can exceed 1 (debts above income, negative residual income) up to the cap."),
    ("Zero limit", "utilization and statement_utilization_mean are utilization_cap when a balance is owed and 0 "
     "when nothing is owed; limit_to_income is 0."),
    ("Negative balances (credit balances)", "Count as nothing owed: 0 in utilization and statement_utilization_mean, "
     "payment ratio 1 for that month. balance_trend uses the signed balances, so moving from credit into debt "
     "is a rising balance."),
    ("Zero statements", "A month with statement_balance <= 0 has payment ratio 1 (nothing was owed); a flat "
     "history has trend 0; balance_trend divides by at least 1 currency unit."),
    ("Partly missing history", "Missing months are ignored: counts, means, min and max use the known months; "
     "trends need at least 2 known months, else missing. payment_ratio_latest and latest_status use m1 only."),
    ("All-missing history", "Every history feature is missing (not 0): months_delinquent, worst_status, "
     "months_since_delinquent, payment ratios, trends and statement_utilization_mean. A history column that is "
     "missing on every row of the data is treated as absent and its features are skipped."),
    ("Missing dependents or term", "residual_income counts missing dependents as 0 (base allowance only); "
     "payment_to_income uses default_term_months for a missing term and at least 1 month."),
    ("Non-finite values", "No feature is ever +-inf: ratios are clipped to their caps and any other non-finite "
     "result (possible only from non-finite input, which the contract rejects) becomes missing."),
)
# fmt: on


def history_passthrough_specs(months: int) -> list[FeatureSpec]:
    """Raw monthly history as features, for data sets whose signal lives there (opt-in by config)."""
    specs = []
    for m in range(1, months + 1):
        specs += [
            F(
                f"repayment_status_m{m}",
                "as given",
                "months past due",
                ((f"repayment_status_m{m}",),),
                1,
                f"Payment {m} month(s) ago was late",
                passthrough(f"repayment_status_m{m}"),
                lo=-2,
                hi=9,
                history=True,
            ),
            F(
                f"payment_amount_m{m}",
                "as given",
                "currency",
                ((f"payment_amount_m{m}",),),
                -1,
                f"Low payment {m} month(s) ago",
                passthrough(f"payment_amount_m{m}"),
                lo=0,
                history=True,
            ),
            F(
                f"statement_balance_m{m}",
                "as given",
                "currency",
                ((f"statement_balance_m{m}",),),
                0,
                f"Statement balance {m} month(s) ago",
                passthrough(f"statement_balance_m{m}"),
                history=True,
            ),
        ]
    return specs


def extra_specs(contract: ContractConfig) -> list[FeatureSpec]:
    """Declared extra columns pass through as features with their declared direction and reason."""
    specs = []
    for extra in contract.extras:
        categorical = extra.dtype in ("category", "str")
        specs.append(
            F(
                extra.name,
                f"declared extra column ({extra.description or extra.dtype})",
                extra.dtype,
                ((extra.name,),),
                0 if categorical else extra.risk_direction,
                extra.reason or f"{extra.name.replace('_', ' ').capitalize()}",
                passthrough(extra.name),
                lo=extra.min,
                hi=extra.max,
                categorical=categorical,
            )
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


def select_features(
    columns: set[str], dictionary: list[FeatureSpec], empty: set[str] = frozenset()
) -> FeatureSelection:
    """Features whose inputs are present (and not entirely empty); the rest with the reason they are skipped."""
    usable = columns - set(empty)
    used, skipped = [], {}
    for spec in dictionary:
        if spec.available(usable):
            used.append(spec)
        else:
            alts = " or ".join("+".join(alt) for alt in spec.inputs)
            # explain the input set closest to being usable (optional columns then go unmentioned)
            gaps = [
                ([c for c in alt if c not in columns], [c for c in alt if c in columns and c in empty])
                for alt in spec.inputs
            ]
            absent, blank = min(gaps, key=lambda g: len(g[0]) + len(g[1]))
            why = []
            if absent:
                why.append("absent: " + ", ".join(sorted(absent)))
            if blank:
                why.append("all missing: " + ", ".join(sorted(blank)))
            skipped[spec.name] = f"needs {alts} ({'; '.join(why)})"
    return FeatureSelection(used, skipped)


def compute_features(
    df: pd.DataFrame, specs: list[FeatureSpec], cfg: FeatureConfig, cats: dict[str, list[str]]
) -> pd.DataFrame:
    """The feature matrix, one column per spec, in spec order; row order and count preserved, never +-inf."""
    token = _MEMO.set({})
    try:
        return _compute_all(df, specs, cfg, cats)
    finally:
        _MEMO.reset(token)


def _compute_all(df: pd.DataFrame, specs: list[FeatureSpec], cfg: FeatureConfig, cats: dict[str, list[str]]):
    out = {}
    for spec in specs:
        if spec.categorical:
            values = df[spec.name] if spec.name in df else pd.Series(np.nan, index=df.index)
            out[spec.name] = pd.Categorical(values, categories=cats.get(spec.name))
            continue
        values = spec.compute(df, cfg)
        if values is None:
            arr = np.full(len(df), np.nan)
        elif isinstance(values, pd.Series):
            arr = values.to_numpy(dtype=float, na_value=np.nan)
        else:
            arr = np.broadcast_to(np.asarray(values, dtype=float), (len(df),))
        out[spec.name] = np.where(np.isinf(arr), np.nan, arr)  # a fresh array: never a view of the input
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
        "History columns are latest first: m1 is the latest month, m2 the month before, and so on.",
        "A feature is computed when every column of one input set is present (the first set present is the one",
        "scoring then requires); otherwise it is skipped and the features report says which columns were absent",
        "or entirely missing.",
        "",
        "| feature | formula | unit | inputs (any one set) | direction | range | uses limit | reason text |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in feature_dictionary(contract, history_passthrough=False):
        inputs = " or ".join("+".join(alt) for alt in s.inputs)
        rng = f"{'' if s.lo is None else f'{s.lo:g}'}..{'' if s.hi is None else f'{s.hi:g}'}"
        lines.append(
            f"| `{s.name}` | {s.formula} | {s.unit} | {inputs} | {f'{s.direction:+d}' if s.direction else '0'} | {rng} | "
            f"{'yes' if s.uses_limit else ''} | {s.reason} |"
        )
    lines += [
        "",
        f"Defaults used in formulas: living_cost_base={cfg.living_cost_base:g}, "
        f"living_cost_per_dependent={cfg.living_cost_per_dependent:g}, apr={cfg.apr:g}, "
        f"default_term_months={cfg.default_term_months}, credit_type={cfg.credit_type}, "
        f"min_payment_rate={cfg.min_payment_rate:g}, utilization_cap={cfg.utilization_cap:g}, "
        f"ratio_cap={cfg.ratio_cap:g}.",
        "",
        "## Edge cases",
        "",
    ]
    lines += [f"- **{title}.** {text}" for title, text in EDGE_CASES]
    lines.append("")
    return "\n".join(lines)


def choose_features(valid: pd.DataFrame, cfg: Config) -> tuple[list[FeatureSpec], dict[str, str]]:
    """Features computable from this frame (inputs present and not all missing), and why the rest are skipped."""
    dictionary = feature_dictionary(cfg.contract, cfg.features.history_passthrough)
    empty = {c for c in valid.columns if valid[c].isna().all()}
    selection = select_features(set(valid.columns), dictionary, empty)
    return selection.used, selection.skipped
