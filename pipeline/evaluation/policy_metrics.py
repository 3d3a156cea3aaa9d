"""What the lending policy does with the model's numbers: approvals, bad rates, expected loss, limits, offers.

Approval and bad rates, expected loss (PD x LGD x EAD) and exposure, the PD-cutoff strategy curve,
grade tables, limit errors against the quantile the limit model targets, which policy codes fire,
and the offers (mix by grade, counter-offers' effect, payment-to-income). Separate from `metrics`
(how well the PD ranks and calibrates): these depend on the decisions and limits, not only on PD.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, mean_pinball_loss


def limit_errors(actual: np.ndarray, predicted: np.ndarray, alpha: float) -> dict[str, float]:
    """MAE in currency, and the pinball loss on log limits the quantile model minimises."""
    return {
        "limit_mae": float(mean_absolute_error(actual, predicted)),
        "limit_pinball": float(mean_pinball_loss(np.log(actual), np.log(predicted), alpha=alpha)),
    }


def limit_coverage(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Share of good payers whose granted limit is at or below the estimate.

    Close to alpha when the quantile is right."""
    actual = np.asarray(actual, dtype=float)
    return float(np.mean(actual <= np.asarray(predicted, dtype=float))) if len(actual) else float("nan")


def policy_simulation(
    y: np.ndarray, pd_: np.ndarray, decision: np.ndarray, limit: np.ndarray, lgd: float, ccf: float
) -> dict[str, float]:
    """Approval rate, bad rate of approved, expected loss = PD x LGD x EAD (EAD = CCF x limit)."""
    approved = decision == "approve"
    ead = ccf * limit
    return {
        "approval_rate": float(approved.mean()),
        "approved_bad_rate": float(y[approved].mean()) if approved.any() else float("nan"),
        "expected_loss": float(np.sum(pd_[approved] * lgd * ead[approved])),
        "expected_loss_rate": float(np.sum(pd_[approved] * lgd * ead[approved]) / max(ead[approved].sum(), 1e-12)),
        "total_exposure": float(limit[approved].sum()),
        "realised_bad_exposure": float(ead[approved & (y == 1)].sum() * lgd),
    }


def cutoff_table(y: np.ndarray, pd_: np.ndarray, cutoffs: list[float]) -> pd.DataFrame:
    """Approval rate and bad rate of approved if PD <= cutoff were the only rule: the strategy curve."""
    y = np.asarray(y, dtype=float)
    pd_ = np.asarray(pd_, dtype=float)
    rows = []
    for c in cutoffs:
        ok = pd_ <= c
        rows.append(
            {
                "pd_cutoff": float(c),
                "approval_rate": float(ok.mean()) if len(ok) else float("nan"),
                "approved_bad_rate": float(y[ok].mean()) if ok.any() else float("nan"),
                "declined_bad_share": float(y[~ok].sum() / max(y.sum(), 1)),
            }
        )
    return pd.DataFrame(rows)


def grade_table(
    y: np.ndarray, pd_: np.ndarray, grade: np.ndarray, decision: np.ndarray, limit: np.ndarray, order: list[str]
) -> pd.DataFrame:
    """Per grade (best first): count, defaults, bad rate, mean PD, approval rate and the limits granted."""
    df = pd.DataFrame(
        {
            "grade": np.asarray(grade, dtype=object),
            "y": np.asarray(y, dtype=float),
            "pd": np.asarray(pd_, dtype=float),
            "approved": np.asarray(decision) == "approve",
            "limit": np.asarray(limit, dtype=float),
        }
    )
    rows = []
    for g in order:
        part = df[df["grade"] == g]
        lim = part.loc[part["approved"], "limit"]
        rows.append(
            {
                "grade": g,
                "count": len(part),
                "defaults": int(part["y"].sum()),
                "bad_rate": float(part["y"].mean()) if len(part) else float("nan"),
                "mean_pd": float(part["pd"].mean()) if len(part) else float("nan"),
                "approval_rate": float(part["approved"].mean()) if len(part) else float("nan"),
                "mean_limit": float(lim.mean()) if len(lim) else float("nan"),
                "median_limit": float(lim.median()) if len(lim) else float("nan"),
                "total_limit": float(lim.sum()),
            }
        )
    return pd.DataFrame(rows)


def decision_reason_counts(decision: np.ndarray, reasons: np.ndarray) -> pd.DataFrame:
    """How often each policy code fires (a declined row can carry several): what drives declines and limits."""
    df = pd.DataFrame({"decision": np.asarray(decision, dtype=object), "codes": np.asarray(reasons, dtype=object)})
    df["codes"] = df["codes"].fillna("").astype(str).str.split(";")
    exploded = df.explode("codes")
    exploded = exploded[exploded["codes"] != ""]
    table = exploded.groupby(["decision", "codes"]).size().rename("count").reset_index()
    table = table.rename(columns={"codes": "code"})
    table["share_of_applicants"] = table["count"] / max(len(df), 1)
    return table.sort_values(["decision", "count"], ascending=[True, False], kind="stable").reset_index(drop=True)


