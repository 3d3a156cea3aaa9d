"""PD calibration that keeps the ranking and the tails.

The booster's raw probabilities rank applicants well but are not PDs. A plain isotonic step table
(the old calibrator) ties whole score ranges to one value, so PD no longer separates applicants that
the booster does separate, and its lowest step is often 0, which a fixed floor then turns into a PD
claimed without evidence. Here every calibrator is strictly increasing in the raw score where the data
allow (so ties do not collapse), and the floor and cap are confidence bounds on the observed bad rate
of the lowest and highest score bands, so the data, not a constant, say how low or high a PD may go.

All calibrators take raw probabilities (what `booster.predict` returns), work on their log-odds, are
vectorised, hold only numbers and arrays (picklable), and have a `method` name and are callable,
like `pipeline.model.boosters.Calibrator`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from scipy.special import expit, logit
from scipy.stats import beta as beta_dist
from scipy.stats import norm
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from pipeline.config import CalibrationConfig, PDBoundsConfig

TINY = 1e-12  # clip of raw probabilities before log-odds: finite, and far below any PD anyone claims
METHODS = ("isotonic_interp", "platt", "beta", "identity")


class Mapping(Protocol):
    @property
    def method(self) -> str: ...

    def __call__(self, raw: np.ndarray) -> np.ndarray: ...


def log_odds(raw: np.ndarray) -> np.ndarray:
    return logit(np.clip(np.asarray(raw, dtype=float), TINY, 1 - TINY))


def _logistic(features: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Unpenalised logistic regression (a huge C): calibration maps have 1-3 parameters, nothing to shrink."""
    lr = LogisticRegression(C=1e8, max_iter=1000).fit(features, y)
    return lr.coef_[0].astype(float), float(lr.intercept_[0])


# ---------------------------------------------------------------- the mappings


@dataclass(frozen=True)
class Identity:
    """PD = the booster's own probability (within the data's floor and cap).

    A candidate, not a fallback: a booster trained on log loss is often calibrated already, and then
    every fitted map only adds the noise of its 10% calibration split. Cross-validated log loss decides.
    """

    method: str = "identity"

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(raw, dtype=float), TINY, 1 - TINY)


def fit_identity(raw: np.ndarray, y: np.ndarray) -> Identity:
    return Identity()


@dataclass(frozen=True)
class Platt:
    """PD = sigmoid(a * log-odds(raw) + b), a >= 0: two numbers, strictly increasing, smooth tails."""

    a: float
    b: float
    method: str = "platt"

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return expit(self.a * log_odds(raw) + self.b)


def fit_platt(raw: np.ndarray, y: np.ndarray) -> Platt:
    coef, intercept = _logistic(log_odds(raw).reshape(-1, 1), y)
    if coef[0] <= 0:  # a raw score that does not rank: keep the level, claim no ranking
        return Platt(0.0, float(logit(np.clip(np.mean(y), TINY, 1 - TINY))))
    return Platt(float(coef[0]), intercept)


@dataclass(frozen=True)
class Beta:
    """Beta calibration (Kull, Silva Filho & Flach 2017): PD = sigmoid(a ln s - b ln(1 - s) + c), a, b >= 0.

    Unlike Platt it can bend the two tails differently (it contains the identity map, a = b = 1, c = 0).
    """

    a: float
    b: float
    c: float
    method: str = "beta"

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        s = np.clip(np.asarray(raw, dtype=float), TINY, 1 - TINY)
        return expit(self.a * np.log(s) - self.b * np.log1p(-s) + self.c)


def fit_beta(raw: np.ndarray, y: np.ndarray) -> Beta:
    """The paper's constraint handling: a negative coefficient is set to 0 and the other refitted alone."""
    s = np.clip(np.asarray(raw, dtype=float), TINY, 1 - TINY)
    cols = np.column_stack([np.log(s), -np.log1p(-s)])
    (a, b), c = _logistic(cols, y)
    if a < 0:
        (b,), c = _logistic(cols[:, 1:], y)
        a = 0.0
    elif b < 0:
        (a,), c = _logistic(cols[:, :1], y)
        b = 0.0
    if a < 0 or b < 0:  # the raw score does not rank at all
        return Beta(0.0, 0.0, float(logit(np.clip(np.mean(y), TINY, 1 - TINY))))
    return Beta(float(a), float(b), float(c))


@dataclass(frozen=True)
class IsotonicInterp:
    """Isotonic regression made strictly increasing: linear interpolation (in log-odds) between the centres
    of the isotonic blocks, extended beyond the first and last centre along the Platt slope (or flat).

    Knots: `x` block centres (mean raw log-odds of the block), `y` block bad rates as log-odds.
    """

    x: np.ndarray
    y: np.ndarray
    slope_low: float
    slope_high: float
    method: str = "isotonic_interp"

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        z = log_odds(raw)
        out = np.interp(z, self.x, self.y)
        low, high = z < self.x[0], z > self.x[-1]
        out[low] = self.y[0] + self.slope_low * (z[low] - self.x[0])
        out[high] = self.y[-1] + self.slope_high * (z[high] - self.x[-1])
        return expit(out)


