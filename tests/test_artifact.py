"""The scoring artifact's pip requirements cover what scoring really imports, pinned as installed."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys

import mlflow
import pytest
from packaging.requirements import Requirement

from pipeline.mlops.artifact import RUNTIME_PACKAGES, log_scoring_model, pip_requirements
from pipeline.mlops.tracking import configure

pytestmark = pytest.mark.slow  # logs a real artifact and scores it in a fresh process

SCORE_AND_LIST_IMPORTS = """
import json, sys
import pandas as pd
import mlflow
model = mlflow.pyfunc.load_model(sys.argv[1])
out = model.predict(pd.read_parquet(sys.argv[2]))
assert len(out) == 20 and out["decision"].isin(["approve", "decline"]).all()
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def _key(name: str) -> str:
    return name.lower().replace("_", "-")


def _reachable(roots: list[str]) -> set[str]:
    """Distributions required by `roots`, transitively (optional extras included: pandera imports
    hypothesis or pyspark only when they happen to be installed)."""
    seen: set[str] = set()
    todo = [_key(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += [_key(Requirement(r).name) for r in md.requires(name) or []]
        except md.PackageNotFoundError:
            continue
    return seen


def test_requirements_are_pinned_as_installed_and_lightgbm_below_5():
    reqs = dict(r.split("==") for r in pip_requirements())
    assert set(reqs) == set(RUNTIME_PACKAGES)
    for name, pinned in reqs.items():
        assert pinned == md.version(name), name
    assert int(reqs["lightgbm"].split(".")[0]) < 5  # the compiled evaluator mirrors LightGBM 4's split rules
    for name in ("matplotlib", "rich", "psutil"):  # report, progress bar, benchmarks: not the scoring path
        assert name not in reqs


def test_every_module_scoring_imports_comes_from_a_listed_requirement(trained, tmp_path, monkeypatch):
    cfg, valid, result = trained
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    configure(str(tmp_path / "out"), "artifact-test")
    with mlflow.start_run():
        info = log_scoring_model(result.scorer, valid.drop(columns=["row_number", "defaulted"]).head(5))
    rows = tmp_path / "rows.parquet"
    valid.drop(columns=["row_number", "defaulted", "granted_limit"]).head(20).to_parquet(rows)
    proc = subprocess.run(
        [sys.executable, "-c", SCORE_AND_LIST_IMPORTS, info.model_uri, str(rows)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri()},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    modules = json.loads(proc.stdout.strip().splitlines()[-1])
    owners = md.packages_distributions()
    imported = {_key(d) for m in modules for d in owners.get(m, [])} - {"credit-pipeline"}
    assert {"lightgbm", "numba", "pandera", "scikit-learn"} <= imported  # the real scoring path ran
    allowed = _reachable(RUNTIME_PACKAGES)
    assert sorted(imported - allowed) == []
