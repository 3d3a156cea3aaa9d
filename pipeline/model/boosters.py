"""The two LightGBM models: probability of default (calibrated, monotone) and credit limit.

Both take the same numeric matrix: features in dictionary order, categorical features
as integer codes of the contract's fixed categories (NaN when missing), so the trained
boosters do not depend on pandas category state and score identically anywhere.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from pipeline.config import LimitModelConfig, PDModelConfig
from pipeline.cores import available_cores
from pipeline.features import FeatureSpec
from pipeline.model.calibration import CalibratedPD, choose_calibrator
from pipeline.model.monotone import choose_constraints, lightgbm_fitter

log = logging.getLogger(__name__)
EPS = 1e-6


def threads() -> int:
    """LightGBM threads: the cores this process may use (its affinity), not the machine's."""
    return available_cores()


def to_matrix(features: pd.DataFrame | Mapping[str, Any], names: list[str]) -> np.ndarray:
    """Feature frame (or its columns by name) -> float64 matrix in `names` order; categoricals become their codes."""
    cols = []
    for name in names:
        col = features[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = np.asarray(col.codes if isinstance(col, pd.Categorical) else col.cat.codes).astype(float)
            codes[codes < 0] = np.nan
            cols.append(codes)
        else:
            cols.append(col.to_numpy(dtype=float) if isinstance(col, pd.Series) else np.asarray(col, dtype=float))
    if not cols:
        rows = len(features) if isinstance(features, pd.DataFrame) else len(next(iter(features.values()), ()))
        return np.empty((rows, 0))
    # Stacked as rows, then transposed in one copy: 2-3x faster than np.column_stack's strided column writes.
    return np.ascontiguousarray(np.array(cols).T)


def _base_params(params: dict, seed: int) -> dict:
    return {
        "verbose": -1,
        "num_threads": threads(),
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        **params,
    }


@dataclass
class Calibrator:
    """Maps raw booster probabilities to calibrated PD; a plain table or two numbers, cheap to apply."""

    method: str
    x: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0]))
    y: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0]))
    a: float = 1.0
    b: float = 0.0
    floor: float = 0.0  # no calibrated PD claims certainty: kept within [floor, 1 - floor]

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            out = np.interp(raw, self.x, self.y)
        elif self.method == "sigmoid":
            logit = np.log(np.clip(raw, EPS, 1 - EPS) / (1 - np.clip(raw, EPS, 1 - EPS)))
            out = 1 / (1 + np.exp(-(self.a * logit + self.b)))
        else:
            out = raw
        return np.clip(out, self.floor, 1.0 - self.floor)


def fit_calibrator(raw: np.ndarray, y: np.ndarray, method: str, floor: float = 0.0) -> Calibrator:
    """Isotonic: a step table on the calibration split; sigmoid: Platt scaling of the log-odds."""
    if method == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
        return Calibrator("isotonic", x=iso.X_thresholds_.astype(float), y=iso.y_thresholds_.astype(float), floor=floor)
    if method == "sigmoid":
        logit = np.log(np.clip(raw, EPS, 1 - EPS) / (1 - np.clip(raw, EPS, 1 - EPS)))
        lr = LogisticRegression(C=1e6).fit(logit.reshape(-1, 1), y)
        return Calibrator("sigmoid", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]), floor=floor)
    return Calibrator("none", floor=floor)


