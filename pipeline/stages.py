"""Stage runner: where files are read and written. Each stage reads the previous stage's
output under `<output_dir>/<name>/` and writes its own, so any stage can be rerun alone.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd

from pipeline.artifact import log_scoring_model
from pipeline.config import Config, config_digest
from pipeline.errors import StageInputMissing
from pipeline.evaluate import evaluate_holdout
from pipeline.features import categories, compute_features, feature_schema
from pipeline.metrics import discrimination
from pipeline.io import atomic_write_parquet, atomic_write_text, read_parquet
from pipeline.registry import CHAMPION, GateVerdict, alias_version, gate, next_version, register, set_alias
from pipeline.sources import load_source
from pipeline.tracking import configure, git_commit
from pipeline.train import TARGET, choose_features, fit
from pipeline.validate import validate_frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Paths:
    root: Path

    def __getattr__(self, item):  # pragma: no cover - only for typos
        raise AttributeError(item)

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
    report = {"origin": source.origin, "data_sha256": source.digest, "rows": len(source.frame),
              "columns": list(map(str, source.frame.columns)), "seconds": round(time.perf_counter() - started, 3)}
    _write_json(report, p.ingest_report)
    log.info("ingest: %d rows from %s -> %s", len(source.frame), source.origin, p.ingested)
    return report


def validate(cfg: Config) -> dict:
    p = paths(cfg)
    origin = _read_json(p.ingest_report, "ingest")["origin"]
    frame = read_parquet(_need(p.ingested, "ingest"))
    required = ["applicant_id", TARGET] if cfg.contract.training_targets_required else ["applicant_id"]
    try:
        result = validate_frame(frame, cfg.contract, origin, required=required,
                                rejection_budget=cfg.validation.rejection_budget)
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
    keep = [c for c in ("row_number", "applicant_id", "application_date", "defaulted", "granted_limit", *cfg.contract.protected) if c in valid]
    atomic_write_parquet(pd.concat([valid[keep], table], axis=1), p.features)
    report = {"rows": len(table), "features": [s.name for s in specs], "skipped": skipped,
              "uses_limit": [s.name for s in specs if s.uses_limit], "seconds": round(time.perf_counter() - started, 3)}
    _write_json(report, p.features_report)
    for name, why in skipped.items():
        log.warning("feature skipped: %s: %s", name, why)
    return report


def train(cfg: Config, config_path: str | None) -> dict:
    p = paths(cfg)
    valid = read_parquet(_need(p.valid, "validate"))
    ingest_report = _read_json(p.ingest_report, "ingest")
    configure(cfg.output_dir, cfg.registry.experiment)
    started = time.perf_counter()
    with mlflow.start_run(run_name=f"{cfg.name}-train") as run:
        result = fit(valid, cfg)
        result.scorer.meta.update({"git_commit": git_commit(), "data_sha256": ingest_report["data_sha256"],
                                   "config": cfg.name, "run_id": run.info.run_id})
        mlflow.log_params(_flat_params(cfg))
        mlflow.log_params({"split_method": result.split_method, "features": ",".join(result.scorer.feature_names)[:6000]})
        mlflow.set_tags({"data_sha256": ingest_report["data_sha256"], "data_origin": ingest_report["origin"],
                         "git_commit": result.scorer.meta["git_commit"], "config_name": cfg.name})
        if config_path:
            mlflow.log_artifact(config_path, "config")
            mlflow.set_tag("config_sha256", config_digest(config_path))
        mlflow.log_metrics({k: float(v) for k, v in result.metrics.items() if v == v})
        mlflow.log_dict({"notes": result.notes, "search": result.search}, "train/notes.json")
        mlflow.log_dict(_read_json(p.validation_report, "validate"), "validate/summary.json")
        p.train_dir.mkdir(parents=True, exist_ok=True)
        joblib.dump(result.scorer, p.scorer, compress=3)
        np.savez(p.splits, **result.splits)
        info = {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id, "metrics": result.metrics,
                "notes": result.notes, "split_method": result.split_method, "tracking_uri": mlflow.get_tracking_uri(),
                "seconds": round(time.perf_counter() - started, 2)}
        _write_json(info, p.run)
    for note in result.notes:
        log.info(note)
    return info


def _flat_params(cfg: Config) -> dict:
    flat = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            flat[prefix] = str(value)[:500]

    walk("", cfg.model_dump(mode="json"))
    return flat


def _load_trained(p: Paths):
    scorer = joblib.load(_need(p.scorer, "train"))
    splits = dict(np.load(_need(p.splits, "train")))
    valid = read_parquet(_need(p.valid, "validate"))
    valid = valid[valid[TARGET].notna()].reset_index(drop=True)
    return scorer, splits, valid


def evaluate(cfg: Config) -> dict:
    p = paths(cfg)
    run = _read_json(p.run, "train")
    scorer, splits, valid = _load_trained(p)
    configure(cfg.output_dir, cfg.registry.experiment)
    with mlflow.start_run(run_id=run["run_id"]):
        evaluation = evaluate_holdout(scorer, valid, splits, cfg, p.report_dir)
        mlflow.log_metrics({k: float(v) for k, v in evaluation["metrics"].items() if v == v})
        _write_json(evaluation, p.evaluation)
        mlflow.log_artifacts(str(p.report_dir), "evaluation")
    return evaluation


def _champion_holdout_metrics(name: str, valid: pd.DataFrame, test_idx: np.ndarray, cfg: Config) -> dict | None:
    """Score the challenger's holdout with the current champion, for a like-for-like comparison."""
    if alias_version(name, CHAMPION) is None:
        return None
    champion = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}").unwrap_python_model().scorer
    rows = valid.iloc[test_idx].reset_index(drop=True)
    checked = champion.validate(rows, "holdout", allow_all_rejected=True)
    scored = champion.score_valid(checked.valid)
    y = checked.valid[TARGET].to_numpy(dtype=int)
    return discrimination(y, scored["pd"].to_numpy(), cfg.evaluation.calibration_bins)


