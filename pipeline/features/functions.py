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


# ---------------------------------------------------------------- pure helpers


def safe_ratio(num: pd.Series, den: pd.Series, cap: float) -> pd.Series:
    """num / den clipped to [-cap, cap], so a ratio is never inf.

    den <= 0 (no income, no limit; negative is out of contract) -> `cap` if num > 0 else 0;
    NaN if either input is missing.
    """
    return pd.Series(_ratio(np.asarray(num, dtype=float), np.asarray(den, dtype=float), cap), index=num.index)


def _ratio(n: np.ndarray, d: np.ndarray, cap: float) -> np.ndarray:
    """`safe_ratio` on arrays, into one fresh array: the same values as nested `np.where`s, without their copies."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.divide(n, d)
    low = ~(d > 0)
    if low.any():
        out[low] = np.where(n[low] > 0, cap, 0.0)
    missing = np.isnan(n) | np.isnan(d)
    if missing.any():
        out[missing] = np.nan
    return np.clip(out, -cap, cap, out=out)


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


# Within one compute_features call the columns, history matrices and payment ratios are shared
# by several features; memoising them there (and only there) reads a 1M-row history once.
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
    return _memo((id(df), "matrix", prefix), lambda: df[history_months(df, prefix)].to_numpy(dtype=float))


def _gaps(df: pd.DataFrame, prefix: str) -> np.ndarray:
    """Which history cells are missing; shared, so the reductions' no-gap shortcut costs one pass per matrix."""
    return _memo((id(df), "gaps", prefix), lambda: np.isnan(_matrix(df, prefix)))


def _column(df: pd.DataFrame, name: str) -> np.ndarray:
    """A column as float64 (read-only; a view when already float64): no Series arithmetic, alignment or copies."""
    return _memo((id(df), "column", name), lambda: _float(df[name]))


def _float(values: pd.Series) -> np.ndarray:
    """float64 columns as they are; others converted as `astype(float)` did."""
    return values.to_numpy() if values.dtype == np.float64 else values.astype(float).to_numpy()


def _annual_income(df: pd.DataFrame) -> np.ndarray:
    """12 x monthly income, shared by the features that compare amounts with a year's income."""

    def make() -> np.ndarray:
        with np.errstate(all="ignore"):
            return 12 * _column(df, "monthly_income")

    return _memo((id(df), "annual_income"), make)


def _floored(df: pd.DataFrame, name: str) -> np.ndarray:
    """`_column` floored at 0, shared: the amounts and delinquency counts are floored for several features."""
    return _memo((id(df), "floored", name), lambda: _floor(_column(df, name), 0.0))


def _floor(x: np.ndarray, lo: float) -> np.ndarray:
    """`Series.clip(lower=lo)` on an array (NaN and -0.0 kept); `x` itself, not a copy, when nothing is below."""
    below = x < lo
    return np.where(below, lo, x) if below.any() else x


def _ceil(x: np.ndarray, hi: float) -> np.ndarray:
    """`Series.clip(upper=hi)` on an array; `x` itself when nothing is above."""
    above = x > hi
    return np.where(above, hi, x) if above.any() else x


def payment_ratios(df: pd.DataFrame) -> np.ndarray:
    """Share of each month's statement repaid, in [0, 1]; 1 when nothing was owed (statement <= 0)."""
    return _memo((id(df), "payment_ratios"), lambda: _payment_ratios(df))


def _payment_ratios(df: pd.DataFrame) -> np.ndarray:
    """Written into the quotient's own array (same layout, same values as `np.where`s on copies)."""
    pay = _matrix(df, "payment_amount")
    stmt = _matrix(df, "statement_balance")
    k = min(pay.shape[1], stmt.shape[1])
    pay, stmt = pay[:, :k], stmt[:, :k]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.divide(pay, stmt)
    np.copyto(ratio, 1.0, where=~(stmt > 0))
    missing = _gaps(df, "payment_amount")[:, :k] | _gaps(df, "statement_balance")[:, :k]
    if missing.any():
        ratio[missing] = np.nan
    return np.clip(ratio, 0.0, 1.0, out=ratio)


def _row_mean(m: np.ndarray, gaps: np.ndarray | None = None) -> np.ndarray:
    """Mean of the non-missing values per row; NaN when a row has none (no warnings, no copies of rows).

    `gaps` is `np.isnan(m)` when the caller has it; a matrix without gaps is summed as it is.
    """
    gaps = np.isnan(m) if gaps is None else gaps
    with np.errstate(divide="ignore", invalid="ignore"):
        if not gaps.any():
            return m.sum(axis=1) / m.shape[1]
        ok = ~gaps
        return np.where(ok, m, 0.0).sum(axis=1) / ok.sum(axis=1)


def _row_max(m: np.ndarray) -> np.ndarray:
    """Max ignoring NaN (fmax), NaN only when the whole row is missing."""
    return np.fmax.reduce(m, axis=1) if m.shape[1] else np.full(m.shape[0], np.nan)


def _row_min(m: np.ndarray) -> np.ndarray:
    return np.fmin.reduce(m, axis=1) if m.shape[1] else np.full(m.shape[0], np.nan)


def _all_missing(df: pd.DataFrame, prefix: str) -> np.ndarray | None:
    """Rows whose whole history is missing; None when no cell is, so callers skip the masking."""
    gaps = _gaps(df, prefix)
    if not gaps.any():
        return None
    return _memo((id(df), "all_missing", prefix), lambda: np.asarray(gaps.all(axis=1)))


def _late(df: pd.DataFrame) -> np.ndarray:
    return _memo((id(df), "late"), lambda: _matrix(df, "repayment_status") >= 1)


def _late_bits(df: pd.DataFrame) -> np.ndarray | None:
    """Each row's late months as one byte (month j -> bit j), for up to 8 months; None for longer histories.

    Counting late months and finding the latest one are then one table lookup per row
    instead of a reduction over a boolean matrix (the same integers, so the same floats).
    """
    late = _late(df)
    if late.shape[1] > 8:
        return None

    def bits() -> np.ndarray:
        code = np.zeros(late.shape[0], dtype=np.uint8)
        for j in range(late.shape[1]):
            code |= late[:, j].view(np.uint8) << j
        return code

    return _memo((id(df), "late_bits"), bits)


_BYTES = range(256)
_LATE_COUNT = np.array([c.bit_count() for c in _BYTES], dtype=float)


def _first_late(k: int) -> np.ndarray:
    """Lowest set bit of each byte (the latest late month), k for none."""
    return np.array([(c & -c).bit_length() - 1 if c else k for c in _BYTES], dtype=float)


def _missing_where(rows: np.ndarray | None, out: np.ndarray) -> np.ndarray:
    """`out` (a fresh array) with NaN on `rows`."""
    if rows is not None:
        out[rows] = np.nan
    return out


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
