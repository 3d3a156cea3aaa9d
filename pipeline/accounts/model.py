"""Behaviour PD: LightGBM on the behaviour features, early-stopped and calibrated, plus the evaluation numbers.

Why here and not the applicant trainer: the applicant trainer's import path is moving during the
restructure. The specs in behaviour.DICTIONARY carry `name`, `direction` and `categorical`, so the
integrator can swap `fit_behaviour_pd` for `pipeline.model.boosters.train_pd` unchanged; this
function keeps LightGBM defaults (the brief's baseline) with monotone constraints from the dictionary.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from pipeline.accounts.behaviour import BehaviourSpec
from pipeline.accounts.settings import ModelSettings

EPS = 1e-6


@dataclass
class BehaviourModel:
    booster: lgb.Booster
    names: list[str]
    calibrator: IsotonicRegression | LogisticRegression
    floor: float

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated PD in [floor, 1 - floor]: no account is ever certain to pay or to default."""
        raw = self.booster.predict(features[self.names].to_numpy(float))
        if isinstance(self.calibrator, IsotonicRegression):
            pd_ = self.calibrator.predict(raw)
        else:
            pd_ = self.calibrator.predict_proba(_logit(raw).reshape(-1, 1))[:, 1]
        return np.clip(pd_, self.floor, 1 - self.floor)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def split_parts(y: np.ndarray, s: ModelSettings) -> dict[str, np.ndarray]:
    """Stratified train / validation / test positions (e.g. 60/20/20), seeded."""
    idx = np.arange(len(y))
    train, rest = train_test_split(idx, train_size=s.train_share, stratify=y, random_state=s.seed)
    val_of_rest = s.validation_share / (1 - s.train_share)
    val, test = train_test_split(rest, train_size=val_of_rest, stratify=y[rest], random_state=s.seed)
    return {"train": np.sort(train), "validation": np.sort(val), "test": np.sort(test)}


def fit_behaviour_pd(
    features: pd.DataFrame,
    y: np.ndarray,
    train: np.ndarray,
    val: np.ndarray,
    specs: list[BehaviourSpec],
    s: ModelSettings,
) -> BehaviourModel:
    """Early stopping on validation log loss; the calibrator is fitted on the same validation part."""
    names = [spec.name for spec in specs]
    X = features[names].to_numpy(float)
    params = {
        "objective": "binary",
        "metric": "binary_logloss",
        "verbose": -1,
        "seed": s.seed,
        "deterministic": True,
        "num_threads": 1,
        "monotone_constraints": [
            spec.direction if s.monotone and spec.name not in s.unconstrained else 0 for spec in specs
        ],
    }
    dtrain = lgb.Dataset(X[train], y[train], feature_name=names)
    dval = lgb.Dataset(X[val], y[val], reference=dtrain)
    booster = lgb.train(
        params,
        dtrain,
        s.num_boost_round,
        valid_sets=[dval],
        callbacks=[lgb.early_stopping(s.early_stopping_rounds, verbose=False)],
    )
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    raw = booster.predict(X[val])
    if s.calibration == "isotonic":
        calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y[val])
    else:
        calibrator = LogisticRegression(C=1e6).fit(_logit(raw).reshape(-1, 1), y[val])
    return BehaviourModel(booster, names, calibrator, s.pd_floor)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int) -> float:
    """Weighted mean |observed rate - mean PD| over equal-count PD bins (the pipeline's definition)."""
    order = np.argsort(p, kind="stable")
    groups = np.array_split(order, bins)
    gaps = [len(g) * abs(y[g].mean() - p[g].mean()) for g in groups if len(g)]
    return float(np.sum(gaps) / len(y))


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


def evaluate(
    y: np.ndarray, pd_: np.ndarray, rank: np.ndarray, rule: np.ndarray, s: ModelSettings, rule_score: np.ndarray
) -> dict:
    """AUC, ECE, and capture of the ranking's top shares vs a simple rule, at equal volumes.

    `rule` is the yes/no rule (e.g. late last month); `rule_score` ranks the same rule's accounts (e.g. months
    late last month) so that the rule, too, can be cut at the top 5% and 10%.
    """
    out: dict = {
        "rows": int(len(y)),
        "default_rate": float(y.mean()),
        "auc": float(roc_auc_score(y, pd_)),
        "ece": expected_calibration_error(y, pd_, s.calibration_bins),
        "rule": capture(y, rule),
    }
    by_rule = rank_by(rule_score)
    for share in s.capture_shares:
        out[f"top_{share:.0%}"] = capture(y, top_share(rank, share))
        out[f"rule_top_{share:.0%}"] = capture(y, top_share(by_rule, share))
    out["top_same_volume_as_rule"] = capture(y, top_share(rank, float(np.mean(rule))))
    return out
