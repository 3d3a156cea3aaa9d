"""The account snapshot contract quarantines bad rows with reasons and loses no rows."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers import examples
from pipeline.accounts.contract import (
    REJECT_COLUMNS,
    RULE_KEY,
    RULE_MONTH_START,
    RULE_NOT_AFTER,
    RULE_PAIRED,
    account_columns,
    validate_accounts,
)
from pipeline.accounts.settings import SyntheticPortfolioSettings
from pipeline.accounts.synthetic import synthetic_portfolio
from pipeline.errors import DataContractError, RejectionBudgetExceeded


def as_read_from_csv(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as text, the way a CSV arrives, so type failures can be planted."""
    return pd.read_csv(io.StringIO(frame.to_csv(index=False)), dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return as_read_from_csv(synthetic_portfolio(SyntheticPortfolioSettings(accounts=60, months=8, snapshots=2)))


# Each corruption: (column, bad text, expected rule). None as text means an empty cell.
CORRUPTIONS = {
    "negative_limit": ("credit_limit", "-5", "min(0)"),
    "status_out_of_range": ("repayment_status_m2", "12", "range(-2..9)"),
    "status_not_whole": ("repayment_status_m1", "1.5", "integer"),
    "payment_not_number": ("payment_amount_m3", "abc", "type:float"),
    "payment_negative": ("payment_amount_m1", "-1", "min(0)"),
    "missing_id": ("account_id", "", "not_null"),
    "missing_limit": ("credit_limit", "", "not_null"),
    "bad_date": ("snapshot_month", "2024-13-01", "type:date"),
    "mid_month": ("snapshot_month", "2024-08-15", RULE_MONTH_START),
    "unknown_product": ("product", "mortgage", "allowed_values"),
    "infinite_balance": ("balance", "inf", "finite"),
    "default_not_binary": ("defaulted_next", "2", "range(0..1)"),
    "change_after_snapshot": ("last_limit_change_month", "2030-01-01", RULE_NOT_AFTER),
    "direction_unknown": ("last_limit_change_direction", "sideways", "allowed_values"),
}


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 119), st.sampled_from(sorted(CORRUPTIONS))), max_size=12))
# planted rows, one with an unreadable snapshot date: the per-row checks below always run
@example([(3, "bad_date"), (3, "change_after_snapshot"), (40, "missing_id"), (40, "default_not_binary")])
@example([(0, "change_after_snapshot"), (0, "direction_unknown")])  # found by hypothesis: the second resets the month
def test_bad_rows_are_quarantined_with_their_reason_and_no_row_is_lost(clean, plants):
    frame = clean.copy()
    expected: dict[int, set[tuple[str, str]]] = {}
    for row, kind in plants:
        column, text, rule = CORRUPTIONS[kind]
        frame.at[row, column] = text
        companion = {"last_limit_change_month": ("last_limit_change_direction", "increase"),
                     "last_limit_change_direction": ("last_limit_change_month", "2020-01-01")}.get(column)  # fmt: skip
        if companion:  # a month needs its direction and the reverse (else a second failure)
            frame.at[row, companion[0]] = companion[1]
        pairs = expected.setdefault(row, set())
        written = {column, companion[0]} if companion else {column}
        pairs -= {pair for pair in pairs if pair[0] in written}  # a later plant in the same cells overwrites them
        pairs.add((column, rule))
    for pairs in expected.values():  # "after the snapshot" cannot be judged when the snapshot date is unreadable
        if ("snapshot_month", "type:date") in pairs:
            pairs.discard(("last_limit_change_month", RULE_NOT_AFTER))
    result = validate_accounts(frame, history_months=6)
    assert result.rows_in == result.rows_valid + result.rows_rejected == len(frame)
    assert list(result.rejects.columns) == REJECT_COLUMNS
    rejected = set(result.rejects["row_number"] - 1)
    assert rejected == set(expected)  # every planted row, and no clean row
    found = set(zip(result.rejects["row_number"] - 1, result.rejects["column"], result.rejects["rule"], strict=True))
    for row, pairs in expected.items():
        for column, rule in pairs:
            assert (row, column, rule) in found
    assert set(result.valid["row_number"] - 1).isdisjoint(rejected)


def test_clean_synthetic_rows_all_pass_and_extra_columns_are_listed(clean):
    result = validate_accounts(clean, history_months=6)
    assert result.rows_rejected == 0 and result.rows_valid == len(clean)
    assert result.ignored_columns == ["job_loss"]
    assert pd.api.types.is_datetime64_any_dtype(result.valid["snapshot_month"])


def test_a_duplicated_key_rejects_every_copy_but_the_same_account_may_have_other_months(clean):
    assert clean["account_id"].duplicated().any()  # two months per account are fine
    frame = clean.copy()
    frame.loc[1, ["account_id", "snapshot_month"]] = frame.loc[0, ["account_id", "snapshot_month"]].to_numpy()
    result = validate_accounts(frame, history_months=6)
    bad = result.rejects[result.rejects["rule"] == RULE_KEY]
    assert sorted(bad["row_number"]) == [1, 2] and result.rows_rejected == 2


def test_review_history_must_be_paired(clean):
    frame = clean.copy()
    frame.loc[3, "last_limit_change_month"] = ""
    frame.loc[3, "last_limit_change_direction"] = "decrease"
    result = validate_accounts(frame, history_months=6)
    assert set(result.rejects["rule"]) == {RULE_PAIRED}
    assert result.rejects.loc[0, "account_id"] == frame.loc[3, "account_id"]


def test_table_level_failures_and_the_rejection_budget(clean):
    with pytest.raises(DataContractError, match="no data rows"):
        validate_accounts(clean.iloc[:0])
    with pytest.raises(DataContractError, match="snapshot_month"):
        validate_accounts(clean.drop(columns="snapshot_month"))
    frame = clean.copy()
    frame.loc[:9, "credit_limit"] = "-1"
    with pytest.raises(RejectionBudgetExceeded) as err:
        validate_accounts(frame, rejection_budget=0.05)
    assert err.value.result.rows_rejected == 10


def test_optional_columns_may_be_absent_and_history_length_follows_the_setting(clean):
    minimal = clean[["account_id", "snapshot_month", "credit_limit", "balance"]]
    result = validate_accounts(minimal, history_months=3)
    assert result.rows_rejected == 0 and "monthly_income" in result.absent_columns
    names = [c.name for c in account_columns(3)]
    assert "repayment_status_m3" in names and "repayment_status_m4" not in names
    assert np.isnan(result.valid.get("monthly_income", pd.Series([np.nan]))).all()
