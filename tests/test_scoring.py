"""The batch scoring job: chunking, accounting, rejects, atomic output, drift, determinism."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from helpers import ROOT
from pipeline.batch.job import output_paths, score_file
from pipeline.errors import DataContractError, RejectionBudgetExceeded


@pytest.fixture(scope="module")
def contract_rows(trained):
    _, valid, _ = trained
    return valid.drop(columns=["row_number", "defaulted", "granted_limit"])


def write_csv(frame: pd.DataFrame, path, gz=False):
    text = frame.to_csv(index=False)
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def run(scorer, inp, out, cfg, **kw):
    return score_file("local", inp, out, cfg, scorer=scorer, progress=False, **kw)


def test_row_count_not_a_multiple_of_the_chunk_size(trained, contract_rows, tmp_path):
    cfg, _, result = trained
    rows = contract_rows.head(1003)
    summary = run(result.scorer, write_csv(rows, tmp_path / "in.csv"), tmp_path / "out.parquet", cfg, chunk_rows=100)
    scores = pd.read_parquet(tmp_path / "out.parquet")
    assert summary["rows_in"] == summary["rows_scored"] == len(scores) == 1003 and summary["rows_rejected"] == 0
    assert scores["applicant_id"].tolist() == rows["applicant_id"].tolist()
    assert scores["row_number"].tolist() == list(range(1, 1004))
    assert json.loads((tmp_path / "out.summary.json").read_text())["rows_in"] == 1003


def test_chunk_size_does_not_change_scores_and_same_input_gives_same_scores(trained, contract_rows, tmp_path):
    cfg, _, result = trained
    inp = write_csv(contract_rows.head(700), tmp_path / "in.csv.gz", gz=True)
    run(result.scorer, inp, tmp_path / "a.parquet", cfg, chunk_rows=64)
    run(result.scorer, inp, tmp_path / "b.parquet", cfg, chunk_rows=1000)
    run(result.scorer, inp, tmp_path / "c.parquet", cfg, chunk_rows=64)
    a, b, c = (pd.read_parquet(tmp_path / f"{x}.parquet") for x in "abc")
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)


def test_bad_rows_in_the_middle_are_quarantined_with_reasons(trained, contract_rows, tmp_path):
    cfg, _, result = trained
    rows = contract_rows.head(500).astype(object).copy()
    rows.loc[200, "age"] = "forty"
    rows.loc[201, "monthly_income"] = -100
    rows.loc[350, "housing"] = "castle"
    inp = write_csv(rows, tmp_path / "in.csv")
    summary = run(result.scorer, inp, tmp_path / "out.parquet", cfg, chunk_rows=128)
    rejects = pd.read_parquet(tmp_path / "out.rejects.parquet")
    assert summary["rows_in"] == 500 == summary["rows_scored"] + summary["rows_rejected"]
    assert summary["rows_rejected"] == 3
    assert rejects["row_number"].tolist() == [201, 202, 351]
    assert rejects["value"].tolist() == ["forty", "-100", "castle"]  # as written in the file
    assert "age: type:int" in summary["rejected_by_rule"]
    scores = pd.read_parquet(tmp_path / "out.parquet")
    assert 201 not in scores["row_number"].to_numpy() and len(scores) == 497


def test_empty_and_header_only_inputs_are_unusable(trained, contract_rows, tmp_path):
    cfg, _, result = trained
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataContractError, match="empty"):
        run(result.scorer, empty, tmp_path / "out.parquet", cfg)
    header = tmp_path / "header.csv"
    header.write_text(",".join(contract_rows.columns) + "\n")
    with pytest.raises(DataContractError, match="no data rows"):
        run(result.scorer, header, tmp_path / "out.parquet", cfg)
    assert not (tmp_path / "out.parquet").exists()


def test_all_rows_rejected_publishes_rejects_but_no_scores(trained, contract_rows, tmp_path):
    cfg, _, result = trained
    rows = contract_rows.head(50).copy()
    rows["age"] = 150
    with pytest.raises(DataContractError, match="every one of 50 rows was rejected"):
        run(result.scorer, write_csv(rows, tmp_path / "in.csv"), tmp_path / "out.parquet", cfg)
    assert not (tmp_path / "out.parquet").exists()
    assert len(pd.read_parquet(tmp_path / "out.rejects.parquet")) == 50


def test_rejection_budget_stops_publication(trained, contract_rows, tmp_path):
    cfg, _, result = trained
    rows = contract_rows.head(100).copy()
    rows.loc[rows.index[:10], "age"] = 5  # 10% > 5% budget
    with pytest.raises(RejectionBudgetExceeded, match="10 of 100 rows rejected"):
        run(result.scorer, write_csv(rows, tmp_path / "in.csv"), tmp_path / "out.parquet", cfg)
    assert not (tmp_path / "out.parquet").exists()
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert summary["rows_in"] == 100 == summary["rows_scored"] + summary["rows_rejected"]


def test_drift_is_reported_against_the_training_reference(trained, contract_rows, tmp_path):
    cfg, _, result = trained
    rows = contract_rows.head(2000)
    same = run(result.scorer, write_csv(rows, tmp_path / "same.csv"), tmp_path / "same.parquet", cfg)
    assert same["drift_alerts"] == []
    shifted = rows.copy()
    shifted["monthly_debt_payments"] = shifted["monthly_debt_payments"] * 3
    drift = run(result.scorer, write_csv(shifted, tmp_path / "shift.csv"), tmp_path / "shift.parquet", cfg)
    assert "debt_to_income" in drift["drift_alerts"]
    assert drift["drift_psi"]["debt_to_income"] > 0.25
    assert set(drift["drift_psi"]) >= {"score", "utilization"}


def test_summary_has_distributions_and_timings(trained, contract_rows, tmp_path):
    cfg, _, result = trained
    s = run(result.scorer, write_csv(contract_rows.head(300), tmp_path / "in.csv"), tmp_path / "o.parquet", cfg)
    assert 0 <= s["approval_rate"] <= 1
    assert 0 <= s["pd"]["p05"] <= s["pd"]["p50"] <= s["pd"]["p95"] <= 1
    assert s["score"]["min"] <= s["score"]["mean"] <= s["score"]["max"]
    assert set(s["seconds"]) == {"read", "validate", "score", "write", "total"}


def test_output_paths_sit_beside_the_output():
    rejects, summary = output_paths(ROOT / "x" / "scores.parquet")
    assert rejects.name == "scores.rejects.parquet" and summary.name == "scores.summary.json"


def score_cli(tmp_path, model, inp, out, *extra, wait=True):
    """`python -m pipeline score` in its own process, tracking to a store inside tmp_path."""
    args = [sys.executable, "-m", "pipeline", "score", "--model", str(model), "--input", str(inp), "--output", str(out)]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}
    if not wait:
        return subprocess.Popen(
            [*args, *extra], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    return subprocess.run([*args, *extra], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # a CLI process; test-fast keeps one CLI run: the statements test below
def test_local_model_folder_scores_from_the_cli(model_folder, contract_rows, tmp_path):
    inp = write_csv(contract_rows.head(200), tmp_path / "in.csv")
    proc = score_cli(tmp_path, model_folder, inp, tmp_path / "out.parquet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["rows_scored"] == 200
    assert "scoring" not in proc.stderr  # no progress bar when stderr is not a terminal


def test_score_writes_a_statement_per_scored_applicant(model_folder, contract_rows, tmp_path):
    rows = contract_rows.head(30)
    inp = write_csv(rows, tmp_path / "in.csv")
    statements = tmp_path / "statements"
    proc = score_cli(tmp_path, model_folder, inp, tmp_path / "out.parquet", "--statements", str(statements))
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["statements"] == summary["rows_scored"] == 30
    files = sorted(statements.glob("*.json"))
    assert len(files) == 30 and len(list(statements.glob("*.html"))) == 30
    first = json.loads(files[0].read_text())
    asked = rows.set_index("applicant_id").loc[first["applicant_id"], "requested_amount"]
    assert first["request"].startswith(f"You asked for {float(asked):,.0f}")


@pytest.mark.slow  # two CLI processes
def test_exit_codes_for_unusable_input_and_missing_model(model_folder, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a;b;c\n1;2;3\n")
    proc = score_cli(tmp_path, model_folder, bad, tmp_path / "o.parquet")
    assert proc.returncode == 3 and "applicant_id" in proc.stderr and "delimiter" in proc.stderr
    proc = score_cli(tmp_path, tmp_path / "nope", bad, tmp_path / "o.parquet")
    assert proc.returncode == 5 and "not found" in proc.stderr


@pytest.mark.slow  # a CLI process scoring 16,000 rows, killed
def test_a_job_killed_during_the_write_leaves_no_output(model_folder, contract_rows, tmp_path):
    big = pd.concat([contract_rows] * 40, ignore_index=True)
    big["applicant_id"] = [f"K{i}" for i in range(len(big))]
    inp = tmp_path / "big.parquet"
    big.to_parquet(inp)
    out = tmp_path / "out.parquet"
    proc = score_cli(tmp_path, model_folder, inp, out, "--chunk-rows", "2000", wait=False)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.parquet.tmp-*")):
        assert proc.poll() is None and time.monotonic() < deadline, "job ended before it started writing"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    assert np.all([p.name.startswith(".out.parquet.tmp") for p in tmp_path.glob("*out*")])


def test_an_id_repeated_in_a_later_chunk_is_rejected(trained, contract_rows, tmp_path):
    cfg, _, result = trained
    rows = contract_rows.head(300).copy()
    rows.loc[250, "applicant_id"] = rows.loc[10, "applicant_id"]  # chunk 3 repeats an id from chunk 1
    summary = run(result.scorer, write_csv(rows, tmp_path / "in.csv"), tmp_path / "out.parquet", cfg, chunk_rows=100)
    rejects = pd.read_parquet(tmp_path / "out.rejects.parquet")
    assert summary["rows_in"] == 300 and summary["rows_rejected"] == 1 and summary["rows_scored"] == 299
    assert rejects[["row_number", "column", "rule"]].values.tolist() == [[251, "applicant_id", "unique"]]
    assert pd.read_parquet(tmp_path / "out.parquet")["applicant_id"].is_unique


def test_reservoir_is_exact_below_its_size_and_bounded_above():
    from pipeline.batch.tallies import Reservoir

    values = np.arange(1000, dtype=float)
    small = Reservoir(size=5000)
    for part in np.array_split(values, 7):
        small.add(part)
    s = small.summary()
    assert s["p50"] == np.quantile(values, 0.5) and s["min"] == 0 and s["max"] == 999 and s["mean"] == 499.5
    big = Reservoir(size=500, seed=1)
    stream = np.random.default_rng(2).random(200_000)
    for part in np.array_split(stream, 40):
        big.add(part)
    assert len(big.sample) == 500 and big.seen == 200_000
    assert abs(big.summary()["p50"] - 0.5) < 0.06 and abs(big.summary()["mean"] - stream.mean()) < 1e-9


def test_csv_stream_without_final_newline_and_gzip_loses_no_row(tmp_path):
    from pipeline.data.io import iter_csv_text

    lines = ["applicant_id,age"] + [f"A{i},{20 + i % 50}" for i in range(2500)]
    plain = tmp_path / "x.csv"
    plain.write_text("\n".join(lines))  # no newline after the last row
    zipped = tmp_path / "x.csv.gz"
    with gzip.open(zipped, "wt") as f:
        f.write("\n".join(lines) + "\n")
    for path in (plain, zipped):
        blocks = list(iter_csv_text(path, 1000))  # ~100 rows per block
        frame = pd.concat(blocks, ignore_index=True)
        assert len(blocks) > 10 and len(frame) == 2500, path
        assert frame["applicant_id"].tolist() == [f"A{i}" for i in range(2500)]
        assert frame["age"].iloc[-1] == str(20 + 2499 % 50)


def test_scores_table_is_the_table_of_the_frame():
    """The batch job's table, made from the score columns without a frame, equals pandas' own conversion of the
    frame: types, NaN as null, pandas' metadata; a chunk whose inferred types differ goes the frame's way."""
    import pyarrow as pa

    from pipeline.batch.chunks import scores_table

    def columns(ids, amounts):
        return {
            "row_number": np.arange(1, len(ids) + 1),
            "applicant_id": pd.array(np.array(ids, dtype=object), dtype=object),
            "offer_amount": pd.array(np.asarray(amounts, dtype=float)),
            "grade": pd.array(["A", "B", None][: len(ids)], dtype="str"),
        }

    for cols in (columns(["a", "b", "c"], [1.0, np.nan, 3.0]), columns(["x", "y", "z"], [np.nan] * 3)):
        want = pa.Table.from_pandas(pd.DataFrame(cols), preserve_index=False)
        got = scores_table(cols)
        assert got.equals(want, check_metadata=True)
        assert got["offer_amount"].null_count == want["offer_amount"].null_count
    odd = columns([1, 2, 3], [1.0, 2.0, 3.0])  # ids that are not text: another type than the cached schema's
    assert scores_table(odd).equals(pa.Table.from_pandas(pd.DataFrame(odd), preserve_index=False), check_metadata=True)
