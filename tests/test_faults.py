"""The fault matrix of docs/operations.md: every case, its exit code and what it leaves on disk.

Each test is named in the matrix. Faults are made for real: a 64 KiB tmpfs fills up, a tmpfs
is remounted read-only, a process gets SIGTERM, two processes register at once, an artifact
file is replaced by a pickle that runs code.

Tests that start `python -m pipeline` processes (signals, racing registrations, exit codes as a
scheduler sees them) are marked slow: each process costs several CPU-seconds of imports. `make test`
runs them; `make test-fast` runs only the in-process cases.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

import joblib
import mlflow
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from helpers import ROOT
from pipeline import cli
from pipeline.batch.job import score_file
from pipeline.errors import ArtifactIntegrityError, ConfigError, RejectionBudgetExceeded, StorageError

# ------------------------------------------------------------------ shared inputs


@pytest.fixture(scope="module")
def rows(trained) -> pd.DataFrame:
    _, valid, _ = trained
    return valid.drop(columns=["row_number", "defaulted", "granted_limit"]).head(400).reset_index(drop=True)


def score(trained, inp: Path, out: Path, **kw) -> dict:
    cfg, _, result = trained
    return score_file("local", inp, out, cfg, scorer=result.scorer, progress=False, **kw)


def score_cli(tmp_path: Path, model, inp, out, *extra, env=None, wait=True):
    """`python -m pipeline score` in its own process; the tracking URI points at a store that is never needed."""
    args = [sys.executable, "-m", "pipeline", "score", "--model", str(model), "--input", str(inp), "--output", str(out)]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'unused.db'}", **(env or {})}
    if not wait:
        return subprocess.Popen([*args, *extra], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run([*args, *extra], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def csv_lines(frame: pd.DataFrame) -> list[str]:
    return frame.to_csv(index=False).splitlines()


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------ 1. malformed lines


def test_malformed_lines_are_rejected_not_fatal(trained, rows, tmp_path):
    lines = csv_lines(rows)
    width = len(lines[0].split(","))
    lines[11] = lines[11] + ",EXTRA"  # data row 11
    lines[201] = lines[201].rsplit(",", 1)[0]  # data row 201, one field short
    lines[302] = lines[302].replace(",", ',"', 1)  # data row 302, an unclosed quote
    summary = score(trained, write_lines(tmp_path / "in.csv", lines), tmp_path / "out.parquet", chunk_rows=64)
    rejects = pd.read_parquet(tmp_path / "out.rejects.parquet")
    assert summary["rows_in"] == 400 == summary["rows_scored"] + summary["rows_rejected"]
    assert summary["rows_rejected"] == 3 and summary["status"] == "scored"
    assert rejects["row_number"].tolist() == [11, 201, 302] and set(rejects["column"]) == {"<line>"}
    assert rejects["rule"].tolist() == [
        f"malformed_line: expected {width} fields, got {width + 1}",
        f"malformed_line: expected {width} fields, got {width - 1}",
        "malformed_line: unclosed quote",
    ]
    assert rejects["value"].iloc[0] == lines[11][:200] + (
        f"...({len(lines[11])} chars)" if len(lines[11]) > 200 else ""
    )
    scores = pd.read_parquet(tmp_path / "out.parquet")
    assert 12 in scores["row_number"].to_numpy() and 11 not in scores["row_number"].to_numpy()


def test_malformed_lines_count_against_the_budget(trained, rows, tmp_path):
    lines = csv_lines(rows)
    for i in range(1, 41):  # 40 of 400 = 10% > 5%
        lines[i] = lines[i] + ",x"
    with pytest.raises(RejectionBudgetExceeded, match="40 of 400 rows rejected"):
        score(trained, write_lines(tmp_path / "in.csv", lines), tmp_path / "out.parquet")


def test_ingest_and_score_read_the_same_rows(trained, rows, tmp_path):
    """CR-only line ends, a quoted line end and a malformed line: the whole-file and streaming reads agree."""
    from pipeline.data.io import read_csv_text

    frame = rows.head(50).astype(object).copy()
    frame.loc[3, "applicant_id"] = "id\rwith a line end"
    text = frame.to_csv(index=False, lineterminator="\r").split("\r")  # row 4's quoted CR splits it in two pieces
    text[22] = text[22] + ",EXTRA"  # data row 21
    path = tmp_path / "cr.csv"
    path.write_bytes("\r".join(text).encode())
    whole = read_csv_text(path)
    summary = score(trained, path, tmp_path / "out.parquet", chunk_rows=7)
    scored = pd.read_parquet(tmp_path / "out.parquet")
    assert len(whole) == 50 == summary["rows_in"]
    assert whole["applicant_id"].iloc[3] == "id\rwith a line end"
    assert scored["applicant_id"].tolist() == [a for i, a in enumerate(whole["applicant_id"]) if i != 20]


# ------------------------------------------------------------------ 2. dates with offsets


def test_dates_with_offsets_do_not_crash_scoring(trained, rows, tmp_path):
    frame = rows.head(100).astype(object).copy()
    frame.loc[0, "application_date"] = "2024-03-01T23:30:00+02:00"
    frame.loc[1, "application_date"] = "2024-03-01T01:00:00-05:00"
    frame.loc[2, "application_date"] = "2024-03-01T25:00:00+02:00"  # no such hour: rejected, not a crash
    summary = score(trained, write_lines(tmp_path / "in.csv", csv_lines(frame)), tmp_path / "out.parquet")
    assert summary["rows_in"] == 100 and summary["rows_rejected"] == 1
    assert summary["rejected_by_rule"] == {"application_date: type:date": 1}


def test_cli_validate_with_mixed_offsets_exits_0(tmp_path, rows):
    frame = rows.head(60).astype(object).copy()
    frame["defaulted"] = [i % 2 for i in range(60)]
    frame.loc[0, "application_date"] = "2024-03-01T23:30:00+02:00"
    frame.loc[1, "application_date"] = "2024-03-01T01:00:00Z"
    config = file_config(tmp_path, write_lines(tmp_path / "in.csv", csv_lines(frame)))
    assert cli.main(["ingest", "--config", str(config)]) == 0
    assert cli.main(["validate", "--config", str(config)]) == 0
    valid = pd.read_parquet(tmp_path / "out" / "f" / "validate" / "valid.parquet")
    assert valid["application_date"].iloc[:2].astype(str).tolist() == ["2024-03-01 21:30:00", "2024-03-01 01:00:00"]


# ------------------------------------------------------------------ 3. one run's outputs, published together


def test_failed_rerun_leaves_no_mix_of_two_runs(trained, rows, tmp_path):
    good = write_lines(tmp_path / "good.csv", csv_lines(rows))
    out = tmp_path / "out.parquet"
    first = score(trained, good, out)
    assert first["status"] == "scored" and out.exists()
    bad_rows = rows.copy()
    bad_rows.loc[:59, "age"] = 5  # 15% rejected
    with pytest.raises(RejectionBudgetExceeded):
        score(trained, write_lines(tmp_path / "bad.csv", csv_lines(bad_rows)), out)
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert not out.exists(), "the previous run's scores must not stand beside this run's summary"
    assert summary["status"] == "rejection_budget_exceeded" and summary["scores_published"] is False
    assert summary["input"].endswith("bad.csv") and len(pd.read_parquet(tmp_path / "out.rejects.parquet")) == 60
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bad.csv",
        "good.csv",
        "out.rejects.parquet",
        "out.summary.json",
    ]


def test_a_run_that_fails_before_publishing_keeps_the_previous_set(trained, rows, tmp_path):
    out = tmp_path / "out.parquet"
    score(trained, write_lines(tmp_path / "good.csv", csv_lines(rows)), out)
    before = {p.name: p.read_bytes() for p in tmp_path.glob("out*")}
    (tmp_path / "empty.csv").write_text(",".join(rows.columns) + "\n")
    with pytest.raises(Exception, match="no data rows"):
        score(trained, tmp_path / "empty.csv", out)
    assert {p.name: p.read_bytes() for p in tmp_path.glob("out*")} == before
    assert not list(tmp_path.glob(".*tmp-*"))


@pytest.mark.parametrize(
    ("input_name", "output"),
    [
        ("in.csv", "in.csv"),
        ("in.csv", "sub/../in.csv"),
        ("in.csv", "link.parquet"),  # a symlink to the input
        ("x.summary.json", "x"),  # the summary would land on the input
        ("x.rejects.parquet", "x.parquet"),  # the rejects would
    ],
)
def test_output_that_would_overwrite_the_input_is_refused(trained, rows, tmp_path, monkeypatch, input_name, output):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    inp = write_lines(tmp_path / input_name, csv_lines(rows.head(20)))
    (tmp_path / "link.parquet").symlink_to(inp)
    before = inp.read_bytes()
    with pytest.raises(ConfigError, match="would overwrite the input") as err:
        score(trained, inp, Path(output))
    assert err.value.exit_code == 2 and inp.read_bytes() == before


@pytest.mark.slow
def test_cli_output_equal_to_input_exits_2(model_folder, rows, tmp_path):
    inp = write_lines(tmp_path / "in.csv", csv_lines(rows.head(20)))
    proc = score_cli(tmp_path, model_folder, inp, inp)
    assert proc.returncode == 2 and "would overwrite the input" in proc.stderr
    assert inp.read_text().startswith("applicant_id")


# ------------------------------------------------------------------ 4. stale lineage


def file_config(tmp_path: Path, data: Path, budget: float = 0.05, **source) -> Path:
    config = {
        "name": "f",
        "output_dir": str(tmp_path / "out"),
        "source": {"kind": "file", "path": str(data), **source},
        "contract": {"history_months": 6, "protected": ["gender"]},
        "validation": {"rejection_budget": budget},
        "registry": {"model_name": "faults-f", "experiment": "faults-f"},
    }
    path = tmp_path / "f.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_after_a_failed_validate_features_and_train_refuse_the_old_valid_rows(trained, tmp_path, capsys):
    _, valid, _ = trained
    frame = valid.drop(columns=["row_number"]).head(300)
    data = write_lines(tmp_path / "in.csv", csv_lines(frame))
    config = file_config(tmp_path, data)
    for stage in ("ingest", "validate", "features"):
        assert cli.main([stage, "--config", str(config)]) == 0, stage
    bad = frame.copy()
    bad.loc[:99, "age"] = 5
    write_lines(data, csv_lines(bad))
    assert cli.main(["ingest", "--config", str(config)]) == 0
    assert cli.main(["validate", "--config", str(config)]) == 4
    capsys.readouterr()
    assert (tmp_path / "out" / "f" / "validate" / "valid.parquet").exists()  # the old file is still there ...
    assert cli.main(["features", "--config", str(config)]) == 7  # ... but is not used
    assert "valid.parquet has no lineage record of a completed `validate` run" in capsys.readouterr().err
    assert cli.main(["train", "--config", str(config)]) == 7


# ------------------------------------------------------------------ 5. signals and left-overs


def wait_for(predicate, timeout: float, proc: subprocess.Popen | None = None, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended ({proc.returncode}) before {what}: {proc.stderr.read()[-2000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def big_input(trained, tmp_path_factory) -> Path:
    _, valid, _ = trained
    big = pd.concat([valid.drop(columns=["row_number", "defaulted", "granted_limit"])] * 40, ignore_index=True)
    big["applicant_id"] = [f"K{i}" for i in range(len(big))]
    path = tmp_path_factory.mktemp("big") / "big.parquet"
    big.to_parquet(path)
    return path


@pytest.mark.slow
def test_sigterm_during_scoring_exits_143_and_cleans_up(model_folder, big_input, trained, rows, tmp_path):
    out = tmp_path / "out.parquet"
    score(trained, write_lines(tmp_path / "good.csv", csv_lines(rows)), out)
    before = {p.name: p.read_bytes() for p in tmp_path.glob("out*")}
    proc = score_cli(tmp_path, model_folder, big_input, out, "--chunk-rows", "2000", wait=False)
    wait_for(lambda: list(tmp_path.glob(".out.parquet.tmp-*")), 120, proc, "it started writing")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err.decode()[-2000:]
    assert "stopped by signal 15" in err.decode()
    assert not list(tmp_path.glob(".*tmp-*")), "temporary files must be removed"
    assert {p.name: p.read_bytes() for p in tmp_path.glob("out*")} == before


@pytest.mark.slow
def test_sigkill_leftovers_are_removed_by_the_next_run(model_folder, big_input, rows, tmp_path):
    out = tmp_path / "out.parquet"
    proc = score_cli(tmp_path, model_folder, big_input, out, "--chunk-rows", "2000", wait=False)
    wait_for(lambda: list(tmp_path.glob(".out.parquet.tmp-*")), 120, proc, "it started writing")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(tmp_path.glob(".out.parquet.tmp-*")), "SIGKILL cannot be caught: the temporary file stays"
    done = score_cli(tmp_path, model_folder, write_lines(tmp_path / "in.csv", csv_lines(rows.head(50))), out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list(tmp_path.glob(".*tmp-*")) and out.exists()


@pytest.mark.slow
def test_sigterm_during_train_ends_the_mlflow_run_killed(tmp_path):
    config = {
        "name": "sig",
        "output_dir": str(tmp_path / "out"),
        "source": {"kind": "synthetic", "rows": 20000, "seed": 5},
        "pd_model": {"num_boost_round": 3000, "early_stopping_rounds": 3000},
        "registry": {"model_name": "faults-sig", "experiment": "faults-sig"},
    }
    path = tmp_path / "sig.yaml"
    path.write_text(yaml.safe_dump(config))
    for stage in ("ingest", "validate", "features"):
        assert cli.main([stage, "--config", str(path)]) == 0
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "train", "--config", str(path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    store = tmp_path / "out" / "mlflow.db"

    def statuses() -> list[str]:
        """Run statuses read through a read-only SQLite connection: an MLflow client here would
        race the child to create the store's tables ("table ... already exists")."""
        if not store.exists():
            return []
        try:
            with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=1)) as db:
                rows = db.execute(
                    "SELECT r.status FROM runs r JOIN experiments e ON r.experiment_id = e.experiment_id"
                    " WHERE e.name = 'faults-sig'"
                ).fetchall()
        except sqlite3.Error:  # the child is still creating the store
            return []
        return [status for (status,) in rows]

    wait_for(lambda: "RUNNING" in statuses(), 180, proc, "the MLflow run started")
    time.sleep(1.0)  # inside training
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err.decode()[-2000:]
    assert statuses() == ["KILLED"]
    assert not (tmp_path / "out" / "sig" / "train" / "lineage.json").exists()


