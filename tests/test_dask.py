"""The Dask engine (`compute: {engine: dask}`) on a real LocalCluster of two worker processes: its data stages
write the local engine's files row for row (rejects, duplicates and ids across partitions included), training
with lightgbm.dask lands within 0.005 AUC of one process on the same split, and the registered artifact
scores as the in-process scorer around the same booster does."""

from __future__ import annotations

import json

import joblib
import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pytest

from helpers import ROOT, SHARED_DATA, small_config
from pipeline.cli import _config, build_parser
from pipeline.compute.frames import conform, unify
from pipeline.compute.train import round_losses, stop_round
from pipeline.config import load_config, parse_config
from pipeline.data.io import read_parquet
from pipeline.errors import ConfigError
from pipeline.model.train import FeatureTable, TrainResult, fit
from pipeline.stages.files import Paths
from pipeline.stages.runner import run_stage, run_until

TAIWAN = SHARED_DATA / "taiwan_credit_card_default.csv.gz"
QUICK = {  # fewer rounds and one limit-tree size: these tests compare engines, docs/model-quality.md the quality
    "pd_model": {"num_boost_round": 150, "monotone": "prior"},
    "limit_model": {"num_boost_round": 100, "num_leaves_candidates": [15]},
}
AUC_TOLERANCE = 0.005


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as local:
        yield local.scheduler_address


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One output folder (so one MLflow store) for the module's runs, each under its own config name."""
    return tmp_path_factory.mktemp("dask-runs")


def engines(path: str, store, address: str, partition_rows: int, sample_rows: int = 200_000, **overrides):
    """The same config twice: one process, and the cluster at `address`."""
    data = load_config(ROOT / path).model_dump(mode="json")
    data["output_dir"], name = str(store), data["name"]
    for key, value in {**QUICK, **overrides}.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    for model in ("pd_model", "limit_model"):  # one thread, as each Dask worker has: on a busy 2-core machine two
        data[model]["params"] = {**data[model]["params"], "num_threads": 1}  # OpenMP threads wait on each other
    dask = {"engine": "dask", "address": address, "partition_rows": partition_rows, "sample_rows": sample_rows}
    return (
        parse_config({**data, "name": f"{name}-local"}),
        parse_config({**data, "name": f"{name}-dask", "compute": dask}),
    )


def one_process(cfg) -> TrainResult:
    """The data stages, then `fit` as the train stage calls it (without logging a run): one machine's model."""
    run_until("features", cfg)
    p, report = Paths(cfg.run_dir), json.loads(Paths(cfg.run_dir).features_report.read_text())
    return fit(
        read_parquet(p.valid), cfg, FeatureTable(read_parquet(p.features), report["features"], report["skipped"])
    )


def assert_same_files(local, dask, names=("ingested", "valid", "rejects", "features")) -> None:
    for name in names:
        pd.testing.assert_frame_equal(read_parquet(Paths(local.run_dir)[name]), read_parquet(Paths(dask.run_dir)[name]))


def accounted(summary: dict) -> bool:
    return summary["rows_in"] == summary["rows_valid"] + summary["rows_rejected"]


# ---------------------------------------------------------------- on the cluster


@pytest.mark.slow
def test_default_data_trains_as_one_process_and_its_artifact_scores_alike(cluster, store):
    local, dask = engines("configs/default.yaml", store, cluster, partition_rows=4000)
    one = one_process(local)
    many = run_until("register", dask)
    assert_same_files(local, dask)
    summary = json.loads(Paths(local.run_dir).validation_report.read_text())
    assert accounted(many["validate"]) and many["validate"] == {**summary, "rejects_file": dask_rejects(dask)}
    assert many["ingest"]["partitions"] == 5 and many["features"]["partitions"] == 5
    auc_one, auc_many = one.metrics["test_roc_auc"], many["train"]["metrics"]["test_roc_auc"]
    assert abs(auc_one - auc_many) <= AUC_TOLERANCE, (auc_one, auc_many)
    assert np.array_equal(one.splits["test"], np.load(Paths(dask.run_dir).splits)["test"])  # the same split

    registered = mlflow.pyfunc.load_model(many["register"]["model_uri"])
    frame = read_parquet(Paths(dask.run_dir).ingested).head(400)
    scorer = joblib.load(Paths(dask.run_dir).scorer)  # built in this process around the Dask-trained booster
    scorer.meta["model_version"] = many["register"]["version"]
    pd.testing.assert_frame_equal(registered.predict(frame), scorer.score_all(frame), rtol=1e-9)
    valid = scorer.validate(frame, "test").valid
    bare = scorer.pd_model.calibrator(scorer.pd_model.booster.predict(scorer.matrix(valid)))
    assert np.allclose(scorer.score_valid(valid)["pd"], bare, rtol=0, atol=1e-12)