class _Forests:
    """The scoring engines of a booster, shared by PDModel and LimitModel.

    `forest` is the numba `Forest` (flat arrays; built on first use, then pickled with the model, so
    it is never rebuilt per batch). `compiled_blob` is the LLVM-compiled forest made once at
    registration (`compile`), pickled into the artifact as bytes; `engine()` links it lazily in each
    process and falls back to the numba forest where it cannot run (logged), so scoring never breaks.
    """

    booster: lgb.Booster
    _forest: object
    compiled_blob: bytes | None
    _engine: object

    @property
    def forest(self):
        """The booster flattened to arrays (`pipeline.decision.forest.Forest`), cached on the object."""
        if self._forest is None:
            from pipeline.decision.forest import Forest

            self._forest = Forest.from_booster(self.booster)
        return self._forest

    def compile(self, contrib: bool) -> dict:
        """Build the native blob (seconds; at registration). A failure ships without it: the numba path stays."""
        from pipeline.decision.compiled import compile_blob

        self._engine = None
        try:
            self.compiled_blob, infos, cpus = compile_blob(self.forest, contrib=contrib)
        except Exception as exc:  # noqa: BLE001 - a compile failure must not stop registration
            log.warning("%s: compiling the forest failed, it will score with numba: %s", type(self).__name__, exc)
            self.compiled_blob = None
            return {"compiled": False, "error": str(exc)[:300]}
        seconds = sum(info.seconds_ir + info.seconds_codegen for info in infos)
        return {
            "compiled": True,
            "contrib": contrib,
            "cpus": cpus,
            "bytes": len(self.compiled_blob),
            "seconds": round(seconds, 2),
        }

    def engine(self, compiled: bool = True):
        """What scores here: the compiled forest when a blob exists, `compiled` is on and it loads; else numba."""
        if not compiled or self.compiled_blob is None:
            return self.forest
        if self._engine is None:
            from pipeline.decision.compiled import CompiledForest, load_or_fallback

            engine = load_or_fallback(self.compiled_blob, self.forest)
            kind = "numba (compiled blob unusable here)"
            if isinstance(engine, CompiledForest):
                kind = f"compiled ({engine.header['cpu']})"
            log.info("%s scores with the %s forest", type(self).__name__, kind)
            self._engine = engine
        return self._engine

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_engine", None)  # a linked native engine; relinked from compiled_blob on first use
        return state


