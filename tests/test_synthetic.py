"""The embedded default data: seeded, within the contract, with the designed risk structure."""

import numpy as np
import pandas as pd
import pytest

from pipeline.config import ContractConfig, SyntheticSource
from pipeline.data.contract import contract_columns
from pipeline.data.io import frame_digest
from pipeline.data.sources.synthetic import generate
from pipeline.data.validate import validate_frame

CONTRACT = ContractConfig(protected=["gender"])


@pytest.fixture(scope="module")
def data():
    return generate(SyntheticSource(rows=20_000, seed=42), history_months=6)


def test_same_seed_same_data_other_seed_other_data():
    a = generate(SyntheticSource(rows=2000, seed=5), 6)
    b = generate(SyntheticSource(rows=2000, seed=5), 6)
    c = generate(SyntheticSource(rows=2000, seed=6), 6)
    pd.testing.assert_frame_equal(a, b)
    assert frame_digest(a) == frame_digest(b) != frame_digest(c)


def test_columns_and_ranges_hold_the_contract(data):
    expected = {c.name for c in contract_columns(CONTRACT)} - {"revolving_utilization"}
    assert set(data.columns) == expected
    result = validate_frame(data, CONTRACT, "synthetic", required=["applicant_id", "defaulted"])
    assert result.rows_rejected == 0 and result.rows_valid == len(data) == 20_000


def test_default_rate_is_as_configured(data):
    assert abs(data["defaulted"].mean() - 0.10) < 0.012


def test_default_rate_rises_with_debt_to_income(data):
    dti = data["monthly_debt_payments"] / data["monthly_income"]
    rates = data.groupby(pd.qcut(dti, 5, labels=False))["defaulted"].mean().to_numpy()
    assert np.all(np.diff(rates) > 0), rates
    assert rates[-1] > 3 * rates[0]


def test_default_rate_rises_with_utilisation_and_delinquency(data):
    util = data["revolving_balance"] / data["revolving_limit"]
    by_util = data.groupby(pd.qcut(util, 4, labels=False))["defaulted"].mean().to_numpy()
    assert by_util[-1] > 1.5 * by_util[0]
    delinquent = data["delinquencies_30d"] > 0
    assert data.loc[delinquent, "defaulted"].mean() > 1.5 * data.loc[~delinquent, "defaulted"].mean()


def test_granted_limits_grow_with_income_and_shrink_with_risk(data):
    good = data["defaulted"] == 0
    assert (
        np.corrcoef(
            np.log(data["monthly_income"].fillna(data["monthly_income"].median())), np.log(data["granted_limit"])
        )[0, 1]
        > 0.5
    )
    assert data.loc[~good, "granted_limit"].median() < data.loc[good, "granted_limit"].median()


def test_some_values_are_missing_like_real_files(data):
    assert 0.005 < data["monthly_income"].isna().mean() < 0.02
    assert data["applicant_id"].is_unique
