"""Shared fixtures: small synthetic configs in temporary folders, one trained model per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.pop("MLFLOW_TRACKING_URI", None)  # tests always use their own embedded store

from pipeline.config import Config, parse_config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def small_config(tmp: Path, rows: int = 3000, name: str = "small", **overrides) -> Config:
    data = {
        "name": name,
        "output_dir": str(tmp / "output"),
        "source": {"kind": "synthetic", "rows": rows, "seed": 3},
        "contract": {"history_months": 6, "protected": ["gender"]},
        "pd_model": {"num_boost_round": 120, "early_stopping_rounds": 20},
        "limit_model": {"num_boost_round": 80, "early_stopping_rounds": 20},
        "registry": {"model_name": f"test-{name}", "experiment": f"test-{name}"},
    }
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return parse_config(data)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """One model trained on 4,000 synthetic applicants, shared by the tests that only read it."""
    from pipeline.sources import load_source
    from pipeline.train import fit
    from pipeline.validate import validate_frame

    cfg = small_config(tmp_path_factory.mktemp("trained"), rows=4000)
    frame = load_source(cfg).frame
    valid = validate_frame(frame, cfg.contract, "synthetic", required=["applicant_id", "defaulted"]).valid
    return cfg, valid, fit(valid, cfg)
