"""The same artifact scores on Spark (local[2]) through mlflow.pyfunc.spark_udf, like a single process."""

import os
import shutil
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def spark():
    if shutil.which("java") is None:
        pytest.fail("Java is needed for the Spark test (Java 17 is on these machines)")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["PYSPARK_PYTHON"] = sys.executable  # executors use this venv, like a cluster's shipped env
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("credit-scoring-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    yield session
    session.stop()


def test_spark_udf_scores_match_single_process(spark, trained, tmp_path):
    import joblib
    import mlflow

    from helpers import ROOT
    from pipeline.mlops.artifact import CreditScoringModel, signature

    _, valid, result = trained
    scorer = result.scorer
    joblib.dump(scorer, tmp_path / "scorer.joblib")
    mlflow.pyfunc.save_model(
        tmp_path / "model",
        python_model=CreditScoringModel(),
        artifacts={"scorer": str(tmp_path / "scorer.joblib")},
        code_paths=[str(ROOT / "pipeline")],
        signature=signature(scorer),
        pip_requirements=["lightgbm"],
    )
    rows = valid.drop(columns=["row_number", "defaulted", "granted_limit"]).head(600).reset_index(drop=True)
    rows.loc[5, "age"] = 150  # one bad row: Spark must return it as rejected, not fail the partition
    udf = mlflow.pyfunc.spark_udf(
        spark,
        str(tmp_path / "model"),
        env_manager="local",
        result_type="applicant_id string, pd double, score double, grade string, "
        "decision string, credit_limit double, reason_1 string, decision_reasons string",
    )
    frame = spark.createDataFrame(rows.astype({"application_date": "datetime64[us]"})).repartition(3)
    names = [c.name for c in signature(scorer).inputs.inputs if c.name in rows.columns]  # by name, in signature order
    out = frame.select(udf(*[frame[c] for c in names]).alias("s")).select("s.*").toPandas()
    expected = scorer.score_all(rows)
    merged = expected.merge(out, on="applicant_id", suffixes=("", "_spark"))
    assert len(out) == len(rows) == len(merged)
    assert merged.loc[merged["decision"] == "rejected", "applicant_id"].tolist() == [rows.loc[5, "applicant_id"]]
    diff = merged[merged["decision"] != merged["decision_spark"]]
    assert diff.empty, (
        diff[
            [
                "applicant_id",
                "decision",
                "decision_spark",
                "pd",
                "pd_spark",
                "decision_reasons",
                "decision_reasons_spark",
            ]
        ]
        .head()
        .to_string()
    )
    ok = merged["decision"] != "rejected"
    np.testing.assert_allclose(merged.loc[ok, "pd"].astype(float), merged.loc[ok, "pd_spark"], rtol=0, atol=1e-12)
    assert (merged.loc[ok, "credit_limit"] == merged.loc[ok, "credit_limit_spark"]).all()
    differ = merged[merged["reason_1"].fillna("") != merged["reason_1_spark"].fillna("")]
    assert differ.empty, differ[["applicant_id", "reason_1", "reason_1_spark"]].head().to_string()
