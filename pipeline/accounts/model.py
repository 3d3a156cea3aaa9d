"""Behaviour PD training with the pipeline's own PD machinery, and the numbers that judge the early warning.

Why the applicant machinery (`pipeline.model.boosters.train_pd`): one recipe for both kinds of model -
LightGBM with early stopping, monotone constraints from the dictionary's directions checked on the
training rows, the calibration method chosen by cross-validation on its own split, a data-derived PD
floor - so improvements and audits apply to both. The behaviour dictionary's specs carry the `name`,
`direction` and `categorical` the trainer reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd

from pipeline.accounts.behaviour import BehaviourSpec
from pipeline.accounts.plans import PLAN
from pipeline.accounts.review import ReviewResult
from pipeline.accounts.scorer import AccountScorer
from pipeline.accounts.settings import ModelSettings
from pipeline.config import Config
from pipeline.evaluation.metrics import discrimination
from pipeline.evaluation.stability import psi, reference_distribution
from pipeline.features import FeatureSpec
from pipeline.model.boosters import to_matrix, train_pd
from pipeline.model.splits import make_splits

TARGET = "defaulted_next"


@dataclass
class TrainOutput:
    scorer: AccountScorer
    splits: dict[str, np.ndarray]  # positions in the labelled rows
    split_method: str
    metrics: dict[str, float]
    notes: list[str] = field(default_factory=list)
    search: dict = field(default_factory=dict)


def labelled(frame: pd.DataFrame) -> np.ndarray:
    """Rows with a known next-month outcome: the only ones a PD can be trained or judged on."""
    return frame[TARGET].notna().to_numpy() if TARGET in frame else np.zeros(len(frame), bool)


def fit_accounts(valid: pd.DataFrame, features: pd.DataFrame, specs: list[BehaviourSpec], cfg: Config) -> TrainOutput:
    """Train on validated snapshots with their behaviour features (same rows, same order)."""
    keep = labelled(valid)
    frame, table = valid[keep].reset_index(drop=True), features[keep].reset_index(drop=True)
    names = [s.name for s in specs]
    parts, how = make_splits(frame, TARGET, cfg.split)  # no application_date: stratified by outcome
    X, y = to_matrix(table, names), frame[TARGET].to_numpy(dtype=int)
    tr, va, ca, te = (parts[p] for p in ("train", "validation", "calibration", "test"))
    # BehaviourSpec carries the name, direction and categorical that train_pd reads from a FeatureSpec.
    as_features = cast(list[FeatureSpec], specs)
    pd_model, search = train_pd(X[tr], y[tr], X[va], y[va], X[ca], y[ca], as_features, cfg.pd_model, cfg.seed)
    bins = cfg.evaluation.psi_bins
    reference = {name: reference_distribution(X[tr, i], bins) for i, name in enumerate(names)}
    pd_train, pd_test = pd_model.predict(X[tr]), pd_model.predict(X[te])
    reference["__pd__"] = reference_distribution(pd_train, bins)
    scorer = AccountScorer(
        history=cfg.accounts.history,
        feature_names=names,
        pd_model=pd_model,
        reference=reference,
        meta={"model_name": cfg.registry.model_name, "kind": "accounts"},
    )
    metrics = {f"test_{k}": v for k, v in discrimination(y[te], pd_test, cfg.evaluation.calibration_bins).items()}
    metrics.update(
        score_psi=psi(pd_train, pd_test, bins),
        n_train=len(tr),
        n_validation=len(va),
        n_calibration=len(ca),
        n_test=len(te),
        n_features=len(names),
        pd_trees=pd_model.best_iteration,
    )
    relaxed = pd_model.report.get("monotone", {}).get("relaxed", [])
    notes = [f"monotone constraint relaxed on evidence: {', '.join(relaxed)}"] if relaxed else []
    return TrainOutput(scorer, parts, how, metrics, notes, search)


def capture(y: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    """For a set of flagged accounts: its size, its default rate, and the share of all defaults it holds."""
    flagged = np.asarray(flagged, bool)
    return {
        "flagged_share": float(flagged.mean()),
        "default_rate": float(y[flagged].mean()) if flagged.any() else float("nan"),
        "defaults_captured": float(y[flagged].sum() / max(y.sum(), 1)),
    }


def top_share(rank: np.ndarray, share: float) -> np.ndarray:
    """The riskiest `share` of accounts by early-warning rank (1 = riskiest)."""
    return rank <= int(np.floor(share * len(rank)))


def rank_by(score: np.ndarray) -> np.ndarray:
    """1 = highest score; ties in row order (an arbitrary but reproducible pick within a tie)."""
    order = np.lexsort((np.arange(len(score)), -np.asarray(score, dtype=float)))
    rank = np.empty(len(score), dtype=np.int64)
    rank[order] = np.arange(1, len(score) + 1)
    return rank


def early_warning_numbers(
    y: np.ndarray, pd_: np.ndarray, rank: np.ndarray, status_m1: np.ndarray, s: ModelSettings, bins: int = 10
) -> dict:
    """AUC, ECE, and capture of the ranking's top shares vs the simple rule "late last month", at equal volumes.

    The rule is yes/no; to cut it at the top 5% and 10% too, its accounts are ranked by how late they are.
    """
    status = np.nan_to_num(np.asarray(status_m1, dtype=float), nan=-np.inf)
    rule = status >= s.rule_min_status
    m = discrimination(y, pd_, bins)
    out: dict = {
        "rows": int(len(y)),
        "default_rate": float(y.mean()),
        "auc": m["roc_auc"],
        "ece": m["ece"],
        "rule": capture(y, rule),
    }
    by_rule = rank_by(status)
    for share in s.capture_shares:
        out[f"top_{share:.0%}"] = capture(y, top_share(rank, share))
        out[f"rule_top_{share:.0%}"] = capture(y, top_share(by_rule, share))
    out["top_same_volume_as_rule"] = capture(y, top_share(rank, float(np.mean(rule))))
    return out


def review_numbers(review: ReviewResult, pd_: np.ndarray, trigger_pd: float, income: pd.Series | None) -> dict:
    """What the guard rails and plans did: decreases wanted vs softened, and the share of at-risk accounts
    (plan candidates: in arrears, or flagged and near it) for which an affordable plan exists."""
    out = review.frame
    at_risk = out["plan_outcome"].notna().to_numpy()
    plan = (out["plan_outcome"] == PLAN).to_numpy()
    known = income.notna().to_numpy() if income is not None else np.zeros(len(out), bool)
    return {
        "accounts": len(out),
        "counts": review.counts(),
        "early_warning_flagged": int(out["early_warning"].sum()),
        "decreases_wanted": int((np.asarray(pd_) >= trigger_pd).sum()),
        "softened_decreases": review.softened_decreases,
        "softened_by": review.softened_by,
        "at_risk": int(at_risk.sum()),
        "at_risk_with_known_income": int((at_risk & known).sum()),
        "at_risk_with_affordable_plan": int((at_risk & plan).sum()),
        "affordable_plan_share": float(plan[at_risk].mean()) if at_risk.any() else float("nan"),
    }
