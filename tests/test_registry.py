"""Promotion gate decisions and tracking failures."""

import os
import subprocess
import sys
import time

import pytest
import yaml

from helpers import ROOT, free_port
from pipeline.config import GateConfig
from pipeline.mlops.registry import gate

GOOD = {"roc_auc": 0.80, "ece": 0.01, "score_psi": 0.02, "min_air": 0.95}
CFG = GateConfig(auc_tolerance=0.005, max_ece=0.03, max_score_psi=0.1, min_adverse_impact_ratio=0.8)


def test_first_version_is_promoted_and_checks_are_still_reported():
    verdict = gate({**GOOD, "ece": 0.2}, None, CFG)
    assert verdict.promote
    assert "although a check below failed" in verdict.reasons[0]
    assert any("ECE 0.2000 <= 0.03: FAIL" in r for r in verdict.reasons)


@pytest.mark.parametrize(
    ("challenger", "champion_auc", "promote", "needle"),
    [
        (GOOD, 0.803, True, "drop +0.0030"),  # within tolerance
        (GOOD, 0.81, False, "AUC 0.8000 vs champion 0.8100"),  # worse by more than the tolerance
        ({**GOOD, "ece": 0.05}, 0.79, False, "ECE 0.0500 <= 0.03: FAIL"),
        ({**GOOD, "score_psi": 0.3}, 0.79, False, "score PSI train vs test 0.3000 <= 0.1: FAIL"),
        ({**GOOD, "min_air": 0.7}, 0.79, False, "min adverse impact ratio 0.7000 >= 0.8: FAIL"),
        (GOOD, 0.79, True, "pass"),
    ],
)
def test_gate_against_a_champion(challenger, champion_auc, promote, needle):
    verdict = gate(challenger, {**GOOD, "roc_auc": champion_auc}, CFG)
    assert verdict.promote is promote
    assert any(needle in r for r in verdict.reasons), verdict.reasons
    assert verdict.text().startswith("PROMOTE" if promote else "KEEP CHAMPION")


@pytest.mark.slow  # four CLI processes: ingest, validate, features, then train against a closed port
def test_unreachable_tracking_server_fails_fast_naming_the_uri(tmp_path):
    config = {"name": "unreach", "output_dir": str(tmp_path / "out"), "source": {"kind": "synthetic", "rows": 500}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    for stage in ("ingest", "validate", "features"):
        subprocess.run(
            [sys.executable, "-m", "pipeline", stage, "--config", str(path)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "train", "--config", str(path)],
        cwd=ROOT,
        env={**env, "MLFLOW_TRACKING_URI": uri},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert time.monotonic() - started < 30
    assert proc.returncode == 6
    assert uri in proc.stderr and "unreachable" in proc.stderr
    assert not (tmp_path / "out" / "unreach" / "train" / "run.json").exists()  # nothing half-done
