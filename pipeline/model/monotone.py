"""Monotone constraints from evidence: the feature dictionary's risk direction is the prior, the training data
may overturn it.

A wrong constraint is expensive (one cost 1.5 AUC points on a real data set), a right one is cheap insurance
(explainable reason codes, no odd PD reversals). So each constraint is kept unless the training data show,
out of fold, that lifting it buys more AUC than `tolerance`. Only training rows are used: the validation,
calibration and test splits stay untouched for the model that is finally trained.

Procedure (bounded number of fits, each with early stopping):
1. k-fold on the training rows; in each fold the fitter gets an inner early-stopping split and is scored (AUC)
   on the held-out fold. Fit all-constrained (the prior) and unconstrained.
2. If unconstrained beats all-constrained by no more than `tolerance`, keep every constraint (2k fits).
3. Otherwise rank the constrained features by how strongly the unconstrained models break their direction
   (wrong-way partial-dependence movement on held-out rows, no extra fits), and for the worst first, refit
   all-constrained-but-this-one (drop-one relaxation) while the fit budget lasts. A constraint is relaxed
   when its relaxation gains more than `tolerance` AUC and more than `noise_z` standard errors of the
   per-fold gains. Features the budget does not reach keep their prior.
Explicit overrides (`{"monthly_income": 0}`) are never tested and win over evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from pipeline.config import MonotoneEvidenceConfig

Predict = Callable[[np.ndarray], np.ndarray]
# (X_fit, y_fit, X_early_stop, y_early_stop, monotone constraints per column) -> predict function
Fitter = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[int]], Predict]


ConstraintSettings = MonotoneEvidenceConfig  # the config model: defaults live in pipeline/config.py


def prior_directions(specs_or_directions: Sequence, names: Sequence[str] | None = None) -> tuple[list[str], list[int]]:
    """Names and prior directions from FeatureSpecs (categoricals unconstrained) or from plain integers."""
    if all(isinstance(d, int | np.integer) for d in specs_or_directions):
        dirs = [int(d) for d in specs_or_directions]
        return list(names) if names is not None else [f"f{i}" for i in range(len(dirs))], dirs
    specs = list(specs_or_directions)
    return [s.name for s in specs], [0 if getattr(s, "categorical", False) else int(s.direction) for s in specs]


def _fold_plan(y: np.ndarray, settings: ConstraintSettings) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(fit rows, early-stopping rows, held-out rows) per fold."""
    plan = []
    kfold = StratifiedKFold(settings.folds, shuffle=True, random_state=settings.seed)
    for k, (train, held) in enumerate(kfold.split(np.zeros(len(y)), y)):
        fit, early = train_test_split(
            train, test_size=settings.early_stop_share, stratify=y[train], random_state=settings.seed + k
        )
        plan.append((np.sort(fit), np.sort(early), held))
    return plan


def _cv(X, y, plan, fitter: Fitter, constraints: list[int]) -> tuple[np.ndarray, list[Predict]]:
    aucs, models = [], []
    for fit, early, held in plan:
        predict = fitter(X[fit], y[fit], X[early], y[early], list(constraints))
        aucs.append(roc_auc_score(y[held], predict(X[held])))
        models.append(predict)
    return np.array(aucs), models


def wrong_way_movement(predict: Predict, X: np.ndarray, col: int, direction: int, grid: int) -> float:
    """Mean over rows of the prediction's movement against `direction` as feature `col` sweeps its quantiles
    (individual conditional expectation curves): 0 for a model monotone in that direction."""
    values = np.unique(np.nanquantile(X[:, col], np.linspace(0, 1, grid)))
    if len(values) < 2:
        return 0.0
    curves = []
    for v in values:
        Xv = X.copy()
        Xv[:, col] = v
        curves.append(predict(Xv))
    steps = np.diff(np.array(curves), axis=0) * direction
    return float(np.mean(np.sum(np.clip(-steps, 0, None), axis=0)))


def _screen(X, y, plan, models, candidates: list[int], prior: list[int], settings) -> dict[int, float]:
    rng = np.random.default_rng(settings.seed)
    score = dict.fromkeys(candidates, 0.0)
    for (_, _, held), predict in zip(plan, models, strict=True):
        rows = rng.choice(held, size=min(settings.pd_rows, len(held)), replace=False)
        for j in candidates:
            score[j] += wrong_way_movement(predict, X[rows], j, prior[j], settings.pd_grid) / len(plan)
    return score


