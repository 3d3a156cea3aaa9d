"""Affordability features: hand-computed values for every dictionary entry, edge cases, properties, docs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pandera.errors as pae
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from helpers import examples
from pipeline.config import ContractConfig, ExtraColumn, FeatureConfig, load_config
from pipeline.docs import rendered
from pipeline.features import (
    CORE_FEATURES,
    categories,
    compute_features,
    dictionary_markdown,
    feature_columns,
    feature_dictionary,
    feature_schema,
    monthly_instalment,
    payment_ratios,
    safe_ratio,
    select_features,
    slope,
)
from pipeline.model.train import used_inputs

ROOT = Path(__file__).resolve().parent.parent
NAN = np.nan
# apr 12% so the annuity matches the textbook PMT(1%, 12, 1000) = 88.848789; other settings are the defaults:
# living cost 600 + 250 per dependent, ratio_cap 10, utilization_cap 1.5, default term 12.
CFG = FeatureConfig(apr=0.12)
PMT_1000 = 88.848789
CONTRACT = ContractConfig(
    history_months=3,
    extras=[
        ExtraColumn(name="bank_months", dtype="float", min=0, risk_direction=-1, reason="Short banking relationship"),
        ExtraColumn(name="channel", dtype="category", allowed=["web", "branch"]),
    ],
)
CATS = categories(CONTRACT)

# Four applicants, three months of history (m1 = latest):
# 0 an ordinary applicant; 1 zero income, zero limit, a credit balance, zero statements, nothing late;
# 2 missing income, an all-missing history, a missing delinquency bucket;
# 3 out of contract (negative income, balance above the limit) with a partly missing history.
FRAME = pd.DataFrame(
    {
        "monthly_income": [3000.0, 0.0, NAN, -1000.0],
        "monthly_debt_payments": [600.0, 200.0, 100.0, 0.0],
        "dependents": [2.0, NAN, 0.0, 1.0],
        "requested_amount": [1000.0, 500.0, 100.0, 100.0],
        "requested_term_months": [12.0, NAN, 6.0, 12.0],
        "revolving_balance": [500.0, 100.0, NAN, 5000.0],
        "revolving_limit": [1000.0, 0.0, 2000.0, 1000.0],
        "revolving_utilization": [0.9, NAN, 0.3, NAN],
        "delinquencies_30d": [2.0, 0.0, 1.0, 0.0],
        "delinquencies_60d": [1.0, 0.0, NAN, 0.0],
        "delinquencies_90d": [1.0, 0.0, 0.0, 0.0],
        "credit_history_months": [30.0, 0.0, 0.0, 6.0],
        "age": [40.0, 25.0, 60.0, 33.0],
        "employment_years": [5.0, 0.0, NAN, 1.5],
        "open_credit_lines": [3.0, 0.0, 1.0, 2.0],
        "housing": ["rent", "own", None, "castle"],
        "statement_balance_m1": [300.0, -50.0, NAN, NAN],
        "statement_balance_m2": [200.0, 0.0, NAN, 400.0],
        "statement_balance_m3": [100.0, 0.0, NAN, 200.0],
        "payment_amount_m1": [150.0, 0.0, NAN, NAN],
        "payment_amount_m2": [200.0, 0.0, NAN, 400.0],
        "payment_amount_m3": [0.0, 0.0, NAN, 300.0],
        "repayment_status_m1": [0.0, -2.0, NAN, NAN],
        "repayment_status_m2": [2.0, -2.0, NAN, 1.0],
        "repayment_status_m3": [-1.0, -2.0, NAN, 3.0],
        "bank_months": [12.0, 0.0, NAN, 3.0],
        "channel": ["web", "branch", "phone", None],
    },
    index=[10, 11, 12, 13],  # not a RangeIndex: the index must be carried through untouched
)

# Worked by hand; the comments show the arithmetic.
EXPECTED: dict[str, list] = {
    # 600/3000; 200/0 -> cap; income missing; 0 debt over negative income -> 0
    "debt_to_income": [0.2, 10.0, NAN, 0.0],
    # 3000-600-(600+2x250); 0-200-600 (dependents missing -> 0); missing; -1000-0-(600+250)
    "residual_income": [1300.0, -800.0, NAN, -1850.0],
    # PMT(1%,12,1000)/3000; 500 owed on zero income -> cap; missing; instalment over negative income -> cap
    "payment_to_income": [PMT_1000 / 3000, 10.0, NAN, 10.0],
    # 1000/36000; cap; missing; cap
    "requested_to_income": [1000 / 36000, 10.0, NAN, 10.0],
    # 500/1000; 100 owed on a zero limit -> cap 1.5; balance missing -> revolving_utilization; 5000/1000 capped
    "utilization": [0.5, 1.5, 0.3, 1.5],
    # mean(300,200,100)/1000; balances floored at 0 -> 0 owed on a 0 limit -> 0; no history; mean(400,200)/1000
    "statement_utilization_mean": [0.2, 0.0, NAN, 0.3],
    # 150/300; credit balance -> 1; missing; m1 missing
    "payment_ratio_latest": [0.5, 1.0, NAN, NAN],
    # ratios (0.5, 1, 0): mean 0.5; all 1; missing; (missing, 1, min(300/200, 1)) -> 1
    "payment_ratio_mean": [0.5, 1.0, NAN, 1.0],
    "payment_ratio_min": [0.0, 1.0, NAN, 1.0],
    # statuses (0, 2, -1) -> 1 month late; none; missing; (missing, 1, 3) -> 2
    "months_delinquent": [1.0, 0.0, NAN, 2.0],
    "worst_status": [2.0, -2.0, NAN, 3.0],
    "latest_status": [0.0, -2.0, NAN, NAN],
    # m2 late -> 1; none of 3 months -> 3; missing; m2 late -> 1
    "months_since_delinquent": [1.0, 3.0, NAN, 1.0],
    # oldest->latest 100,200,300: +100/month / mean 200; 0,0,-50 at t=-3,-2,-1: -25/month / 16.67 = -1.5 -> -1;
    # missing; 200 (t=-3), 400 (t=-2): +200 / mean 300
    "balance_trend": [0.5, -1.0, NAN, 200 / 300],
    # ratios oldest->latest 0, 1, 0.5 at t=-3,-2,-1: cov 0.5 / var 2 = 0.25; flat; missing; flat (1, 1)
    "payment_trend": [0.25, 0.0, NAN, 0.0],
    # 2 + 2x1 + 3x1; 0; a bucket missing -> missing; 0
    "delinquency_severity": [7.0, 0.0, NAN, 0.0],
    "delinquency_count": [4.0, 0.0, NAN, 0.0],
    "credit_history_years": [2.5, 0.0, 0.0, 0.5],
    # 1000/36000; 0 limit -> 0; missing; positive limit over negative income -> cap
    "limit_to_income": [1000 / 36000, 0.0, NAN, 10.0],
    # passthroughs: as given
    "monthly_income": [3000.0, 0.0, NAN, -1000.0],
    "age": [40.0, 25.0, 60.0, 33.0],
    "employment_years": [5.0, 0.0, NAN, 1.5],
    "dependents": [2.0, NAN, 0.0, 1.0],
    "open_credit_lines": [3.0, 0.0, 1.0, 2.0],
    "delinquencies_90d": [1.0, 0.0, 0.0, 0.0],
    "requested_amount": [1000.0, 500.0, 100.0, 100.0],
    "requested_term_months": [12.0, NAN, 6.0, 12.0],
    "revolving_limit": [1000.0, 0.0, 2000.0, 1000.0],
    "bank_months": [12.0, 0.0, NAN, 3.0],
    # categoricals: unknown or missing values are missing
    "housing": ["rent", "own", NAN, NAN],
    "channel": ["web", "branch", NAN, NAN],
}
EXPECTED.update({c: FRAME[c].tolist() for c in FRAME if c.startswith(("statement_", "payment_amount", "repayment_"))})

DICTIONARY = feature_dictionary(CONTRACT, history_passthrough=True)
BY_NAME = {s.name: s for s in DICTIONARY}


def compute(frame: pd.DataFrame, names: list[str] | None = None, cfg: FeatureConfig = CFG) -> pd.DataFrame:
    specs = DICTIONARY if names is None else [BY_NAME[n] for n in names]
    return compute_features(frame, specs, cfg, CATS)


# ---------------------------------------------------------------- every feature, by hand


def test_every_dictionary_entry_has_a_hand_computed_case():
    assert {s.name for s in DICTIONARY} == set(EXPECTED)
    assert len({s.name for s in DICTIONARY}) == len(DICTIONARY), "feature names must be unique"


@pytest.mark.parametrize("name", list(EXPECTED))
def test_hand_computed_values(name):
    got = compute(FRAME, [name])[name]
    assert list(got.index) == list(FRAME.index)
    if BY_NAME[name].categorical:
        assert [None if pd.isna(v) else v for v in got] == [None if pd.isna(v) else v for v in EXPECTED[name]]
    else:
        np.testing.assert_allclose(got.to_numpy(), np.array(EXPECTED[name], dtype=float), rtol=1e-6, equal_nan=True)


def test_whole_dictionary_at_once_matches_single_features():
    table = compute(FRAME)
    assert list(table.columns) == [s.name for s in DICTIONARY]
    for name in EXPECTED:
        pd.testing.assert_series_equal(table[name], compute(FRAME, [name])[name])


def test_dictionary_entries_are_complete():
    for s in DICTIONARY:
        assert s.formula and s.unit and s.reason and s.inputs, s.name
        assert s.direction in (-1, 0, 1), s.name
        assert "|" not in s.formula + s.reason, f"{s.name}: '|' breaks the markdown table"
    assert BY_NAME["bank_months"].direction == -1 and BY_NAME["bank_months"].reason == "Short banking relationship"
    assert {s.name for s in DICTIONARY if s.uses_limit} == {
        "utilization",
        "statement_utilization_mean",
        "limit_to_income",
        "revolving_limit",
    }


# ---------------------------------------------------------------- helpers and config variants


def test_annuity_matches_textbook_and_zero_rate():
    amount = pd.Series([1000.0, 1200.0])
    np.testing.assert_allclose(monthly_instalment(amount, 12, 0.12), [PMT_1000, 1.2 * PMT_1000], rtol=1e-6)
    np.testing.assert_allclose(monthly_instalment(amount, 12, 0.0), [1000 / 12, 100.0])


def test_payment_to_income_zero_rate_revolving_and_default_term():
    zero = compute(FRAME, ["payment_to_income"], FeatureConfig(apr=0.0))["payment_to_income"]
    assert zero.iloc[0] == pytest.approx(1000 / 12 / 3000)
    revolving = FeatureConfig(credit_type="revolving", min_payment_rate=0.05)
    assert compute(FRAME, ["payment_to_income"], revolving)["payment_to_income"].iloc[0] == pytest.approx(50 / 3000)
    no_term = FRAME.drop(columns="requested_term_months").assign(requested_amount=1200.0, monthly_income=1000.0)
    got = compute(no_term, ["payment_to_income"], FeatureConfig(apr=0.0, default_term_months=24))
    np.testing.assert_allclose(got["payment_to_income"], 50 / 1000)


def test_term_below_one_month_is_one_month_not_inf():
    frame = FRAME.assign(requested_term_months=[0.0, -3.0, 0.0, 0.0], monthly_income=10_000.0)
    got = compute(frame, ["payment_to_income"], FeatureConfig(apr=0.0))["payment_to_income"]
    np.testing.assert_allclose(got, [0.1, 0.05, 0.01, 0.01])


def test_living_cost_scales_with_dependents_from_config():
    cfg = FeatureConfig(living_cost_base=100, living_cost_per_dependent=50)
    got = compute(FRAME, ["residual_income"], cfg)["residual_income"]
    np.testing.assert_allclose(got, [3000 - 600 - 200, -200 - 100, NAN, -1000 - 150], equal_nan=True)
    without = compute(FRAME.drop(columns="dependents"), ["residual_income"], cfg)["residual_income"]
    np.testing.assert_allclose(without, [2300, -300, NAN, -1100], equal_nan=True)


def test_optional_inputs_become_required_scoring_columns_when_present_at_training():
    specs = [BY_NAME["residual_income"], BY_NAME["payment_to_income"]]
    assert "dependents" in used_inputs(specs, set(FRAME.columns))
    assert "requested_term_months" in used_inputs(specs, set(FRAME.columns))
    assert "dependents" not in used_inputs(specs, set(FRAME.columns) - {"dependents"})


def test_utilization_falls_back_through_its_input_sets():
    frame = pd.DataFrame({"statement_balance_m1": [200.0, -10.0], "revolving_limit": [400.0, 400.0]})
    np.testing.assert_allclose(compute(frame, ["utilization"])["utilization"], [0.5, 0.0])
    direct = pd.DataFrame({"revolving_utilization": [-0.2, 0.4, 9.0, NAN]})
    np.testing.assert_allclose(compute(direct, ["utilization"])["utilization"], [0.0, 0.4, 1.5, NAN], equal_nan=True)


def test_safe_ratio_defined_results():
    num = pd.Series([1.0, 0.0, 5.0, -5.0, 1.0, NAN, 1.0, 1e9, np.inf])
    den = pd.Series([4.0, 0.0, 0.0, 0.0, -2.0, 1.0, NAN, 1e-9, 1.0])
    np.testing.assert_allclose(
        safe_ratio(num, den, cap=10.0), [0.25, 0.0, 10.0, 0.0, 10.0, NAN, NAN, 10.0, 10.0], equal_nan=True
    )
    assert safe_ratio(pd.Series([-50.0]), pd.Series([1.0]), cap=10.0).iloc[0] == -10.0


def test_slope_time_axis_latest_first():
    # columns m1 (latest), m2, m3: 300, 200, 100 grew by 100 a month
    np.testing.assert_allclose(slope(np.array([[300.0, 200.0, 100.0]])), [100.0])
    np.testing.assert_allclose(slope(np.array([[100.0, 200.0, 300.0]])), [-100.0])
    # missing months are skipped, not treated as 0: m1=NaN, m2=5, m3=1 -> +4 a month
    np.testing.assert_allclose(slope(np.array([[NAN, 5.0, 1.0]])), [4.0])
    assert np.isnan(slope(np.array([[NAN, 5.0, NAN], [NAN, NAN, NAN]]))).all()
    assert np.isnan(slope(np.empty((2, 0)))).all()


def test_slope_matches_polyfit_on_complete_and_gappy_rows():
    rng = np.random.default_rng(0)
    m = rng.normal(0, 100, (60, 6))
    m[rng.random(m.shape) < 0.25] = NAN
    m[0], m[1, 1:] = NAN, NAN  # rows with no and with one known month: no slope
    known = (~np.isnan(m)).sum(axis=1)
    assert (known < 2).any() and (known == 6).any() and ((known >= 2) & (known < 6)).any()  # every case below
    got = slope(m)
    t = -np.arange(1, 7, dtype=float)
    for row, value in zip(m, got, strict=True):
        ok = ~np.isnan(row)
        if ok.sum() < 2:
            assert np.isnan(value)
        else:
            assert value == pytest.approx(np.polyfit(t[ok], row[ok], 1)[0], rel=1e-9, abs=1e-9)
    assert (~np.isnan(m)).all(axis=1).any() and np.isnan(m).any(axis=1).any()  # both code paths exercised


def test_payment_ratios_latest_first_and_clipped():
    got = payment_ratios(FRAME)
    assert got.shape == (4, 3)
    np.testing.assert_allclose(got[0], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(got[3], [NAN, 1.0, 1.0], equal_nan=True)


def test_rising_and_falling_trends_have_the_documented_sign():
    rising = pd.DataFrame(
        {
            "statement_balance_m1": [900.0],  # latest, highest
            "statement_balance_m2": [600.0],
            "statement_balance_m3": [300.0],
            "payment_amount_m1": [90.0],  # paying 10% of the latest bill, 100% of the oldest
            "payment_amount_m2": [300.0],
            "payment_amount_m3": [300.0],
        }
    )
    got = compute(rising, ["balance_trend", "payment_trend"])
    assert got["balance_trend"].iloc[0] == pytest.approx(300 / 600)
    assert got["payment_trend"].iloc[0] == pytest.approx(-0.45)  # ratios 1, 0.5, 0.1 oldest->latest
    assert BY_NAME["balance_trend"].direction == 1 and BY_NAME["payment_trend"].direction == -1


def test_input_frame_is_not_modified():
    frame = FRAME.copy()
    frame.loc[10, "age"] = np.inf
    before = frame.copy()
    table = compute(frame)
    pd.testing.assert_frame_equal(frame, before)
    assert np.isnan(table.loc[10, "age"])  # a non-finite passthrough becomes missing


def test_feature_columns_are_fresh_arrays_not_views_of_the_input_or_of_each_other():
    """Features share memoised columns and history matrices while computed; what they return may not."""
    columns = feature_columns(FRAME, DICTIONARY, CFG, CATS)
    arrays = {name: col for name, col in columns.items() if isinstance(col, np.ndarray)}
    inputs = [FRAME[c].to_numpy() for c in FRAME.columns if FRAME[c].dtype == float]
    for name, col in arrays.items():
        assert col.dtype == np.float64 and col.flags.writeable, name
        assert not any(np.shares_memory(col, x) for x in inputs), name
        assert not any(np.shares_memory(col, other) for o, other in arrays.items() if o != name), name


@pytest.mark.parametrize("months", [3, 8, 9, 12])
def test_late_months_match_a_plain_reduction_for_any_history_length(months):
    """Up to 8 months the late months are read from one byte per row, beyond that from the matrix: same values."""
    rng = np.random.default_rng(months)
    status = rng.choice([-2.0, -1.0, 0.0, 1.0, 2.0, NAN], size=(300, months))
    status[:5] = NAN  # whole history missing
    frame = pd.DataFrame({f"repayment_status_m{m + 1}": status[:, m] for m in range(months)})
    got = compute(frame, ["months_delinquent", "months_since_delinquent"])
    late, gone = status >= 1, np.isnan(status).all(axis=1)
    since = np.where(late.any(axis=1), late.argmax(axis=1), months)
    np.testing.assert_array_equal(got["months_delinquent"], np.where(gone, NAN, late.sum(axis=1)))
    np.testing.assert_array_equal(got["months_since_delinquent"], np.where(gone, NAN, since))


# ---------------------------------------------------------------- skipped features


def test_absent_inputs_skip_features_and_say_why():
    columns = set(FRAME.columns) - {"monthly_income", "revolving_balance", "revolving_limit"}
    selection = select_features(columns, DICTIONARY)
    used = {s.name for s in selection.used}
    for name in ("debt_to_income", "residual_income", "payment_to_income", "requested_to_income", "limit_to_income"):
        assert name not in used
        assert "absent: " in selection.skipped[name] and "monthly_income" in selection.skipped[name]
    assert selection.skipped["debt_to_income"] == "needs monthly_income+monthly_debt_payments (absent: monthly_income)"
    assert "utilization" in used  # via revolving_utilization
    assert "statement_utilization_mean" in selection.skipped
    assert set(selection.skipped) | used == set(BY_NAME)


def test_skip_reason_names_the_nearest_input_set_not_optional_columns():
    columns = set(FRAME.columns) - {"monthly_income", "dependents", "revolving_balance", "statement_balance_m1"}
    selection = select_features(columns, DICTIONARY)
    assert selection.skipped["residual_income"].endswith("(absent: monthly_income)")
    assert selection.skipped["residual_income"].startswith(
        "needs monthly_income+monthly_debt_payments+dependents or monthly_income+monthly_debt_payments"
    )
    assert "utilization" in {s.name for s in selection.used}  # revolving_utilization is enough
    partly = select_features(columns - {"revolving_utilization"}, DICTIONARY)
    assert partly.skipped["utilization"].endswith("(absent: revolving_balance)")  # ties: the first set


def test_entirely_missing_columns_count_as_absent():
    selection = select_features(set(FRAME.columns), DICTIONARY, empty={"monthly_debt_payments"})
    assert selection.skipped["debt_to_income"].endswith("(all missing: monthly_debt_payments)")
    assert "debt_to_income" not in {s.name for s in selection.used}


def test_history_free_data_skips_every_history_feature():
    columns = {c for c in FRAME.columns if not c.endswith(("_m1", "_m2", "_m3"))}
    selection = select_features(columns, DICTIONARY)
    skipped_history = {s.name for s in DICTIONARY if s.history}
    assert skipped_history <= set(selection.skipped)
    assert not any(s.history for s in selection.used)


# ---------------------------------------------------------------- the output schema


def test_feature_schema_accepts_in_contract_rows():
    table = compute(FRAME.loc[[10, 11, 12]])
    feature_schema(DICTIONARY).validate(table, lazy=True)


@pytest.mark.parametrize(
    ("name", "bad"),
    [("payment_ratio_latest", 1.5), ("debt_to_income", -0.1), ("worst_status", 12.0), ("utilization", np.inf)],
)
def test_feature_schema_catches_a_bad_value(name, bad):
    table = compute(FRAME.loc[[10, 11, 12]])
    table.loc[11, name] = bad
    with pytest.raises(pae.SchemaErrors) as err:
        feature_schema(DICTIONARY).validate(table, lazy=True)
    assert name in str(err.value)


def test_feature_schema_is_strict_about_columns():
    table = compute(FRAME.loc[[10]]).assign(surprise=1.0)
    with pytest.raises(pae.SchemaErrors):
        feature_schema(DICTIONARY).validate(table, lazy=True)


def test_out_of_contract_row_is_caught_by_the_schema_not_by_inf():
    table = compute(FRAME)  # row 13 has negative income, which the contract rejects
    assert not np.isinf(table.select_dtypes("number").to_numpy()).any()
    with pytest.raises(pae.SchemaErrors) as err:
        feature_schema(DICTIONARY).validate(table, lazy=True)
    assert "monthly_income" in str(err.value)


# ---------------------------------------------------------------- properties

MONTHS = 3
amount = st.one_of(st.just(NAN), st.just(0.0), st.floats(-1e4, 1e7, allow_nan=False, allow_infinity=False))
status = st.one_of(st.just(NAN), st.integers(-2, 9).map(float))


@st.composite
def frames(draw):
    n = draw(st.integers(1, 25))

    def col(elements):
        return draw(hnp.arrays(float, n, elements=elements))

    data = {
        c: col(amount)
        for c in (
            "monthly_income",
            "monthly_debt_payments",
            "requested_amount",
            "revolving_balance",
            "revolving_limit",
            "revolving_utilization",
            "credit_history_months",
            "age",
            "employment_years",
            "open_credit_lines",
            "bank_months",
        )
    }
    for c in ("dependents", "requested_term_months", "delinquencies_30d", "delinquencies_60d", "delinquencies_90d"):
        data[c] = col(st.one_of(st.just(NAN), st.integers(-1, 400).map(float)))
    for m in range(1, MONTHS + 1):
        data[f"statement_balance_m{m}"] = col(amount)
        data[f"payment_amount_m{m}"] = col(amount)
        data[f"repayment_status_m{m}"] = col(status)
    data["housing"] = draw(st.lists(st.sampled_from(["own", "rent", "boat", None]), min_size=n, max_size=n))
    data["channel"] = draw(st.lists(st.sampled_from(["web", "branch", None]), min_size=n, max_size=n))
    index = draw(st.permutations(range(100, 100 + n)))
    return pd.DataFrame(data, index=list(index))


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=frames(), apr=st.sampled_from([0.0, 0.18, 1.5]), credit=st.sampled_from(["instalment", "revolving"]))
def test_invariants(frame, apr, credit):
    cfg = FeatureConfig(apr=apr, credit_type=credit)
    table = compute_features(frame, DICTIONARY, cfg, CATS)
    # row count, order and index preserved; one column per spec
    assert list(table.index) == list(frame.index)
    assert list(table.columns) == [s.name for s in DICTIONARY]
    numeric = table.drop(columns=["housing", "channel"]).to_numpy(dtype=float)
    assert not np.isinf(numeric).any()

    def ok(name, lo, hi):
        values = table[name].dropna()
        assert ((values >= lo) & (values <= hi)).all(), (name, values.tolist())

    for name in ("debt_to_income", "payment_to_income", "requested_to_income", "limit_to_income"):
        ok(name, 0, cfg.ratio_cap)
    for name in ("utilization", "statement_utilization_mean"):
        ok(name, 0, cfg.utilization_cap)
    for name in ("payment_ratio_latest", "payment_ratio_mean", "payment_ratio_min"):
        ok(name, 0, 1)
    for name in ("balance_trend", "payment_trend"):
        ok(name, -1, 1)
    ok("months_delinquent", 0, MONTHS)
    ok("months_since_delinquent", 0, MONTHS)
    ok("worst_status", -2, 9)
    ok("delinquency_severity", 0, np.inf)
    ok("delinquency_count", 0, np.inf)
    both = table[["payment_ratio_min", "payment_ratio_mean"]].dropna()
    assert (both["payment_ratio_min"] <= both["payment_ratio_mean"] + 1e-12).all()
    # income known and debt known -> debt_to_income known
    known = frame["monthly_income"].notna() & frame["monthly_debt_payments"].notna()
    assert table.loc[known, "debt_to_income"].notna().all()
    # features are row-wise: reversing the rows reverses the table
    backwards = compute_features(frame.iloc[::-1], DICTIONARY, cfg, CATS)
    pd.testing.assert_frame_equal(backwards.iloc[::-1], table)


# ---------------------------------------------------------------- generated docs


def test_committed_features_doc_is_current():
    expected = rendered(load_config(ROOT / "configs" / "default.yaml"))["features.md"]
    committed = (ROOT / "docs" / "features.md").read_text(encoding="utf-8")
    assert committed == expected, "docs/features.md is stale: regenerate it with `make docs`"


def test_features_doc_lists_every_feature_and_the_edge_cases():
    text = dictionary_markdown(ContractConfig(), FeatureConfig())
    for spec in CORE_FEATURES:
        assert f"| `{spec.name}` |" in text
    assert "## Edge cases" in text
    for topic in ("Zero income", "Zero limit", "Negative balances", "Zero statements", "All-missing history"):
        assert f"**{topic}" in text


def test_an_unseen_category_is_missing_in_the_features_and_the_matrix(recwarn):
    """A housing value outside the training categories becomes missing (code NaN in the model's matrix), the same
    for the frame and the scorer's columns, and without the pandas warning that this will raise in pandas 4."""
    from pipeline.features import feature_columns
    from pipeline.model.boosters import to_matrix

    frame = pd.DataFrame({"housing": ["own", "castle", None, "rent"]})
    table = compute(frame, ["housing"])
    assert table["housing"].astype(object).tolist()[::3] == ["own", "rent"]
    assert table["housing"].isna().tolist() == [False, True, True, False]
    matrix = to_matrix(feature_columns(frame, [BY_NAME["housing"]], CFG, CATS), ["housing"])
    np.testing.assert_array_equal(matrix, to_matrix(table, ["housing"]))
    assert np.isnan(matrix[1:3, 0]).all() and matrix[0, 0] == CATS["housing"].index("own")
    assert not [w for w in recwarn if "categories" in str(w.message)]


@pytest.mark.parametrize("dtype", [object, "str", "category"])
def test_categorical_codes_equal_the_pandas_lookup(dtype, recwarn):
    """`categorical` (one factorize, a lookup of the few distinct values) gives pandas' own codes: unseen, missing
    and non-text cells are missing, whatever the column's dtype, and without the pandas 4 warning."""
    from pipeline.features.functions import categorical

    cells = ["own", "castle", None, "rent", "own", np.nan, "Own", "mortgage", "rent"]
    values = pd.Series(cells, dtype=dtype)
    known = CATS["housing"]
    got = categorical(values, known)
    cells_ = values.astype(object)
    expected = pd.Categorical(cells_.where(cells_.isin(known)), categories=known)
    assert got.dtype == expected.dtype and got.codes.dtype == expected.codes.dtype
    np.testing.assert_array_equal(got.codes, expected.codes)
    assert not [w for w in recwarn if "categories" in str(w.message)]


def test_categorical_of_numbers_and_without_known_categories():
    from pipeline.features.functions import categorical

    mixed = pd.Series(["own", 3, 1.0, True, None], dtype=object)
    np.testing.assert_array_equal(categorical(mixed, ["own", "rent"]).codes, [0, -1, -1, -1, -1])
    np.testing.assert_array_equal(categorical(pd.Series([NAN, NAN]), ["own"]).codes, [-1, -1])
    free = categorical(pd.Series(["b", "a", None]), None)
    assert free.categories.tolist() == ["a", "b"] and free.codes.tolist() == [1, 0, -1]
