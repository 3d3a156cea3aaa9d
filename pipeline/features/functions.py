"""Affordability feature functions: pure, vectorised, one defined result for every edge case.

A ratio whose denominator is zero or negative is `cap` when the numerator is positive and
0 otherwise; a missing input gives NaN (LightGBM routes missing values itself); no
feature is ever +-inf. History columns are latest first: m1 is the latest month.
Each function takes the contract frame and the feature settings; `dictionary.py` says
which feature each one computes and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pa

from pipeline.config import FeatureConfig
from pipeline.features.inputs import (
    _LATE_COUNT,
    _MEMO,
    _all_missing,
    _annual_income,
    _ceil,
    _column,
    _first_late,
    _floor,
    _floored,
    _gaps,
    _late,
    _late_bits,
    _matrix,
    _missing_where,
    _ratio,
    _row_max,
    _row_mean,
    _row_min,
    monthly_instalment,
    payment_ratios,
    slope,
)

# A feature function returns a fresh float64 array, a Series or a scalar; None when its inputs are absent.
Compute = Callable[[pd.DataFrame, FeatureConfig], "pd.Series | np.ndarray | float | None"]


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


# ---------------------------------------------------------------- feature functions
# Each returns a fresh float64 array (or a Series): numpy on the memoised columns, with the
# float operations, their order and the NaN handling of the Series formulas they replace.


def _quiet() -> np.errstate:
    """Arithmetic as quiet as the Series arithmetic it replaces (pandas ignores float errors: inf - inf is NaN)."""
    return np.errstate(all="ignore")


def debt_to_income(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray:
    return _ratio(_floored(df, "monthly_debt_payments"), _column(df, "monthly_income"), cfg.ratio_cap)


def living_cost(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray | float:
    """Living-cost allowance: base + per dependent; unknown dependents count as none."""
    if "dependents" not in df:
        return cfg.living_cost_base + cfg.living_cost_per_dependent * 0.0
    dependents = _column(df, "dependents")
    unknown = np.isnan(dependents)
    dependents = _floor(np.where(unknown, 0.0, dependents) if unknown.any() else dependents, 0.0)
    with _quiet():
        return cfg.living_cost_base + cfg.living_cost_per_dependent * dependents


def residual_income(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray:
    living = living_cost(df, cfg)
    with _quiet():
        return _column(df, "monthly_income") - _column(df, "monthly_debt_payments") - living


def requested_instalment(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray:
    """Monthly repayment of the requested credit: annuity for instalment credit, minimum payment for revolving."""
    amount = _floored(df, "requested_amount")
    if cfg.credit_type == "revolving":
        with _quiet():
            return amount * cfg.min_payment_rate
    term: np.ndarray | float
    if "requested_term_months" in df:
        term = _column(df, "requested_term_months")
        unknown = np.isnan(term)
        term = _floor(np.where(unknown, float(cfg.default_term_months), term) if unknown.any() else term, 1.0)
    else:
        term = float(cfg.default_term_months)
    with _quiet():
        return monthly_instalment(amount, term, cfg.apr)  # arrays: the same formula


def payment_to_income(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray:
    return _ratio(requested_instalment(df, cfg), _column(df, "monthly_income"), cfg.ratio_cap)


def requested_to_income(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray:
    return _ratio(_floored(df, "requested_amount"), _annual_income(df), cfg.ratio_cap)


def utilization(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray | None:
    """Balance / limit, from the best columns present; credit (negative) balances count as 0."""
    cap = cfg.utilization_cap
    direct = None
    if "revolving_utilization" in df:
        direct = np.array(_ceil(_floor(_column(df, "revolving_utilization"), 0.0), cap))  # fresh: may be returned
    balance = None
    if "revolving_balance" in df:
        balance = "revolving_balance"
    elif "statement_balance_m1" in df:
        balance = "statement_balance_m1"
    if balance is not None and "revolving_limit" in df:
        # _ratio already caps at `cap`, so of Series.clip(0, cap) only the floor can change a value
        ratio = _floor(_ratio(_floored(df, balance), _column(df, "revolving_limit"), cap), 0.0)
        if direct is not None:
            missing = np.isnan(ratio)
            if missing.any():
                ratio = np.where(missing, direct, ratio)
        return ratio
    return direct


def statement_utilization_mean(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray:
    cap = cfg.utilization_cap
    stmt = _row_mean(np.clip(_matrix(df, "statement_balance"), 0, None), _gaps(df, "statement_balance"))
    return _floor(_ratio(stmt, _column(df, "revolving_limit"), cap), 0.0)  # capped by _ratio already


def payment_ratio_latest(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray:
    return np.array(payment_ratios(df)[:, 0])


def payment_ratio_mean(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray:
    return _row_mean(payment_ratios(df))


def payment_ratio_min(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray:
    return _row_min(payment_ratios(df))


def months_delinquent(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray:
    bits = _late_bits(df)
    count = _LATE_COUNT[bits] if bits is not None else _late(df).sum(axis=1).astype(float)
    return _missing_where(_all_missing(df, "repayment_status"), count)


def worst_status(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray:
    return _row_max(_matrix(df, "repayment_status"))


def latest_status(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray:
    return np.array(_column(df, "repayment_status_m1"))


def months_since_delinquent(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray:
    """Months between the latest month and the latest past-due month (m1 late -> 0); k when none of k was late."""
    late = _late(df)
    k = late.shape[1]
    bits = _late_bits(df)
    if bits is not None:
        out = _first_late(k)[bits]
    else:
        first = np.argmax(late, axis=1).astype(float)
        out = np.where(late.any(axis=1), first, float(k))
    return _missing_where(_all_missing(df, "repayment_status"), out)


def balance_trend(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray:
    """Slope of statement balances per month, as a share of the mean absolute balance, in [-1, 1]."""
    stmt = _matrix(df, "statement_balance")
    scale = _row_mean(np.abs(stmt), _gaps(df, "statement_balance"))
    np.maximum(scale, 1.0, out=scale)
    trend = slope(stmt)
    trend /= scale
    return np.clip(trend, -1, 1, out=trend)


def payment_trend(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray:
    """Slope of the monthly payment ratio per month, in [-1, 1]; negative means paying less of each bill."""
    trend = slope(payment_ratios(df))
    return np.clip(trend, -1, 1, out=trend)


def delinquency_severity(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray:
    d30, d60, d90 = (_floored(df, f"delinquencies_{d}d") for d in (30, 60, 90))
    with _quiet():
        return d30 + 2 * d60 + 3 * d90


def delinquency_count(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray:
    """All past-due events the bureau reports, unweighted: one reason-code-friendly count."""
    d30, d60, d90 = (_floored(df, f"delinquencies_{d}d") for d in (30, 60, 90))
    with _quiet():
        return d30 + d60 + d90


def credit_history_years(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray:
    with _quiet():
        return _column(df, "credit_history_months") / 12


def limit_to_income(df: pd.DataFrame, cfg: FeatureConfig) -> np.ndarray:
    return _ratio(_floored(df, "revolving_limit"), _annual_income(df), cfg.ratio_cap)


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
        out[spec.name] = _finite(spec.compute(df, cfg), len(df))
    return out


def _finite(values: pd.Series | np.ndarray | float | None, n: int) -> np.ndarray:
    """A feature's values as a fresh float64 array (never a view of the input or the memo), +-inf made missing.

    A float64 array that owns its writable data was made by the feature function for this
    call, so it is kept; anything else (a Series, a view, a scalar) is copied. Either way +-inf
    is replaced in place, only when there is one: the values of `np.where(np.isinf(a), nan, a)`.
    """
    if values is None:
        return np.full(n, np.nan)
    arr: np.ndarray
    if (
        isinstance(values, np.ndarray)
        and values.dtype == np.float64
        and values.shape == (n,)
        and values.flags.owndata
        and values.flags.writeable
    ):
        arr = values
    elif isinstance(values, pd.Series):
        arr = np.array(values.to_numpy(dtype=float, na_value=np.nan))
    else:
        arr = np.array(np.broadcast_to(np.asarray(values, dtype=float), (n,)))
    inf = np.isinf(arr)
    if inf.any():
        arr[inf] = np.nan
    return arr


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
