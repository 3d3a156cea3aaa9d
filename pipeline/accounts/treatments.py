"""Contact treatments: who gets a reminder, a repayment-plan offer or a hardship review this month.

Why: early, proportionate contact cures most arrears; a plan the customer cannot pay does not, and
repeated chasing is harmful, so plans must be affordable (see plans.py) and contacts are capped per
month. An account at the cap keeps its need on record (`treatment_deferred`) but is not contacted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.accounts.plans import HARDSHIP, NO_BALANCE, PLAN, PLAN_COLUMNS, offer_plans
from pipeline.accounts.settings import PlanSettings, TreatmentSettings

NONE, REMINDER = "none", "reminder"


@dataclass(frozen=True)
class TreatmentOutcome:
    treatment: np.ndarray
    deferred: np.ndarray  # a contact was due but the monthly cap was reached
    plans: pd.DataFrame  # PLAN_COLUMNS; filled for plan candidates only
    flags: dict[str, np.ndarray]


def assign_treatments(
    frame: pd.DataFrame, pd_: np.ndarray, flagged: np.ndarray, t: TreatmentSettings, p: PlanSettings
) -> TreatmentOutcome:
    """Plan candidates are in arrears (status >= plan_min_status) or near it (flagged with PD >= plan_min_pd)."""
    n = len(frame)
    status = frame["repayment_status_m1"].to_numpy(float)
    arrears = status >= t.plan_min_status
    near = flagged & (pd_ >= t.plan_min_pd)
    candidate = arrears | near
    income = frame["monthly_income"].to_numpy(float) if "monthly_income" in frame else np.full(n, np.nan)
    debts = frame["monthly_debt_payments"].to_numpy(float) if "monthly_debt_payments" in frame else np.full(n, np.nan)
    owed = np.maximum(frame["balance"].to_numpy(float), 0.0)
    offers = offer_plans(np.where(candidate, owed, 0.0), income, debts, p)
    outcome = offers["plan_outcome"].to_numpy(dtype=object)
    plan = candidate & (outcome == PLAN)
    hardship = candidate & (outcome == HARDSHIP)
    late = status >= t.reminder_min_status
    remind = ~plan & ~hardship & (late | (t.remind_early_warning & flagged))
    wanted = np.where(plan, PLAN, np.where(hardship, HARDSHIP, np.where(remind, REMINDER, NONE))).astype(object)
    contacts = np.nan_to_num(_contacts(frame), nan=0.0)
    deferred = (wanted != NONE) & (contacts >= t.max_contacts_per_month)
    treatment = np.where(deferred, NONE, wanted).astype(object)
    plans = offers.where(pd.Series(candidate & (outcome != NO_BALANCE)), np.nan)[PLAN_COLUMNS]
    keep_terms = treatment == PLAN
    for col in ("plan_term_months", "plan_payment", "plan_total"):
        plans[col] = plans[col].where(keep_terms)
    flags = {
        "ARREARS": late,
        "PLAN": treatment == PLAN,
        "HARDSHIP_NO_FIT": (treatment == HARDSHIP) & ~np.isnan(offers["affordable_payment"].to_numpy(float)),
        "HARDSHIP_NO_INCOME": (treatment == HARDSHIP) & np.isnan(offers["affordable_payment"].to_numpy(float)),
        "CONTACT_CAP": deferred,
    }
    return TreatmentOutcome(treatment, deferred, plans.reset_index(drop=True), flags)


def _contacts(frame: pd.DataFrame) -> np.ndarray:
    if "contacts_this_month" not in frame:
        return np.zeros(len(frame))
    return frame["contacts_this_month"].to_numpy(float)
