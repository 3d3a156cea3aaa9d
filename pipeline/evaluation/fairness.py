"""Fairness: approval rates, adverse impact ratios and AUC per group of a protected attribute.

Separate from `metrics` (the model's accuracy over everyone) and `policy_metrics` (what the policy
does overall): these tables compare groups, and their screen is the registry gate's
`min_adverse_impact_ratio`, shared by the report's plot, findings and the gate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score


def adverse_impact_ratio(approval_rates: pd.Series) -> pd.Series:
    """Each group's approval rate over the most favoured (highest-approval) group's rate."""
    best = approval_rates.max()
    if not best > 0:
        return pd.Series(np.nan, index=approval_rates.index)
    return approval_rates / best


def group_labels(groups) -> np.ndarray:
    """Group values as text ("<missing>" for nulls; 1.0 shown as 1), so codes and labels read alike."""
    s = pd.Series(groups).reset_index(drop=True)
    if pd.api.types.is_numeric_dtype(s) and np.all(np.mod(s.dropna().to_numpy(dtype=float), 1) == 0):
        s = s.astype("Int64")
    return s.astype(object).where(s.notna(), "<missing>").astype(str).to_numpy()


def fairness(
    groups: pd.Series, y: np.ndarray, pd_: np.ndarray, decision: np.ndarray, limit: np.ndarray, min_count: int = 1
) -> pd.DataFrame:
    """Per group: count, approval rate, adverse impact ratio vs the most approved group, AUC, mean limit.

    Missing values form their own group, so applicants without the attribute are not silently
    dropped. Groups smaller than `min_count` are kept but marked not `reliable` and cannot be the
    reference group: a handful of applicants must not set (or fail) the adverse impact screen.
    """
    df = pd.DataFrame(
        {
            "group": group_labels(groups),
            "y": np.asarray(y),
            "pd": np.asarray(pd_, dtype=float),
            "approved": np.asarray(decision) == "approve",
            "limit": np.asarray(limit, dtype=float),
        }
    )
    rows = []
    for g, part in df.groupby("group", sort=True):
        auc = float(roc_auc_score(part["y"], part["pd"])) if part["y"].nunique() == 2 else float("nan")
        approved = part["approved"]
        rows.append(
            {
                "group": g,
                "count": len(part),
                "approved": int(approved.sum()),
                "approval_rate": float(approved.mean()),
                "bad_rate": float(part["y"].mean()),
                "mean_pd": float(part["pd"].mean()),
                "auc": auc,
                "mean_limit_approved": float(part.loc[approved, "limit"].mean()) if approved.any() else float("nan"),
            }
        )
    table = pd.DataFrame(rows)
    table["reliable"] = table["count"] >= min_count
    if not table["reliable"].any():
        table["reliable"] = True
    best = table.loc[table["reliable"], "approval_rate"].max()
    table["adverse_impact_ratio"] = table["approval_rate"] / best if best > 0 else np.nan
    return table


def adverse_impact_flags(table: pd.DataFrame, min_ratio: float) -> pd.Series:
    """Groups that fail the adverse impact screen: reliable (large enough) and below `min_ratio`.

    `min_ratio` is the gate's `min_adverse_impact_ratio` (0.8 is the US "four-fifths rule"), so the
    plot, the findings and the registry gate judge fairness against one number.
    """
    return table["reliable"].astype(bool) & (table["adverse_impact_ratio"] < min_ratio)
