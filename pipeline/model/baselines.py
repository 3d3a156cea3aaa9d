"""Side-by-side quality: the pipeline's PD model against simple baselines on the same splits.

Baselines: logistic regression on standardised features (median-imputed, categories
one-hot), and LightGBM with default parameters (no constraints, no calibration). The
limit model is compared with the median granted limit per risk grade. Numbers feed
docs/model-quality.md (`python -m pipeline quality --config X`).
"""

from __future__ import annotations

from typing import cast

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipeline.config import Config
from pipeline.evaluation.metrics import discrimination, limit_errors
from pipeline.features import FeatureSpec, categories, compute_features
from pipeline.model.boosters import threads, to_matrix
from pipeline.model.train import LIMIT, TARGET, choose_features, cv_pd_models, fit


def logistic_baseline(X: np.ndarray, y: np.ndarray, X_test: np.ndarray, specs: list[FeatureSpec]) -> np.ndarray:
    num = [i for i, s in enumerate(specs) if not s.categorical]
    cat = [i for i, s in enumerate(specs) if s.categorical]
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()), num),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=-1), OneHotEncoder(handle_unknown="ignore")
                ),
                cat,
            ),
        ]
    )
    model = make_pipeline(prep, LogisticRegression(max_iter=5000, C=1.0))
    return model.fit(X, y).predict_proba(X_test)[:, 1]


def lightgbm_default(
    X: np.ndarray, y: np.ndarray, X_test: np.ndarray, specs: list[FeatureSpec], seed: int
) -> np.ndarray:
    cats = [i for i, s in enumerate(specs) if s.categorical]
    data = lgb.Dataset(X, y, feature_name=[s.name for s in specs], categorical_feature=cats)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "seed": seed, "num_threads": threads(), "deterministic": True}, data
    )
    return cast(np.ndarray, booster.predict(X_test))  # dense X: lightgbm returns an array


def _matrix(valid: pd.DataFrame, cfg: Config) -> tuple[np.ndarray, np.ndarray, list[FeatureSpec]]:
    specs, _ = choose_features(valid, cfg)
    X = to_matrix(compute_features(valid, specs, cfg.features, categories(cfg.contract)), [s.name for s in specs])
    return X, valid[TARGET].to_numpy(dtype=int), specs


def holdout_comparison(valid: pd.DataFrame, cfg: Config) -> dict:
    """Test-split metrics of the pipeline model and both baselines, on the pipeline's own split."""
    valid = valid[valid[TARGET].notna()].reset_index(drop=True)
    result = fit(valid, cfg)
    X, y, specs = _matrix(valid, cfg)
    test = result.splits["test"]
    fit_idx = np.concatenate([result.splits[p] for p in ("train", "validation", "calibration")])
    rows = {
        "pipeline PD model": discrimination(y[test], result.test_scores["pd"].to_numpy()),
        "logistic regression (standardised)": discrimination(
            y[test], logistic_baseline(X[fit_idx], y[fit_idx], X[test], specs)
        ),
        "LightGBM, default parameters": discrimination(
            y[test], lightgbm_default(X[fit_idx], y[fit_idx], X[test], specs, cfg.seed)
        ),
    }
    out = {
        "split": result.split_method,
        "n_test": int(len(test)),
        "test_default_rate": float(y[test].mean()),
        "pd": rows,
        "metrics": result.metrics,
        "notes": result.notes,
    }
    if result.scorer.limit_model is not None:
        out["limit"] = _limit_comparison(valid, result)
    return out


def _limit_comparison(valid: pd.DataFrame, result) -> dict:
    """Limit model vs the median granted limit of good payers in the same grade (train split)."""
    scorer = result.scorer
    limit = valid[LIMIT].to_numpy(dtype=float)
    good = (valid[TARGET].to_numpy() == 0) & (limit > 0)
    tr = result.splits["train"][good[result.splits["train"]]]
    te = result.splits["test"][good[result.splits["test"]]]
    grades_tr = scorer.score_valid(valid.iloc[tr])["grade"].to_numpy()
    grades_te = scorer.score_valid(valid.iloc[te])["grade"].to_numpy()
    medians = pd.Series(limit[tr]).groupby(grades_tr).median()
    baseline = pd.Series(grades_te).map(medians).fillna(np.median(limit[tr])).to_numpy()
    X = scorer.matrix(valid.iloc[te])
    cols = [scorer.feature_names.index(n) for n in scorer.limit_model.names]
    model = scorer.limit_model.predict(X[:, cols])
    alpha = scorer.limit_model.alpha
    return {
        "limit model (quantile LightGBM)": limit_errors(limit[te], model, alpha),
        "median granted limit by grade": limit_errors(limit[te], baseline, alpha),
        "alpha": alpha,
        "n_test_good": int(len(te)),
    }


def cv_comparison(valid: pd.DataFrame, cfg: Config) -> dict:
    """k-fold AUC (cfg.split.cv_folds) of the pipeline recipe and both baselines on the same folds."""
    valid = valid[valid[TARGET].notna()].reset_index(drop=True)
    X, y, specs = _matrix(valid, cfg)
    scores: dict[str, list[float]] = {
        "pipeline PD model": [],
        "logistic regression (standardised)": [],
        "LightGBM, default parameters": [],
    }
    for train_idx, test_idx, model in cv_pd_models(X, y, specs, cfg):
        for name, p in (
            ("pipeline PD model", model.predict(X[test_idx])),
            ("logistic regression (standardised)", logistic_baseline(X[train_idx], y[train_idx], X[test_idx], specs)),
            (
                "LightGBM, default parameters",
                lightgbm_default(X[train_idx], y[train_idx], X[test_idx], specs, cfg.seed),
            ),
        ):
            scores[name].append(discrimination(y[test_idx], p)["roc_auc"])
    return {
        name: {"cv_roc_auc_mean": float(np.mean(v)), "cv_roc_auc_std": float(np.std(v))} for name, v in scores.items()
    }


def markdown(name: str, holdout: dict, cv: dict | None) -> str:
    lines = [
        f"### {name}",
        "",
        f"Test split: {holdout['split']}, {holdout['n_test']} applicants, "
        f"default rate {holdout['test_default_rate']:.3f}.",
        "",
        "| model | ROC AUC | Gini | KS | Brier | log loss | ECE |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, m in holdout["pd"].items():
        lines.append(
            f"| {model} | {m['roc_auc']:.4f} | {m['gini']:.4f} | {m['ks']:.4f} | {m['brier']:.4f} | "
            f"{m['log_loss']:.4f} | {m['ece']:.4f} |"
        )
    if cv:
        lines += ["", "| model | cross-validated ROC AUC (mean ± sd) |", "|---|---|"]
        lines += [f"| {model} | {m['cv_roc_auc_mean']:.4f} ± {m['cv_roc_auc_std']:.4f} |" for model, m in cv.items()]
    if "limit" in holdout:
        lim = holdout["limit"]
        lines += [
            "",
            f"Limit model on {lim['n_test_good']} good payers of the test split (quantile alpha {lim['alpha']}):",
            "",
            "| limit estimate | MAE | pinball loss (log limit) |",
            "|---|---|---|",
        ]
        lines += [
            f"| {k} | {v['limit_mae']:,.0f} | {v['limit_pinball']:.4f} |" for k, v in lim.items() if isinstance(v, dict)
        ]
    m = holdout["metrics"]
    lines += [
        "",
        f"Policy on the test split: approval rate {m['approval_rate']:.3f}, bad rate of approved "
        f"{m['approved_bad_rate']:.3f}.",
        "",
    ]
    return "\n".join(lines)
