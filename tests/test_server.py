"""A real MLflow tracking server on 127.0.0.1: train, register, promote and score over HTTP."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest
import yaml

from helpers import ROOT, free_port

pytestmark = pytest.mark.server


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
        ],
        env=env,
        stdout=open(tmp_path / "server.log", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("server did not start:\n" + (tmp_path / "server.log").read_text()[-3000:])
        time.sleep(0.5)
    yield uri
    os.killpg(proc.pid, signal.SIGTERM)  # stop it (and its worker) by PID
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_train_register_promote_and_score_over_http(server, tmp_path):
    config = {
        "name": "srv",
        "output_dir": str(tmp_path / "out"),
        "source": {"kind": "synthetic", "rows": 2000, "seed": 4},
        "contract": {"protected": ["gender"]},
        "registry": {"model_name": "srv-credit", "experiment": "srv-credit"},
    }
    path = tmp_path / "srv.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "MLFLOW_TRACKING_URI": server}
    run = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--config", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert server in run.stdout  # the run lives on the server, not in a local file
    assert not (tmp_path / "out" / "mlflow.db").exists()

    out = tmp_path / "scores.parquet"
    score = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "score",
            "--config",
            str(path),
            "--model",
            "models:/srv-credit@champion",
            "--input",
            str(tmp_path / "out" / "srv" / "ingest" / "applicants.parquet"),
            "--output",
            str(out),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert score.returncode == 0, score.stderr[-3000:]
    summary = json.loads(score.stdout)
    assert summary["rows_in"] == summary["rows_scored"] + summary["rows_rejected"] == 2000
    assert summary["model_version"] == "1"
    assert len(pd.read_parquet(out)) == summary["rows_scored"]

    with urllib.request.urlopen(f"{server}/api/2.0/mlflow/registered-models/get?name=srv-credit", timeout=5) as r:
        model = json.load(r)["registered_model"]
    assert {a["alias"]: a["version"] for a in model["aliases"]} == {"champion": "1", "challenger": "1"}