@dataclass
class PDModel(_Forests):
    booster: lgb.Booster
    names: list[str]
    calibrator: Calibrator | CalibratedPD
    best_iteration: int
    params: dict
    report: dict = field(default_factory=dict)  # how constraints and calibration were chosen, for the model card
    _forest: object = field(default=None, init=False, repr=False, compare=False)
    compiled_blob: bytes | None = field(default=None, repr=False, compare=False)
    _engine: object = field(default=None, init=False, repr=False, compare=False)

    def raw(self, X: np.ndarray, compiled: bool = True) -> np.ndarray:
        """Uncalibrated probability; equals `booster.predict(X)` to rounding (tests/test_treeeval.py)."""
        return self.engine(compiled).predict(X)

    def raw_and_contrib(self, X: np.ndarray, compiled: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Uncalibrated probability and log-odds path attribution (see pipeline.decision.reasons) in one pass."""
        engine = self.engine(compiled)
        margin, contrib = engine.margin_and_contrib(X)
        return engine.transform(margin), contrib

    def predict(self, X: np.ndarray, compiled: bool = True) -> np.ndarray:
        return self.calibrator(self.raw(X, compiled))


def monotone_constraints(specs: list[FeatureSpec], enabled: bool) -> list[int]:
    return [0 if (not enabled or s.categorical) else int(s.direction) for s in specs]


# (X, y, X_valid, y_valid, specs, params, rounds, early stopping rounds, objective params) -> booster whose
# best_iteration and best_score["valid_0"][first metric] say where early stopping on the validation rows stopped
Fitter = Callable[..., lgb.Booster]


def _fit_booster(X, y, Xv, yv, specs, params, rounds, early, objective_params) -> lgb.Booster:
    names = [s.name for s in specs]
    cats = [i for i, s in enumerate(specs) if s.categorical]
    train = lgb.Dataset(X, y, feature_name=names, categorical_feature=cats, free_raw_data=False)
    valid = lgb.Dataset(Xv, yv, reference=train, feature_name=names, categorical_feature=cats)
    return lgb.train(
        {**params, **objective_params},
        train,
        num_boost_round=rounds,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(early, first_metric_only=True, verbose=False)],
    )


def _search_space(rng: np.random.Generator) -> dict:
    return {
        "learning_rate": float(rng.choice([0.02, 0.03, 0.05, 0.08])),
        "num_leaves": int(rng.choice([7, 15, 31, 63])),
        "min_data_in_leaf": int(rng.choice([20, 50, 100, 200])),
        "feature_fraction": float(rng.choice([0.6, 0.8, 1.0])),
        "lambda_l2": float(rng.choice([0.0, 1.0, 5.0, 20.0])),
    }


def train_pd(
    X,
    y,
    Xv,
    yv,
    Xc,
    yc,
    specs: list[FeatureSpec],
    cfg: PDModelConfig,
    seed: int,
    fitter: Fitter | None = None,
    evidence: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[PDModel, dict]:
    """Fit the booster (early stopping on validation log loss), then calibrate on the calibration split.

    With `search.trials` > 0, a bounded random search picks the parameters with the best
    validation log loss within the trial and time budget; the config's parameters are trial 0.
    `fitter` replaces the in-process fit (the Dask engine passes one for lightgbm.dask, with X and
    y on the cluster) and `evidence` the training rows the monotone evidence check reads.
    """
    fitter = fitter or _fit_booster
    X_check, y_check = evidence or (X, y)
    constraints, monotone_report = choose_directions(X_check, y_check, specs, cfg, seed)
    objective = {
        "objective": "binary",
        "metric": ["binary_logloss", "auc"],
        "monotone_constraints": constraints,
        "monotone_constraints_method": "intermediate",  # "advanced" broke monotonicity in LightGBM 4.7 (tested)
    }
    candidates = [dict(cfg.params)]
    rng = np.random.default_rng(cfg.search.seed)
    candidates += [{**cfg.params, **_search_space(rng)} for _ in range(cfg.search.trials)]
    started, trials = time.monotonic(), []
    best: tuple[float, lgb.Booster, dict[str, Any]] | None = None
    for i, params in enumerate(candidates):
        if i > 0 and time.monotonic() - started > cfg.search.time_budget_s:
            log.info("search stopped by its time budget after %d trials", i)
            break
        booster = fitter(
            X, y, Xv, yv, specs, _base_params(params, seed), cfg.num_boost_round, cfg.early_stopping_rounds, objective
        )
        loss = booster.best_score["valid_0"]["binary_logloss"]
        trials.append({"trial": i, "valid_logloss": loss, **params})
        if best is None or loss < best[0]:
            best = (loss, booster, params)
    assert best is not None  # trial 0 always runs: the time budget stops only later trials
    _, booster, params = best
    booster = _refit_to_best(booster)
    refit_report: dict = {"refit": False, "trees_early_stopped": booster.current_iteration()}
    if cfg.refit_with_validation and fitter is _fit_booster:  # on a cluster the validation rows stay on the client
        booster, refit_report = refit_with_validation(
            X, y, Xv, yv, specs, _base_params(params, seed), booster.current_iteration(), objective
        )
    elif cfg.refit_with_validation:
        refit_report["skipped"] = "the cluster fitter trains on the cluster's training rows only"
    raw_cal = cast(np.ndarray, booster.predict(Xc, num_threads=threads()))  # dense X: lightgbm returns an array
    calibrator, calibration_report = calibrate(raw_cal, yc, cfg)
    report = {"monotone": monotone_report, "calibration": calibration_report, "refit": refit_report}
    model = PDModel(booster, [s.name for s in specs], calibrator, booster.current_iteration(), params, report)
    return model, {
        "trials": trials,
        "best_params": params,
        "monotone": monotone_report,
        "calibration": calibration_report,
    }


def refit_with_validation(X, y, Xv, yv, specs, params: dict, trees: int, objective: dict) -> tuple[lgb.Booster, dict]:
    """Refit on the training and validation rows together, with the early-stopped tree count scaled by the rows.

    Early stopping needs held-out rows, and those rows then teach the model nothing. Once the number of
    trees is known, the same parameters and constraints are refitted on both splits (a quarter more rows
    with the default shares) for `trees * rows / training rows` rounds. Measured with 5-fold CV
    (docs/model-quality.md): +0.010 AUC on HMEQ, +0.007 German, +0.001 Taiwan and the synthetic default.
    The calibration and test splits stay unseen.
    """
    rows = len(X) + len(Xv)
    rounds = max(1, int(round(trees * rows / max(len(X), 1))))
    cats = [i for i, s in enumerate(specs) if s.categorical]
    data = lgb.Dataset(
        np.concatenate([X, Xv]),
        np.concatenate([y, yv]),
        feature_name=[s.name for s in specs],
        categorical_feature=cats,
    )
    booster = lgb.train({**params, **objective}, data, num_boost_round=rounds)
    return booster, {"refit": True, "trees_early_stopped": trees, "trees": rounds, "rows": rows}


def choose_directions(X, y, specs: list[FeatureSpec], cfg: PDModelConfig, seed: int) -> tuple[list[int], dict]:
    """Monotone directions: none, the dictionary's as written, or the dictionary's checked on the training rows.

    Overrides in `monotone_overrides` win in every mode; the evidence check never sees
    the validation, calibration or test rows.
    """
    names = [s.name for s in specs]
    unknown = sorted(set(cfg.monotone_overrides) - set(names))
    if unknown:
        log.warning("pd_model.monotone_overrides: %s not among the trained features; ignored", ", ".join(unknown))
    overrides = {k: v for k, v in cfg.monotone_overrides.items() if k in names}
    prior = monotone_constraints(specs, cfg.monotone != "off")
    if cfg.monotone != "evidence":
        final = [int(overrides.get(n, d)) for n, d in zip(names, prior, strict=True)]
        return final, {"mode": cfg.monotone, "overrides": overrides}
    cats = [i for i, s in enumerate(specs) if s.categorical]
    fitter = lightgbm_fitter(_base_params(cfg.params, seed), cfg.num_boost_round, cfg.early_stopping_rounds, cats)
    final, report = choose_constraints(X, y, prior, fitter, names, overrides, cfg.monotone_evidence)
    return final, {"mode": "evidence", **report}


def calibrate(raw: np.ndarray, y: np.ndarray, cfg: PDModelConfig) -> tuple[Calibrator | CalibratedPD, dict]:
    """The calibration map with its data-derived floor and cap, and a report of how it was chosen."""
    settings = cfg.calibration_settings
    if cfg.calibration in ("isotonic", "sigmoid", "none"):  # the earlier fixed methods, kept selectable
        calibrator = fit_calibrator(raw, y, cfg.calibration, settings.bounds.min_floor)
        p = calibrator(raw)
        return calibrator, {"method": cfg.calibration, **pd_summary_counts(p, settings.bounds.min_floor)}
    methods = cfg.calibration_methods if cfg.calibration == "auto" else [cfg.calibration]
    return choose_calibrator(raw, y, methods, settings)


def pd_summary_counts(p: np.ndarray, floor: float) -> dict:
    return {"n_distinct_pd": int(len(np.unique(p))), "share_at_floor": float(np.mean(p <= floor)) if len(p) else 0.0}


def _refit_to_best(booster: lgb.Booster) -> lgb.Booster:
    """Keep only the trees up to the best iteration, so every later predict uses exactly those."""
    best = booster.best_iteration or booster.current_iteration()
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))


@dataclass
class LimitModel(_Forests):
    booster: lgb.Booster
    names: list[str]
    alpha: float
    _forest: object = field(default=None, init=False, repr=False, compare=False)
    compiled_blob: bytes | None = field(default=None, repr=False, compare=False)
    _engine: object = field(default=None, init=False, repr=False, compare=False)
    report: dict | None = None  # the size search (candidates, losses, the size kept and why); None before 0.x

    def predict(self, X: np.ndarray, compiled: bool = True) -> np.ndarray:
        """Estimated sustainable limit in currency (the model works on log limits)."""
        return np.exp(self.engine(compiled).margin(X))


def limit_specs(specs: list[FeatureSpec]) -> list[FeatureSpec]:
    """The limit model never sees features derived from the current limit."""
    return [s for s in specs if not s.uses_limit]


def train_limit(
    X, limit, Xv, limit_v, specs: list[FeatureSpec], cfg: LimitModelConfig, seed: int, fitter: Fitter | None = None
) -> LimitModel:
    """Quantile regression of log(granted_limit) on good payers (callers pass only those rows).

    The forest's size is chosen on the validation rows: one fit (with early stopping) per
    `num_leaves_candidates` (an empty list keeps `params["num_leaves"]`), then `choose_forest_size`
    keeps the cheapest (leaves, trees) the validation rows cannot tell apart from the lowest loss
    (`size_tolerance_se`; 0 keeps the lowest loss, ties to the smaller trees).
    """
    objective = {"objective": "quantile", "alpha": cfg.alpha, "metric": "quantile"}
    candidates: list[int | None] = [*sorted(set(cfg.num_leaves_candidates))] or [cfg.params.get("num_leaves")]
    fits: list[lgb.Booster] = []
    for leaves in candidates:
        params = dict(cfg.params) if leaves is None else {**cfg.params, "num_leaves": int(leaves)}
        booster = (fitter or _fit_booster)(
            X,
            np.log(limit),
            Xv,
            np.log(limit_v),
            specs,
            _base_params(params, seed),
            cfg.num_boost_round,
            cfg.early_stopping_rounds,
            objective,
        )
        fits.append(booster)
    leaves_of = [int(leaves or DEFAULT_NUM_LEAVES) for leaves in candidates]
    chosen, size = choose_forest_size(fits, leaves_of, Xv, np.log(limit_v), cfg.alpha, cfg.size_tolerance_se)
    trials = [
        {"num_leaves": leaves, "valid_quantile_loss": float(b.best_score["valid_0"]["quantile"]), "trees": _stopped(b)}
        for leaves, b in zip(candidates, fits, strict=True)
    ]
    log.info(
        "limit model: %s leaves x %d trees (lowest validation loss %.5f at %s x %d; kept %.5f, tolerance %g paired SE)",
        size["chosen_num_leaves"],
        size["chosen_trees"],
        size["best_loss"],
        size["best_num_leaves"],
        size["best_trees"],
        size["chosen_loss"],
        cfg.size_tolerance_se,
    )
    report = {**size, "chosen_num_leaves": candidates[chosen.candidate], "trials": trials}
    booster = _first_trees(fits[chosen.candidate], chosen.trees)
    return LimitModel(booster, [s.name for s in specs], cfg.alpha, report=report)


DEFAULT_NUM_LEAVES = 31  # LightGBM's, for a candidate given by params without num_leaves


def _stopped(booster: lgb.Booster) -> int:
    """Trees up to early stopping's best round (a cluster fitter sets best_iteration on a full-length booster)."""
    return booster.best_iteration or booster.current_iteration()


def _first_trees(booster: lgb.Booster, trees: int) -> lgb.Booster:
    """A booster holding exactly the first `trees` trees, so every later predict uses exactly those."""
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=trees))


