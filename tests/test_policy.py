"""Limit policy invariants, checked on hand cases and by hypothesis on random inputs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from helpers import examples
from pipeline.config import PolicyConfig, ScorecardConfig
from pipeline.decision.policy import PolicyInputs, affordability_cap, decide
from pipeline.decision.scorecard import grade_names, pd_to_score, score_to_grade_index

SC = ScorecardConfig()
POLICY = PolicyConfig()


def inputs(pd_, income=5000.0, debt=500.0, estimate=8000.0, residual=None, recent=False, n=None):
    n = n or len(np.atleast_1d(pd_))

    def arr(x):
        return np.broadcast_to(np.asarray(x, dtype=float), (n,)).copy()

    p = arr(pd_)
    grade = score_to_grade_index(pd_to_score(p, SC), SC)
    inc, dbt = arr(income), arr(debt)
    res = inc - dbt - 1000 if residual is None else arr(residual)
    return PolicyInputs(p, grade, arr(estimate), inc, dbt, res, np.broadcast_to(np.asarray(recent), (n,)).copy())


def test_hand_case_approve_limited_by_affordability():
    # cap = (0.35 * 2000 - 600) / 0.05 = 2000; model estimate 10000 x multiplier >= 2000
    out = decide(inputs(0.01, income=2000, debt=600, estimate=10_000), POLICY, SC)
    assert out.loc[0, "decision"] == "approve"
    assert out.loc[0, "affordability_cap"] == pytest.approx(2000)
    assert out.loc[0, "credit_limit"] == 2000
    assert out.loc[0, "decision_reasons"] == "CAP_AFFORDABILITY"


def test_hand_case_declines_carry_every_reason():
    out = decide(inputs(0.5, income=1000, debt=900, residual=-500, recent=True), POLICY, SC)
    assert out.loc[0, "decision"] == "decline" and out.loc[0, "credit_limit"] == 0
    assert set(out.loc[0, "decision_reasons"].split(";")) == {
        "PD_ABOVE_CUTOFF",
        "RESIDUAL_INCOME",
        "RECENT_90D_DELINQUENCY",
    }


def test_unknown_income_follows_config():
    table = decide(inputs(0.02, income=np.nan, debt=np.nan, residual=np.nan, estimate=np.nan), POLICY, SC)
    grade = score_to_grade_index(pd_to_score(np.array([0.02]), SC), SC)[0]
    assert table.loc[0, "decision"] == "approve"
    assert table.loc[0, "credit_limit"] == SC.grades[grade].table_limit
    declined = decide(inputs(0.02, income=np.nan, residual=np.nan), PolicyConfig(unknown_income="decline"), SC)
    assert declined.loc[0, "decision_reasons"] == "INCOME_UNKNOWN"


def test_affordable_limit_below_minimum_is_declined_not_raised():
    out = decide(inputs(0.01, income=1000, debt=340, residual=60), POLICY, SC)  # cap = (350 - 340) / 0.05 = 200 < 500
    assert out.loc[0, "decision"] == "decline" and out.loc[0, "decision_reasons"] == "BELOW_MIN_LIMIT"


def test_affordability_cap_formula():
    cap = affordability_cap(np.array([4000.0, 4000.0, np.nan, 1000.0]), np.array([0.0, np.nan, 0.0, 2000.0]), POLICY)
    assert cap[0] == pytest.approx(0.35 * 4000 / 0.05)
    assert cap[1] == pytest.approx(cap[0])  # unknown debt counts as none
    assert np.isnan(cap[2]) and cap[3] == 0


def test_score_and_grade_mapping():
    assert pd_to_score(np.array([1 / 51]), SC)[0] == pytest.approx(SC.base_score, abs=0.05)  # odds 50:1
    # doubling the odds adds pdo points
    p1, p2 = 1 / (1 + 50), 1 / (1 + 100)
    assert pd_to_score(np.array([p2]), SC)[0] - pd_to_score(np.array([p1]), SC)[0] == pytest.approx(SC.pdo, abs=0.1)
    idx = score_to_grade_index(np.array([700.0, 620.0, 619.9, 100.0]), SC)
    assert list(grade_names(idx, SC)) == ["A", "A", "B", "E"]


finite = dict(allow_nan=False, allow_infinity=False)
N = 40


@settings(max_examples=examples(200), deadline=None)
@given(
    pd_=arrays(float, N, elements=st.floats(0, 1, **finite)),
    income=arrays(float, N, elements=st.one_of(st.just(np.nan), st.floats(0, 50_000, **finite))),
    debt=arrays(float, N, elements=st.one_of(st.just(np.nan), st.floats(0, 20_000, **finite))),
    estimate=arrays(float, N, elements=st.one_of(st.just(np.nan), st.floats(0, 200_000, **finite))),
    recent=arrays(bool, N),
    unknown=st.sampled_from(["decline", "table_limit"]),
    step=st.sampled_from([1.0, 50.0, 100.0, 250.0]),
)
def test_policy_invariants(pd_, income, debt, estimate, recent, unknown, step):
    policy = PolicyConfig(unknown_income=unknown, limit_step=step, min_limit=500, max_limit=50_000)
    residual = income - np.nan_to_num(debt) - 800
    grade = score_to_grade_index(pd_to_score(pd_, SC), SC)
    inp = PolicyInputs(pd_, grade, estimate, income, debt, residual, recent)
    out = decide(inp, policy, SC)
    limit, approved = out["credit_limit"].to_numpy(), (out["decision"] == "approve").to_numpy()
    cap = out["affordability_cap"].to_numpy()
    # an approved limit never exceeds the affordability cap (where income is known)
    known = ~np.isnan(cap)
    assert np.all(limit[approved & known] <= cap[approved & known] + 1e-9)
    # a decline has limit 0 and at least one reason
    assert np.all(limit[~approved] == 0)
    assert all(r for r in out.loc[~approved, "decision_reasons"])
    caps = ["CAP_AFFORDABILITY", "CAP_MODEL", "CAP_GRADE_TABLE", "CAP_MAX_LIMIT"]
    assert all(out.loc[approved, "decision_reasons"].isin(caps))
    # limits are multiples of the step within [min, max]
    assert np.allclose(np.mod(limit[approved], step), 0)
    assert np.all((limit[approved] >= policy.min_limit) & (limit[approved] <= policy.max_limit))
    # PD above the cutoff is always declined
    assert not np.any(approved & (pd_ > policy.pd_cutoff))


@settings(max_examples=examples(200), deadline=None)
@given(
    pd_low=st.floats(0, 1, **finite),
    bump=st.floats(0, 1, **finite),
    income=st.floats(0, 50_000, **finite),
    debt=st.floats(0, 20_000, **finite),
    estimate=st.one_of(st.just(np.nan), st.floats(0, 200_000, **finite)),
)
def test_higher_pd_never_gives_a_higher_limit(pd_low, bump, income, debt, estimate):
    pd_high = min(1.0, pd_low + bump)
    both = decide(inputs(np.array([pd_low, pd_high]), income=income, debt=debt, estimate=estimate, n=2), POLICY, SC)
    assert both.loc[1, "credit_limit"] <= both.loc[0, "credit_limit"]


def test_limit_from_the_grade_table_says_so_not_the_limit_model():
    # No limit model (NaN estimate): the grade's table limit sets the limit, named CAP_GRADE_TABLE.
    out = decide(inputs(0.01, income=50_000, debt=0, estimate=np.nan), POLICY, SC)
    assert out.loc[0, "decision"] == "approve"
    assert out.loc[0, "decision_reasons"] == "CAP_GRADE_TABLE"
    # With a limit model whose estimate binds, the code stays CAP_MODEL.
    out = decide(inputs(0.01, income=50_000, debt=0, estimate=3000), POLICY, SC)
    assert out.loc[0, "decision_reasons"] == "CAP_MODEL"
    # Unknown income: the table bounds a larger estimate, so the table set it.
    out = decide(inputs(0.01, income=np.nan, debt=0, residual=np.nan, estimate=1e6), POLICY, SC)
    assert out.loc[0, "decision_reasons"] == "CAP_GRADE_TABLE"