# ------------------------------------------------------------------ 6. I/O failures: exit 74 naming the path


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs (root only), filled up but for about 1 KiB: a real full disk."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    assert done.returncode == 0, f"mounting a tmpfs needs root: {done.stderr!r}"
    filler = mount / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 1024)
        except OSError:
            pass
    with open(filler, "r+b") as f:
        f.truncate(max(filler.stat().st_size - 4096, 0))
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_full_disk_exits_74_naming_the_path(model_folder, rows, tmp_path, tiny_disk):
    inp = write_lines(tmp_path / "in.csv", csv_lines(rows))
    out = tiny_disk / "scores.parquet"
    proc = score_cli(tmp_path, model_folder, inp, out)
    assert proc.returncode == 74, proc.stderr[-2000:]
    assert (
        str(out) in proc.stderr and "No space left on device (ENOSPC)" in proc.stderr and "Traceback" not in proc.stderr
    )
    assert [p.name for p in tiny_disk.iterdir()] == ["filler"]  # nothing half-written, no temporary file


def test_read_only_output_exits_74(trained, rows, tmp_path, tiny_disk):
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    with pytest.raises(StorageError, match=r"Read-only file system \(EROFS\)") as err:
        score(trained, write_lines(tmp_path / "in.csv", csv_lines(rows.head(20))), tiny_disk / "s.parquet")
    assert err.value.exit_code == 74 and str(tiny_disk) in str(err.value)


