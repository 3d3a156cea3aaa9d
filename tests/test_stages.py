"""The stage table drives the CLI, make help, the "run X first" errors and the docs; lineage catches stale input."""

from __future__ import annotations

import subprocess

import pytest

from helpers import ROOT, small_config
from pipeline.cli import build_parser
from pipeline.docs import BEGIN, END
from pipeline.errors import StageInputMissing, StaleInput
from pipeline.stages import STAGES, markdown_table, producer
from pipeline.stages.files import Paths
from pipeline.stages.runner import run_stage, run_until


def test_every_stage_is_a_cli_subcommand_and_a_make_help_line():
    commands = build_parser()._subparsers._group_actions[0].choices
    for stage in STAGES:
        assert stage.name in commands
    lines = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for stage in STAGES:
        assert any(line.split()[:2] == ["make", stage.name] and stage.help in line for line in lines.splitlines())


def test_each_stage_reads_only_what_earlier_stages_write():
    written: set[str] = set()
    for stage in STAGES:
        assert set(stage.reads) <= written, stage.name
        written |= set(stage.writes)
    assert producer("features").name == "features"
    train = next(s for s in STAGES if s.name == "train")
    assert "features" in train.reads  # train reads the features stage's output


def test_readme_stage_table_is_the_generated_one():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert block == markdown_table(), "README's stage table is stale: run `make docs`"


def test_missing_input_names_the_stage_to_run_first(tmp_path):
    cfg = small_config(tmp_path, rows=500)
    with pytest.raises(StageInputMissing, match=r"run `make ingest`") as err:
        run_stage("validate", cfg)
    assert err.value.exit_code == 7


def test_a_failed_stage_leaves_its_old_output_stale(tmp_path, monkeypatch):
    cfg = small_config(tmp_path, rows=500)
    run_until("validate", cfg)
    from pipeline.stages import data

    def broken(cfg, config_path=None):
        raise RuntimeError("validation crashed half way")

    monkeypatch.setattr(data, "validate", broken)
    with pytest.raises(RuntimeError):
        run_stage("validate", cfg)
    monkeypatch.undo()
    assert Paths(cfg.run_dir).valid.exists()  # the previous run's file is still there ...
    with pytest.raises(StaleInput, match="no lineage record of a completed `validate` run"):
        run_stage("features", cfg)  # ... but features refuses it


def test_input_made_from_older_inputs_is_refused_naming_both_digests(tmp_path):
    cfg = small_config(tmp_path, rows=500)
    run_until("validate", cfg)
    run_stage("ingest", small_config(tmp_path, rows=600))  # same folder, new data; validate not rerun
    with pytest.raises(StaleInput, match=r"made it from .*applicants.parquet with sha256 \w{12}, which is now \w{12}"):
        run_stage("features", cfg)


def test_resume_skips_up_to_date_stages_and_reruns_after_a_config_change(tmp_path):
    cfg = small_config(tmp_path, rows=500)
    first = run_until("features", cfg, resume=True)
    assert not any(r.get("up_to_date") for r in first.values())
    again = run_until("features", cfg, resume=True)
    assert all(r.get("up_to_date") for r in again.values())
    changed = small_config(tmp_path, rows=500, validation={"rejection_budget": 0.2})
    third = run_until("features", changed, resume=True)
    assert not any(r.get("up_to_date") for r in third.values())
