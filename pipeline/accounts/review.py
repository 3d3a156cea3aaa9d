"""The monthly account review: one pure vectorised function from (snapshots, PD, settings) to actions.

Why one function: the batch job, the CLI `review` command and the tests all run exactly the same
rules, with no state and no I/O. It adds expected loss, the early-warning flag and ranking, the
guarded limit action (limits.py), the contact treatment and plan (treatments.py, plans.py) and the
reasons in plain words, and reports how many decreases the guard rails softened.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.accounts.limits import review_limits
from pipeline.accounts.settings import AccountSettings, EarlyWarningSettings, LossSettings
from pipeline.accounts.treatments import assign_treatments

REASONS = {
    "EW_PD": "Estimated chance of default is above the early-warning level",
    "EW_RANK": "Among the riskiest accounts in the portfolio this month",
    "INCREASE": "Low risk, clean repayment record and affordable at the higher limit",
    "INC_AFFORD_CAP": "Increase limited by ability to pay",
    "INC_NOT_AFFORDABLE": "No increase: repayments on a higher limit would not be affordable",
    "INC_INCOME_UNKNOWN": "No increase: income unknown, so ability to pay cannot be shown",
    "INC_COOLING": "No increase: the limit was lowered recently (cooling-off period)",
    "DECREASE": "High estimated chance of default: limit lowered after a notice period",
    "DEC_MAX_SHARE": "Reduction limited to the largest fall allowed in one review",
    "DEC_BALANCE": "Limit kept at or above the current balance",
    "DEC_COOLING": "No reduction: the limit was raised recently (cooling-off period)",
    "ARREARS": "Payments are past due",
    "PLAN": "An affordable repayment plan is offered",
    "HARDSHIP_NO_FIT": "No repayment plan fits the income left after debts and living costs",
    "HARDSHIP_NO_INCOME": "Income unknown: a person reviews what the customer can afford",
    "CONTACT_CAP": "Contact deferred: the monthly contact limit is reached",
}


@dataclass(frozen=True)
class ReviewResult:
    frame: pd.DataFrame
    softened_decreases: int
    softened_by: dict[str, int]

    def counts(self) -> dict[str, dict[str, int]]:
        """Actions and treatments per value, for the run summary."""
        return {col: self.frame[col].value_counts().to_dict() for col in ("limit_action", "treatment")}


def exposure_at_default(limit: np.ndarray, balance: np.ndarray, s: LossSettings) -> np.ndarray:
    """Drawn balance (a credit balance counts as 0) plus CCF x the undrawn part of the limit."""
    owed = np.maximum(balance, 0.0)
    return owed + s.ccf * np.maximum(limit - owed, 0.0)


def early_warning_rank(pd_: np.ndarray, el: np.ndarray) -> np.ndarray:
    """1 = riskiest: by PD, then expected loss, then row order, so the ranking is total and stable."""
    order = np.lexsort((np.arange(len(pd_)), -el, -pd_))
    rank = np.empty(len(pd_), dtype=np.int64)
    rank[order] = np.arange(1, len(pd_) + 1)
    return rank


def early_warning_flags(
    pd_: np.ndarray, rank: np.ndarray, s: EarlyWarningSettings, portfolio_size: int | None = None
) -> dict[str, np.ndarray]:
    """`portfolio_size` is the whole book's when `rank` is portfolio-wide and these rows are one chunk of it."""
    top = int(np.floor(s.rank_share * (len(pd_) if portfolio_size is None else portfolio_size)))  # never more
    return {"EW_PD": pd_ >= s.pd_threshold, "EW_RANK": rank <= top}


def reason_texts(flags: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Plain-words reasons joined by '; ', built once per distinct pattern (cheap on millions of rows)."""
    names = [k for k in REASONS if k in flags]
    bits = np.zeros(n, dtype=np.int64)
    for i, name in enumerate(names):
        bits |= np.asarray(flags[name], dtype=np.int64) << i
    patterns, inverse = np.unique(bits, return_inverse=True)
    texts = np.array([
        "; ".join(REASONS[name] for i, name in enumerate(names) if p >> i & 1) for p in patterns
    ], dtype=object)  # fmt: skip
    return texts[inverse.ravel()]


def expected_loss(frame: pd.DataFrame, pd_: np.ndarray, s: LossSettings) -> tuple[np.ndarray, np.ndarray]:
    """(EAD, PD x EAD x LGD) per row: what the early-warning ranking breaks PD ties with."""
    ead = exposure_at_default(frame["credit_limit"].to_numpy(float), frame["balance"].to_numpy(float), s)
    return ead, np.asarray(pd_, dtype=float) * ead * s.lgd


def review_accounts(
    frame: pd.DataFrame,
    pd_: np.ndarray,
    s: AccountSettings,
    rank: np.ndarray | None = None,
    portfolio_size: int | None = None,
) -> ReviewResult:
    """Review every snapshot row; `pd_` is the calibrated behaviour PD in row order.

    A batch job reviewing a portfolio in chunks passes the portfolio-wide `rank` (early_warning_rank over
    every account's PD and expected loss) and `portfolio_size`; without them the rows are the whole book.
    """
    pd_ = np.clip(np.asarray(pd_, dtype=float), 0.0, 1.0)
    if len(pd_) != len(frame) or np.isnan(pd_).any():
        raise ValueError(f"need one known PD per row: {len(pd_)} PDs for {len(frame)} rows")
    if rank is not None and len(rank) != len(frame):
        raise ValueError(f"need one rank per row: {len(rank)} ranks for {len(frame)} rows")
    frame = frame.reset_index(drop=True)
    limit = frame["credit_limit"].to_numpy(float)
    ead, el = expected_loss(frame, pd_, s.loss)
    rank = early_warning_rank(pd_, el) if rank is None else np.asarray(rank, dtype=np.int64)
    ew = early_warning_flags(pd_, rank, s.early_warning, portfolio_size)
    flagged = ew["EW_PD"] | ew["EW_RANK"]
    limits = review_limits(frame, pd_, flagged, s.limits)
    treat = assign_treatments(frame, pd_, flagged, s.treatments, s.plans)
    flags = {**ew, **limits.flags, **treat.flags}
    out = pd.DataFrame(
        {
            "account_id": frame["account_id"],
            "snapshot_month": frame["snapshot_month"],
            "pd": pd_,
            "exposure_at_default": ead,
            "expected_loss": el,
            "early_warning": flagged,
            "early_warning_rank": rank,
            "limit_action": limits.action,
            "credit_limit": limit,
            "new_limit": limits.new_limit,
            "limit_effective_date": limits.effective_date,
            "treatment": treat.treatment,
            "treatment_deferred": treat.deferred,
        }
    )
    out = pd.concat([out, treat.plans], axis=1)
    out["reasons"] = reason_texts(flags, len(frame))
    return ReviewResult(out, limits.softened, limits.softened_by)
