"""Credit model metrics: how well the PD ranks applicants (discrimination) and how right its level is (calibration).

Pure functions over arrays; scikit-learn where it has the metric, hand-written where credit practice
defines it (KS, ECE). Conventions: `y` is 1 for a default, `p` is a probability of default (higher =
riskier), `score` is scorecard points (higher = safer). Tables come back as DataFrames so the report
and the tests read the same numbers. Stability (PSI) is in `stability`, fairness in `fairness`, and
what the lending policy does (approvals, losses, limits, offers) in `policy_metrics`: the same
conventions hold there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score, roc_curve

# Re-exported: files that other work is editing now import these from here (pipeline/model/train.py,
# pipeline/model/baselines.py, pipeline/stages/accounts.py, tests/test_metrics.py, tests/test_report.py).
# New code imports them from stability, fairness and policy_metrics.
from pipeline.evaluation.fairness import adverse_impact_flags as adverse_impact_flags
from pipeline.evaluation.fairness import adverse_impact_ratio as adverse_impact_ratio
from pipeline.evaluation.fairness import fairness as fairness
from pipeline.evaluation.policy_metrics import counter_offer_scenarios as counter_offer_scenarios
from pipeline.evaluation.policy_metrics import cutoff_table as cutoff_table
from pipeline.evaluation.policy_metrics import decision_reason_counts as decision_reason_counts
from pipeline.evaluation.policy_metrics import grade_table as grade_table
from pipeline.evaluation.policy_metrics import limit_coverage as limit_coverage
from pipeline.evaluation.policy_metrics import limit_errors as limit_errors
from pipeline.evaluation.policy_metrics import offer_mix as offer_mix
from pipeline.evaluation.policy_metrics import payment_to_income as payment_to_income
from pipeline.evaluation.policy_metrics import policy_simulation as policy_simulation
from pipeline.evaluation.policy_metrics import pti_distribution as pti_distribution
from pipeline.evaluation.stability import psi as psi
from pipeline.evaluation.stability import psi_from_shares as psi_from_shares
from pipeline.evaluation.stability import psi_status as psi_status
from pipeline.evaluation.stability import psi_table as psi_table
from pipeline.evaluation.stability import reference_distribution as reference_distribution

# ---------------------------------------------------------------- discrimination


def ks_statistic(y: np.ndarray, p: np.ndarray) -> float:
    """Maximum distance between the score CDFs of goods and bads (0..1)."""
    curve = ks_curve(y, p)
    return float(curve["gap"].max()) if len(curve) else 0.0


def ks_curve(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """Empirical CDFs of bads and goods at each distinct value of `p` (what the KS plot draws).

    Evaluated only after the last row of each tied value, so ties never create a gap that
    no threshold could realise.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    bads = np.cumsum(y_sorted) / max(y_sorted.sum(), 1)
    goods = np.cumsum(1 - y_sorted) / max((1 - y_sorted).sum(), 1)
    last_of_value = np.r_[p_sorted[1:] != p_sorted[:-1], True] if len(p_sorted) else np.array([], bool)
    return pd.DataFrame(
        {
            "threshold": p_sorted[last_of_value],
            "cdf_bad": bads[last_of_value],
            "cdf_good": goods[last_of_value],
            "gap": np.abs(bads - goods)[last_of_value],
        }
    )


def roc_points(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """False and true positive rates over thresholds of PD (defaults are the positives)."""
    fpr, tpr, thr = roc_curve(y, p)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thr})


def auc_confidence_interval(auc: float, n_bad: int, n_good: int, z: float = 1.96) -> tuple[float, float]:
    """Hanley-McNeil (1982) normal interval for AUC: says how much a small holdout can be trusted."""
    if n_bad < 1 or n_good < 1:
        return float("nan"), float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (n_bad - 1) * (q1 - auc**2) + (n_good - 1) * (q2 - auc**2)) / (n_bad * n_good)
    se = float(np.sqrt(max(var, 0.0)))
    return max(0.0, auc - z * se), min(1.0, auc + z * se)


# ---------------------------------------------------------------- calibration


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Weighted mean |observed rate - mean PD| over equal-count bins of PD."""
    table = calibration_table(y, p, bins)
    if not len(table):
        return float("nan")
    return float(np.sum(table["count"] * (table["observed_rate"] - table["mean_pd"]).abs()) / table["count"].sum())


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Equal-count PD bins (lowest PD first): count, mean PD, observed default rate (the reliability diagram)."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    rows = [
        {
            "bin": i + 1,
            "count": len(c),
            "min_pd": float(p[c].min()),
            "max_pd": float(p[c].max()),
            "mean_pd": float(np.mean(p[c])),
            "observed_rate": float(np.mean(y[c])),
        }
        for i, c in enumerate(np.array_split(order, bins))
        if len(c)
    ]
    return pd.DataFrame(rows, columns=["bin", "count", "min_pd", "max_pd", "mean_pd", "observed_rate"])


def discrimination(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, float]:
    """The headline numbers: ranking (AUC, Gini, KS) and accuracy of the PD level (Brier, log loss, ECE)."""
    auc = float(roc_auc_score(y, p))
    return {
        "roc_auc": auc,
        "gini": 2 * auc - 1,
        "ks": ks_statistic(y, p),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "ece": expected_calibration_error(y, p, bins),
    }


# ---------------------------------------------------------------- score bands and gains


def score_bands(y: np.ndarray, score: np.ndarray, bands: int = 10) -> pd.DataFrame:
    """Equal-count score bands, riskiest (lowest score) first: count, defaults, bad rate, cumulative shares, lift.

    `cum_bad_share` against `cum_count_share` is the gains curve: the share of all defaults
    caught by declining the riskiest bands up to this one. `lift` is the band's bad rate over
    the overall bad rate; `cum_lift` is the same for everything up to this band.
    """
    y = np.asarray(y, dtype=float)
    score = np.asarray(score, dtype=float)
    bands = max(1, min(bands, len(y)))
    df = pd.DataFrame({"y": y, "score": score})
    df["band"] = pd.qcut(df["score"].rank(method="first"), bands, labels=False)
    t = df.groupby("band").agg(
        min_score=("score", "min"), max_score=("score", "max"), count=("y", "size"), defaults=("y", "sum")
    )
    t = t.sort_values("min_score", kind="stable").reset_index(drop=True)
    t.insert(0, "band", np.arange(1, len(t) + 1))
    overall = max(float(y.mean()) if len(y) else 0.0, 1e-12)
    t["bad_rate"] = t["defaults"] / t["count"]
    t["cum_count_share"] = t["count"].cumsum() / t["count"].sum()
    t["cum_bad_share"] = t["defaults"].cumsum() / max(t["defaults"].sum(), 1)
    t["cum_good_share"] = (t["count"] - t["defaults"]).cumsum() / max((t["count"] - t["defaults"]).sum(), 1)
    t["cum_bad_rate"] = t["defaults"].cumsum() / t["count"].cumsum()
    t["lift"] = t["bad_rate"] / overall
    t["cum_lift"] = t["cum_bad_rate"] / overall
    return t


def gains_curve(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """Share of defaults captured against share of applicants, taking the highest PD first (starts at 0, 0)."""
    y = np.asarray(y, dtype=float)
    order = np.argsort(-np.asarray(p, dtype=float), kind="stable")
    captured = np.cumsum(y[order]) / max(y.sum(), 1)
    population = np.arange(1, len(y) + 1) / max(len(y), 1)
    return pd.DataFrame({"population_share": np.r_[0.0, population], "bad_share": np.r_[0.0, captured]})
