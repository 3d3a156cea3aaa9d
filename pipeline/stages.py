"""Data stages (ingest, validate, features) and the output layout shared by all stages.

This is where files are read and written: each stage reads the previous stage's output
under `<output_dir>/<name>/` and writes its own, so any stage can be rerun alone. The
model stages live in `pipeline.model_stages`; this module stays free of MLflow and
LightGBM so the data stages start fast.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.config import Config
from pipeline.errors import StageInputMissing
from pipeline.features import categories, choose_features, compute_features, feature_schema
from pipeline.io import atomic_write_parquet, atomic_write_text, read_parquet
from pipeline.sources import load_source
from pipeline.validate import validate_frame

TARGET = "defaulted"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def ingested(self) -> Path:
        return self.root / "ingest" / "applicants.parquet"

    @property
    def ingest_report(self) -> Path:
        return self.root / "ingest" / "ingest.json"

    @property
    def valid(self) -> Path:
        return self.root / "validate" / "valid.parquet"

    @property
    def rejects(self) -> Path:
        return self.root / "validate" / "rejects.parquet"

    @property
    def validation_report(self) -> Path:
        return self.root / "validate" / "summary.json"

    @property
    def features(self) -> Path:
        return self.root / "features" / "features.parquet"

    @property
    def features_report(self) -> Path:
        return self.root / "features" / "report.json"

    @property
    def train_dir(self) -> Path:
        return self.root / "train"

    @property
    def scorer(self) -> Path:
        return self.root / "train" / "scorer.joblib"

    @property
    def run(self) -> Path:
        return self.root / "train" / "run.json"

    @property
    def splits(self) -> Path:
        return self.root / "train" / "splits.npz"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluate" / "evaluation.json"

    @property
    def report_dir(self) -> Path:
        return self.root / "evaluate"

    @property
    def registration(self) -> Path:
        return self.root / "register" / "registration.json"

    @property
    def scores(self) -> Path:
        return self.root / "score" / "scores.parquet"


def paths(cfg: Config) -> Paths:
    return Paths(cfg.run_dir)


def _need(path: Path, stage: str) -> Path:
    if not path.exists():
        raise StageInputMissing(f"{path} not found: run `make {stage}` (or `python -m pipeline {stage}`) first")
    return path


def _write_json(data: dict, path: Path) -> None:
    atomic_write_text(json.dumps(data, indent=2, default=str), path)


def _read_json(path: Path, stage: str) -> dict:
    return json.loads(_need(path, stage).read_text())


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Mixed-type text columns (a raw file's bad values) are stored as text for validation to judge."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object:
            present = out[col].notna()
            out[col] = out[col].where(~present, out[col][present].astype(str)).astype(object)
    return out


# ---------------------------------------------------------------- stages


def ingest(cfg: Config) -> dict:
    p = paths(cfg)
    started = time.perf_counter()
    source = load_source(cfg)
    atomic_write_parquet(_parquet_safe(source.frame), p.ingested)
    report = {
        "origin": source.origin,
        "data_sha256": source.digest,
        "rows": len(source.frame),
        "columns": list(map(str, source.frame.columns)),
        "seconds": round(time.perf_counter() - started, 3),
    }
    _write_json(report, p.ingest_report)
    log.info("ingest: %d rows from %s -> %s", len(source.frame), source.origin, p.ingested)
    return report


def validate(cfg: Config) -> dict:
    p = paths(cfg)
    origin = _read_json(p.ingest_report, "ingest")["origin"]
    frame = read_parquet(_need(p.ingested, "ingest"))
    required = ["applicant_id", TARGET] if cfg.contract.training_targets_required else ["applicant_id"]
    try:
        result = validate_frame(
            frame, cfg.contract, origin, required=required, rejection_budget=cfg.validation.rejection_budget
        )
    except Exception as err:
        partial = getattr(err, "result", None)
        if partial is not None:
            atomic_write_parquet(partial.rejects, p.rejects)
        raise
    atomic_write_parquet(result.valid, p.valid)
    atomic_write_parquet(result.rejects, p.rejects)
    summary = {"origin": origin, **result.summary(), "rejects_file": str(p.rejects)}
    _write_json(summary, p.validation_report)
    return summary


def features(cfg: Config) -> dict:
    p = paths(cfg)
    valid = read_parquet(_need(p.valid, "validate"))
    started = time.perf_counter()
    specs, skipped = choose_features(valid, cfg)
    table = compute_features(valid, specs, cfg.features, categories(cfg.contract))
    feature_schema(specs).validate(table, lazy=True)
    keep = [
        c
        for c in (
            "row_number",
            "applicant_id",
            "application_date",
            "defaulted",
            "granted_limit",
            *cfg.contract.protected,
        )
        if c in valid
    ]
    atomic_write_parquet(pd.concat([valid[keep], table], axis=1), p.features)
    report = {
        "rows": len(table),
        "features": [s.name for s in specs],
        "skipped": skipped,
        "uses_limit": [s.name for s in specs if s.uses_limit],
        "seconds": round(time.perf_counter() - started, 3),
    }
    _write_json(report, p.features_report)
    for name, why in skipped.items():
        log.warning("feature skipped: %s: %s", name, why)
    return report
