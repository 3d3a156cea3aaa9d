"""The inputs several affordability features share, and the pure helpers they are computed with.

Within one `compute_features` call the contract columns, the monthly history matrices (latest month
first), their missing cells and the payment ratios are made once and shared read-only (`_MEMO`); outside
it every call computes its own. Ratios follow the feature rules of `functions`: a denominator that is
zero or negative gives `cap` for a positive numerator and 0 otherwise, a missing input gives NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

import numpy as np
import pandas as pd


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