def dask_rejects(cfg) -> str:
    return str(Paths(cfg.run_dir).rejects)


@pytest.mark.slow
def test_taiwan_csv_cut_into_partitions_matches_one_process(cluster, store, tmp_path):
    raw = pd.read_csv(TAIWAN, dtype=str)
    rng = np.random.default_rng(0)
    for i, row in enumerate(np.sort(rng.choice(len(raw), 60, replace=False))):
        column, value = [("AGE", "abc"), ("LIMIT_BAL", "-5"), ("PAY_0", "12"), ("EDUCATION", "9")][i % 4]
        raw.loc[row, column] = value
    raw.loc[20_000, "ID"] = raw.loc[5, "ID"]  # the same id in two partitions: both rows rejected, as in one frame
    raw.loc[25_000, "ID"] = " " + str(raw.loc[5, "ID"])
    raw.iloc[15_000, 1:] = raw.iloc[100, 1:]  # the same row (but for the id) in two partitions
    lines = raw.to_csv(index=False).splitlines(keepends=True)
    lines[17_001] = lines[17_001].rstrip("\n") + ",one,field,too many\n"  # a malformed line, rejected as such
    path = tmp_path / "taiwan.csv"
    path.write_text("".join(lines))
    local, dask = engines(
        "configs/taiwan.yaml",
        store,
        cluster,
        partition_rows=4000,
        sample_rows=5000,  # the monotone check and the drift references read a sample of the training rows
        source={"path": str(path)},
        validation={"duplicate_rows": "reject"},
    )
    one, many = one_process(local), run_until("train", dask)
    assert_same_files(local, dask)
    for stage, report in (
        ("ingest", "ingest_report"),
        ("validate", "validation_report"),
        ("features", "features_report"),
    ):
        drop = ("seconds", "engine", "partitions", "files", "rejects_file")
        alone = json.loads(Paths(local.run_dir)[report].read_text())
        assert {k: v for k, v in alone.items() if k not in drop} == {
            k: v for k, v in many[stage].items() if k not in drop
        }, stage
    summary = many["validate"]
    assert summary["rows_in"] == 30_000 and accounted(summary) and summary["duplicate_rows"] >= 1
    assert summary["rejected_by_rule"]["applicant_id: unique"] == 3
    assert summary["rejected_by_rule"]["<line>: malformed_line: expected 25 fields, got 28"] == 1
    assert many["ingest"]["partitions"] == 8
    auc_one, auc_many = one.metrics["test_roc_auc"], many["train"]["metrics"]["test_roc_auc"]
    assert abs(auc_one - auc_many) <= AUC_TOLERANCE, (auc_one, auc_many)
    assert any("Dask cluster (2 workers" in note and "5,000 of 17," in note for note in many["train"]["notes"])


@pytest.mark.slow
def test_a_folder_of_parquet_files_is_one_dataset_numbered_throughout(cluster, tmp_path):
    from pipeline.data.sources.synthetic import generate

    cfg = small_config(tmp_path, rows=1500)
    frame = generate(cfg.source, cfg.contract.history_months, cfg.features).drop(columns=["applicant_id"])
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, start in enumerate(range(0, 1500, 600)):  # 600 + 600 + 300 rows; the reader cuts 250-row partitions
        frame.iloc[start : start + 600].to_parquet(folder / f"part-{i}.parquet", row_group_size=400)
    frame.to_parquet(tmp_path / "whole.parquet")
    columns = {c: c for c in frame.columns}  # mapped, without an id column: ids are the rows' numbers
    local = with_source(small_config(tmp_path / "a"), {"kind": "file", "path": str(tmp_path / "whole.parquet")})
    dask = with_source(
        small_config(tmp_path / "b", compute={"engine": "dask", "address": cluster, "partition_rows": 250}),
        {"kind": "file", "path": str(folder), "columns": columns},
    )
    local = with_source(local, {**local.source.model_dump(), "columns": columns})
    run_until("validate", local)
    many = run_until("validate", dask)
    assert many["ingest"]["files"] == 3 and many["ingest"]["partitions"] == 8  # 250+150+200 twice, then 250+50
    assert_same_files(local, dask, ("ingested", "valid", "rejects"))
    assert read_parquet(Paths(dask.run_dir).valid)["applicant_id"].tolist() == [str(i) for i in range(1, 1501)]