def tree_depth(num_leaves: int) -> int:
    """Comparisons per tree and row of the compiled evaluator, ceil(log2(leaves)): the unit of scoring cost."""
    return max(1, math.ceil(math.log2(num_leaves)))


def pinball(y: np.ndarray, pred: np.ndarray, alpha: float) -> np.ndarray:
    """Per-row quantile (pinball) loss, LightGBM's `quantile` metric before the mean."""
    d = y - pred
    return np.where(d >= 0, alpha * d, (alpha - 1) * d)


def _losses_by_round(booster: lgb.Booster, X, y: np.ndarray, alpha: float, trees: int) -> Iterator[np.ndarray]:
    """Per-row validation loss after each of the first `trees` rounds, adding one tree at a time (memory: one row)."""
    margin = np.zeros(len(y))
    for k in range(trees):
        margin += np.asarray(booster.predict(X, raw_score=True, start_iteration=k, num_iteration=1))
        yield pinball(y, margin, alpha)


@dataclass(frozen=True)
class ForestSize:
    """One (leaves, trees) forest of the limit model's size search, measured on the validation rows."""

    candidate: int  # index of the fit it is cut from
    num_leaves: int
    trees: int
    loss: float  # mean per-row validation quantile loss
    difference: float = 0.0  # mean per-row loss minus the lowest-loss forest's, on the same rows
    difference_se: float = 0.0  # standard error of that paired mean difference

    @property
    def cost(self) -> int:
        return self.trees * tree_depth(self.num_leaves)