@pytest.mark.slow
def test_output_under_a_file_exits_74(model_folder, rows, tmp_path):
    (tmp_path / "afile").write_text("x")
    inp = write_lines(tmp_path / "in.csv", csv_lines(rows.head(20)))
    proc = score_cli(tmp_path, model_folder, inp, tmp_path / "afile" / "scores.parquet")
    assert proc.returncode == 74, proc.stderr[-2000:]
    assert "afile" in proc.stderr and "a part of the path is a file" in proc.stderr


# ------------------------------------------------------------------ 7 and 8. registry: concurrency and integrity


REGISTER_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import joblib, mlflow
    from pipeline.mlops import registry
    from pipeline.mlops.artifact import log_scoring_model
    from pipeline.mlops.tracking import configure

    out, me, other, scorer_path, example_path, lock = sys.argv[1:7]
    if lock == "nolock":  # as on a tracking server, where no file lock can be taken
        registry.acquire_registration_lock = lambda: None
    configure(out, "faults-reg")
    scorer = joblib.load(scorer_path)
    scorer.meta["marker"] = me
    Path(out, me + ".ready").touch()
    while not Path(out, other + ".ready").exists():
        time.sleep(0.01)
    with mlflow.start_run():
        version = registry.next_version("faults-reg")          # what stages/model.py::register does
        scorer.meta["model_version"] = str(version)
        info = log_scoring_model(scorer, __import__("pandas").read_parquet(example_path))
        got = registry.register(info.model_uri, "faults-reg", version, {})
    print(json.dumps({"marker": me, "version": got}))
    """
)


@pytest.fixture(scope="module")
def scorer_files(trained, rows, tmp_path_factory) -> tuple[Path, Path]:
    _, _, result = trained
    folder = tmp_path_factory.mktemp("scorer")
    joblib.dump(result.scorer, folder / "scorer.joblib")
    rows.head(5).to_parquet(folder / "example.parquet")
    return folder / "scorer.joblib", folder / "example.parquet"


def register_twice(scorer_files, out: Path, lock: str) -> list[subprocess.Popen]:
    """Two processes that start registering at the same moment; returns them finished."""
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REGISTER_CHILD, str(out), me, other, *map(str, scorer_files), lock],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for me, other in (("A", "B"), ("B", "A"))
    ]
    for proc in procs:
        proc.stdout_text, proc.stderr_text = proc.communicate(timeout=300)
    return procs


@pytest.mark.slow
def test_concurrent_registrations_cannot_mislabel_a_version(scorer_files, tmp_path):
    from pipeline.batch.job import load_scorer
    from pipeline.mlops.tracking import configure

    procs = register_twice(scorer_files, tmp_path / "out", "lock")
    for proc in procs:
        assert proc.returncode == 0, proc.stderr_text[-3000:]
    results = [json.loads(p.stdout_text.strip().splitlines()[-1]) for p in procs]
    assert sorted(r["version"] for r in results) == ["1", "2"]
    configure(tmp_path / "out", "faults-reg")
    for r in results:
        uri = f"models:/faults-reg/{r['version']}"
        assert mlflow.models.get_model_info(uri).metadata["model_version"] == r["version"]
        scorer, version = load_scorer(uri)
        assert (scorer.meta["marker"], scorer.meta["model_version"], version) == (
            r["marker"],
            r["version"],
            r["version"],
        )


@pytest.mark.slow
def test_without_a_lock_the_raced_registration_is_removed_not_mislabelled(scorer_files, tmp_path):
    """A tracking server has no lock: both take v1; the one the registry numbered v2 deletes it and fails."""
    from pipeline.mlops.tracking import configure

    procs = register_twice(scorer_files, tmp_path / "out", "nolock")
    assert sorted(p.returncode for p in procs) == [0, 1]
    failed = next(p for p in procs if p.returncode)
    assert "another registration took v1 meanwhile" in failed.stderr_text and "was removed" in failed.stderr_text
    configure(tmp_path / "out", "faults-reg")
    versions = MlflowClient().search_model_versions("name='faults-reg'")
    assert [str(v.version) for v in versions] == ["1"]
    assert mlflow.models.get_model_info("models:/faults-reg/1").metadata["model_version"] == "1"


@pytest.fixture
def registered(scorer_files, tmp_path):
    """One version registered in-process in a fresh store; returns the store folder and the artifact's scorer file."""
    from pipeline.mlops import registry
    from pipeline.mlops.artifact import log_scoring_model
    from pipeline.mlops.tracking import configure

    out = tmp_path / "out"
    configure(out, "faults-int")
    scorer = joblib.load(scorer_files[0])
    with mlflow.start_run():
        version = registry.next_version("faults-int")
        scorer.meta["model_version"] = str(version)
        info = log_scoring_model(scorer, pd.read_parquet(scorer_files[1]))
        registry.register(info.model_uri, "faults-int", version, {})
    registry.set_alias("faults-int", "champion", "1", "test", "first")
    (pickled,) = [p for p in (out / "mlartifacts").rglob("scorer.joblib")]
    return out, pickled


