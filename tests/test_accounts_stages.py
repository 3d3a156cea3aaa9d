"""`kind: accounts` through the source and the data stages: the portfolio or a mapped file onto the account
contract, validation with reasons, behaviour features with the skipped ones reported."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pipeline.config import parse_config
from pipeline.data.sources import check_targets, load_source
from pipeline.errors import ConfigError
from pipeline.stages.runner import run_until


def accounts_config(tmp, **extra):
    return parse_config(
        {
            "name": "acc",
            "kind": "accounts",
            "output_dir": str(tmp / "output"),
            "accounts": {"portfolio": {"accounts": 300, "seed": 4}},
            **extra,
        }
    )


def test_synthetic_source_is_the_portfolio_and_its_settings_live_under_accounts(tmp_path):
    data = load_source(accounts_config(tmp_path))
    assert len(data.frame) == 300 and data.frame["account_id"].is_unique
    assert "synthetic portfolio(seed=4, accounts=300)" == data.origin
    with pytest.raises(ConfigError, match="source.rows: with kind: accounts .* accounts.portfolio"):
        load_source(accounts_config(tmp_path, source={"kind": "synthetic", "rows": 500}))


def test_a_mapped_file_fills_account_id_and_unknown_targets_are_refused(tmp_path):
    book = load_source(accounts_config(tmp_path)).frame.drop(columns=["monthly_income", "job_loss"])
    raw = book.rename(columns={"account_id": "ACCT", "credit_limit": "LIMIT"})
    raw.to_csv(tmp_path / "book.csv", index=False)
    columns = {c: c for c in raw.columns if c != "ACCT"} | {"credit_limit": "LIMIT"}
    columns.pop("LIMIT")
    source = {"kind": "file", "path": str(tmp_path / "book.csv"), "id_column": "ACCT", "columns": columns}
    cfg = accounts_config(tmp_path, source=source)
    mapped = load_source(cfg).frame
    assert "account_id" in mapped and "applicant_id" not in mapped
    assert mapped["account_id"].astype(str).tolist() == book["account_id"].tolist()
    results = run_until("features", cfg, None)
    assert results["validate"]["rows_in"] == results["validate"]["rows_valid"] == 300
    assert results["validate"]["kind"] == "accounts"
    assert results["features"]["skipped"] == {"limit_to_income": "input(s) absent: monthly_income"}
    features = pd.read_parquet(tmp_path / "output" / "acc" / "features" / "features.parquet")
    assert {"row_number", "account_id", "defaulted_next", "utilisation_now"} <= set(features.columns)
    bad = accounts_config(tmp_path, source={**source, "columns": {**columns, "age": "balance"}})
    with pytest.raises(ConfigError, match="account contract does not know: age"):
        check_targets(bad)


def test_validate_quarantines_bad_snapshots_with_reasons(tmp_path):
    cfg = accounts_config(tmp_path)
    run_until("ingest", cfg, None)
    ingested = tmp_path / "output" / "acc" / "ingest" / "applicants.parquet"
    frame = pd.read_parquet(ingested).astype({"balance": str})
    frame.loc[5, "balance"] = "lots"
    frame.loc[7, "snapshot_month"] = pd.Timestamp("2024-12-15")  # not a month start
    frame.to_parquet(ingested)
    from pipeline.stages.accounts import validate

    summary = validate(cfg)
    assert summary["rows_in"] == 300 and summary["rows_rejected"] == 2
    rejects = pd.read_parquet(tmp_path / "output" / "acc" / "validate" / "rejects.parquet")
    assert set(rejects["row_number"]) == {6, 8}
    assert {(6, "type:float"), (8, "month_start")} <= set(zip(rejects["row_number"], rejects["rule"], strict=True))
    assert json.loads((tmp_path / "output" / "acc" / "validate" / "summary.json").read_text())["rows_valid"] == 298