def _blocks(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Isotonic blocks of the sorted scores: (count, events, sum of z) per block, blocks of equal fit merged."""
    order = np.argsort(z, kind="stable")
    zs, ys = z[order], y[order].astype(float)
    fitted = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(zs, ys).predict(zs)
    starts = np.r_[0, np.flatnonzero(np.diff(fitted) > 1e-12) + 1]
    count = np.diff(np.r_[starts, len(zs)]).astype(float)
    return count, np.add.reduceat(ys, starts), np.add.reduceat(zs, starts)


def _merge_tails(
    count: np.ndarray, events: np.ndarray, zsum: np.ndarray, min_events: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge end blocks into their neighbours until the bottom block has `min_events` bads and the top block
    `min_events` goods: a block with none has bad rate exactly 0 or 1, which no PD may claim."""
    counts, bads, sums = list(count), list(events), list(zsum)
    while len(counts) > 1 and bads[0] < min_events:
        for arr in (counts, bads, sums):
            arr[:2] = [arr[0] + arr[1]]
    while len(counts) > 1 and counts[-1] - bads[-1] < min_events:
        for arr in (counts, bads, sums):
            arr[-2:] = [arr[-2] + arr[-1]]
    return np.array(counts), np.array(bads), np.array(sums)


def fit_isotonic_interp(
    raw: np.ndarray, y: np.ndarray, tail: Literal["platt", "flat"] = "platt", min_tail_events: int = 1
) -> IsotonicInterp:
    z = log_odds(raw)
    count, events, zsum = _merge_tails(*_blocks(z, np.asarray(y)), min_tail_events)
    # a single block whose rate is still 0 or 1 (no events at all): shrink by half an event, stay finite
    rate = np.clip(events / count, 0.5 / count, 1 - 0.5 / count)
    slope = fit_platt(raw, y).a if tail == "platt" else 0.0
    return IsotonicInterp(zsum / count, logit(rate), slope, slope)


FITTERS: dict[str, Callable[[np.ndarray, np.ndarray], Mapping]] = {
    "platt": fit_platt,
    "beta": fit_beta,
    "isotonic_interp": fit_isotonic_interp,
    "identity": fit_identity,
}


# ---------------------------------------------------------------- floor and cap from the data


BoundSettings = PDBoundsConfig  # the config model: defaults live in pipeline/config.py


def rate_bound(events: int, n: int, confidence: float, interval: str, upper: bool) -> float:
    """One-sided confidence bound on a binomial rate."""
    if n == 0:
        return 1.0 if upper else 0.0
    alpha = 1.0 - confidence
    if interval == "clopper_pearson":
        if upper:
            return 1.0 if events == n else float(beta_dist.ppf(1 - alpha, events + 1, n - events))
        return 0.0 if events == 0 else float(beta_dist.ppf(alpha, events, n - events + 1))
    z, p = float(norm.ppf(confidence)), events / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return min(1.0, centre + half) if upper else max(0.0, centre - half)


def derive_bounds(raw: np.ndarray, y: np.ndarray, settings: BoundSettings) -> tuple[float, float, dict]:
    """Floor = lower bound of the lowest band's bad rate; cap = `max_cap`, or with `data_cap` the upper bound
    of the highest band's bad rate. Both bands are reported.

    The floor is prudent: no PD lower than the data can support. A data cap is the opposite, it lowers the
    riskiest PDs to a band average, and the top band of a small calibration split is wide (HMEQ: raw 0.44 to
    0.99997 in one band), so it is off by default."""
    n = len(raw)
    rows = max(math.ceil(settings.band_share * n), settings.band_min_rows)
    rows = int(min(rows, math.floor(settings.band_max_share * n)))
    order = np.argsort(raw, kind="stable")
    out: dict[str, Any] = {}
    for name, idx, upper in (("floor", order[:rows], False), ("cap", order[n - rows :], True)):
        k = int(np.sum(y[idx]))
        bound = rate_bound(k, rows, settings.confidence, settings.interval, upper)
        if upper:
            value = min(bound, settings.max_cap) if settings.data_cap else settings.max_cap
        else:
            value = max(bound, settings.min_floor)
        out[name] = {
            "value": float(value),
            "band_rows": rows,
            "band_events": k,
            "band_observed_rate": k / rows if rows else float("nan"),
            "band_raw_range": [float(raw[idx].min()), float(raw[idx].max())] if rows else [],
            "bound": f"{settings.interval} {'upper' if upper else 'lower'} {settings.confidence:g}",
            "data_bound": float(bound),
        }
    floor, cap = out["floor"]["value"], out["cap"]["value"]
    if floor >= cap:  # tiny or unranked split: the bounds cross; fall back to no bounds rather than a constant PD
        floor, cap = settings.min_floor, settings.max_cap
        out["note"] = "floor and cap crossed; only min_floor and max_cap applied"
    return floor, cap, out


# ---------------------------------------------------------------- the calibrator the PD model holds


@dataclass(frozen=True)
class CalibratedPD:
    """Raw probability -> PD in [floor, cap]. Drop-in for `boosters.Calibrator` (callable, `method`, `floor`)."""

    mapping: Mapping
    floor: float
    cap: float
    report: dict = field(default_factory=dict, compare=False)

    @property
    def method(self) -> str:
        return self.mapping.method

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return np.clip(self.mapping(np.asarray(raw, dtype=float)), self.floor, self.cap)


CalibrationSettings = CalibrationConfig


def fit_method(method: str, raw: np.ndarray, y: np.ndarray, settings: CalibrationSettings) -> CalibratedPD:
    """One method with its data-derived floor and cap, fitted on (raw, y)."""
    mapping: Mapping
    if method == "isotonic_interp":
        mapping = fit_isotonic_interp(raw, y, settings.tail, settings.min_tail_events)
    elif method in FITTERS:
        mapping = FITTERS[method](raw, y)
    else:
        raise ValueError(f"unknown calibration method {method!r}; known: {', '.join(METHODS)}")
    floor, cap, how = derive_bounds(raw, y, settings.bounds)
    return CalibratedPD(mapping, floor, cap, {"bounds": how})


def _safe_auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, TINY, 1 - TINY)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def compare_methods(
    raw: np.ndarray, y: np.ndarray, methods: Sequence[str], settings: CalibrationSettings
) -> tuple[dict[str, dict], dict]:
    """Out-of-fold log loss and mean per-fold AUC drop of each method on the calibration split."""
    k = int(min(settings.folds, y.sum(), len(y) - y.sum()))
    if k >= 2:
        splits = list(StratifiedKFold(k, shuffle=True, random_state=settings.seed).split(raw, y))
        scheme = f"{k}-fold stratified cross-validation on the calibration split"
    else:
        splits = [(np.arange(len(y)), np.arange(len(y)))]
        scheme = "in-sample (too few events for cross-validation)"
    out = {}
    for method in methods:
        oof, drops = np.empty(len(y)), []
        for fit_idx, held in splits:
            cal = fit_method(method, raw[fit_idx], y[fit_idx], settings)
            oof[held] = cal(raw[held])
            drops.append(_safe_auc(y[held], raw[held]) - _safe_auc(y[held], oof[held]))
        out[method] = {"log_loss": _log_loss(y, oof), "auc_drop": float(np.nanmean(drops))}
    return out, {"scheme": scheme, "folds": len(splits)}


