"""Artifacts live beside the tracking store they belong to, whatever MLFLOW_TRACKING_URI says."""

from __future__ import annotations

from pathlib import Path

import mlflow

from pipeline.mlops.tracking import artifact_location, configure


def test_sqlite_store_from_the_environment_keeps_artifacts_beside_its_file(tmp_path, monkeypatch):
    store = tmp_path / "stores" / "team.db"
    store.parent.mkdir()
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)  # the working folder must not receive ./mlruns
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    exp_id = configure(tmp_path / "out", "located")
    location = mlflow.get_experiment(exp_id).artifact_location
    assert location == (store.parent / "mlartifacts").as_uri()
    with mlflow.start_run():
        mlflow.log_text("x", "note.txt")
    assert (store.parent / "mlartifacts").is_dir()
    assert not (work / "mlruns").exists()


def test_default_store_keeps_artifacts_in_the_output_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    exp_id = configure(tmp_path / "out", "default-located")
    expected = (tmp_path / "out").resolve().joinpath("mlartifacts").as_uri()
    assert mlflow.get_experiment(exp_id).artifact_location == expected


def test_a_server_decides_its_own_artifact_root():
    assert artifact_location("http://127.0.0.1:5000") is None
    assert artifact_location("sqlite:////srv/mlflow/mlflow.db") == Path("/srv/mlflow/mlartifacts").as_uri()
