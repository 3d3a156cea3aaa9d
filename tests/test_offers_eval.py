"""The offers part of the evaluation report on a small trained scorer: offer mix by grade, loss and volume with
and without counter-offers, payment-to-income of approved offers, and old scorers without offers.

Numbers are checked against an independent scoring of the test rows, so a wrong join or a swapped
scenario fails here rather than reading plausibly on the page.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluation.holdout import evaluate_holdout
from pipeline.evaluation.offers import NO_INCOME, NO_OFFERS

OFFER_METRICS = (
    "offer_share_approve",
    "offer_share_counter",
    "offer_share_decline",
    "expected_loss_rate_with_counter",
    "expected_loss_rate_without_counter",
    "approved_volume_with_counter",
    "approved_volume_without_counter",
)
PTI_METRICS = ("offer_pti_n", "offer_pti_median", "offer_pti_p90", "offer_pti_max", "offer_pti_share_above_cap")


@pytest.fixture(scope="module")
def evaluated(trained, tmp_path_factory):
    cfg, valid, result = trained
    out = tmp_path_factory.mktemp("offers-eval")
    return evaluate_holdout(result.scorer, valid, result.splits, cfg, out), out


@pytest.fixture(scope="module")
def scored_test(trained):
    """The test rows scored again, independently of the evaluation."""
    cfg, valid, result = trained
    test = valid.iloc[result.splits["test"]].reset_index(drop=True)
    return test, result.scorer.score_valid(test)


def test_offer_metrics_agree_with_the_scored_rows(evaluated, scored_test):
    ev, _ = evaluated
    m = ev["metrics"]
    _, scored = scored_test
    kind = scored["offer_type"]
    assert m["offer_share_approve"] == pytest.approx((kind == "approve").mean())
    assert m["offer_share_counter"] == pytest.approx((kind == "counter_offer").mean())
    assert m["offer_share_decline"] == pytest.approx((kind == "decline").mean())
    assert m["offer_share_counter"] > 0, "the synthetic applicants should draw some counter-offers"
    as_asked = kind == "approve"
    assert m["approved_volume_without_counter"] == pytest.approx(scored.loc[as_asked, "offer_amount"].sum())
    assert m["approved_volume_with_counter"] == pytest.approx(scored.loc[kind != "decline", "offer_amount"].sum())
    assert m["approved_volume_with_counter"] > m["approved_volume_without_counter"]
    for key in OFFER_METRICS + PTI_METRICS:
        assert isinstance(m[key], float) and m[key] == m[key], key
    assert json.loads((Path(ev["report"]).parent / "metrics.json").read_text())["offer_share_counter"] == pytest.approx(
        m["offer_share_counter"]
    )


def test_with_counter_offers_is_the_policy_simulation_as_scored(evaluated):
    """Counter-offers are approvals in the scored decision, so "with" must equal the headline simulation."""
    m = evaluated[0]["metrics"]
    assert m["approved_volume_with_counter"] == pytest.approx(m["total_exposure"])
    assert m["expected_loss_with_counter"] == pytest.approx(m["expected_loss"])
    assert m["expected_loss_rate_with_counter"] == pytest.approx(m["expected_loss_rate"])
    assert m["approval_rate_with_counter"] == pytest.approx(m["approval_rate"])
    assert m["approval_rate_without_counter"] == pytest.approx(m["offer_share_approve"])


def test_offer_mix_table_by_grade(evaluated, trained, scored_test):
    _, out = evaluated
    cfg, _, result = trained
    mix = pd.read_csv(out / "tables" / "offer_mix.csv")
    grades = [g.name for g in cfg.scorecard.grades]
    assert mix["grade"].tolist() == [*grades, "all"]
    assert mix["count"].iloc[-1] == len(result.splits["test"]) and mix["count"].iloc[:-1].sum() == mix["count"].iloc[-1]
    filled = mix[mix["count"] > 0]
    shares = filled[["approve_share", "counter_offer_share", "decline_share"]].sum(axis=1)
    assert shares.to_numpy() == pytest.approx(np.ones(len(filled)))
    _, scored = scored_test
    worst = grades[-1]
    in_worst = scored["grade"] == worst
    assert in_worst.any(), "the fixture's test rows reach the worst grade"
    expected = (scored.loc[in_worst, "offer_type"] == "decline").mean()
    assert mix.loc[mix["grade"] == worst, "decline_share"].iloc[0] == pytest.approx(expected)


def test_counter_offer_table_and_pti_distribution(evaluated, trained, scored_test):
    ev, out = evaluated
    cfg, _, _ = trained
    scenarios = pd.read_csv(out / "tables" / "counter_offers.csv")
    assert scenarios["scenario"].tolist() == ["with_counter", "without_counter"]
    assert scenarios["approved"].iloc[0] >= scenarios["approved"].iloc[1]
    pti = pd.read_csv(out / "tables" / "payment_to_income.csv")
    test, scored = scored_test
    known = (scored["offer_type"] != "decline") & (test["monthly_income"] > 0)
    assert pti["count"].sum() == known.sum() == ev["metrics"]["offer_pti_n"]
    assert pti["count"].sum() == pti["approve"].sum() + pti["counter_offer"].sum()
    cap = cfg.policy.max_payment_to_income
    assert pti["pti_to"].iloc[-2] == pytest.approx(cap) and np.isinf(pti["pti_to"].iloc[-1])
    # the offer search enforces the cap wherever income is known: nothing may land above it
    assert pti["count"].iloc[-1] == 0 and ev["metrics"]["offer_pti_share_above_cap"] == 0.0
    ratio = (test["monthly_debt_payments"].fillna(0) + scored["monthly_payment"]) / test["monthly_income"]
    assert ev["metrics"]["offer_pti_max"] == pytest.approx(ratio[known].max())
    assert ev["metrics"]["offer_pti_max"] <= cap + 1e-9


def test_report_shows_the_offer_section_with_plots(evaluated):
    ev, out = evaluated
    assert {"offer_mix", "payment_to_income"} <= set(ev["plots"])
    for name in ("offer_mix", "counter_offers", "payment_to_income"):
        assert ev["tables"][name] == f"tables/{name}.csv"
    page = Path(ev["report"]).read_text(encoding="utf-8")
    assert 'id="offers"' in page and "Offer mix by grade" in page and "With and without counter-offers" in page
    assert "Payment-to-income of approved offers" in page
    assert f"{ev['metrics']['offer_share_counter']:.1%}" in page
    assert ev["offer_notes"] == []


def test_unknown_income_makes_pti_not_applicable(trained, tmp_path):
    cfg, valid, result = trained
    blind = valid.copy()
    blind.loc[result.splits["test"], "monthly_income"] = np.nan
    ev = evaluate_holdout(result.scorer, blind, result.splits, cfg, tmp_path)
    assert ev["offer_notes"] == [NO_INCOME]
    assert "payment_to_income" not in ev["tables"] and "payment_to_income" not in ev["plots"]
    assert not any(k in ev["metrics"] for k in PTI_METRICS)
    assert all(k in ev["metrics"] for k in OFFER_METRICS)
    page = Path(ev["report"]).read_text(encoding="utf-8")
    assert "not applicable, no holdout applicant with an offer has a known income" in page


def test_a_scorer_without_offers_skips_the_sections_with_a_note(trained, tmp_path):
    cfg, valid, result = trained
    old = dataclasses.replace(result.scorer, products=None)
    ev = evaluate_holdout(old, valid, result.splits, cfg, tmp_path)
    assert ev["offer_notes"] == [NO_OFFERS]
    assert not {"offer_mix", "counter_offers", "payment_to_income"} & set(ev["tables"])
    assert not {"offer_mix", "payment_to_income"} & set(ev["plots"])
    assert not any(k.startswith("offer_") or k.endswith("_counter") for k in ev["metrics"])
    assert not list((tmp_path / "tables").glob("offer_*.csv"))
    page = Path(ev["report"]).read_text(encoding="utf-8")
    assert "This scorer makes no offers" in page and "Offer mix by grade" not in page
    assert np.isfinite(ev["metrics"]["expected_loss"])
