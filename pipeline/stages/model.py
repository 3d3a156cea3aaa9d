"""Model stages: train, evaluate, register and score. They read the data stages' files and log to MLflow."""

from __future__ import annotations

import logging
import re
import time
from functools import partial

import joblib
import mlflow
import numpy as np
import pandas as pd

from pipeline.config import Config, config_digest
from pipeline.data.io import read_parquet
from pipeline.evaluation.holdout import evaluate_holdout
from pipeline.evaluation.metrics import discrimination
from pipeline.mlops import registry
from pipeline.mlops.artifact import load_model_scorer, log_scoring_model
from pipeline.mlops.registry import CHAMPION, GateVerdict, alias_version, gate, next_version, set_alias
from pipeline.mlops.tracking import configure, git_commit
from pipeline.model.train import TARGET, FeatureTable, fit
from pipeline.stages.data import paths, write_json
from pipeline.stages.files import Paths, read_json

log = logging.getLogger(__name__)


def train(cfg: Config, config_path: str | None = None) -> dict:
    if cfg.kind == "accounts":  # account snapshots: pipeline/stages/accounts.py
        from pipeline.stages import accounts

        return accounts.train(cfg, config_path)
    p = paths(cfg)
    ingest_report = read_json(p.ingest_report)
    report = read_json(p.features_report)
    if cfg.compute.engine == "dask":  # the training rows stay on the cluster: pipeline/compute/train.py
        from pipeline.compute.train import fit_on_cluster

        fitted = partial(fit_on_cluster, cfg, p.features, p.valid, report)
    else:
        features = FeatureTable(read_parquet(p.features), report["features"], report["skipped"])
        fitted = partial(fit, read_parquet(p.valid), cfg, features)
    configure(cfg.output_dir, cfg.registry.experiment)
    started = time.perf_counter()
    with mlflow.start_run(run_name=f"{cfg.name}-train") as run:
        result = fitted()
        result.notes.extend(f"assumed: {note}" for note in report.get("assumptions", []))
        result.scorer.meta.update(
            {
                "git_commit": git_commit(),
                "data_sha256": ingest_report["data_sha256"],
                "config": cfg.name,
                "run_id": run.info.run_id,
            }
        )
        mlflow.log_params(_flat_params(cfg))
        mlflow.log_params(
            {"split_method": result.split_method, "features": ",".join(result.scorer.feature_names)[:6000]}
        )
        mlflow.set_tags(
            {
                "data_sha256": ingest_report["data_sha256"],
                "data_origin": ingest_report["origin"],
                "git_commit": result.scorer.meta["git_commit"],
                "config_name": cfg.name,
                "compute_engine": cfg.compute.engine,
            }
        )
        if config_path:
            mlflow.log_artifact(config_path, "config")
            mlflow.set_tag("config_sha256", config_digest(config_path))
        mlflow.log_metrics({k: float(v) for k, v in result.metrics.items() if v == v})
        mlflow.log_dict({"notes": result.notes, "search": result.search}, "train/notes.json")
        mlflow.log_dict(read_json(p.validation_report), "validate/summary.json")
        p.train_dir.mkdir(parents=True, exist_ok=True)
        joblib.dump(result.scorer, p.scorer, compress=3)
        np.savez(p.splits, allow_pickle=True, **result.splits)  # numpy's default, named: mypy maps **splits onto it
        info = {
            "run_id": run.info.run_id,
            "experiment_id": run.info.experiment_id,
            "metrics": result.metrics,
            "notes": result.notes,
            "split_method": result.split_method,
            "tracking_uri": mlflow.get_tracking_uri(),
            "seconds": round(time.perf_counter() - started, 2),
        }
        write_json(info, p.run)
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
            # MLflow allows only alphanumerics and _ - . space : / in names; recode keys may hold others ("< 1 year")
            flat[re.sub(r"[^\w\-. :/]", "_", prefix)] = str(value)[:500]

    walk("", cfg.model_dump(mode="json"))
    return flat


def _load_trained(p: Paths):
    scorer = joblib.load(p.scorer)
    splits = dict(np.load(p.splits))
    valid = read_parquet(p.valid)
    valid = valid[valid[TARGET].notna()].reset_index(drop=True)
    return scorer, splits, valid