def choose_calibrator(
    raw_cal: np.ndarray,
    y_cal: np.ndarray,
    methods: Sequence[str] = METHODS,
    settings: CalibrationSettings = CalibrationSettings(),
) -> tuple[CalibratedPD, dict]:
    """Pick the method with the lowest cross-validated log loss among those that keep the ranking, refit it on the
    whole calibration split, and report why.

    Eligible: mean per-fold AUC drop <= `auc_tolerance`. If none is eligible, the smallest AUC drop wins (the
    report says so): ranking is the booster's job, calibration must not undo it.
    """
    raw_cal, y_cal = np.asarray(raw_cal, dtype=float), np.asarray(y_cal, dtype=int)
    scores, how = compare_methods(raw_cal, y_cal, methods, settings)
    for s in scores.values():
        s["eligible"] = bool(s["auc_drop"] <= settings.auc_tolerance)
    eligible = [m for m in methods if scores[m]["eligible"]]
    if eligible:
        chosen = min(eligible, key=lambda m: scores[m]["log_loss"])
        why = "lowest cross-validated log loss among methods within the AUC tolerance"
    else:
        chosen = min(methods, key=lambda m: scores[m]["auc_drop"])
        why = "no method within the AUC tolerance: smallest AUC drop"
    cal = fit_method(chosen, raw_cal, y_cal, settings)
    report = {
        "method": chosen,
        "why": why,
        "selection": how,
        "methods": scores,
        "settings": settings.model_dump(),
        **pd_summary(cal, raw_cal, y_cal),
        "floor": cal.report["bounds"]["floor"],
        "cap": cal.report["bounds"]["cap"],
    }
    if "note" in cal.report["bounds"]:
        report["bounds_note"] = cal.report["bounds"]["note"]
    return CalibratedPD(cal.mapping, cal.floor, cal.cap, report), report


def pd_summary(cal: CalibratedPD, raw: np.ndarray, y: np.ndarray) -> dict:
    """What the calibrated PDs look like on (raw, y): distinct values, shares at the bounds, AUC kept."""
    p = cal(raw)
    at_floor, at_cap = p <= cal.floor, p >= cal.cap
    return {
        "n_distinct_pd": int(len(np.unique(p))),
        "n_distinct_raw": int(len(np.unique(raw))),
        "share_at_floor": float(np.mean(at_floor)),
        "share_at_cap": float(np.mean(at_cap)),
        "bad_rate_at_floor": float(np.mean(y[at_floor])) if at_floor.any() else None,
        "auc_raw": _safe_auc(y, raw),
        "auc_calibrated": _safe_auc(y, p),
        "log_loss_in_sample": _log_loss(y, p),
    }
