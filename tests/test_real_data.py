"""The real data sets end to end: train on Taiwan, then score a raw copy with 1% mangled rows
through the config's source mapping; German trains with cross-validation and no limit model."""

import json

import numpy as np
import pandas as pd
import pytest

from helpers import ROOT, SHARED_DATA
from pipeline.batch.job import score_file
from pipeline.config import load_config, parse_config
from pipeline.data.sources import load_source
from pipeline.data.validate import validate_frame
from pipeline.model.train import fit

pytestmark = pytest.mark.slow
TAIWAN = SHARED_DATA / "taiwan_credit_card_default.csv.gz"


def quick(path: str, **overrides):
    """The real config with fewer boosting rounds: these tests check behaviour, docs/model-quality.md the quality."""
    data = load_config(ROOT / path).model_dump(mode="json")
    for key, value in overrides.items():
        data[key] = {**data[key], **value}
    return parse_config(data)


@pytest.fixture(scope="module")
def taiwan():
    cfg = quick("configs/taiwan.yaml", pd_model={"num_boost_round": 150}, limit_model={"num_boost_round": 100})
    frame = load_source(cfg).frame
    valid = validate_frame(frame, cfg.contract, str(TAIWAN), required=["applicant_id", "defaulted"]).valid
    return cfg, fit(valid, cfg)


def test_taiwan_model_uses_history_and_never_protected_attributes(taiwan):
    cfg, result = taiwan
    names = set(result.scorer.pd_model.booster.feature_name())
    assert {"latest_status", "repayment_status_m1", "utilization"} <= names
    assert not names & {"sex", "marital_status"}
    assert result.metrics["test_roc_auc"] > 0.75
    assert any("monthly_income" in note for note in result.notes)  # income features skipped, and said so


def test_scoring_raw_taiwan_with_one_percent_mangled_rows_loses_nothing(taiwan, tmp_path):
    cfg, result = taiwan
    raw = pd.read_csv(TAIWAN, dtype=str)
    rng = np.random.default_rng(0)
    bad = np.sort(rng.choice(len(raw), 300, replace=False))
    kinds = ["AGE", "LIMIT_BAL", "PAY_0", "PAY_AMT1", "EDUCATION", "BILL_AMT3"]
    values = {"AGE": "abc", "LIMIT_BAL": "-5", "PAY_0": "12", "PAY_AMT1": "-1", "EDUCATION": "9", "BILL_AMT3": "n/a?"}
    for i, row in enumerate(bad):
        col = kinds[i % len(kinds)]
        raw.loc[row, col] = values[col]
    path = tmp_path / "taiwan_mangled.csv"
    raw.to_csv(path, index=False)
    out = tmp_path / "scores.parquet"
    summary = score_file("taiwan", path, out, cfg, chunk_rows=7000, scorer=result.scorer, progress=False)
    assert summary["rows_in"] == 30_000 == summary["rows_scored"] + summary["rows_rejected"]
    assert summary["rows_rejected"] == 300
    rejects = pd.read_parquet(tmp_path / "scores.rejects.parquet")
    assert sorted(rejects["row_number"].unique()) == list(bad + 1)
    assert {
        "age: type:int",
        "revolving_limit: min(0)",
        "repayment_status_m1: range(-2..9)",
        "payment_amount_m1: min(0)",
        "education: allowed_values",
        "statement_balance_m3: type:float",
    } <= set(summary["rejected_by_rule"])
    scores = pd.read_parquet(out)
    assert len(scores) == 29_700 and not set(scores["row_number"]) & set(bad + 1)
    assert json.loads((tmp_path / "scores.summary.json").read_text())["rows_rejected"] == 300


def test_german_trains_with_cross_validation_and_table_limits():
    cfg = quick("configs/german.yaml", pd_model={"num_boost_round": 300})
    valid = validate_frame(load_source(cfg).frame, cfg.contract, "german", required=["applicant_id", "defaulted"]).valid
    result = fit(valid, cfg)
    assert result.metrics["cv_folds"] == 5 and result.metrics["cv_roc_auc_mean"] > 0.72
    assert result.scorer.limit_model is None
    assert any("no granted_limit" in n for n in result.notes)
    approved = result.test_scores[result.test_scores["decision"] == "approve"]
    # No income: the grade's table limit bounds the offer, which never exceeds what was asked (instalment loans).
    table = approved["grade"].map({g.name: g.table_limit for g in cfg.scorecard.grades})
    assert (approved["credit_limit"] <= table).all() and (approved["credit_limit"] > 0).all()
    assert (approved["offer_amount"] <= approved["requested_amount"]).all()
    assert (approved["credit_limit"] == approved["offer_amount"]).all()
    assert not set(result.scorer.pd_model.booster.feature_name()) & {"personal_status_and_sex", "foreign_worker"}