def evaluate(cfg: Config, config_path: str | None = None) -> dict:
    if cfg.kind == "accounts":  # account snapshots: pipeline/stages/accounts.py
        from pipeline.stages import accounts

        return accounts.evaluate(cfg, config_path)
    p = paths(cfg)
    run = read_json(p.run)
    scorer, splits, valid = _load_trained(p)
    configure(cfg.output_dir, cfg.registry.experiment)
    with mlflow.start_run(run_id=run["run_id"]):
        evaluation = evaluate_holdout(scorer, valid, splits, cfg, p.report_dir)
        mlflow.log_metrics({k: float(v) for k, v in evaluation["metrics"].items() if v == v})
        write_json(evaluation, p.evaluation)
        mlflow.log_artifacts(str(p.report_dir), "evaluation")
    return evaluation


def _champion_holdout_metrics(name: str, valid: pd.DataFrame, test_idx: np.ndarray, cfg: Config) -> dict | None:
    """Score the challenger's holdout with the current champion, for a like-for-like comparison."""
    version = alias_version(name, CHAMPION)
    if version is None:
        return None
    champion = load_model_scorer(f"models:/{name}/{version}", str(version))  # verified before unpickling
    rows = valid.iloc[test_idx].reset_index(drop=True)
    checked = champion.validate(rows, "holdout", allow_all_rejected=True)
    scored = champion.score_valid(checked.valid)
    y = checked.valid[TARGET].to_numpy(dtype=int)
    return discrimination(y, scored["pd"].to_numpy(), cfg.evaluation.calibration_bins)


def register(cfg: Config, config_path: str | None = None) -> dict:
    """Log the scoring artifact, register it as `challenger`, run the gate, maybe promote."""
    if cfg.kind == "accounts":  # account snapshots: pipeline/stages/accounts.py
        from pipeline.stages import accounts

        return accounts.register(cfg, config_path)
    p = paths(cfg)
    run = read_json(p.run)
    evaluation = read_json(p.evaluation)
    scorer, splits, valid = _load_trained(p)
    configure(cfg.output_dir, cfg.registry.experiment)
    name = cfg.registry.model_name
    with mlflow.start_run(run_id=run["run_id"]):
        scorer.compile(cfg.scoring)  # native forests and the scoring settings ship inside the artifact
        example = valid.drop(columns=[c for c in ("row_number", TARGET, "granted_limit") if c in valid]).head(5)
        tags = {
            "data_sha256": scorer.meta.get("data_sha256", ""),
            "git_commit": scorer.meta.get("git_commit", ""),
            "run_id": run["run_id"],
            **{
                k: f"{v:.4f}"
                for k, v in run["metrics"].items()
                if k in ("test_roc_auc", "test_gini", "test_ece", "approval_rate")
            },
        }
        with registry.registration_lock():  # two concurrent registrations never swap version numbers
            version = next_version(name)
            scorer.meta["model_version"] = str(version)
            info = log_scoring_model(scorer, example)
            registered = registry.register(info.model_uri, name, version, tags)
        champion = _champion_holdout_metrics(name, valid, splits["test"], cfg)
        verdict = gate_and_log(name, registered, evaluation["gate"], champion, cfg)
    return write_registration(p, name, registered, verdict, champion)


def gate_and_log(name: str, registered: str, gate_metrics: dict, champion: dict | None, cfg: Config) -> GateVerdict:
    """The promotion gate for a just-registered version: promote it if it passes, log the verdict to the open run."""
    verdict = gate(gate_metrics, champion, cfg.registry.gate)
    if verdict.promote:
        set_alias(name, CHAMPION, registered, "gate", "; ".join(verdict.reasons))
    mlflow.log_text(verdict.text(), "register/gate_verdict.txt")
    mlflow.log_metric("gate_passed", float(verdict.promote))
    mlflow.set_tags({"gate_verdict": "promote" if verdict.promote else "keep", "registered_version": registered})
    return verdict


def write_registration(p: Paths, name: str, registered: str, verdict: GateVerdict, champion: dict | None) -> dict:
    """The register stage's output (registration.json): the version, the verdict and who is champion now."""
    result = {
        "model_name": name,
        "version": registered,
        "model_uri": f"models:/{name}/{registered}",
        "promoted": verdict.promote,
        "gate": verdict.reasons,
        "champion": alias_version(name, CHAMPION),
        "champion_holdout": champion,
    }
    write_json(result, p.registration)
    return result


def score(cfg: Config, config_path: str | None = None) -> dict:
    """Score the ingested file with the champion, as a batch job would (accounts: the monthly review)."""
    from pipeline.batch.job import score_file
    from pipeline.batch.review import review_file

    p = paths(cfg)
    name = read_json(p.registration)["model_name"]
    configure(cfg.output_dir, cfg.registry.experiment)
    job = review_file if cfg.kind == "accounts" else score_file
    return job(f"models:/{name}@{CHAMPION}", p.ingested, p.scores, cfg)