EVIL = "import os\nclass Evil:\n    def __reduce__(self):\n        return (os.system, ('touch {marker}',))\n"


def test_a_replaced_artifact_file_is_refused_before_unpickling(registered, tmp_path):
    from pipeline.batch.job import load_scorer

    out, pickled = registered
    scorer, version = load_scorer("models:/faults-int@champion")  # intact: loads
    assert version == "1" and scorer.meta["model_version"] == "1"
    marker = tmp_path / "pwned"
    namespace: dict = {}
    exec(EVIL.format(marker=marker), namespace)
    joblib.dump(namespace["Evil"](), pickled)
    with pytest.raises(ArtifactIntegrityError, match=r"changed: artifacts/scorer\.joblib") as err:
        load_scorer("models:/faults-int@champion")
    assert err.value.exit_code == 8 and not marker.exists()


@pytest.mark.slow
def test_cli_refuses_a_tampered_artifact_with_exit_8(registered, rows, tmp_path):
    out, pickled = registered
    pickled.write_bytes(pickled.read_bytes() + b"\0")
    inp = write_lines(tmp_path / "in.csv", csv_lines(rows.head(20)))
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{out / 'mlflow.db'}"}
    proc = score_cli(tmp_path, "models:/faults-int@champion", inp, tmp_path / "s.parquet", env=env)
    assert proc.returncode == 8, proc.stderr[-2000:]
    assert "artifacts/scorer.joblib" in proc.stderr and not (tmp_path / "s.parquet").exists()


