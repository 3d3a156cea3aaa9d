"""Training: split, fit the PD and limit models, build the scorer, measure it on the test split.

A pure function of the feature table and the config (no files, no MLflow): the train
stage logs what it returns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from pipeline.config import Config
from pipeline.decision.scorer import Scorer
from pipeline.evaluation.metrics import discrimination, limit_errors, policy_simulation, reference_distribution
from pipeline.features import FeatureSpec, categories, choose_features, compute_features, feature_dictionary
from pipeline.model.boosters import LimitModel, PDModel, limit_specs, to_matrix, train_limit, train_pd
from pipeline.model.splits import cv_folds, make_splits, stratified_split

log = logging.getLogger(__name__)
TARGET, LIMIT = "defaulted", "granted_limit"


@dataclass(frozen=True)
class FeatureTable:
    """The features stage's output: one row per valid row, the chosen features and why others were skipped."""

    table: pd.DataFrame
    names: list[str]
    skipped: dict[str, str]

    def specs(self, cfg: Config) -> list[FeatureSpec]:
        by_name = {s.name: s for s in feature_dictionary(cfg.contract, cfg.features.history_passthrough)}
        return [by_name[n] for n in self.names]

    def rows(self, keep: np.ndarray) -> pd.DataFrame:
        return self.table.loc[keep, self.names].reset_index(drop=True)


@dataclass
class TrainResult:
    scorer: Scorer
    splits: dict[str, np.ndarray]
    split_method: str
    metrics: dict[str, float]
    test_scores: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    search: dict = field(default_factory=dict)


def used_inputs(specs: list[FeatureSpec], columns: set[str]) -> list[str]:
    """Contract columns the trained features read: the first input alternative that is present."""
    needed: set[str] = set()
    for spec in specs:
        alt = next(a for a in spec.inputs if all(c in columns for c in a))
        needed.update(alt)
    return sorted(needed)


def _fit_limit(X, frame, parts, specs, names, cfg, notes) -> LimitModel | None:
    if not cfg.limit_model.enabled:
        notes.append("limit model disabled in config: the policy uses the grade limit table")
        return None
    if LIMIT not in frame or frame[LIMIT].isna().all():
        notes.append(
            "no granted_limit in the data: limit model skipped; "
            "the policy uses the affordability cap and the grade limit table"
        )
        return None
    lspecs = limit_specs(specs)
    cols = [names.index(s.name) for s in lspecs]
    y, lim = frame[TARGET].to_numpy(), frame[LIMIT].to_numpy(dtype=float)
    good = (y == 0) & (lim > 0) & ~np.isnan(lim)
    tr, va = parts["train"][good[parts["train"]]], parts["validation"][good[parts["validation"]]]
    return train_limit(X[np.ix_(tr, cols)], lim[tr], X[np.ix_(va, cols)], lim[va], lspecs, cfg.limit_model, cfg.seed)


def fit(frame: pd.DataFrame, cfg: Config, features: FeatureTable | None = None) -> TrainResult:
    """Train on a validated contract frame (rows with a known outcome).

    `features` is the features stage's output for the same rows; without it the features are
    computed here with the same functions (notebooks, tests, `quality`).
    """
    labelled = frame[TARGET].notna().to_numpy()
    frame = frame[labelled].reset_index(drop=True)
    cats = categories(cfg.contract)
    if features is None:
        specs, skipped = choose_features(frame, cfg)
        table = compute_features(frame, specs, cfg.features, cats)
    else:
        specs, skipped, table = features.specs(cfg), features.skipped, features.rows(labelled)
    notes = [f"feature skipped: {name}: {why}" for name, why in skipped.items()]
    names = [s.name for s in specs]
    parts, how = make_splits(frame, TARGET, cfg.split)
    X = to_matrix(table, names)
    y = frame[TARGET].to_numpy(dtype=int)
    tr, va, ca, te = (parts[p] for p in ("train", "validation", "calibration", "test"))
    pd_model, search = train_pd(X[tr], y[tr], X[va], y[va], X[ca], y[ca], specs, cfg.pd_model, cfg.seed)
    limit_model = _fit_limit(X, frame, parts, specs, names, cfg, notes)
    scorer, test_scores, metrics = assemble(
        cfg, specs, (pd_model, limit_model), (frame.iloc[tr], X[tr]), (frame.iloc[te], X[te]), list(frame.columns)
    )
    relaxed = pd_model.report.get("monotone", {}).get("relaxed", [])
    if relaxed:
        notes.append(f"monotone constraint relaxed on evidence (cost above tolerance): {', '.join(relaxed)}")
    metrics.update(
        {
            "n_train": len(tr),
            "n_validation": len(va),
            "n_calibration": len(ca),
            "n_test": len(te),
            "n_features": len(names),
            "pd_trees": pd_model.best_iteration,
        }
    )
    if cfg.split.cv_folds:
        metrics.update(cross_validate(X, y, specs, cfg))
    return TrainResult(scorer, parts, how, metrics, test_scores, notes, search)


