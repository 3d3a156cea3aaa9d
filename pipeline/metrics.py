"""Credit model metrics: discrimination, calibration, stability, fairness, limits and policy.

Pure functions over arrays; scikit-learn where it has the metric, hand-written where
credit practice defines it (KS, ECE, PSI, adverse impact).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, log_loss, mean_absolute_error, mean_pinball_loss, roc_auc_score


def ks_statistic(y: np.ndarray, p: np.ndarray) -> float:
    """Maximum distance between the score CDFs of goods and bads (0..1)."""
    y = np.asarray(y)
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    bads = np.cumsum(y_sorted) / max(y_sorted.sum(), 1)
    goods = np.cumsum(1 - y_sorted) / max((1 - y_sorted).sum(), 1)
    last_of_value = np.r_[p_sorted[1:] != p_sorted[:-1], True]  # evaluate only between distinct values
    return float(np.max(np.abs(bads - goods)[last_of_value]))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Weighted mean |observed rate - mean PD| over equal-count bins of PD."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            total += len(chunk) * abs(y[chunk].mean() - p[chunk].mean())
    return float(total / len(y))


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    order = np.argsort(p, kind="stable")
    rows = [
        {"bin": i + 1, "count": len(c), "mean_pd": float(np.mean(p[c])), "observed_rate": float(np.mean(y[c]))}
        for i, c in enumerate(np.array_split(order, bins))
        if len(c)
    ]
    return pd.DataFrame(rows)


def discrimination(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, float]:
    auc = float(roc_auc_score(y, p))
    return {
        "roc_auc": auc,
        "gini": 2 * auc - 1,
        "ks": ks_statistic(y, p),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "ece": expected_calibration_error(y, p, bins),
    }


def _edges(reference: np.ndarray, bins: int) -> np.ndarray:
    ref = reference[~np.isnan(reference)]
    if not len(ref):
        return np.array([-np.inf, np.inf])
    qs = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.r_[-np.inf, qs, np.inf]


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of values per bin (right-closed), with one extra last bin for missing values."""
    values = np.asarray(values, dtype=float)
    missing = np.isnan(values)
    counts = np.histogram(values[~missing], bins=edges)[0] if (~missing).any() else np.zeros(len(edges) - 1)
    counts = np.r_[counts, missing.sum()]
    return counts / max(len(values), 1)


def psi_from_shares(expected: np.ndarray, actual: np.ndarray, eps: float = 1e-4) -> float:
    e = np.clip(np.asarray(expected, float), eps, None)
    a = np.clip(np.asarray(actual, float), eps, None)
    keep = (np.asarray(expected) > 0) | (np.asarray(actual) > 0)
    return float(np.sum(((a - e) * np.log(a / e))[keep]))


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `actual` against `expected`, on quantile bins of `expected`."""
    edges = _edges(np.asarray(expected, float), bins)
    return psi_from_shares(bin_shares(expected, edges), bin_shares(actual, edges))


def reference_distribution(values: np.ndarray, bins: int = 10) -> dict:
    """Bin edges and shares of a training sample: what the artifact keeps to measure drift later."""
    values = np.asarray(values, dtype=float)
    edges = _edges(values, bins)
    return {"edges": edges.tolist(), "shares": bin_shares(values, edges).tolist()}


def psi_against(reference: dict, values: np.ndarray) -> float:
    return psi_from_shares(np.asarray(reference["shares"]), bin_shares(values, np.asarray(reference["edges"])))


def score_bands(y: np.ndarray, score: np.ndarray, bands: int = 10) -> pd.DataFrame:
    """Equal-count score bands, riskiest first: count, defaults, bad rate, cumulative shares."""
    df = pd.DataFrame({"y": y, "score": score})
    df["band"] = pd.qcut(df["score"].rank(method="first"), bands, labels=False)
    t = df.groupby("band").agg(min_score=("score", "min"), max_score=("score", "max"), count=("y", "size"), defaults=("y", "sum"))
    t = t.sort_values("min_score").reset_index(drop=True)
    t["bad_rate"] = t["defaults"] / t["count"]
    t["cum_count_share"] = t["count"].cumsum() / t["count"].sum()
    t["cum_bad_share"] = t["defaults"].cumsum() / max(t["defaults"].sum(), 1)
    t["cum_good_share"] = (t["count"] - t["defaults"]).cumsum() / max((t["count"] - t["defaults"]).sum(), 1)
    t["lift"] = t["bad_rate"] / max(df["y"].mean(), 1e-12)
    return t


def limit_errors(actual: np.ndarray, predicted: np.ndarray, alpha: float) -> dict[str, float]:
    return {
        "limit_mae": float(mean_absolute_error(actual, predicted)),
        "limit_pinball": float(mean_pinball_loss(np.log(actual), np.log(predicted), alpha=alpha)),
    }


def policy_simulation(y: np.ndarray, pd_: np.ndarray, decision: np.ndarray, limit: np.ndarray, lgd: float, ccf: float) -> dict[str, float]:
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


def fairness(groups: pd.Series, y: np.ndarray, pd_: np.ndarray, decision: np.ndarray, limit: np.ndarray) -> pd.DataFrame:
    """Per group: count, approval rate, adverse impact ratio vs the most approved group, AUC, mean limit."""
    df = pd.DataFrame({"group": groups.fillna("<missing>").astype(str).to_numpy(), "y": y, "pd": pd_,
                       "approved": decision == "approve", "limit": limit})
    rows = []
    for g, part in df.groupby("group"):
        auc = float(roc_auc_score(part["y"], part["pd"])) if part["y"].nunique() == 2 else float("nan")
        rows.append({"group": g, "count": len(part), "approval_rate": part["approved"].mean(), "bad_rate": part["y"].mean(),
                     "auc": auc, "mean_limit_approved": part.loc[part["approved"], "limit"].mean()})
    table = pd.DataFrame(rows)
    best = table["approval_rate"].max()
    table["adverse_impact_ratio"] = table["approval_rate"] / best if best > 0 else np.nan
    return table
