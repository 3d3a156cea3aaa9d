"""PD calibration: ranking kept, no collapse into ties, floor and cap from the data, monotone, picklable."""

import pickle

import numpy as np
import pytest
from scipy.stats import beta as beta_dist
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from pipeline.model.calibration import (
    METHODS,
    BoundSettings,
    CalibrationSettings,
    choose_calibrator,
    derive_bounds,
    fit_method,
    rate_bound,
)


def scores(n: int, seed: int, skew: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A booster-like raw probability (over-confident, warped) and outcomes drawn from the true PD."""
    rng = np.random.default_rng(seed)
    s = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(-2.5 + 1.2 * s)))).astype(int)
    raw = (1 / (1 + np.exp(-(-1.0 + 1.8 * s + 0.3 * rng.normal(size=n))))) ** skew
    return raw, y


@pytest.fixture(scope="module")
def split():
    raw, y = scores(6000, seed=1, skew=1.4)
    return raw[:3000], y[:3000], raw[3000:], y[3000:]


@pytest.mark.parametrize("method", METHODS)
def test_each_calibrator_is_monotone_in_the_raw_score(split, method):
    raw, y, _, _ = split
    cal = fit_method(method, raw, y, CalibrationSettings())
    grid = np.r_[0.0, np.logspace(-12, -1, 200), np.linspace(0.1, 0.9, 400), 1 - np.logspace(-1, -12, 200), 1.0]
    p = cal(grid)
    assert np.all(np.diff(p) >= 0)
    assert np.all(np.isfinite(p))


@pytest.mark.parametrize("method", METHODS)
def test_each_calibrator_keeps_auc_and_distinct_values(split, method):
    raw, y, raw_test, y_test = split
    cal = fit_method(method, raw, y, CalibrationSettings())
    for r, t in ((raw, y), (raw_test, y_test)):
        p = cal(r)
        assert roc_auc_score(t, p) >= roc_auc_score(t, r) - 0.001
        assert len(np.unique(p)) >= 0.9 * len(np.unique(r))  # only the floor and cap tie anything


def test_isotonic_interp_does_not_collapse_like_the_step_table(split):
    raw, y, raw_test, _ = split
    steps = IsotonicRegression(out_of_bounds="clip").fit(raw, y).predict(raw_test)
    interp = fit_method("isotonic_interp", raw, y, CalibrationSettings())(raw_test)
    assert len(np.unique(steps)) < 100  # the old calibrator's ties
    assert len(np.unique(interp)) > 10 * len(np.unique(steps))


def test_isotonic_tail_follows_platt_slope_or_stays_flat(split):
    raw, y, _, _ = split
    low = np.array([1e-9, 1e-7, 1e-5])
    sloped = fit_method("isotonic_interp", raw, y, CalibrationSettings(bounds=BoundSettings(band_min_rows=0)))
    flat = fit_method("isotonic_interp", raw, y, CalibrationSettings(tail="flat"))
    assert np.all(np.diff(sloped.mapping(low)) > 0)
    assert np.all(np.diff(flat.mapping(low)) == 0)


def test_chooser_keeps_ranking_and_reports(split):
    raw, y, raw_test, y_test = split
    cal, report = choose_calibrator(raw, y)
    assert report["method"] in METHODS and cal.method == report["method"]
    eligible = {m: s for m, s in report["methods"].items() if s["eligible"]}
    assert report["method"] == min(eligible, key=lambda m: eligible[m]["log_loss"])
    assert all(s["auc_drop"] <= 0.001 for s in eligible.values())
    assert report["selection"]["folds"] == 5
    assert abs(report["auc_calibrated"] - report["auc_raw"]) <= 0.001
    p = cal(raw_test)
    assert roc_auc_score(y_test, p) >= roc_auc_score(y_test, raw_test) - 0.001
    assert report["n_distinct_pd"] > 0.9 * len(raw)
    assert abs(p.mean() - y_test.mean()) < 0.02  # the level is right, not only the ranking
    for key in ("floor", "cap", "share_at_floor", "share_at_cap"):
        assert key in report


def test_no_eligible_method_falls_back_to_smallest_auc_drop(split):
    raw, y, _, _ = split
    impossible = CalibrationSettings.model_construct(auc_tolerance=-1.0)  # below any real AUC change: none eligible
    _, report = choose_calibrator(raw, y, settings=impossible)
    assert not any(s["eligible"] for s in report["methods"].values())
    assert report["method"] == min(report["methods"], key=lambda m: report["methods"][m]["auc_drop"])
    assert "no method" in report["why"]


def test_floor_and_cap_are_confidence_bounds_of_the_end_bands():
    raw, y = scores(4000, seed=2)
    settings = BoundSettings(band_share=0.1, band_min_rows=0, confidence=0.9, data_cap=True)
    floor, cap, how = derive_bounds(raw, y, settings)
    order = np.argsort(raw)
    low, high = y[order[:400]].sum(), y[order[-400:]].sum()
    assert how["floor"]["band_rows"] == 400 and how["floor"]["band_events"] == low
    assert floor == pytest.approx(beta_dist.ppf(0.1, low, 400 - low + 1))
    assert cap == pytest.approx(beta_dist.ppf(0.9, high + 1, 400 - high))
    assert floor < low / 400 < high / 400 < cap
    # more bads in the lowest band -> a higher floor: it comes from the data, not a constant
    y2 = y.copy()
    y2[order[:40]] = 1
    assert derive_bounds(raw, y2, settings)[0] > floor


def test_by_default_the_cap_is_max_cap_and_the_top_band_is_only_reported():
    """A data cap lowers the riskiest PDs to a band average: off unless asked for; the floor stays from the data."""
    raw, y = scores(4000, seed=2)
    settings = BoundSettings(band_share=0.1, band_min_rows=0, confidence=0.9)
    floor, cap, how = derive_bounds(raw, y, settings)
    assert cap == settings.max_cap == 1.0
    high = y[np.argsort(raw)[-400:]].sum()
    assert how["cap"]["data_bound"] == pytest.approx(beta_dist.ppf(0.9, high + 1, 400 - high))
    assert how["cap"]["data_bound"] < cap
    assert floor == derive_bounds(raw, y, settings.model_copy(update={"data_cap": True}))[0]
    assert derive_bounds(raw, y, settings.model_copy(update={"max_cap": 0.9}))[1] == 0.9


def test_pd_stays_within_floor_and_cap_and_below_floor_is_floor():
    raw, y = scores(4000, seed=3)
    bounds = BoundSettings(band_min_rows=400, data_cap=True)
    cal, report = choose_calibrator(raw, y, settings=CalibrationSettings(bounds=bounds))
    assert 0 < cal.floor < report["floor"]["band_observed_rate"]
    extreme = np.array([0.0, 1e-15, 1e-9, 0.5, 1 - 1e-9, 1.0])
    p = cal(extreme)
    assert p[0] == cal.floor and p[-1] == cal.cap
    assert np.all((p >= cal.floor) & (p <= cal.cap))
    unclipped = cal.mapping(raw)
    assert np.array_equal(cal(raw) == cal.floor, unclipped <= cal.floor)
    assert report["share_at_floor"] == pytest.approx(np.mean(unclipped <= cal.floor))


def test_regulatory_minimum_only_raises_the_floor():
    raw, y = scores(2000, seed=4)
    data_floor, _, _ = derive_bounds(raw, y, BoundSettings())
    floor, _, how = derive_bounds(raw, y, BoundSettings(min_floor=max(0.5 * data_floor, 1e-4)))
    assert floor == max(data_floor, 1e-4)
    assert how["floor"]["data_bound"] == pytest.approx(data_floor)


def test_rate_bounds_known_values():
    assert rate_bound(0, 100, 0.95, "clopper_pearson", upper=False) == 0.0
    assert rate_bound(0, 100, 0.95, "clopper_pearson", upper=True) == pytest.approx(1 - 0.05 ** (1 / 100))
    assert rate_bound(100, 100, 0.95, "clopper_pearson", upper=True) == 1.0
    for interval in ("clopper_pearson", "wilson"):
        lo = rate_bound(10, 1000, 0.95, interval, upper=False)
        hi = rate_bound(10, 1000, 0.95, interval, upper=True)
        assert 0 < lo < 0.01 < hi < 0.03


def test_small_split_still_calibrates():
    raw, y = scores(150, seed=5)
    cal, report = choose_calibrator(raw, y)
    p = cal(raw)
    assert np.all(np.isfinite(p)) and np.all(np.diff(p[np.argsort(raw)]) >= 0)
    assert report["selection"]["folds"] >= 2


def test_calibrators_are_picklable(split):
    raw, y, raw_test, _ = split
    cal, _ = choose_calibrator(raw, y)
    models = [cal] + [fit_method(m, raw, y, CalibrationSettings()) for m in METHODS]
    for model in models:
        again = pickle.loads(pickle.dumps(model))
        assert np.array_equal(again(raw_test), model(raw_test))
        assert again.method == model.method


def test_identity_is_a_candidate_and_wins_when_the_raw_score_is_already_a_pd():
    """A booster that is calibrated already: every fitted map only adds the calibration split's noise, so the
    cross-validated log loss must not favour one by much; identity keeps the raw PD within the floor."""
    rng = np.random.default_rng(7)
    raw = 1 / (1 + np.exp(-rng.normal(-1.5, 1.2, 20_000)))
    y = (rng.random(len(raw)) < raw).astype(int)
    cal, report = choose_calibrator(raw, y)
    assert "identity" in report["methods"] and report["methods"]["identity"]["eligible"]
    best = min(s["log_loss"] for s in report["methods"].values())
    assert report["methods"]["identity"]["log_loss"] <= best + 1e-3
    ident = fit_method("identity", raw, y, CalibrationSettings())
    np.testing.assert_array_equal(ident(raw), np.clip(raw, ident.floor, ident.cap))
    assert ident.cap == 1.0 and 0 < ident.floor < raw.mean()
    # a raw score that is not a PD (over-confident, warped): a fitted map beats identity clearly
    warped, y2 = scores(20_000, seed=8, skew=1.6)
    _, report2 = choose_calibrator(warped, y2)
    assert report2["method"] != "identity"
    assert report2["methods"]["identity"]["log_loss"] > min(s["log_loss"] for s in report2["methods"].values()) + 1e-3