# ------------------------------------------------------------------ 9. id_column without columns


def test_id_column_without_columns_keeps_every_contract_column(trained, tmp_path):
    _, valid, _ = trained
    frame = valid.drop(columns=["row_number"]).head(200).rename(columns={"applicant_id": "app_id"})
    config = file_config(tmp_path, write_lines(tmp_path / "in.csv", csv_lines(frame)), id_column="app_id")
    assert cli.main(["ingest", "--config", str(config)]) == 0
    ingested = pd.read_parquet(tmp_path / "out" / "f" / "ingest" / "applicants.parquet")
    assert set(ingested.columns) == {"applicant_id", *frame.columns} - {"app_id"}
    assert ingested["applicant_id"].tolist() == frame["app_id"].astype(str).tolist()
    assert json.loads((tmp_path / "out" / "f" / "ingest" / "ingest.json").read_text())["ignored_columns"] == []
    assert cli.main(["validate", "--config", str(config)]) == 0


# ------------------------------------------------------------------ 10. messages that name the cause


@pytest.mark.slow
def test_bz2_input_is_named(model_folder, rows, tmp_path):
    import bz2

    inp = tmp_path / "in.csv"
    inp.write_bytes(bz2.compress("\n".join(csv_lines(rows.head(20))).encode()))
    proc = score_cli(tmp_path, model_folder, inp, tmp_path / "o.parquet")
    assert proc.returncode == 3 and "compressed as bz2; decompress it or use gzip" in proc.stderr


