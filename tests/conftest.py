"""Shared fixtures: small synthetic configs in temporary folders, one trained model per session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.pop("MLFLOW_TRACKING_URI", None)  # tests always use their own embedded store

from helpers import small_config  # noqa: E402


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """One model trained on 4,000 synthetic applicants, shared by the tests that only read it."""
    from pipeline.data.sources import load_source
    from pipeline.data.validate import validate_frame
    from pipeline.model.train import fit

    cfg = small_config(tmp_path_factory.mktemp("trained"), rows=4000)
    frame = load_source(cfg).frame
    valid = validate_frame(frame, cfg.contract, "synthetic", required=["applicant_id", "defaulted"]).valid
    return cfg, valid, fit(valid, cfg)
