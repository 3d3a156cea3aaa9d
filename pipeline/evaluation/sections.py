"""The parts of a holdout evaluation, each computed from the scored holdout: headline metrics,
stability, limit model error, the fairness screen and the report's tables.

Functions here compute and return; they write nothing (`pipeline.evaluation.holdout` writes the
report folder). Every threshold comes in from the config, never from a module constant.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.config import Config
from pipeline.decision.offers import OFFER_COLUMNS
from pipeline.decision.scorecard import pd_to_score
from pipeline.decision.scorer import Scorer
from pipeline.evaluation.fairness import fairness
from pipeline.evaluation.metrics import auc_confidence_interval, calibration_table, discrimination, score_bands
from pipeline.evaluation.policy_metrics import (
    cutoff_table,
    decision_reason_counts,
    grade_table,
    limit_coverage,
    limit_errors,
    policy_simulation,
)
from pipeline.evaluation.stability import psi, psi_status, psi_table

log = logging.getLogger(__name__)
TARGET, LIMIT = "defaulted", "granted_limit"


@dataclass(frozen=True)
class Holdout:
    """The scored test rows beside the training rows they are compared with; every section reads these."""

    train: pd.DataFrame
    test: pd.DataFrame
    X_train: np.ndarray
    X_test: np.ndarray
    train_score: np.ndarray
    y: np.ndarray
    y_train: np.ndarray
    p: np.ndarray
    score: np.ndarray
    decision: np.ndarray
    limit: np.ndarray
    grade: np.ndarray
    reasons: np.ndarray
    offers: pd.DataFrame | None = None  # pd, grade and the offer columns; None when the scorer makes no offers


@dataclass(frozen=True)
class Stability:
    """PSI metrics, the report's table (score and features, worst first) and the features alone (for the card)."""

    metrics: dict[str, float]
    table: pd.DataFrame
    features: pd.DataFrame


@dataclass(frozen=True)
class FairnessScreen:
    """Per-attribute tables and ratios; `min_air` is None when no protected attribute could be assessed."""

    tables: dict[str, pd.DataFrame]
    metrics: dict[str, float]
    min_air: float | None


def importance_table(scorer: Scorer) -> pd.DataFrame:
    """Gain importance of the PD booster, with each feature's risk direction and reason text."""
    booster = scorer.pd_model.booster
    gain = booster.feature_importance("gain").astype(float)
    names = list(booster.feature_name())
    specs = {s.name: s for s in scorer.specs}
    table = pd.DataFrame(
        {
            "feature": names,
            "gain": gain,
            "gain_share": gain / gain.sum() if gain.sum() > 0 else np.zeros(len(gain)),
            "direction": [int(specs[n].direction) if n in specs else 0 for n in names],
            "reason": [specs[n].reason if n in specs else "" for n in names],
        }
    )
    return table.sort_values("gain", ascending=False, kind="stable").reset_index(drop=True)


def score_holdout(scorer: Scorer, valid: pd.DataFrame, splits: dict[str, np.ndarray]) -> Holdout:
    """Score the test rows once (reason codes off: not needed here and the slow part)."""
    quiet = dataclasses.replace(scorer, reason_k=0)
    train, test = valid.iloc[splits["train"]].reset_index(drop=True), valid.iloc[splits["test"]].reset_index(drop=True)
    X_train, X_test = scorer.matrix(train), scorer.matrix(test)
    scored = quiet.score_valid(test, X_test)
    return Holdout(
        train=train,
        test=test,
        X_train=X_train,
        X_test=X_test,
        train_score=pd_to_score(scorer.pd_model.predict(X_train), scorer.scorecard),
        y=test[TARGET].to_numpy(dtype=int),
        y_train=train[TARGET].to_numpy(dtype=int),
        p=scored["pd"].to_numpy(dtype=float),
        score=scored["score"].to_numpy(dtype=float),
        decision=scored["decision"].to_numpy(),
        limit=scored["credit_limit"].to_numpy(dtype=float),
        grade=scored["grade"].to_numpy(),
        reasons=scored["decision_reasons"].to_numpy(),
        offers=scored[["pd", "grade", *OFFER_COLUMNS]] if "offer_type" in scored else None,
    )


def headline_metrics(h: Holdout, cfg: Config) -> dict[str, float]:
    """Discrimination with its confidence interval, calibration, and the policy simulated on the holdout."""
    ev = cfg.evaluation
    metrics = {f"test_{k}": v for k, v in discrimination(h.y, h.p, ev.calibration_bins).items()}
    low, high = auc_confidence_interval(metrics["test_roc_auc"], int(h.y.sum()), int((1 - h.y).sum()))
    metrics.update(
        {
            "test_roc_auc_ci_low": low,
            "test_roc_auc_ci_high": high,
            "n_test": float(len(h.y)),
            "n_train": float(len(h.y_train)),
            "test_default_rate": float(h.y.mean()),
            "train_default_rate": float(h.y_train.mean()),
            "test_mean_pd": float(h.p.mean()),
        }
    )
    metrics.update(policy_simulation(h.y, h.p, h.decision, h.limit, ev.lgd, ev.ccf))
    metrics.update({"lgd": ev.lgd, "ccf": ev.ccf})
    return metrics