@pytest.mark.slow
def test_utf16_input_is_named(model_folder, rows, tmp_path):
    inp = tmp_path / "in.csv"
    inp.write_bytes("\n".join(csv_lines(rows.head(20))).encode("utf-16"))
    proc = score_cli(tmp_path, model_folder, inp, tmp_path / "o.parquet")
    assert proc.returncode == 3 and "UTF-16 encoded" in proc.stderr and "Expected" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("value", ["-1", "0"])
def test_non_positive_chunk_rows_exits_2(model_folder, rows, tmp_path, value):
    inp = write_lines(tmp_path / "in.csv", csv_lines(rows.head(20)))
    proc = score_cli(tmp_path, model_folder, inp, tmp_path / "o.parquet", "--chunk-rows", value)
    assert proc.returncode == 2 and "--chunk-rows must be a positive integer" in proc.stderr


@pytest.mark.slow
def test_misspelt_sqlite_store_is_refused_not_created(rows, tmp_path):
    store = tmp_path / "mlflw.db"
    inp = write_lines(tmp_path / "in.csv", csv_lines(rows.head(20)))
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    proc = score_cli(tmp_path, "models:/credit-default@champion", inp, tmp_path / "o.parquet", env=env)
    assert proc.returncode == 6, proc.stderr[-2000:]
    assert str(store) in proc.stderr and "does not exist" in proc.stderr
    assert not store.exists()
    for command in (["history"], ["rollback"], ["promote", "--version", "1", "--reason", "x"]):
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline", *command],
            cwd=ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 6 and "does not exist" in proc.stderr, (command, proc.stderr[-1000:])
    assert not store.exists()


def test_a_signal_wrapped_by_a_library_still_counts_as_the_signal():
    """numba's unpickler turns our in-flight Interrupted into SystemError: the exit must stay 143, not 70."""
    from pipeline.cli import _interrupted_cause
    from pipeline.errors import Interrupted

    with pytest.raises(SystemError) as outer:
        try:
            raise Interrupted(15)
        except Interrupted as inner:
            raise SystemError("returned a result with an exception set") from inner
    assert _interrupted_cause(outer.value).exit_code == 143
    assert _interrupted_cause(ValueError("a plain bug")) is None