def assemble(
    cfg: Config,
    specs: list[FeatureSpec],
    models: tuple[PDModel, LimitModel | None],
    train: tuple[pd.DataFrame, np.ndarray],
    test: tuple[pd.DataFrame, np.ndarray],
    columns: list[str],
) -> tuple[Scorer, pd.DataFrame, dict[str, float]]:
    """The scorer around trained models, and its test metrics; shared by `fit` and the Dask engine.

    `train` and `test` are (contract rows, feature matrix); the training rows give the reference
    distributions for drift (the Dask engine passes a sample of them), `columns` the contract
    columns the data had.
    """
    (pd_model, limit_model), names = models, [s.name for s in specs]
    (train_rows, X_train), (test_rows, X_test) = train, test
    reference = {name: reference_distribution(X_train[:, i], cfg.evaluation.psi_bins) for i, name in enumerate(names)}
    scorer = Scorer(
        contract=cfg.contract,
        features_cfg=cfg.features,
        feature_names=names,
        categories=categories(cfg.contract),
        pd_model=pd_model,
        limit_model=limit_model,
        scorecard=cfg.scorecard,
        policy=cfg.policy,
        products=cfg.products,
        reason_k=cfg.scoring.reason_codes,
        reference=reference,
        meta={
            "model_name": cfg.registry.model_name,
            "required_columns": used_inputs(specs, set(columns)),
            "input_columns": [c for c in columns if c not in ("row_number", TARGET, LIMIT)],
            "limit_model": limit_model is not None,
        },
    )
    train_scores = scorer.score_valid(train_rows, X_train)
    scorer.reference["__score__"] = reference_distribution(train_scores["score"].to_numpy(), cfg.evaluation.psi_bins)
    test_scores = scorer.score_valid(test_rows, X_test)
    y = test_rows[TARGET].to_numpy(dtype=int)
    pd_ = test_scores["pd"].to_numpy()
    metrics = {f"test_{k}": v for k, v in discrimination(y, pd_, cfg.evaluation.calibration_bins).items()}
    metrics["test_raw_roc_auc"] = discrimination(y, pd_model.raw(X_test))["roc_auc"]
    metrics.update(calibration_metrics(pd_, pd_model))
    decisions, limits = test_scores["decision"].to_numpy(), test_scores["credit_limit"].to_numpy()
    metrics.update(policy_simulation(y, pd_, decisions, limits, cfg.evaluation.lgd, cfg.evaluation.ccf))
    if limit_model is not None:
        granted = test_rows[LIMIT].to_numpy(dtype=float)
        good = (y == 0) & (granted > 0)
        cols = np.array([names.index(n) for n in limit_model.names], dtype=np.int64)
        pred = limit_model.predict(X_test[np.ix_(np.flatnonzero(good), cols)])
        metrics.update(limit_errors(granted[good], pred, limit_model.alpha))
    return scorer, test_scores, metrics


def calibration_metrics(pd_: np.ndarray, model: PDModel) -> dict[str, float]:
    """How fine the PD scale is: distinct values and the shares held at the floor and cap."""
    floor = float(getattr(model.calibrator, "floor", 0.0))
    cap = float(getattr(model.calibrator, "cap", 1.0 - floor))
    return {
        "test_pd_distinct": float(len(np.unique(pd_))),
        "test_pd_share_at_floor": float(np.mean(pd_ <= floor)) if len(pd_) else 0.0,
        "test_pd_share_at_cap": float(np.mean(pd_ >= cap)) if len(pd_) else 0.0,
        "pd_floor": floor,
        "pd_cap": cap,
        "monotone_relaxed": float(len(model.report.get("monotone", {}).get("relaxed", []))),
    }


def cv_pd_models(X: np.ndarray, y: np.ndarray, specs: list[FeatureSpec], cfg: Config):
    """Per fold: (training rows, held-out rows, PD model fitted with the full recipe on the training rows).

    Early stopping and calibration use an inner split of each training fold, so the
    held-out fold is never seen before it is scored.
    """
    shares = [cfg.split.train, cfg.split.validation, cfg.split.calibration]
    for k, (train_idx, test_idx) in enumerate(cv_folds(y, cfg.split.cv_folds, cfg.split.seed)):
        tr, va, ca = stratified_split(train_idx, y[train_idx], [s / sum(shares) for s in shares], cfg.split.seed + k)
        model, _ = train_pd(X[tr], y[tr], X[va], y[va], X[ca], y[ca], specs, cfg.pd_model, cfg.seed)
        yield train_idx, test_idx, model


def cross_validate(X: np.ndarray, y: np.ndarray, specs: list[FeatureSpec], cfg: Config) -> dict[str, float]:
    """k-fold AUC of the full PD recipe."""
    aucs = [roc_auc_score(y[te], model.predict(X[te])) for _, te, model in cv_pd_models(X, y, specs, cfg)]
    return {"cv_roc_auc_mean": float(np.mean(aucs)), "cv_roc_auc_std": float(np.std(aucs)), "cv_folds": len(aucs)}