OFFER_TYPES = ("approve", "counter_offer", "decline")


def offer_mix(grade: np.ndarray, offer_type: np.ndarray, order: list[str]) -> pd.DataFrame:
    """Per grade (best first) and over all: how many applicants and the share of each offer type.

    Shows where counter-offers do their work: a grade with many counter-offers is one where the
    risk limit or affordability, not the PD cutoff, shapes the lending.
    """
    df = pd.DataFrame({"grade": np.asarray(grade, dtype=object), "type": np.asarray(offer_type, dtype=object)})
    rows = []
    for g in [*order, "all"]:
        part = df["type"] if g == "all" else df.loc[df["grade"] == g, "type"]
        n = len(part)
        row: dict[str, object] = {"grade": g, "count": n}
        for t in OFFER_TYPES:
            row[f"{t}_share"] = float((part == t).mean()) if n else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def counter_offer_scenarios(
    y: np.ndarray, pd_: np.ndarray, offer_type: np.ndarray, amount: np.ndarray, lgd: float, ccf: float
) -> pd.DataFrame:
    """The policy simulation twice: with counter-offers (as scored) and without them (only approve-as-asked).

    "Without" treats every counter-offer as a decline, which is what a lender that can only say yes
    or no to the request would do; the difference is the volume and the loss counter-offers add.
    """
    offer_type = np.asarray(offer_type, dtype=object)
    amount = np.nan_to_num(np.asarray(amount, dtype=float))
    y, pd_ = np.asarray(y, dtype=float), np.asarray(pd_, dtype=float)
    rows = []
    for scenario, approved in (
        ("with_counter", offer_type != "decline"),
        ("without_counter", offer_type == "approve"),
    ):
        decision = np.where(approved, "approve", "decline")
        sim = policy_simulation(y, pd_, decision, np.where(approved, amount, 0.0), lgd, ccf)
        rows.append(
            {
                "scenario": scenario,
                "approved": int(approved.sum()),
                "approval_rate": sim["approval_rate"],
                "approved_bad_rate": sim["approved_bad_rate"],
                "approved_volume": sim["total_exposure"],
                "expected_loss": sim["expected_loss"],
                "expected_loss_rate": sim["expected_loss_rate"],
            }
        )
    return pd.DataFrame(rows)


def payment_to_income(
    income: np.ndarray, debt: np.ndarray, payment: np.ndarray, offer_type: np.ndarray
) -> pd.DataFrame:
    """(existing debt payments + the offer's payment) / income of every offer made to someone with a known income.

    Unknown debt payments count as none, as the offer search counts them; rows without a positive
    income are left out (the ratio is undefined there, and such offers were never checked for it).
    """
    income = np.asarray(income, dtype=float)
    offered = np.asarray(offer_type, dtype=object) != "decline"
    keep = offered & (income > 0) & ~np.isnan(np.asarray(payment, dtype=float))
    debt = np.nan_to_num(np.asarray(debt, dtype=float))
    ratio = (debt + np.asarray(payment, dtype=float)) / np.where(income > 0, income, np.nan)
    return pd.DataFrame({"offer_type": np.asarray(offer_type, dtype=object)[keep], "pti": ratio[keep]})


def pti_distribution(pti: pd.DataFrame, cap: float, width: float = 0.05) -> pd.DataFrame:
    """Counts of approved offers per payment-to-income band (from, to] of `width` up to the cap, then one above it.

    The cap is `policy.max_payment_to_income` and an offer exactly at it passes, so bands close on the
    right; the band above holds only offers the rules let past the cap, so it should be empty, and a
    pile-up just below the cap shows where affordability binds. 1e-9 of slack absorbs float rounding.
    """
    edges = list(np.round(np.arange(0.0, cap - 1e-9, width), 10)) + [cap, np.inf]
    band = pd.cut((pti["pti"] - 1e-9).clip(lower=0.0), edges, right=True, labels=False, include_lowest=True)
    rows = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        inside = band == i
        rows.append(
            {
                "pti_from": float(lo),
                "pti_to": float(hi),
                "approve": int((inside & (pti["offer_type"] == "approve")).sum()),
                "counter_offer": int((inside & (pti["offer_type"] == "counter_offer")).sum()),
                "count": int(inside.sum()),
            }
        )
    table = pd.DataFrame(rows)
    table["share"] = table["count"] / max(len(pti), 1)
    table["cum_share"] = table["share"].cumsum()
    return table
