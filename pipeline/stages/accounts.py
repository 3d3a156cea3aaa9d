"""The stages of a `kind: accounts` config: validate, features, train, evaluate, register on account snapshots.

Why the same stage table: an account run reads and writes the same files (`output/<name>/...`) with the
same lineage checks, logs to MLflow and registers under the same conventions as an applicant run, so
operators run, resume, promote and roll back both alike. `pipeline.stages.data` and `.model` dispatch
here when `cfg.kind == "accounts"`; ingest needs no branch (load_source maps onto the account contract).
"""

from __future__ import annotations

import logging
import time
from typing import cast

import joblib
import mlflow
import numpy as np
import pandas as pd

from pipeline.accounts.behaviour import BY_NAME, DICTIONARY, available_specs, compute_behaviour
from pipeline.accounts.contract import ID, validate_accounts
from pipeline.accounts.model import TARGET, early_warning_numbers, fit_accounts, labelled, review_numbers
from pipeline.accounts.review import review_accounts
from pipeline.accounts.scorer import AccountScorer
from pipeline.config import Config, config_digest
from pipeline.data.io import atomic_write_parquet, read_parquet
from pipeline.data.sources import as_accounts
from pipeline.errors import ConfigError
from pipeline.evaluation.holdout import gate_inputs
from pipeline.evaluation.metrics import discrimination, psi
from pipeline.mlops import registry
from pipeline.mlops.artifact import load_model_scorer
from pipeline.mlops.registry import CHAMPION, alias_version, next_version
from pipeline.mlops.tracking import configure, git_commit
from pipeline.stages.data import paths, write_json
from pipeline.stages.files import Paths, read_json
from pipeline.stages.model import gate_and_log, write_registration

log = logging.getLogger(__name__)
KEEP = ("row_number", ID, "snapshot_month", TARGET)


def validate(cfg: Config, config_path: str | None = None) -> dict:
    """The account contract; bad rows quarantined with (row_number, account_id, column, rule, value)."""
    p = paths(cfg)
    origin = read_json(p.ingest_report)["origin"]
    frame = as_accounts(read_parquet(p.ingested))
    required = [ID, "snapshot_month"] + ([TARGET] if cfg.contract.training_targets_required else [])
    try:
        result = validate_accounts(
            frame,
            cfg.accounts.history.months,
            origin,
            required=required,
            rejection_budget=cfg.validation.rejection_budget,
        )
    except Exception as err:
        partial = getattr(err, "result", None)
        if partial is not None:
            atomic_write_parquet(partial.rejects, p.rejects)
        raise
    atomic_write_parquet(result.valid, p.valid)
    atomic_write_parquet(result.rejects, p.rejects)
    summary = {"origin": origin, "kind": "accounts", **result.summary(), "rejects_file": str(p.rejects)}
    write_json(summary, p.validation_report)
    return summary