def stability(h: Holdout, scorer: Scorer, cfg: Config) -> Stability:
    """PSI of the score and of every feature, train vs test, read by the scoring monitor's thresholds."""
    bins, warn, alert = cfg.evaluation.psi_bins, cfg.scoring.psi_warn, cfg.scoring.psi_alert
    features = psi_table(h.X_train, h.X_test, scorer.feature_names, bins, warn=warn, alert=alert)
    score_psi = psi(h.train_score, h.score, bins)
    score_row = pd.DataFrame(
        {"feature": ["(score)"], "psi": [score_psi], "status": [psi_status(score_psi, warn, alert)]}
    )
    table = pd.concat([score_row, features], ignore_index=True).sort_values("psi", ascending=False, kind="stable")
    metrics = {
        "score_psi": score_psi,
        "max_feature_psi": float(features["psi"].max()) if len(features) else 0.0,
        "n_features_shifted": float((features["psi"] >= alert).sum()),
    }
    return Stability(metrics, table.reset_index(drop=True), features)


def limit_model_fit(h: Holdout, scorer: Scorer) -> tuple[dict[str, float], tuple[np.ndarray, np.ndarray] | None]:
    """Error of the limit model on good payers: metrics and (granted, estimate), or nothing without a model."""
    if scorer.limit_model is None or LIMIT not in h.test:
        return {}, None
    granted = h.test[LIMIT].to_numpy(dtype=float)
    good = (h.y == 0) & (granted > 0) & ~np.isnan(granted)
    if not good.any():
        return {}, None
    cols = [scorer.feature_names.index(n) for n in scorer.limit_model.names]
    estimate = scorer.limit_model.predict(h.X_test[np.ix_(good, cols)])
    metrics = {
        **limit_errors(granted[good], estimate, scorer.limit_model.alpha),
        "limit_coverage": limit_coverage(granted[good], estimate),
        "limit_n": float(good.sum()),
        "limit_alpha": scorer.limit_model.alpha,
    }
    return metrics, (granted[good], estimate)


def fairness_screen(h: Holdout, protected: list[str], min_group: int) -> FairnessScreen:
    """Adverse impact per declared protected attribute; groups under `min_group` are shown but not judged."""
    tables: dict[str, pd.DataFrame] = {}
    metrics: dict[str, float] = {}
    for attr in protected:
        if attr not in h.test:
            log.warning("protected attribute %s is not in the data: no fairness table", attr)
            continue
        table = fairness(h.test[attr], h.y, h.p, h.decision, h.limit, min_count=min_group)
        tables[attr] = table
        air = float(table.loc[table["reliable"], "adverse_impact_ratio"].min())
        metrics[f"air_{attr}"] = air if air == air else 1.0  # nobody approved anywhere: undefined, not a disparity
        aucs = table.loc[table["reliable"], "auc"].dropna()
        if len(aucs) > 1:
            metrics[f"auc_gap_{attr}"] = float(aucs.max() - aucs.min())
    airs = [metrics[f"air_{attr}"] for attr in tables]
    return FairnessScreen(tables, metrics, min(airs) if airs else None)


def cutoff_points(configured: list[float], policy_cutoff: float) -> list[float]:
    """The configured cutoffs plus the policy's own, so the table always shows where the model runs."""
    return sorted(set(configured) | {policy_cutoff})


def build_tables(
    h: Holdout, scorer: Scorer, cfg: Config, psi_all: pd.DataFrame, fair: FairnessScreen
) -> dict[str, pd.DataFrame]:
    """Every table of the report by name: each goes to tables/<name>.csv and onto the page."""
    return {
        "score_bands": score_bands(h.y, h.score, 10),
        "calibration": calibration_table(h.y, h.p, cfg.evaluation.calibration_bins),
        "grades": grade_table(h.y, h.p, h.grade, h.decision, h.limit, [g.name for g in scorer.scorecard.grades]),
        "cutoffs": cutoff_table(h.y, h.p, cutoff_points(cfg.evaluation.cutoff_table, scorer.policy.pd_cutoff)),
        "decision_reasons": decision_reason_counts(h.decision, h.reasons),
        "psi": psi_all,
        "importance": importance_table(scorer),
        **{f"fairness_{attr}": t for attr, t in fair.tables.items()},
    }
