"""Affordability feature functions: pure, vectorised, one defined result for every edge case.

A ratio whose denominator is zero or negative is `cap` when the numerator is positive and
0 otherwise; a missing input gives NaN (LightGBM routes missing values itself); no
feature is ever +-inf. History columns are latest first: m1 is the latest month.
Each function takes the contract frame and the feature settings; `dictionary.py` says
which feature each one computes and why.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pa

from pipeline.config import FeatureConfig

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


def categorical(values: pd.Series, known: list[str] | None) -> pd.Categorical:
    """`values` as a Categorical over the trained categories `known`; an unseen category or missing value is missing.

    The cells are hashed once (`factorize`, a handful of distinct values) and the distinct
    values looked up in `known`: a third of the cost of `isin` + `where` + the constructor,
    which hash every string two or three times, with the same codes.
    """
    if known is None or not all(isinstance(k, str) for k in known):
        if known is not None:  # pandas 4 raises on an unseen category instead of making it NaN
            values = values.where(values.isin(known))
        return pd.Categorical(values, categories=known)
    codes, distinct = pd.factorize(values)  # missing cells get -1
    position = {k: i for i, k in enumerate(known)}
    lookup = np.array([position.get(v, -1) for v in distinct] + [-1], dtype=np.int64)  # [-1]: where codes is -1
    return pd.Categorical.from_codes(lookup[codes], categories=known)


def compute_features(
    df: pd.DataFrame, specs: list[FeatureSpec], cfg: FeatureConfig, cats: dict[str, list[str]]
) -> pd.DataFrame:
    """The feature matrix, one column per spec, in spec order; row order and count preserved, never +-inf."""
    return pd.DataFrame(feature_columns(df, specs, cfg, cats), index=df.index)


def feature_columns(
    df: pd.DataFrame, specs: list[FeatureSpec], cfg: FeatureConfig, cats: dict[str, list[str]]
) -> dict[str, np.ndarray | pd.Categorical]:
    """`compute_features`' columns, without the frame: scoring stacks them straight into the model's matrix
    (a frame would first copy them into one block of its own)."""
    token = _MEMO.set({})
    try:
        return _compute_all(df, specs, cfg, cats)
    finally:
        _MEMO.reset(token)


def _compute_all(
    df: pd.DataFrame, specs: list[FeatureSpec], cfg: FeatureConfig, cats: dict[str, list[str]]
) -> dict[str, np.ndarray | pd.Categorical]:
    out: dict[str, np.ndarray | pd.Categorical] = {}
    for spec in specs:
        if spec.categorical:
            values = df[spec.name] if spec.name in df else pd.Series(np.nan, index=df.index)
            out[spec.name] = categorical(values, cats.get(spec.name))
            continue
        values = spec.compute(df, cfg)
        if values is None:
            arr = np.full(len(df), np.nan)
        elif isinstance(values, pd.Series):
            arr = values.to_numpy(dtype=float, na_value=np.nan)
        else:
            arr = np.broadcast_to(np.asarray(values, dtype=float), (len(df),))
        out[spec.name] = np.where(np.isinf(arr), np.nan, arr)  # a fresh array: never a view of the input
    return out


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