def features(cfg: Config, config_path: str | None = None) -> dict:
    """Behaviour features of every valid snapshot; a feature whose inputs are absent is skipped and reported."""
    p = paths(cfg)
    valid = read_parquet(p.valid)
    started = time.perf_counter()
    history = cfg.accounts.history
    specs = available_specs(valid.columns, history)
    columns = set(valid.columns)
    skipped = {s.name: "input(s) absent: " + ", ".join(s.missing(columns, history.months)) for s in DICTIONARY}
    skipped = {name: why for name, why in skipped.items() if name not in {s.name for s in specs}}
    table = compute_behaviour(valid, history, specs)
    atomic_write_parquet(pd.concat([valid[[c for c in KEEP if c in valid]], table], axis=1), p.features)
    report = {
        "kind": "accounts",
        "rows": len(table),
        "features": [s.name for s in specs],
        "skipped": skipped,
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_json(report, p.features_report)
    for name, why in skipped.items():
        log.warning("feature skipped: %s: %s", name, why)
    return report


def train(cfg: Config, config_path: str | None = None) -> dict:
    """The behaviour PD by the pipeline's PD recipe, in its own MLflow run; the scorer and splits for later stages."""
    from pipeline.stages.model import _flat_params  # the applicant stage's parameter flattening, reused

    p = paths(cfg)
    valid, table = read_parquet(p.valid), read_parquet(p.features)
    ingest_report, report = read_json(p.ingest_report), read_json(p.features_report)
    if not labelled(valid).any():
        raise ConfigError(f"{p.valid}: no snapshot has a known {TARGET}: nothing to train on")
    specs = [BY_NAME[name] for name in report["features"]]
    configure(cfg.output_dir, cfg.registry.experiment)
    started = time.perf_counter()
    with mlflow.start_run(run_name=f"{cfg.name}-train") as run:
        out = fit_accounts(valid, table, specs, cfg)
        meta = {"git_commit": git_commit(), "data_sha256": ingest_report["data_sha256"], "config": cfg.name}
        out.scorer.meta.update({**meta, "run_id": run.info.run_id})
        mlflow.log_params(_flat_params(cfg))
        mlflow.log_params({"split_method": out.split_method, "features": ",".join(out.scorer.feature_names)})
        mlflow.set_tags({**meta, "kind": "accounts", "data_origin": ingest_report["origin"], "config_name": cfg.name})
        if config_path:
            mlflow.log_artifact(config_path, "config")
            mlflow.set_tag("config_sha256", config_digest(config_path))
        mlflow.log_metrics({k: float(v) for k, v in out.metrics.items() if v == v})
        mlflow.log_dict({"notes": out.notes, "search": out.search}, "train/notes.json")
        mlflow.log_dict(read_json(p.validation_report), "validate/summary.json")
        p.train_dir.mkdir(parents=True, exist_ok=True)
        joblib.dump(out.scorer, p.scorer, compress=3)
        np.savez(p.splits, train=out.splits["train"], validation=out.splits["validation"],
                 calibration=out.splits["calibration"], test=out.splits["test"])  # fmt: skip
        info = {
            "run_id": run.info.run_id,
            "experiment_id": run.info.experiment_id,
            "metrics": out.metrics,
            "notes": out.notes,
            "split_method": out.split_method,
            "tracking_uri": mlflow.get_tracking_uri(),
            "seconds": round(time.perf_counter() - started, 2),
        }
        write_json(info, p.run)
    return info


def _load_trained(p: Paths) -> tuple[AccountScorer, dict[str, np.ndarray], pd.DataFrame]:
    """The scorer, its split positions, and the labelled valid rows those positions index."""
    scorer = joblib.load(p.scorer)
    if getattr(scorer, "kind", None) != "accounts":
        raise ConfigError(f"{p.scorer} is not an account model: rerun `make train` with this config")
    valid = read_parquet(p.valid)
    return scorer, dict(np.load(p.splits)), valid[labelled(valid)].reset_index(drop=True)


def holdout_numbers(scorer: AccountScorer, valid: pd.DataFrame, splits: dict, cfg: Config) -> dict:
    """AUC, ECE, PD stability and the early-warning and review numbers, all on the test part."""
    test = valid.iloc[splits["test"]].reset_index(drop=True)
    y, pd_test = test[TARGET].to_numpy(dtype=int), scorer.predict(test)
    pd_train = scorer.predict(valid.iloc[splits["train"]])
    bins = cfg.evaluation.calibration_bins
    metrics = {f"test_{k}": v for k, v in discrimination(y, pd_test, bins).items()}
    metrics["score_psi"] = psi(pd_train, pd_test, cfg.evaluation.psi_bins)
    review = review_accounts(test, pd_test, cfg.accounts)
    rank, status = review.frame["early_warning_rank"].to_numpy(), test["repayment_status_m1"].to_numpy(float)
    ew = early_warning_numbers(y, pd_test, rank, status, cfg.accounts.model, bins)
    for key, value in ew.items():
        if isinstance(value, dict):
            metrics[f"capture_{key.replace('%', 'pct')}"] = value["defaults_captured"]
    income = test["monthly_income"] if "monthly_income" in test else None
    numbers = review_numbers(review, pd_test, cfg.accounts.limits.decrease.trigger_pd, income)
    metrics.update({k: numbers[k] for k in ("softened_decreases", "affordable_plan_share")})
    return {"metrics": metrics, "early_warning": ew, "review": numbers}


def evaluate(cfg: Config, config_path: str | None = None) -> dict:
    """The holdout numbers, logged to the training run; gate inputs with no fairness screen (no protected attribute)."""
    p = paths(cfg)
    run = read_json(p.run)
    scorer, splits, valid = _load_trained(p)
    configure(cfg.output_dir, cfg.registry.experiment)
    with mlflow.start_run(run_id=run["run_id"]):
        result = holdout_numbers(scorer, valid, splits, cfg)
        result["gate"] = gate_inputs(result["metrics"], None)
        mlflow.log_metrics({k: float(v) for k, v in result["metrics"].items() if v == v})
        mlflow.log_dict(result, "evaluation/evaluation.json")
        write_json(result, p.evaluation)
    return result


def _champion_holdout_metrics(name: str, valid: pd.DataFrame, test_idx: np.ndarray, cfg: Config) -> dict | None:
    """The current champion scored on the challenger's holdout, for a like-for-like comparison."""
    version = alias_version(name, CHAMPION)
    if version is None:
        return None
    # verified before unpickling; an account version holds an AccountScorer
    champion = cast(AccountScorer, load_model_scorer(f"models:/{name}/{version}", str(version)))
    checked = champion.validate(valid.iloc[test_idx].reset_index(drop=True), "holdout")
    y = checked.valid[TARGET].to_numpy(dtype=int)
    return discrimination(y, champion.predict(checked.valid), cfg.evaluation.calibration_bins)


def register(cfg: Config, config_path: str | None = None) -> dict:
    """Log the account artifact, register it as `challenger` under the config's name, run the gate."""
    from pipeline.accounts.artifact import log_account_model

    p = paths(cfg)
    run, evaluation = read_json(p.run), read_json(p.evaluation)
    scorer, splits, valid = _load_trained(p)
    configure(cfg.output_dir, cfg.registry.experiment)
    name = cfg.registry.model_name
    with mlflow.start_run(run_id=run["run_id"]):
        version = next_version(name)
        scorer.meta["model_version"] = str(version)
        info = log_account_model(scorer, valid.drop(columns=[c for c in ("row_number", TARGET) if c in valid]).head(5))
        metrics = run["metrics"]
        tags = {
            "data_sha256": scorer.meta.get("data_sha256", ""),
            "git_commit": scorer.meta.get("git_commit", ""),
            "run_id": run["run_id"],
            "kind": "accounts",
            **{k: f"{metrics[k]:.4f}" for k in ("test_roc_auc", "test_gini", "test_ece") if k in metrics},
        }
        registered = registry.register(info.model_uri, name, version, tags)
        champion = _champion_holdout_metrics(name, valid, splits["test"], cfg)
        verdict = gate_and_log(name, registered, evaluation["gate"], champion, cfg)
    return write_registration(p, name, registered, verdict, champion)
