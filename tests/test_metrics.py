"""Known answers for the credit metrics: scikit-learn where it has the metric, hand computation otherwise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score, roc_curve

from pipeline.evaluation.metrics import (
    adverse_impact_flags,
    adverse_impact_ratio,
    auc_confidence_interval,
    calibration_table,
    counter_offer_scenarios,
    cutoff_table,
    decision_reason_counts,
    discrimination,
    expected_calibration_error,
    fairness,
    gains_curve,
    grade_table,
    ks_curve,
    ks_statistic,
    limit_coverage,
    limit_errors,
    offer_mix,
    payment_to_income,
    policy_simulation,
    psi,
    psi_from_shares,
    psi_status,
    psi_table,
    pti_distribution,
    score_bands,
)


@pytest.fixture
def sample():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.6, 2000)
    y = (rng.uniform(size=2000) < p).astype(int)
    return y, p


# ---------------------------------------------------------------- discrimination


def test_discrimination_matches_sklearn(sample):
    y, p = sample
    d = discrimination(y, p)
    assert d["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert d["gini"] == pytest.approx(2 * roc_auc_score(y, p) - 1)
    assert d["brier"] == pytest.approx(brier_score_loss(y, p))
    assert d["log_loss"] == pytest.approx(log_loss(y, p))
    # KS is the largest TPR - FPR over thresholds of the ROC curve
    fpr, tpr, _ = roc_curve(y, p)
    assert d["ks"] == pytest.approx(np.max(tpr - fpr))


def test_ks_on_a_toy_set_by_hand():
    # sorted by PD: good .1, bad .35, good .4, bad .8 -> CDF bad 0 .5 .5 1, CDF good .5 .5 1 1
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    assert ks_statistic(y, p) == pytest.approx(0.5)
    curve = ks_curve(y, p)
    assert curve["cdf_bad"].tolist() == pytest.approx([0, 0.5, 0.5, 1])
    assert curve["cdf_good"].tolist() == pytest.approx([0.5, 0.5, 1, 1])


def test_ks_perfect_separation_and_ties():
    assert ks_statistic(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == pytest.approx(1.0)
    # all scores tied: no threshold separates anything
    assert ks_statistic(np.array([0, 1, 0, 1]), np.full(4, 0.3)) == pytest.approx(0.0)


def test_auc_confidence_interval_hanley_mcneil_by_hand():
    # A = 0.8, 50 bads, 50 goods: Q1 = 0.8/1.2, Q2 = 1.28/1.8, var = 4.95111/2500, se = 0.044502
    low, high = auc_confidence_interval(0.8, 50, 50)
    se = np.sqrt((0.16 + 49 * (0.8 / 1.2 - 0.64) + 49 * (1.28 / 1.8 - 0.64)) / 2500)
    assert se == pytest.approx(0.044502, abs=1e-5)
    assert low == pytest.approx(0.8 - 1.96 * se)
    assert high == pytest.approx(0.8 + 1.96 * se)
    wide, narrow = auc_confidence_interval(0.8, 10, 10), auc_confidence_interval(0.8, 1000, 1000)
    assert wide[1] - wide[0] > narrow[1] - narrow[0]


# ---------------------------------------------------------------- calibration


def test_ece_by_hand_on_two_bins():
    # bins {0.1, 0.2} -> mean PD .15, observed .5; {0.6, 0.9} -> mean .75, observed .5
    y = np.array([0, 1, 0, 1])
    p = np.array([0.1, 0.2, 0.6, 0.9])
    assert expected_calibration_error(y, p, bins=2) == pytest.approx((2 * 0.35 + 2 * 0.25) / 4)
    table = calibration_table(y, p, bins=2)
    assert table["mean_pd"].tolist() == pytest.approx([0.15, 0.75])
    assert table["observed_rate"].tolist() == pytest.approx([0.5, 0.5])


def test_ece_near_zero_when_calibrated_and_large_when_not():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 200_000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.005
    # a model that doubles every PD is miscalibrated by about mean(p) where it is not capped
    assert expected_calibration_error(y, np.clip(2 * p, 0, 1)) > 0.2


# ---------------------------------------------------------------- PSI


def test_psi_of_identical_samples_is_zero(sample):
    _, p = sample
    assert psi(p, p) == pytest.approx(0.0, abs=1e-12)
    assert psi(p, p.copy()[::-1]) == pytest.approx(0.0, abs=1e-12)


def test_psi_of_a_known_shift():
    # two bins of equal share in the reference; the actual sample puts 30% / 70% in them
    expected = np.r_[np.zeros(500), np.ones(500)]
    actual = np.r_[np.zeros(300), np.ones(700)]
    hand = (0.3 - 0.5) * np.log(0.3 / 0.5) + (0.7 - 0.5) * np.log(0.7 / 0.5)
    assert hand == pytest.approx(0.1695, abs=1e-4)
    assert psi(expected, actual, bins=2) == pytest.approx(hand)
    assert psi_from_shares(np.array([0.5, 0.5]), np.array([0.3, 0.7])) == pytest.approx(hand)


def test_psi_on_quantile_bins_of_a_continuous_reference():
    reference = np.arange(1000) / 1000.0  # ten bins of exactly 100 each
    # put 20% in the first decile and 8.89% in each of the other nine
    actual = np.r_[np.full(200, 0.05), np.repeat(np.arange(1, 10) / 10 + 0.05, 89)]
    a = np.r_[200, np.full(9, 89)] / actual.size
    hand = float(np.sum((a - 0.1) * np.log(a / 0.1)))
    assert psi(reference, actual, bins=10) == pytest.approx(hand)


def test_psi_counts_a_change_in_missing_values():
    ref = np.r_[np.arange(100.0), np.full(0, np.nan)]
    act = np.r_[np.arange(50.0), np.full(50, np.nan)]
    assert psi(ref, act) > 0.25


def test_psi_table_sorts_worst_first_and_reads_thresholds():
    rng = np.random.default_rng(3)
    train = rng.normal(size=(5000, 2))
    test = np.column_stack([rng.normal(size=5000), rng.normal(1.0, 1.0, size=5000)])
    table = psi_table(train, test, ["same", "shifted"], warn=0.1, alert=0.25)
    assert table["feature"].tolist() == ["shifted", "same"]
    assert table.loc[0, "status"] == "shifted" and table.loc[1, "status"] == "stable"
    assert [psi_status(v, 0.1, 0.25) for v in (0.05, 0.1, 0.2, 0.25, float("nan"))] == [
        "stable",
        "watch",
        "watch",
        "shifted",
        "n/a",
    ]


def test_psi_readings_follow_the_configured_thresholds():
    # the same values read differently under stricter or looser monitoring settings
    assert [psi_status(v, 0.05, 0.15) for v in (0.04, 0.1, 0.2)] == ["stable", "watch", "shifted"]
    assert [psi_status(v, 0.2, 0.4) for v in (0.1, 0.3, 0.5)] == ["stable", "watch", "shifted"]
    rng = np.random.default_rng(4)
    train = rng.normal(size=(4000, 1))
    test = rng.normal(0.3, 1.0, size=(4000, 1))
    value = psi_table(train, test, ["x"], warn=0.1, alert=0.25).loc[0, "psi"]
    assert 0.02 < value < 0.25
    assert psi_table(train, test, ["x"], warn=value / 2, alert=value / 1.5).loc[0, "status"] == "shifted"
    assert psi_table(train, test, ["x"], warn=value * 2, alert=value * 3).loc[0, "status"] == "stable"


# ---------------------------------------------------------------- score bands, lift, gains


def test_score_bands_cumulative_shares_and_lift_by_hand():
    # 8 applicants, 4 bands of 2 by score; defaults concentrated at low scores
    score = np.array([400, 410, 500, 510, 600, 610, 700, 710])
    y = np.array([1, 1, 1, 0, 0, 0, 1, 0])  # overall bad rate 0.5
    t = score_bands(y, score, bands=4)
    assert t["band"].tolist() == [1, 2, 3, 4]
    assert t["min_score"].tolist() == [400, 500, 600, 700]
    assert t["count"].tolist() == [2, 2, 2, 2]
    assert t["defaults"].tolist() == [2, 1, 0, 1]
    assert t["bad_rate"].tolist() == pytest.approx([1.0, 0.5, 0.0, 0.5])
    assert t["cum_count_share"].tolist() == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert t["cum_bad_share"].tolist() == pytest.approx([0.5, 0.75, 0.75, 1.0])
    assert t["cum_good_share"].tolist() == pytest.approx([0.0, 0.25, 0.75, 1.0])
    assert t["lift"].tolist() == pytest.approx([2.0, 1.0, 0.0, 1.0])
    assert t["cum_lift"].tolist() == pytest.approx([2.0, 1.5, 1.0, 1.0])


def test_score_bands_with_fewer_rows_than_bands():
    t = score_bands(np.array([0, 1, 0]), np.array([1.0, 2.0, 3.0]), bands=10)
    assert len(t) == 3 and t["count"].sum() == 3


def test_gains_curve_by_hand():
    y = np.array([0, 1, 0, 1])
    p = np.array([0.1, 0.9, 0.2, 0.5])  # riskiest first: bad, bad, good, good
    g = gains_curve(y, p)
    assert g["population_share"].tolist() == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert g["bad_share"].tolist() == pytest.approx([0, 0.5, 1.0, 1.0, 1.0])


# ---------------------------------------------------------------- limits and policy


def test_limit_errors_and_coverage():
    actual = np.array([1000.0, 2000.0, 4000.0])
    pred = np.array([1000.0, 1000.0, 8000.0])
    err = limit_errors(actual, pred, alpha=0.3)
    assert err["limit_mae"] == pytest.approx((0 + 1000 + 4000) / 3)
    # pinball on logs: residual ln2 under-prediction weighs alpha, ln2 over-prediction weighs 1 - alpha
    assert err["limit_pinball"] == pytest.approx((0.3 * np.log(2) + 0.7 * np.log(2)) / 3)
    assert limit_coverage(actual, pred) == pytest.approx(2 / 3)


def test_policy_simulation_expected_loss_by_hand():
    y = np.array([0, 1, 0, 1])
    pd_ = np.array([0.1, 0.2, 0.3, 0.9])
    decision = np.array(["approve", "approve", "approve", "decline"])
    limit = np.array([1000.0, 2000.0, 500.0, 0.0])
    out = policy_simulation(y, pd_, decision, limit, lgd=0.5, ccf=0.8)
    assert out["approval_rate"] == pytest.approx(0.75)
    assert out["approved_bad_rate"] == pytest.approx(1 / 3)
    el = 0.1 * 0.5 * 800 + 0.2 * 0.5 * 1600 + 0.3 * 0.5 * 400
    assert out["expected_loss"] == pytest.approx(el)
    assert out["expected_loss_rate"] == pytest.approx(el / (800 + 1600 + 400))
    assert out["total_exposure"] == pytest.approx(3500)
    assert out["realised_bad_exposure"] == pytest.approx(1600 * 0.5)


def test_cutoff_table_by_hand():
    y = np.array([0, 0, 1, 1])
    pd_ = np.array([0.05, 0.15, 0.2, 0.6])
    t = cutoff_table(y, pd_, [0.1, 0.2, 1.0])
    assert t["approval_rate"].tolist() == pytest.approx([0.25, 0.75, 1.0])
    assert t["approved_bad_rate"].tolist() == pytest.approx([0.0, 1 / 3, 0.5])
    assert t["declined_bad_share"].tolist() == pytest.approx([1.0, 0.5, 0.0])


def test_grade_table_keeps_grade_order_and_empty_grades():
    t = grade_table(
        np.array([0, 1, 0]),
        np.array([0.01, 0.3, 0.05]),
        np.array(["A", "C", "A"]),
        np.array(["approve", "decline", "approve"]),
        np.array([5000.0, 0.0, 3000.0]),
        ["A", "B", "C"],
    )
    assert t["grade"].tolist() == ["A", "B", "C"]
    assert t["count"].tolist() == [2, 0, 1]
    assert t.loc[0, "mean_limit"] == pytest.approx(4000) and t.loc[0, "approval_rate"] == 1.0
    assert np.isnan(t.loc[1, "bad_rate"]) and t.loc[2, "approval_rate"] == 0.0


def test_decision_reason_counts_split_multiple_codes():
    t = decision_reason_counts(
        np.array(["decline", "decline", "approve"]),
        np.array(["PD_ABOVE_CUTOFF;RESIDUAL_INCOME", "PD_ABOVE_CUTOFF", "CAP_MODEL"]),
    )
    counts = {(r.decision, r.code): r.count for r in t.itertuples()}
    assert counts == {("decline", "PD_ABOVE_CUTOFF"): 2, ("decline", "RESIDUAL_INCOME"): 1, ("approve", "CAP_MODEL"): 1}


# ---------------------------------------------------------------- fairness


def test_adverse_impact_ratio_on_a_crafted_table():
    rates = pd.Series({"a": 0.80, "b": 0.60, "c": 0.40})
    assert adverse_impact_ratio(rates).to_dict() == pytest.approx({"a": 1.0, "b": 0.75, "c": 0.5})
    assert adverse_impact_ratio(pd.Series({"a": 0.0, "b": 0.0})).isna().all()


def test_fairness_table_by_group():
    # group x: 8 of 10 approved; group y: 3 of 6 approved -> AIR 0.625 for y
    groups = pd.Series(["x"] * 10 + ["y"] * 6)
    decision = np.array(["approve"] * 8 + ["decline"] * 2 + ["approve"] * 3 + ["decline"] * 3)
    y = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1] + [0, 0, 1, 0, 1, 1])
    pd_ = np.linspace(0.01, 0.9, 16)
    limit = np.where(decision == "approve", 1000.0, 0.0)
    limit[:8] = 2000.0
    t = fairness(groups, y, pd_, decision, limit).set_index("group")
    assert t.loc["x", "approval_rate"] == pytest.approx(0.8)
    assert t.loc["y", "approval_rate"] == pytest.approx(0.5)
    assert t.loc["x", "adverse_impact_ratio"] == pytest.approx(1.0)
    assert t.loc["y", "adverse_impact_ratio"] == pytest.approx(0.625)
    assert t.loc["x", "mean_limit_approved"] == pytest.approx(2000)
    assert t.loc["y", "mean_limit_approved"] == pytest.approx(1000)
    assert t.loc["y", "auc"] == pytest.approx(roc_auc_score(y[10:], pd_[10:]))


def test_fairness_small_groups_do_not_set_the_reference_and_missing_is_a_group():
    groups = pd.Series(["big"] * 40 + ["tiny"] * 2 + [None] * 40)
    decision = np.array(["approve"] * 20 + ["decline"] * 20 + ["approve"] * 2 + ["approve"] * 10 + ["decline"] * 30)
    y = np.tile([0, 1], 41)
    t = fairness(groups, y, np.linspace(0, 1, 82), decision, np.ones(82), min_count=30).set_index("group")
    assert set(t.index) == {"big", "tiny", "<missing>"}
    assert not t.loc["tiny", "reliable"]
    # the reference is "big" (50%), not the 2-person group approved at 100%
    assert t.loc["big", "adverse_impact_ratio"] == pytest.approx(1.0)
    assert t.loc["<missing>", "adverse_impact_ratio"] == pytest.approx(0.25 / 0.5)


def test_fairness_numeric_codes_read_as_integers():
    t = fairness(
        pd.Series([1.0, 2.0, 1.0, 2.0]),
        np.array([0, 1, 1, 0]),
        np.array([0.1, 0.2, 0.3, 0.4]),
        np.array(["approve"] * 4),
        np.ones(4),
    )
    assert t["group"].tolist() == ["1", "2"]


def test_adverse_impact_flags_follow_the_configured_ratio():
    # group b sits at 0.85: inside the four-fifths rule, outside a stricter 0.9 screen; c is too small to judge
    table = pd.DataFrame(
        {"group": ["a", "b", "c"], "adverse_impact_ratio": [1.0, 0.85, 0.5], "reliable": [True, True, False]}
    )
    assert adverse_impact_flags(table, 0.8).tolist() == [False, False, False]
    assert adverse_impact_flags(table, 0.9).tolist() == [False, True, False]


# ---------------------------------------------------------------- offers


def test_offer_mix_by_grade_and_overall_by_hand():
    grade = np.array(["A", "A", "B", "B", "B", "B"])
    kind = np.array(["approve", "counter_offer", "approve", "decline", "decline", "counter_offer"])
    t = offer_mix(grade, kind, ["A", "B", "C"])
    assert t["grade"].tolist() == ["A", "B", "C", "all"] and t["count"].tolist() == [2, 4, 0, 6]
    assert t["approve_share"].tolist()[:2] == [0.5, 0.25] and t["decline_share"].tolist()[:2] == [0.0, 0.5]
    assert t.loc[3, "counter_offer_share"] == pytest.approx(2 / 6) and t.loc[3, "decline_share"] == pytest.approx(2 / 6)
    assert np.isnan(t.loc[2, "approve_share"])  # an empty grade has no shares, not zeros


def test_counter_offer_scenarios_by_hand():
    # two approved as asked (1,000 and 2,000), one counter-offer of 4,000, one decline
    y = np.array([0, 1, 1, 0])
    p = np.array([0.1, 0.2, 0.3, 0.5])
    kind = np.array(["approve", "approve", "counter_offer", "decline"])
    amount = np.array([1000.0, 2000.0, 4000.0, np.nan])
    t = counter_offer_scenarios(y, p, kind, amount, lgd=0.5, ccf=1.0).set_index("scenario")
    with_c, without_c = t.loc["with_counter"], t.loc["without_counter"]
    assert with_c["approved"] == 3 and without_c["approved"] == 2
    assert with_c["approved_volume"] == 7000 and without_c["approved_volume"] == 3000
    assert with_c["expected_loss"] == pytest.approx(0.5 * (0.1 * 1000 + 0.2 * 2000 + 0.3 * 4000))
    assert without_c["expected_loss"] == pytest.approx(0.5 * (0.1 * 1000 + 0.2 * 2000))
    assert with_c["expected_loss_rate"] == pytest.approx(0.5 * 1700 / 7000)
    assert without_c["expected_loss_rate"] == pytest.approx(0.5 * 500 / 3000)
    assert with_c["approved_bad_rate"] == pytest.approx(2 / 3) and without_c["approved_bad_rate"] == 0.5


def test_counter_offer_scenarios_when_nobody_is_approved_as_asked():
    t = counter_offer_scenarios(
        np.array([0, 1]), np.array([0.1, 0.2]), np.array(["counter_offer", "decline"]), np.array([500.0, np.nan]), 1, 1
    ).set_index("scenario")
    assert t.loc["without_counter", "approved"] == 0 and t.loc["without_counter", "approved_volume"] == 0
    assert np.isnan(t.loc["without_counter", "approved_bad_rate"])
    assert t.loc["with_counter", "expected_loss_rate"] == pytest.approx(0.1)


def test_payment_to_income_only_for_offers_with_a_known_income():
    income = np.array([1000.0, np.nan, 2000.0, 0.0, 1000.0])
    debt = np.array([100.0, 50.0, np.nan, 0.0, 0.0])
    payment = np.array([200.0, 100.0, 300.0, 50.0, np.nan])
    kind = np.array(["approve", "approve", "counter_offer", "approve", "decline"])
    t = payment_to_income(income, debt, payment, kind)
    assert t["offer_type"].tolist() == ["approve", "counter_offer"]  # unknown and zero income, the decline: out
    assert t["pti"].tolist() == pytest.approx([0.3, 0.15])  # unknown debt counts as none


def test_pti_distribution_bands_up_to_the_cap_then_above():
    pti = pd.DataFrame(
        {"offer_type": ["approve", "approve", "counter_offer", "counter_offer", "approve"],
         "pti": [0.0, 0.12, 0.349, 0.35, 0.5]}
    )  # fmt: skip
    t = pti_distribution(pti, cap=0.35, width=0.1)
    assert t["pti_from"].tolist() == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.35])
    assert t["pti_to"].tolist()[:-1] == pytest.approx([0.1, 0.2, 0.3, 0.35]) and np.isinf(t["pti_to"].iloc[-1])
    assert t["count"].tolist() == [1, 1, 0, 2, 1]  # 0.35 exactly passes the cap: only 0.5 is above it
    assert t["counter_offer"].tolist() == [0, 0, 0, 2, 0] and t["approve"].tolist() == [1, 1, 0, 0, 1]
    assert t["cum_share"].iloc[-1] == pytest.approx(1.0)
