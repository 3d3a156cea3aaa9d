"""Limit reviews with guard rails: increases only when safe and affordable, decreases softened to be fair.

Why guard rails: a limit cut below the balance pushes a customer over limit (fees, declined cards) for
no benefit; a large sudden cut or one without notice harms customers and breaks conduct rules; a limit
that moves up and down within months is confusing. An increase must be safe for both sides: low PD,
a clean recent record, and ability to pay at the NEW limit with the origination definition
(min_payment_rate x new limit + other debts) / income <= max_payment_to_income. Unknown income means
no increase (ability to pay cannot be shown). All functions are pure and vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.accounts.settings import LimitSettings

KEEP, INCREASE, DECREASE = "keep", "increase", "decrease"


@dataclass(frozen=True)
class LimitOutcome:
    action: np.ndarray  # keep / increase / decrease
    new_limit: np.ndarray
    effective_date: pd.Series  # NaT when the limit is kept
    flags: dict[str, np.ndarray]  # guard-rail and reason flags, named as in review.REASONS
    softened: int  # decreases the guard rails made smaller or blocked
    softened_by: dict[str, int]


def months_between(later: pd.Series, earlier: pd.Series) -> np.ndarray:
    """Whole calendar months from `earlier` to `later`; NaN when either is missing."""
    later, earlier = pd.to_datetime(later), pd.to_datetime(earlier)
    months = (later.dt.year - earlier.dt.year) * 12 + (later.dt.month - earlier.dt.month)
    return months.to_numpy(dtype=float, na_value=np.nan)


def affordability_cap(income: np.ndarray, debts: np.ndarray, s: LimitSettings) -> np.ndarray:
    """Largest limit L with (min_payment_rate x L + debts) / income <= max_payment_to_income; NaN if income unknown."""
    inc = s.increase
    room = np.maximum(inc.max_payment_to_income * income - np.nan_to_num(debts, nan=0.0), 0.0)
    return np.where(np.isnan(income) | (income <= 0), np.nan, room / inc.min_payment_rate)


def clean_history(frame: pd.DataFrame, months: int) -> np.ndarray:
    """True when each of the latest `months` statuses is known and not past due (<= 0)."""
    cols = [f"repayment_status_m{m}" for m in range(1, months + 1)]
    missing = [c for c in cols if c not in frame]
    if missing:
        raise ValueError(f"clean history needs {', '.join(missing)}: lower limits.increase.clean_months")
    status = frame[cols].to_numpy(dtype=float)
    return (status <= 0).all(axis=1)  # NaN <= 0 is False: an unknown month is not clean


def _column(frame: pd.DataFrame, name: str, fill: object = np.nan) -> pd.Series:
    return frame[name] if name in frame else pd.Series(fill, index=frame.index)


def review_limits(frame: pd.DataFrame, pd_: np.ndarray, flagged: np.ndarray, s: LimitSettings) -> LimitOutcome:
    """Keep, increase or decrease each limit; see the module docstring for the rules."""
    limit = frame["credit_limit"].to_numpy(float)
    owed = np.maximum(frame["balance"].to_numpy(float), 0.0)
    since = months_between(frame["snapshot_month"], _column(frame, "last_limit_change_month", pd.NaT))
    direction = _column(frame, "last_limit_change_direction", None).to_numpy(dtype=object)
    cooling = since < s.cooling_off_months  # NaN (never changed) -> False
    up_flags, up_limit = _increase(frame, pd_, flagged, limit, cooling & (direction == DECREASE), s)
    down_flags, down_limit, desired = _decrease(pd_, limit, owed, cooling & (direction == INCREASE), s)
    up = up_flags["INCREASE"]
    down = down_flags["DECREASE"] & ~up
    action = np.where(up, INCREASE, np.where(down, DECREASE, KEEP)).astype(object)
    new_limit = np.where(up, up_limit, np.where(down, down_limit, limit))
    snapshot = pd.to_datetime(frame["snapshot_month"]).reset_index(drop=True)
    notice = pd.Timedelta(days=s.decrease.notice_days)
    effective = snapshot.where(up, snapshot + notice).where(up | down, pd.NaT)
    wanted = pd_ >= s.decrease.trigger_pd
    softened_mask = wanted & (new_limit > desired)
    softened_by = {
        rule: int((wanted & down_flags[rule]).sum()) for rule in ("DEC_MAX_SHARE", "DEC_BALANCE", "DEC_COOLING")
    }
    return LimitOutcome(action, new_limit, effective, {**up_flags, **down_flags}, int(softened_mask.sum()), softened_by)


def _increase(frame, pd_, flagged, limit, recent_decrease, s: LimitSettings) -> tuple[dict, np.ndarray]:
    inc = s.increase
    income = _column(frame, "monthly_income").to_numpy(float)
    debts = _column(frame, "monthly_debt_payments").to_numpy(float)
    cap = affordability_cap(income, debts, s)
    target = np.minimum(np.minimum(limit * (1 + inc.step_share), inc.max_limit), cap)
    proposed = np.floor(target / s.step) * s.step  # NaN cap -> NaN -> never an increase
    mob = np.nan_to_num(_column(frame, "months_on_book").to_numpy(float), nan=0.0)  # unknown counts as new
    safe = (pd_ <= inc.max_pd) & ~flagged & clean_history(frame, inc.clean_months) & (mob >= inc.min_months_on_book)
    affordable_raise = proposed > limit
    blocked = safe & affordable_raise & recent_decrease
    flags = {
        "INCREASE": safe & affordable_raise & ~recent_decrease,
        "INC_AFFORD_CAP": safe & affordable_raise & ~recent_decrease & (cap < limit * (1 + inc.step_share)),
        "INC_NOT_AFFORDABLE": safe & ~affordable_raise & ~np.isnan(cap),
        "INC_INCOME_UNKNOWN": safe & np.isnan(cap),
        "INC_COOLING": blocked,
    }
    return flags, np.where(flags["INCREASE"], proposed, limit)


def _decrease(pd_, limit, owed, recent_increase, s: LimitSettings) -> tuple[dict, np.ndarray, np.ndarray]:
    dec = s.decrease
    wanted = pd_ >= dec.trigger_pd
    desired_raw = limit * (1 - dec.desired_cut_share)
    by_share = limit * (1 - dec.max_share)
    by_balance = owed * (1 + dec.balance_headroom_share)
    guarded = np.maximum(np.maximum(desired_raw, by_share), by_balance)
    new = np.minimum(np.ceil(guarded / s.step) * s.step, limit)  # rounded up: never below a floor
    desired = np.minimum(np.ceil(desired_raw / s.step) * s.step, limit)
    moves = new < limit
    flags = {
        "DECREASE": wanted & moves & ~recent_increase,
        "DEC_MAX_SHARE": wanted & (by_share > desired_raw),
        "DEC_BALANCE": wanted & (by_balance > np.maximum(desired_raw, by_share)),
        "DEC_COOLING": wanted & moves & recent_increase,
    }
    return flags, np.where(flags["DECREASE"], new, limit), desired
