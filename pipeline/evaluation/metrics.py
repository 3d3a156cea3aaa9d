"""Credit model metrics: discrimination, calibration, stability, fairness, limits and policy.

Pure functions over arrays; scikit-learn where it has the metric, hand-written where
credit practice defines it (KS, ECE, PSI, adverse impact). Conventions: `y` is 1 for a
default, `p` is a probability of default (higher = riskier), `score` is scorecard points
(higher = safer). Tables come back as DataFrames so the report and the tests read the
same numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    mean_pinball_loss,
    roc_auc_score,
    roc_curve,
)

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


# ---------------------------------------------------------------- stability (PSI)


def _edges(reference: np.ndarray, bins: int) -> np.ndarray:
    ref = reference[~np.isnan(reference)]
    if not len(ref):
        return np.array([-np.inf, np.inf])
    qs = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.r_[-np.inf, qs, np.inf]


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of values per bin ([a, b), the last closed, as np.histogram), plus a last bin for missing values.

    One searchsorted and one bincount: NaN sorts past every edge, straight into the missing bin.
    """
    values = np.asarray(values, dtype=float)
    edges = np.asarray(edges, dtype=float)
    idx = np.searchsorted(edges, values, side="right") - 1
    idx[values == edges[-1]] = len(edges) - 2  # the last bin is closed on the right
    counts = np.bincount(idx, minlength=len(edges))[: len(edges)]
    return counts / max(len(values), 1)


def psi_from_shares(expected: np.ndarray, actual: np.ndarray, eps: float = 1e-4) -> float:
    """sum (a - e) ln(a / e) over bins; empty bins are floored at `eps` so one empty bin is not infinite."""
    e = np.clip(np.asarray(expected, float), eps, None)
    a = np.clip(np.asarray(actual, float), eps, None)
    keep = (np.asarray(expected) > 0) | (np.asarray(actual) > 0)
    return float(np.sum(((a - e) * np.log(a / e))[keep]))


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `actual` against `expected`, on quantile bins of `expected`."""
    edges = _edges(np.asarray(expected, float), bins)
    return psi_from_shares(bin_shares(expected, edges), bin_shares(actual, edges))


def psi_status(value: float, warn: float, alert: float) -> str:
    """Reading of a PSI value: stable below `warn`, watch below `alert`, shifted from `alert` up.

    The thresholds are the config's `scoring.psi_warn` / `scoring.psi_alert` (the industry's rule of
    thumb is 0.1 / 0.25), so the report reads drift exactly as batch scoring monitors it.
    """
    if not value == value:
        return "n/a"
    return "stable" if value < warn else ("watch" if value < alert else "shifted")


def psi_table(
    expected: np.ndarray, actual: np.ndarray, names: list[str], bins: int = 10, *, warn: float, alert: float
) -> pd.DataFrame:
    """PSI per column of two matrices (train vs test), worst first, with its reading (see `psi_status`)."""
    expected = np.asarray(expected, dtype=float)
    actual = np.asarray(actual, dtype=float)
    values = [psi(expected[:, i], actual[:, i], bins) for i in range(len(names))]
    table = pd.DataFrame({"feature": names, "psi": values})
    table["status"] = table["psi"].map(lambda v: psi_status(v, warn, alert))
    return table.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)


def reference_distribution(values: np.ndarray, bins: int = 10) -> dict:
    """Bin edges and shares of a training sample: what the artifact keeps to measure drift later."""
    values = np.asarray(values, dtype=float)
    edges = _edges(values, bins)
    return {"edges": edges.tolist(), "shares": bin_shares(values, edges).tolist()}


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


# ---------------------------------------------------------------- limits and policy


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


# ---------------------------------------------------------------- fairness


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


# ---------------------------------------------------------------- offers

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
