"""End to end: the whole pipeline twice on a small config, as a user runs it, in a temporary folder."""

import json
import os

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from helpers import ROOT, cli

pytestmark = pytest.mark.slow  # end-to-end: real processes, real MLflow store


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    config = {
        "name": "e2e",
        "output_dir": str(tmp / "output"),
        "source": {"kind": "synthetic", "rows": 3000, "seed": 9},
        "contract": {"protected": ["gender"]},
        "pd_model": {"num_boost_round": 150},
        "registry": {"model_name": "e2e-credit", "experiment": "e2e-credit"},
    }
    path = tmp / "e2e.yaml"
    path.write_text(yaml.safe_dump(config))
    first = cli("run", "--config", str(path), cwd=ROOT)
    second = cli("run", "--config", str(path), cwd=ROOT)
    store = f"sqlite:///{tmp / 'output' / 'mlflow.db'}"
    before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)  # an earlier in-process test on this worker may have set another registry
    yield tmp, path, first, second
    for key, value in before.items():  # MLflow 3 exports the URIs to the environment: later tests' children inherit
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_run_prints_where_everything_is(two_runs):
    _, _, first, _ = two_runs
    assert "run:" in first.stdout and "models:/e2e-credit/1" in first.stdout and "scores:" in first.stdout


def test_mlflow_run_has_params_config_digest_and_metrics(two_runs):
    tmp, _, _, _ = two_runs
    run_info = json.loads((tmp / "output" / "e2e" / "train" / "run.json").read_text())
    run = MlflowClient().get_run(run_info["run_id"])
    assert 0.6 < run.data.metrics["test_roc_auc"] <= 1.0
    for name in (
        "test_gini",
        "test_ks",
        "test_brier",
        "test_log_loss",
        "test_ece",
        "limit_mae",
        "limit_pinball",
        "approval_rate",
        "approved_bad_rate",
        "gate_passed",
    ):
        assert name in run.data.metrics, name
    assert len(run.data.tags["data_sha256"]) == 64
    assert run.data.params["source.rows"] == "3000"
    artifacts = {a.path for a in MlflowClient().list_artifacts(run.info.run_id)}
    assert {"config", "register", "evaluation"} <= artifacts


def test_two_runs_give_versions_one_and_two_with_aliases(two_runs):
    client = MlflowClient()
    versions = sorted(int(v.version) for v in client.search_model_versions("name='e2e-credit'"))
    assert versions == [1, 2]
    model = client.get_registered_model("e2e-credit")
    assert str(model.aliases["challenger"]) == "2"
    assert str(model.aliases["champion"]) in ("1", "2")
    v2 = client.get_model_version("e2e-credit", "2")
    assert len(v2.tags["data_sha256"]) == 64 and "test_roc_auc" in v2.tags


def test_gate_verdict_is_printed_and_logged(two_runs):
    tmp, _, _, second = two_runs
    reg = json.loads((tmp / "output" / "e2e" / "register" / "registration.json").read_text())
    assert reg["version"] == "2" and reg["champion_holdout"] is not None  # compared with v1 on the same holdout
    assert any("AUC" in r for r in reg["gate"])
    run_info = json.loads((tmp / "output" / "e2e" / "train" / "run.json").read_text())
    text = mlflow.artifacts.load_text(f"runs:/{run_info['run_id']}/register/gate_verdict.txt")
    assert "ECE" in text and ("PROMOTE" in text or "KEEP" in text)


def test_scored_file_has_one_row_per_input_row(two_runs):
    tmp, _, _, _ = two_runs
    scores = pd.read_parquet(tmp / "output" / "e2e" / "score" / "scores.parquet")
    ingested = pd.read_parquet(tmp / "output" / "e2e" / "ingest" / "applicants.parquet")
    summary = json.loads((tmp / "output" / "e2e" / "score" / "scores.summary.json").read_text())
    assert len(scores) == len(ingested) == summary["rows_in"] == summary["rows_scored"] + summary["rows_rejected"]
    assert scores["applicant_id"].tolist() == ingested["applicant_id"].tolist()
    assert scores["pd"].between(0, 1).all()
    assert set(scores["decision"]) <= {"approve", "decline"}