def with_source(cfg, source: dict):
    return parse_config({**cfg.model_dump(mode="json"), "source": source})


@pytest.mark.slow
def test_without_an_address_a_local_cluster_runs_the_stage_and_is_closed(tmp_path):
    cfg = small_config(tmp_path, rows=500, compute={"engine": "dask", "n_workers": 1, "threads_per_worker": 1})
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    report = run_stage("ingest", cfg)
    assert report["rows"] == 500 and report["engine"] == "dask"
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before and p.is_running()]
    assert not [p for p in left if p.status() != psutil.STATUS_ZOMBIE], left


# ---------------------------------------------------------------- without a cluster


def test_stop_round_is_where_lightgbm_early_stopping_stops():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 6))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=1.5, size=3000) > 0).astype(int)
    params = {"objective": "binary", "metric": "binary_logloss", "learning_rate": 0.3, "verbose": -1, "seed": 0}
    train, valid = lgb.Dataset(X[:2000], y[:2000]), (X[2000:], y[2000:])
    evals: dict = {}
    stopped = lgb.train(
        params,
        train,
        300,
        valid_sets=[lgb.Dataset(*valid, reference=train)],
        callbacks=[lgb.early_stopping(10, verbose=False), lgb.record_evaluation(evals)],
    )
    full = lgb.train(params, lgb.Dataset(X[:2000], y[:2000]), 300)
    losses = round_losses(full, *valid, "binary_logloss")
    assert np.allclose(losses[: len(evals["valid_0"]["binary_logloss"])], evals["valid_0"]["binary_logloss"])
    assert stop_round(losses, 10) == stopped.best_iteration < 300


def test_round_losses_follow_lightgbm_quantile_loss():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(1500, 4)), rng.lognormal(size=1500)
    params = {"objective": "quantile", "alpha": 0.3, "metric": "quantile", "verbose": -1}
    evals: dict = {}
    train = lgb.Dataset(X[:1000], y[:1000])
    booster = lgb.train(
        params,
        train,
        40,
        valid_sets=[lgb.Dataset(X[1000:], y[1000:], reference=train)],
        callbacks=[lgb.record_evaluation(evals)],
    )
    assert np.allclose(round_losses(booster, X[1000:], y[1000:], "quantile", 0.3), evals["valid_0"]["quantile"])


def test_partitions_of_different_types_are_written_with_the_common_one():
    parts = [
        pd.DataFrame({"a": [1.5, None], "b": [1, 2], "c": [None, None]}),
        pd.DataFrame({"a": pd.Series(["x", None], dtype=object), "b": [3.5, 4.0], "c": ["k", None]}),
    ]
    schema = unify([pa.Schema.from_pandas(p, preserve_index=False) for p in parts])
    assert [schema.field(n).type for n in "ab"] == [pa.string(), pa.float64()]
    assert pa.types.is_large_string(schema.field("c").type)  # pandas 3 text; the all-null partition takes it
    table = pa.concat_tables([conform(p, schema) for p in parts])
    assert table.column("a").to_pylist() == ["1.5", None, "x", None]  # str(), as `_parquet_safe` writes numbers
    assert table.column("b").to_pylist() == [1.0, 2.0, 3.5, 4.0]


def test_engine_settings_are_checked_when_the_config_loads(tmp_path):
    with pytest.raises(ConfigError, match="apply only with engine: dask"):
        parse_config({"compute": {"address": "tcp://10.0.0.1:8786"}})
    with pytest.raises(ConfigError, match="size a LocalCluster"):
        parse_config({"compute": {"engine": "dask", "address": "tcp://10.0.0.1:8786", "n_workers": 2}})
    with pytest.raises(ConfigError, match="kind: accounts runs in one process"):
        parse_config({"kind": "accounts", "compute": {"engine": "dask"}})
    assert parse_config({}).compute.engine == "local"


def test_the_dask_flag_sets_the_engine_and_the_address(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"compute": {"engine": "dask", "n_workers": 3}}))
    remote = _config(build_parser().parse_args(["train", "--config", str(path), "--dask", "tcp://10.0.0.1:8786"]))
    assert (remote.compute.engine, remote.compute.address, remote.compute.n_workers) == (
        "dask",
        "tcp://10.0.0.1:8786",
        None,
    )
    local = _config(build_parser().parse_args(["run", "--config", str(path), "--dask", "local"]))
    assert (local.compute.engine, local.compute.address, local.compute.n_workers) == ("dask", None, 3)
    plain = _config(build_parser().parse_args(["validate", "--config", str(ROOT / "configs/default.yaml")]))
    assert plain.compute.engine == "local"