def choose_forest_size(
    fits: list[lgb.Booster], leaves: list[int], Xv, yv: np.ndarray, alpha: float, tolerance_se: float
) -> tuple[ForestSize, dict]:
    """The cheapest forest the validation rows cannot tell apart from the lowest-loss one, and a report.

    The lowest-loss forest is early stopping's best round of the fit with the lowest validation loss
    (first minimum: the smaller trees win a tie). Every fit's first 1 .. best-round trees are
    candidates (later rounds lose to the best round on both loss and cost). A candidate is kept if
    its mean per-row loss exceeds the best's by at most `tolerance_se` standard errors of the paired
    per-row difference (both forests score the same rows, so the paired error is what separates
    them; the error of the mean loss alone is several times larger). Among those, the cheapest by
    `ForestSize.cost` (trees x ceil(log2 leaves)), ties to the lower loss; 0 keeps the lowest loss.
    The rule and its default were measured against the 1-SE rule on test splits in
    docs/model-quality.md.
    """
    n = len(yv)
    best_fit = min(range(len(fits)), key=lambda i: float(fits[i].best_score["valid_0"]["quantile"]))
    best_trees = _stopped(fits[best_fit])
    best_rows = pinball(yv, np.asarray(fits[best_fit].predict(Xv, raw_score=True, num_iteration=best_trees)), alpha)
    best = chosen = ForestSize(best_fit, leaves[best_fit], best_trees, float(best_rows.mean()))
    if tolerance_se > 0 and n > 1:
        for i, booster in enumerate(fits):
            for trees, rows in enumerate(_losses_by_round(booster, Xv, yv, alpha, _stopped(booster)), start=1):
                if trees * tree_depth(leaves[i]) > chosen.cost:
                    break  # only dearer forests from here on
                diff = rows - best_rows
                mean, se = float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(n))
                size = ForestSize(i, leaves[i], trees, float(rows.mean()), mean, se)
                if mean <= tolerance_se * se and (size.cost, size.loss) < (chosen.cost, chosen.loss):
                    chosen = size
    loss_se = float(best_rows.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    report = {
        "chosen_num_leaves": chosen.num_leaves,
        "chosen_trees": chosen.trees,
        "chosen_loss": chosen.loss,
        "chosen_cost": chosen.cost,
        "best_num_leaves": best.num_leaves,
        "best_trees": best.trees,
        "best_loss": best.loss,
        "best_cost": best.cost,
        "size_tolerance_se": float(tolerance_se),
        "loss_se": loss_se,  # standard error of the best forest's mean per-row loss
        "difference_se": chosen.difference_se,  # of the paired mean difference, chosen - best
        "allowed_difference": float(tolerance_se) * chosen.difference_se,
        "validation_rows": n,
    }
    return chosen, report
