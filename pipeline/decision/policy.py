"""The limit policy: a pure function from model outputs and affordability to decisions.

Decline when PD is above the cutoff, residual income is not positive, a hard rule
fails (a 90+ days delinquency in the history), income is unknown and the config says
to decline, or the affordable limit is below the minimum line. Otherwise

    limit = min(limit estimate x grade multiplier, affordability cap)

rounded down to a step and bounded by [min_limit, max_limit]. The limit estimate is
the limit model's, or the grade's table limit when there is no limit model. The
affordability cap is the largest limit whose minimum payment at full use, added to
existing debt payments, keeps total payments within `max_payment_to_income` of
income (the ability-to-pay test); with unknown income and `unknown_income:
table_limit`, there is no cap and the grade table limit bounds the estimate instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.config import PolicyConfig, ScorecardConfig
from pipeline.decision.textcols import labels_column

APPROVE, DECLINE = "approve", "decline"
REASONS = {
    "PD_ABOVE_CUTOFF": "Estimated probability of default is above the lending cutoff",
    "RESIDUAL_INCOME": "Income does not cover existing debts and living costs",
    "RECENT_90D_DELINQUENCY": "A payment was 90 or more days late recently",
    "INCOME_UNKNOWN": "Income could not be verified",
    "BELOW_MIN_LIMIT": "The affordable limit is below the smallest credit line offered",
    "CAP_AFFORDABILITY": "Limit set by ability to pay",
    "CAP_MODEL": "Limit set by the estimated sustainable limit for the risk grade",
    "CAP_GRADE_TABLE": "Limit set by the limit table for the risk grade",
    "CAP_MAX_LIMIT": "Limit set by the product maximum",
}


@dataclass(frozen=True)
class PolicyInputs:
    """Per-applicant arrays the policy needs; NaN marks an unknown value."""

    pd: np.ndarray
    grade_index: np.ndarray
    limit_estimate: np.ndarray  # NaN where there is no limit model
    monthly_income: np.ndarray
    monthly_debt_payments: np.ndarray
    residual_income: np.ndarray
    recent_90d: np.ndarray  # bool: 90+ days delinquency in the history


def affordability_cap(income: np.ndarray, debt: np.ndarray, cfg: PolicyConfig) -> np.ndarray:
    """Largest limit L with (debt + min_payment_rate x L) / income <= max_payment_to_income; NaN if income unknown."""
    debt = np.nan_to_num(debt, nan=0.0)
    room = np.maximum(cfg.max_payment_to_income * income - debt, 0.0)
    return np.where(np.isnan(income), np.nan, room / cfg.min_payment_rate)


def _distinct_small(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(values, return_inverse=True)` for small non-negative integers (reason bit patterns), by counting
    instead of sorting."""
    if not len(values):
        return values[:0], values[:0]
    present = np.flatnonzero(np.bincount(values))
    position = np.zeros(int(present[-1]) + 1, dtype=np.int64)
    position[present] = np.arange(len(present))
    return present, position[values]


def decide(inp: PolicyInputs, policy: PolicyConfig, scorecard: ScorecardConfig) -> pd.DataFrame:
    """Decision, limit and reasons per applicant. Vectorised; no state, no I/O."""
    n = len(inp.pd)
    multipliers = np.array([g.limit_multiplier for g in scorecard.grades])[inp.grade_index]
    table = np.array([g.table_limit for g in scorecard.grades])[inp.grade_index]
    income_known = ~np.isnan(inp.monthly_income)

    estimate = np.where(np.isnan(inp.limit_estimate), table, inp.limit_estimate * multipliers)
    cap = affordability_cap(inp.monthly_income, inp.monthly_debt_payments, policy)
    # Unknown income, no cap: the grade's table limit bounds the estimate instead.
    bound = np.where(income_known, cap, table)
    raw_limit = np.minimum(estimate, bound)
    limit = np.floor(np.minimum(raw_limit, policy.max_limit) / policy.limit_step) * policy.limit_step

    flags = {
        "PD_ABOVE_CUTOFF": inp.pd > policy.pd_cutoff,
        "RESIDUAL_INCOME": policy.require_positive_residual_income
        & ~(inp.residual_income > 0)
        & ~np.isnan(inp.residual_income),
        "RECENT_90D_DELINQUENCY": policy.decline_recent_90d & inp.recent_90d,
        "INCOME_UNKNOWN": (policy.unknown_income == "decline") & ~income_known,
    }
    declined_before_limit = np.logical_or.reduce(list(flags.values())) if flags else np.zeros(n, bool)
    flags["BELOW_MIN_LIMIT"] = ~declined_before_limit & (limit < policy.min_limit)
    declined = declined_before_limit | flags["BELOW_MIN_LIMIT"]

    # Reasons as a bit pattern per row, turned into text once per distinct pattern (cheap on millions of rows).
    names = list(flags) + ["CAP_MAX_LIMIT", "CAP_AFFORDABILITY", "CAP_MODEL", "CAP_GRADE_TABLE"]
    cap_max = ~declined & (raw_limit >= policy.max_limit)
    cap_afford = ~declined & ~cap_max & income_known & (cap <= estimate)
    # The grade's table limit sets it when there is no limit model, or it bounds the estimate (unknown income).
    from_table = np.isnan(inp.limit_estimate) | (~income_known & (table < estimate))
    cap_table = ~declined & ~cap_max & ~cap_afford & from_table
    cap_model = ~declined & ~cap_max & ~cap_afford & ~from_table
    bits = np.zeros(n, dtype=np.int64)
    for i, mask in enumerate([*flags.values(), cap_max, cap_afford, cap_model, cap_table]):
        bits |= np.asarray(mask, dtype=np.int64) << i
    patterns, inverse = _distinct_small(bits)
    texts = [";".join(name for i, name in enumerate(names) if p >> i & 1) for p in patterns.tolist()]
    hard = flags["RESIDUAL_INCOME"] | flags["RECENT_90D_DELINQUENCY"] | flags["INCOME_UNKNOWN"]
    return pd.DataFrame(
        {  # texts from their labels inside Arrow (textcols): the dtype pandas gives Python strings, without them
            "decision": labels_column([APPROVE, DECLINE], declined.astype(np.int64)),
            "credit_limit": np.where(declined, 0.0, limit),
            "affordability_cap": cap,
            "decision_reasons": labels_column(texts, inverse),
            # What the risk rules allow before any product's affordability test, and the declines
            # no product can change: the offer search starts from these.
            "risk_limit": np.minimum(np.where(income_known, estimate, np.minimum(estimate, table)), policy.max_limit),
            "hard_decline": hard,
        }
    )
