"""The contract: core + extras + protected as one pandera schema, config rules, path resolution, generated docs."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
import pytest

from pipeline.config import REPO_ROOT, ContractConfig, load_config, parse_config, resolve_source_path
from pipeline.data.contract import HOUSING, build_schema, contract_columns
from pipeline.data.contract_docs import contract_markdown
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_columns_are_core_then_history_then_extras_then_protected():
    cfg = ContractConfig(
        history_months=2, extras=[{"name": "channel", "dtype": "category", "allowed": ["web"]}], protected=["gender"]
    )
    cols = contract_columns(cfg)
    names = [c.name for c in cols]
    assert names[0] == "applicant_id" and names[-2:] == ["channel", "gender"]
    assert "repayment_status_m2" in names and "repayment_status_m3" not in names
    assert cols[-1].role == "protected" and cols[-2].allowed == ("web",)
    assert next(c for c in cols if c.name == "housing").allowed == HOUSING


def test_schema_covers_present_columns_only():
    schema = build_schema(contract_columns(ContractConfig()), ["applicant_id", "age", "not_in_contract"])
    assert set(schema.columns) == {"applicant_id", "age"}
    assert schema.columns["applicant_id"].unique and not schema.columns["applicant_id"].nullable
    good = pd.DataFrame({"applicant_id": ["a", "b"], "age": [30.0, None]})
    schema.validate(good)
    with pytest.raises(pa.errors.SchemaErrors) as err:
        schema.validate(pd.DataFrame({"applicant_id": ["a", "a"], "age": [17.0, 30.5]}), lazy=True)
    checks = set(err.value.failure_cases["check"])
    assert {"range(18..100)", "integer", "field_uniqueness"} <= checks


def test_extra_clashing_with_core_is_a_config_error():
    with pytest.raises(ConfigError, match="'age' clashes"):
        contract_columns(ContractConfig(extras=[{"name": "age", "dtype": "int"}]))
    with pytest.raises(ConfigError, match="protected attributes are never inputs"):
        contract_columns(ContractConfig(protected=["housing"]))


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"name": "c", "dtype": "category"}, "needs its list of allowed values"),
        ({"name": "x", "min": 5, "max": 1}, "above max"),
        ({"name": "x", "dtype": "category", "allowed": ["a"], "min": 0}, "float or int columns only"),
        ({"name": "x", "allowed": ["a"]}, "category or str columns only"),
        ({"name": "c", "dtype": "category", "allowed": ["A", "a"]}, "distinct"),
        ({"name": "c", "dtype": "category", "allowed": ["a"], "risk_direction": 1}, "numeric column"),
        ({"name": "bad name"}, "pattern"),
    ],
)
def test_extra_column_rules(extra, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_config({"contract": {"extras": [extra]}})


def test_names_declared_twice_are_rejected():
    with pytest.raises(ConfigError, match="declared twice"):
        parse_config({"contract": {"extras": [{"name": "x"}], "protected": ["x"]}})


def test_source_path_resolution(tmp_path, monkeypatch):
    (tmp_path / "cfgs").mkdir()
    (tmp_path / "cfgs" / "data.csv").write_text("a\n1\n")
    monkeypatch.chdir(tmp_path)
    assert resolve_source_path("cfgs/data.csv", None) == "cfgs/data.csv"  # from the cwd, kept as written
    assert resolve_source_path("data.csv", tmp_path / "cfgs") == str(tmp_path / "cfgs" / "data.csv")  # YAML folder
    assert resolve_source_path("pyproject.toml", tmp_path / "cfgs") == str(REPO_ROOT / "pyproject.toml")  # repo root
    assert resolve_source_path("nowhere.csv", tmp_path) == "nowhere.csv"  # kept, so the error names it


@pytest.mark.parametrize("name", ["taiwan", "german"])
def test_shipped_configs_find_their_data_from_any_folder(tmp_path, monkeypatch, name):
    for cwd in (ROOT, ROOT / "configs", tmp_path):
        monkeypatch.chdir(cwd)
        cfg = load_config(ROOT / "configs" / f"{name}.yaml")
        assert Path(cfg.source.path).exists(), (cwd, cfg.source.path)
        assert (
            Path(cfg.source.path).name
            == f"{'taiwan_credit_card_default' if name == 'taiwan' else 'german_credit'}.csv.gz"
        )
    assert os.path.samefile(cfg.source.path, ROOT.parent / "shared" / "data" / Path(cfg.source.path).name)


def test_shipped_configs_declare_protected_attributes_and_extras():
    taiwan = load_config(ROOT / "configs" / "taiwan.yaml")
    german = load_config(ROOT / "configs" / "german.yaml")
    assert taiwan.contract.protected == ["sex", "marital_status"]
    assert german.contract.protected == ["personal_status_and_sex", "foreign_worker"]
    assert [e.name for e in taiwan.contract.extras] == ["education"]
    rate = next(e for e in german.contract.extras if e.name.startswith("installment_rate"))
    assert (rate.dtype, rate.min, rate.max, rate.risk_direction) == ("int", 1, 4, 1)
    assert "revolving_balance" not in taiwan.source.columns  # BILL_AMT can be negative: see the docs
    assert taiwan.registry.model_name == "credit-taiwan" and german.registry.model_name == "credit-german"


def test_committed_data_contract_doc_is_the_generated_one():
    expected = contract_markdown(load_config(ROOT / "configs" / "default.yaml").contract)
    committed = (ROOT / "docs" / "data-contract.md").read_text(encoding="utf-8")
    assert committed == expected, "docs/data-contract.md is stale: regenerate it with contract_markdown()"


def test_doc_describes_every_column_and_rule():
    text = contract_markdown(ContractConfig(history_months=1, protected=["gender"]), sources=[])
    for col in contract_columns(ContractConfig(history_months=1, protected=["gender"])):
        assert f"| `{col.name}` |" in text
    for rule in ("type:<type>", "not_null", "unique", "encoding", "finite", "allowed_values", "max_length(64)"):
        assert rule in text
    assert "Shipped mappings" in text and "### Taiwan" not in text
