"""A lender's own file, as published, mapped by YAML alone (docs/own-data.md): one test per quirk."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.stages.files import Paths
from pipeline.stages.runner import run_until

# As a lender publishes it: pandas' row-number column with an empty header cell, a debt *ratio*
# instead of an amount, annual income, percent strings, terms as text, special codes 96/98, no id.
PUBLISHED = """\
,Age,AnnualIncome,DebtRatio,RevolvingUtil,Term,YearsEmployed,Dependents,Late90,Defaulted
0,35,60000,0.25,13.5%, 36 months,10+ years,2,0,0
1,52,84000,0.10,2.0%, 60 months,< 1 year,0,98,1
2,41,,0.40,55%, 36 months,3 years,96,1,0
3,29,36000,0.30,80.25%, 12 months,2 years,1,0,1
4,29,36000,0.30,80.25%, 12 months,2 years,1,0,1
"""

MAPPING = {
    "name": "lender",
    "source": {
        "kind": "file",
        "path": "published.csv",
        "columns": {
            "age": "Age",
            "monthly_income": {"source": "AnnualIncome", "scale": "1/12"},
            "monthly_debt_payments": {"expr": "DebtRatio * AnnualIncome / 12"},
            "revolving_utilization": {"source": "RevolvingUtil", "parse": "percent"},
            "requested_term_months": {"source": "Term", "parse": "months"},
            "employment_years": {"source": "YearsEmployed", "parse": "years"},
            "dependents": {"source": "Dependents", "na_values": [96, 98]},
            "delinquencies_90d": {"source": "Late90", "na_values": [96, 98], "reason": "Was 90+ days late"},
            "defaulted": "Defaulted",
        },
    },
    "validation": {"duplicate_rows": "reject"},
}


@pytest.fixture
def lender(tmp_path):
    (tmp_path / "published.csv").write_text(PUBLISHED)
    mapping = {**MAPPING, "output_dir": str(tmp_path / "output")}
    path = tmp_path / "lender.yaml"
    path.write_text(yaml.safe_dump(mapping))
    cfg = load_config(path)
    results = run_until("validate", cfg, str(path))
    valid = pd.read_parquet(Paths(cfg.run_dir).valid).set_index("row_number")
    return cfg, results, valid


def test_unnamed_index_column_is_named_as_pandas_does_and_listed_as_ignored(lender):
    _, results, _ = lender
    report = json.loads((Paths(lender[0].run_dir).ingest_report).read_text())
    assert "Unnamed: 0" in report["ignored_columns"]
    assert results["validate"]["rows_in"] == 5


def test_ratio_becomes_an_amount_and_annual_income_monthly(lender):
    _, _, valid = lender
    assert valid.loc[1, "monthly_income"] == pytest.approx(5000.0)
    assert valid.loc[1, "monthly_debt_payments"] == pytest.approx(0.25 * 60000 / 12)
    assert np.isnan(valid.loc[3, "monthly_debt_payments"])  # income missing: the amount is unknown, not 0


def test_percent_and_duration_strings_become_numbers(lender):
    _, _, valid = lender
    assert valid.loc[1, "revolving_utilization"] == pytest.approx(0.135)
    assert valid.loc[1, "requested_term_months"] == 36
    assert valid.loc[1, "employment_years"] == 10 and valid.loc[2, "employment_years"] == 0


def test_special_codes_become_missing_not_numbers(lender):
    _, _, valid = lender
    assert np.isnan(valid.loc[2, "delinquencies_90d"])  # 98
    assert np.isnan(valid.loc[3, "dependents"])  # 96


def test_no_id_column_rows_are_numbered_and_exact_duplicates_counted_and_rejected(lender):
    _, results, valid = lender
    assert list(valid["applicant_id"]) == ["1", "2", "3", "4"]
    assert results["validate"]["duplicate_rows"] == 1
    assert results["validate"]["rejected_by_rule"] == {"<row>: duplicate_row": 1}


def test_reason_text_of_a_mapped_column_is_set_in_the_mapping(lender):
    from pipeline.features import feature_dictionary

    cfg = lender[0]
    assert cfg.contract.reasons == {"delinquencies_90d": "Was 90+ days late"}
    with pytest.raises(ConfigError, match="no feature named"):
        feature_dictionary(cfg.contract.model_copy(update={"reasons": {"not_a_feature": "x"}}))


def test_a_core_range_can_be_widened_within_its_hard_bound(tmp_path):
    (tmp_path / "published.csv").write_text(PUBLISHED.replace("52,84000", "109,84000"))
    base = {**MAPPING, "output_dir": str(tmp_path / "output"), "validation": {"rejection_budget": 0.5}}
    strict = load_config_from(tmp_path, base)
    assert run_until("validate", strict)["validate"]["rejected_by_rule"] == {"age: range(18..100)": 1}
    widened = load_config_from(tmp_path, {**base, "contract": {"ranges": {"age": {"max": 120}}}})
    assert run_until("validate", widened)["validate"]["rows_rejected"] == 0
    with pytest.raises(ConfigError, match="above the hard bound 120"):
        load_config_from(tmp_path, {**base, "contract": {"ranges": {"age": {"max": 150}}}})


def test_an_unsafe_expression_is_refused_when_the_config_loads(tmp_path):
    bad = {**MAPPING, "source": {**MAPPING["source"], "columns": {"age": {"expr": "__import__('os').getcwd()"}}}}
    with pytest.raises(ConfigError, match=r"columns\.age: expr .*is not allowed"):
        load_config_from(tmp_path, bad)


def load_config_from(folder, data):
    path = folder / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = load_config(path)
    from pipeline.data.contract import contract_columns

    contract_columns(cfg.contract)  # range overrides are checked when the contract is built
    return cfg
