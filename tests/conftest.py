"""Shared fixtures: small synthetic configs in temporary folders, one trained model per session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# LightGBM runs with num_threads = every core (pipeline/model/boosters.py::threads) and waits for its OpenMP
# threads by spinning. With one xdist worker per core, or any other busy process, the spinning threads fight
# for the cores: 120 boosting rounds on 2,400 rows took 45 s instead of 0.5 s at load 7 on 2 cores. Passive
# waiting gives the same models at the same thread count. Read by libgomp when it loads, so it is set before
# anything imports lightgbm, numba or sklearn; subprocesses (CLI tests) inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.pop("MLFLOW_TRACKING_URI", None)  # tests always use their own embedded store

import helpers  # noqa: E402
from helpers import small_config  # noqa: E402


def pytest_configure(config):
    """`-m "not slow ..."` (make test-fast) runs fewer hypothesis examples per property (helpers.examples).
    Runs before the test modules are imported, so their @settings see it; xdist workers get the same -m."""
    helpers.FAST_RUN = "not slow" in (config.getoption("markexpr") or "")


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """One model trained on 4,000 synthetic applicants, shared by the tests that only read it.

    Monotone constraints as the dictionary writes them: on this data the evidence check keeps every one of
    them (the same booster) after six extra fits per xdist worker. The evidence path of `fit` is trained in
    tests/test_report.py; tests/test_monotone.py tests the check itself."""
    from pipeline.data.sources import load_source
    from pipeline.data.validate import validate_frame
    from pipeline.model.train import fit

    cfg = small_config(tmp_path_factory.mktemp("trained"), rows=4000, pd_model={"monotone": "prior"})
    frame = load_source(cfg).frame
    valid = validate_frame(frame, cfg.contract, "synthetic", required=["applicant_id", "defaulted"]).valid
    return cfg, valid, fit(valid, cfg)


@pytest.fixture(scope="module")
def model_folder(trained, tmp_path_factory):
    """The trained scorer saved as a pyfunc artifact in a local folder: a model URI that needs no registry."""
    import joblib
    import mlflow

    from helpers import ROOT
    from pipeline.mlops.artifact import CreditScoringModel

    _, _, result = trained
    folder = tmp_path_factory.mktemp("model")
    joblib.dump(result.scorer, folder / "scorer.joblib")
    mlflow.pyfunc.save_model(
        folder / "model",
        python_model=CreditScoringModel(),
        artifacts={"scorer": str(folder / "scorer.joblib")},
        code_paths=[str(ROOT / "pipeline")],
        pip_requirements=["lightgbm"],
    )
    return folder / "model"