def _gain(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean paired gain of a over b and its standard error."""
    d = a - b
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0


def choose_constraints(
    X: np.ndarray,
    y: np.ndarray,
    specs_or_directions: Sequence,
    fitter: Fitter,
    names: Sequence[str] | None = None,
    overrides: Mapping[str, int] | None = None,
    settings: ConstraintSettings = ConstraintSettings(),
) -> tuple[list[int], dict]:
    """Final monotone directions (one per column of X) and a report of the evidence.

    X, y: training rows only. `fitter` trains the pipeline's own booster (see `lightgbm_fitter`).
    """
    names, prior = prior_directions(specs_or_directions, names)
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(names)
    if unknown:
        raise ValueError(f"overrides name unknown features: {', '.join(sorted(unknown))}")
    base = [int(overrides.get(n, d)) for n, d in zip(names, prior, strict=True)]
    testable = [j for j, n in enumerate(names) if n not in overrides and prior[j] != 0]
    free = [int(overrides.get(n, 0)) for n in names]  # unconstrained, except what overrides fix
    plan = _fold_plan(np.asarray(y), settings)
    auc_c, _ = _cv(X, y, plan, fitter, base)
    auc_u, models_u = _cv(X, y, plan, fitter, free) if testable else (auc_c, [])
    fits = 2 * len(plan)
    total_gain, total_se = _gain(auc_u, auc_c)
    rows: dict[int, dict[str, object]] = {
        j: {"feature": names[j], "prior": prior[j], "final": base[j], "status": "kept", "auc_cost": None}
        for j in range(len(names))
    }
    for j in range(len(names)):
        if prior[j] == 0:
            rows[j]["status"] = "unconstrained (prior 0)"
    for n, d in overrides.items():
        rows[names.index(n)].update(status="override", final=int(d))
    final = list(base)
    if testable and total_gain > settings.tolerance:
        screen = _screen(X, y, plan, models_u, testable, prior, settings)
        for j in sorted(testable, key=lambda j: -screen[j]):
            rows[j]["wrong_way"] = screen[j]
            if fits + len(plan) > settings.max_fits:
                rows[j]["status"] = "kept (untested: fit budget)"
                continue
            relaxed = list(base)
            relaxed[j] = 0
            auc_j, _ = _cv(X, y, plan, fitter, relaxed)
            fits += len(plan)
            gain, se = _gain(auc_j, auc_c)
            relax = gain > settings.tolerance and gain > settings.noise_z * se
            rows[j].update(auc_cost=gain, auc_cost_se=se, status="relaxed" if relax else "kept")
            if relax:
                final[j] = 0
                rows[j]["final"] = 0
    elif testable:
        for j in testable:
            rows[j]["status"] = "kept (all constraints together cost within tolerance)"
    report = {
        "cv_auc_constrained": float(auc_c.mean()),
        "cv_auc_unconstrained": float(auc_u.mean()),
        "unconstrained_gain": total_gain,
        "unconstrained_gain_se": total_se,
        "fits": fits,
        "folds": len(plan),
        "features": [rows[j] for j in range(len(names))],
        "relaxed": [names[j] for j in range(len(names)) if rows[j]["status"] == "relaxed"],
    }
    return final, report


def lightgbm_fitter(
    params: Mapping | None = None,
    num_boost_round: int = 300,
    early_stopping_rounds: int = 30,
    categorical: Sequence[int] = (),
    seed: int = 0,
) -> Fitter:
    """A plain LightGBM fitter with early stopping, for tests, experiments and as the template of the pipeline's.

    Defaults (learning_rate 0.1, 15 leaves, 300 rounds, stop after 30) are deliberately cheap: the comparison
    is between constraint sets under one recipe, not a tuned model.
    """
    import lightgbm as lgb

    base = {
        "objective": "binary",
        "metric": "binary_logloss",
        "learning_rate": 0.1,
        "num_leaves": 15,
        "verbose": -1,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "monotone_constraints_method": "intermediate",
        **dict(params or {}),
    }

    def fit(X, y, Xe, ye, constraints):
        train = lgb.Dataset(X, y, categorical_feature=list(categorical), free_raw_data=False)
        valid = lgb.Dataset(Xe, ye, reference=train, categorical_feature=list(categorical))
        booster = lgb.train(
            {**base, "monotone_constraints": constraints},
            train,
            num_boost_round,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
        )
        return lambda Z: booster.predict(Z, num_iteration=booster.best_iteration)

    return fit