def test_champion_scores_in_a_fresh_process_exactly_like_the_in_process_pipeline(two_runs):
    tmp, path, _, _ = two_runs
    out = tmp / "fresh.parquet"
    cli(
        "score",
        "--config",
        str(path),
        "--model",
        "models:/e2e-credit@champion",
        "--input",
        str(tmp / "output" / "e2e" / "ingest" / "applicants.parquet"),
        "--output",
        str(out),
        cwd=tmp,
    )
    fresh = pd.read_parquet(out)
    import joblib

    from pipeline.data.validate import validate_frame

    registration = json.loads((tmp / "output" / "e2e" / "register" / "registration.json").read_text())
    scorer = mlflow.pyfunc.load_model(f"models:/e2e-credit/{registration['champion']}").unwrap_python_model().scorer
    local = joblib.load(tmp / "output" / "e2e" / "train" / "scorer.joblib")  # the last run's in-process scorer
    valid = validate_frame(
        pd.read_parquet(tmp / "output" / "e2e" / "ingest" / "applicants.parquet"), scorer.contract, "x"
    ).valid
    in_process = scorer.score_valid(valid)
    pd.testing.assert_series_equal(fresh["pd"], in_process["pd"], check_exact=True)
    pd.testing.assert_series_equal(fresh["credit_limit"], in_process["credit_limit"], check_exact=True)
    assert (fresh["reason_1"].fillna("") == in_process["reason_1"].fillna("")).all()
    # the last run's in-process scorer scores like the version that run registered (v2), champion or not
    registered = mlflow.pyfunc.load_model("models:/e2e-credit/2").unwrap_python_model().scorer
    pd.testing.assert_series_equal(
        local.score_valid(valid)["pd"], registered.score_valid(valid)["pd"], check_exact=True
    )


def test_rollback_force_and_history(two_runs):
    tmp, path, _, _ = two_runs
    client = MlflowClient()
    if str(client.get_registered_model("e2e-credit").aliases["champion"]) == "1":  # the gate kept v1
        cli(
            "promote",
            "--config",
            str(path),
            "--version",
            "2",
            "--reason",
            "v2 first, so rollback has v1 to return to",
            cwd=ROOT,
        )
    assert str(client.get_registered_model("e2e-credit").aliases["champion"]) == "2"
    proc = cli("rollback", "--config", str(path), "--reason", "test rollback", cwd=ROOT)
    assert "from v2 to v1" in proc.stdout
    assert str(client.get_registered_model("e2e-credit").aliases["champion"]) == "1"
    proc = cli("promote", "--config", str(path), "--version", "2", "--reason", "committee approved", cwd=ROOT)
    assert str(client.get_registered_model("e2e-credit").aliases["champion"]) == "2"
    assert client.get_model_version("e2e-credit", "2").tags["forced_promotion_reason"] == "committee approved"
    history = cli("history", "--config", str(path), cwd=ROOT).stdout
    assert "force: committee approved" in history and "register" in history


def test_unknown_alias_lists_what_exists(two_runs):
    tmp, path, _, _ = two_runs
    proc = cli(
        "score",
        "--config",
        str(path),
        "--model",
        "models:/e2e-credit@nonesuch",
        "--input",
        str(tmp / "output" / "e2e" / "ingest" / "applicants.parquet"),
        "--output",
        str(tmp / "x.parquet"),
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 5
    assert "versions [1, 2]" in proc.stderr and "@challenger=v2" in proc.stderr
    proc = cli(
        "score",
        "--config",
        str(path),
        "--model",
        "models:/no-such-model@champion",
        "--input",
        str(tmp / "output" / "e2e" / "ingest" / "applicants.parquet"),
        "--output",
        str(tmp / "x.parquet"),
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 5 and "e2e-credit" in proc.stderr


def test_artifact_records_version_commit_signature_and_example(two_runs):
    info = mlflow.models.get_model_info("models:/e2e-credit/1")
    assert info.metadata["project_version"] and len(info.metadata["git_commit"]) in (40, 7)
    assert info.metadata["model_version"] == "1"
    assert info.saved_input_example_info is not None
    inputs = {c.name for c in info.signature.inputs.inputs}
    outputs = [c.name for c in info.signature.outputs.inputs]
    assert {"applicant_id", "monthly_income"} <= inputs and "defaulted" not in inputs
    assert outputs[:6] == ["applicant_id", "pd", "score", "grade", "decision", "credit_limit"]
    assert "reason_4" in outputs and outputs[-2:] == ["model_name", "model_version"]
    requirements = mlflow.pyfunc.get_model_dependencies("models:/e2e-credit/1")
    assert "lightgbm==" in open(requirements).read()
