from pathlib import Path

import pytest

from pipeline.config import Config, load_config, parse_config
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_default_config_loads_with_its_defaults():
    cfg = load_config(ROOT / "configs" / "default.yaml")
    assert cfg.source.kind == "synthetic" and cfg.source.rows >= 20_000
    assert cfg.validation.rejection_budget == 0.05
    assert cfg.registry.model_name == "credit-default"
    assert cfg.run_dir == Path("output") / "default"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"pd_model": {"learning_rat": 0.1}}, "pd_model.learning_rat"),
        ({"unknown_section": {}}, "unknown_section"),
        ({"policy": {"pd_cutoff": 2}}, "policy.pd_cutoff"),
        ({"source": {"kind": "synthetic", "rows": "many"}}, "source.rows"),
        ({"source": {"kind": "ftp"}}, "source"),
        ({"split": {"train": 0.9}}, "split"),
        ({"policy": {"min_limit": 900, "max_limit": 100}}, "policy"),
        ({"source": {"kind": "file"}}, "source.path"),
        ({"source": {"kind": "file", "path": "x.csv", "columns": {"age": {"scale": 2}}}}, "source.columns.age"),
        ({"contract": {"extras": [{"name": "x", "dtype": "complex"}]}}, "contract.extras.0.dtype"),
    ],
)
def test_a_wrong_key_or_value_names_the_key(data, key):
    with pytest.raises(ConfigError) as err:
        parse_config(data, origin="bad.yaml")
    assert "bad.yaml" in str(err.value)
    assert key in str(err.value)


def test_grades_must_be_ordered_and_end_open():
    grades = [{"name": "A", "min_score": 500}, {"name": "B", "min_score": 600}]
    with pytest.raises(ConfigError, match="scorecard.grades"):
        parse_config({"scorecard": {"grades": grades}})


def test_worse_grade_cannot_get_a_larger_limit_multiplier():
    grades = [
        {"name": "A", "min_score": 600, "limit_multiplier": 0.5},
        {"name": "B", "min_score": float("-inf"), "limit_multiplier": 1.0},
    ]
    with pytest.raises(ConfigError, match="must not get a larger multiplier"):
        parse_config({"scorecard": {"grades": grades}})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listy)


def test_empty_file_means_all_defaults(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == Config()
