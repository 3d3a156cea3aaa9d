"""The generic file source: recode, scale, dates, constants, ids, and errors that name the file and column."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.config import FileSource, parse_config
from pipeline.data.sources import load_source
from pipeline.data.sources.file import apply_mapping, parse_dates, recode, scale
from pipeline.errors import ConfigError, DataContractError


def test_recode_matches_codes_as_text_and_keeps_unknown_codes():
    s = pd.Series([1, 1.0, "1", " 2 ", "OWN", 9, None], dtype=object)
    out = recode(s, {1: "a", "2": "b", "own": "own"})
    assert out.tolist()[:6] == ["a", "a", "a", "b", "own", 9]
    assert pd.isna(out.iloc[6])


def test_scale_converts_units_and_passes_bad_values_through():
    assert scale(pd.Series(["1200", "2400"]), 1 / 12).tolist() == [100.0, 200.0]
    out = scale(pd.Series(["50", "n/a", None], dtype=object), 0.01)
    assert out.iloc[0] == 0.5 and out.iloc[1] == "n/a" and pd.isna(out.iloc[2])


def test_parse_dates_with_a_format_keeps_unparseable_text():
    out = parse_dates(pd.Series(["31/01/2024", "99/99/2024"]), "%d/%m/%Y")
    assert out.iloc[0] == pd.Timestamp("2024-01-31") and out.iloc[1] == "99/99/2024"


def source(**kw) -> FileSource:
    return FileSource(path="x.csv", **kw)


def test_apply_mapping_builds_contract_columns():
    raw = pd.DataFrame(
        {
            "no": ["7", "8"],
            "inc": ["12000", "24000"],
            "util": ["50", "10"],
            "home": ["O", "R"],
            "d": ["01/02/2024", "bad"],
            "junk": ["x", "y"],
        }
    )
    src = source(
        id_column="no",
        columns={
            "monthly_income": {"source": "inc", "scale": "1/12"},
            "revolving_utilization": {"source": "util", "scale": 0.01},
            "housing": {"source": "home", "recode": {"O": "own", "R": "rent"}},
            "application_date": {"source": "d", "parse_date": "%d/%m/%Y"},
            "requested_term_months": {"constant": 12},
        },
    )
    out = apply_mapping(raw, src, "x.csv")
    assert list(out.columns) == [
        "applicant_id",
        "monthly_income",
        "revolving_utilization",
        "housing",
        "application_date",
        "requested_term_months",
    ]
    assert out["monthly_income"].tolist() == [1000.0, 2000.0]
    assert out["revolving_utilization"].tolist() == [0.5, 0.1]
    assert out["housing"].tolist() == ["own", "rent"] and out["requested_term_months"].tolist() == [12, 12]
    assert out["application_date"].tolist() == [pd.Timestamp("2024-02-01"), "bad"]
    assert out["applicant_id"].tolist() == ["7", "8"]


def test_rows_are_numbered_when_there_is_no_id_column():
    raw = pd.DataFrame({"AGE": ["30", "40"]})
    out = apply_mapping(raw, source(columns={"age": "AGE"}), "x.csv", row_offset=100)
    assert out["applicant_id"].tolist() == ["101", "102"]


def test_missing_source_column_names_the_file_and_both_columns():
    raw = pd.DataFrame({"AGE": ["30"]})
    with pytest.raises(
        DataContractError,
        match=r"x\.csv: required source column\(s\) missing: 'INC' \(for contract column 'monthly_income'\)",
    ):
        apply_mapping(raw, source(columns={"age": "AGE", "monthly_income": "INC"}), "x.csv")
    out = apply_mapping(raw, source(columns={"age": "AGE", "defaulted": "Y"}), "x.csv", optional=["defaulted"])
    assert "defaulted" not in out


def test_missing_passthrough_column_is_reported():
    with pytest.raises(DataContractError, match="'gender'"):
        apply_mapping(pd.DataFrame({"age": ["3"]}), source(passthrough=["gender"]), "x.csv")


def test_column_map_config_rules():
    assert source(columns={"age": "AGE"}).columns["age"].source == "AGE"  # shorthand
    assert (
        source(columns={"monthly_income": {"source": "i", "scale": "1/12"}}).columns["monthly_income"].scale == 1 / 12
    )
    for bad in ({"source": "a", "constant": 1}, {}, {"constant": 1, "scale": 2}, {"source": "a", "scale": "x/0"}):
        with pytest.raises(ConfigError):
            parse_config({"source": {"kind": "file", "path": "x.csv", "columns": {"age": bad}}})
    with pytest.raises(ConfigError, match="filled twice"):
        parse_config({"source": {"kind": "file", "path": "x.csv", "columns": {"age": "A"}, "passthrough": ["age"]}})
    with pytest.raises(ConfigError, match="unknown encoding"):
        parse_config({"source": {"kind": "file", "path": "x.csv", "encoding": "klingon"}})


def test_load_source_rejects_targets_outside_the_contract(tmp_path):
    (tmp_path / "a.csv").write_text("id,AGE,shoe\n1,30,44\n")
    cfg = parse_config(
        {
            "source": {
                "kind": "file",
                "path": str(tmp_path / "a.csv"),
                "id_column": "id",
                "columns": {"age": "AGE", "shoe_size": "shoe"},
            }
        }
    )
    with pytest.raises(ConfigError, match="shoe_size.*contract.extras"):
        load_source(cfg)


def test_load_source_header_only_and_digest(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("applicant_id,age\n")
    cfg = parse_config({"source": {"kind": "file", "path": str(path)}})
    with pytest.raises(DataContractError, match=r"a\.csv: no data rows"):
        load_source(cfg)
    path.write_text("applicant_id,age\n1,30\n")
    data = load_source(cfg)
    assert data.frame.to_dict("records") == [{"applicant_id": "1", "age": "30"}] and len(data.digest) == 64


def test_parquet_source_with_mapping(tmp_path):
    path = tmp_path / "a.parquet"
    pd.DataFrame({"ref": [10, 11], "yearly": [36000.0, 48000.0]}).to_parquet(path)
    cfg = parse_config(
        {
            "source": {
                "kind": "file",
                "path": str(path),
                "id_column": "ref",
                "columns": {"monthly_income": {"source": "yearly", "scale": "1/12"}},
            }
        }
    )
    frame = load_source(cfg).frame
    assert frame["monthly_income"].tolist() == [3000.0, 4000.0]