def register_stage(cfg: Config) -> dict:
    """Log the scoring artifact, register it as `challenger`, run the gate, maybe promote."""
    p = paths(cfg)
    run = _read_json(p.run, "train")
    evaluation = _read_json(p.evaluation, "evaluate")
    scorer, splits, valid = _load_trained(p)
    configure(cfg.output_dir, cfg.registry.experiment)
    name = cfg.registry.model_name
    with mlflow.start_run(run_id=run["run_id"]):
        version = next_version(name)
        scorer.meta["model_version"] = str(version)
        example = valid.drop(columns=[c for c in ("row_number", TARGET, "granted_limit") if c in valid]).head(5)
        info = log_scoring_model(scorer, example)
        tags = {"data_sha256": scorer.meta.get("data_sha256", ""), "git_commit": scorer.meta.get("git_commit", ""),
                "run_id": run["run_id"], **{k: f"{v:.4f}" for k, v in run["metrics"].items()
                                            if k in ("test_roc_auc", "test_gini", "test_ece", "approval_rate")}}
        registered = register(info.model_uri, name, version, tags)
        gate_metrics = evaluation["gate"]
        champion = _champion_holdout_metrics(name, valid, splits["test"], cfg)
        verdict: GateVerdict = gate(gate_metrics, champion, cfg.registry.gate)
        if verdict.promote:
            set_alias(name, CHAMPION, registered, "gate", "; ".join(verdict.reasons))
        mlflow.log_text(verdict.text(), "register/gate_verdict.txt")
        mlflow.log_metric("gate_passed", float(verdict.promote))
        mlflow.set_tags({"gate_verdict": "promote" if verdict.promote else "keep", "registered_version": registered})
    result = {"model_name": name, "version": registered, "model_uri": f"models:/{name}/{registered}",
              "promoted": verdict.promote, "gate": verdict.reasons, "champion": alias_version(name, CHAMPION),
              "champion_holdout": champion}
    _write_json(result, p.registration)
    return result
