"""The batch job in worker processes: the same files as one process, failures that publish nothing,
the id hashes behind the repeated-id check across chunks (tests/test_tallies.py) and the mergeable drift
counts."""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from helpers import examples
from pipeline.batch import job
from pipeline.batch.job import score_file
from pipeline.batch.tallies import Tally, id_array, id_hashes
from pipeline.batch.workers import RemoteTraceback, WorkerLost, resolve_workers
from pipeline.decision.scorer import Scorer
from pipeline.errors import ConfigError, DataContractError, RejectionBudgetExceeded
from pipeline.evaluation.stability import _BLOCK, _edges, bin_counts, bin_counts_columns, bin_shares

TIMING = {"seconds", "rows_per_second", "output", "rejects", "workers"}  # what may differ between runs
OUTPUTS = ("out.parquet", "out.rejects.parquet", "out.summary.json")


@pytest.fixture(scope="module")
def base(trained) -> pd.DataFrame:
    _, valid, _ = trained
    return valid.drop(columns=["row_number", "defaulted", "granted_limit"]).head(1000).reset_index(drop=True)


def messy(base: pd.DataFrame) -> pd.DataFrame:
    """Bad values, ids repeated within a chunk and across chunks (chunks of 91 rows: 11 of them)."""
    rows = base.astype({"age": object, "housing": object}).copy()
    rows.loc[5, "age"] = "forty"  # chunk 0
    rows.loc[300, "housing"] = "castle"  # chunk 3
    rows.loc[650, "applicant_id"] = rows.loc[200, "applicant_id"]  # chunk 7 repeats an id of chunk 2
    rows.loc[990, "applicant_id"] = rows.loc[3, "applicant_id"]  # chunk 10 repeats an id of chunk 0
    rows.loc[401, "applicant_id"] = rows.loc[400, "applicant_id"]  # twice within chunk 4: both rejected
    rows.loc[995, "applicant_id"] = rows.loc[5, "applicant_id"]  # the first copy was rejected (bad age): scored
    return rows


def write(rows: pd.DataFrame, path: Path, fmt: str, malformed: bool = False) -> Path:
    if fmt == "parquet":
        rows.astype({"age": "string", "housing": "string"}).to_parquet(path)
        return path
    lines = rows.to_csv(index=False).splitlines()
    if malformed:
        lines[101] = lines[101] + ",EXTRA"  # data row 101 (chunk 1): a field too many
        lines[777] = lines[777].replace(",", ',"', 1)  # data row 777 (chunk 8): an unclosed quote
    path.write_text("\n".join(lines) + "\n")
    return path


def run(trained, inp: Path, folder: Path, workers: int, **kw) -> dict:
    cfg, _, result = trained
    folder.mkdir(exist_ok=True)
    return score_file(
        "local", inp, folder / "out.parquet", cfg, scorer=result.scorer, progress=False, workers=workers, **kw
    )


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def same_summary(a: dict, b: dict) -> None:
    assert {k: v for k, v in a.items() if k not in TIMING} == {k: v for k, v in b.items() if k not in TIMING}


def worker_processes() -> list:
    return [p for p in multiprocessing.active_children() if p.name.startswith("score-worker")]


# ------------------------------------------------------------------ same files as one process


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_workers_write_the_same_files_as_one_process(trained, base, tmp_path, fmt):
    inp = write(messy(base), tmp_path / f"in.{fmt}", fmt, malformed=fmt == "csv")
    runs = {n: run(trained, inp, tmp_path / f"w{n}", n, chunk_rows=91) for n in (1, 2, 3)}
    assert [runs[n]["workers"] for n in (1, 2, 3)] == [1, 2, 3]
    one = files(tmp_path / "w1")
    scores_one = one.pop("out.parquet")
    summary_one = json.loads(one.pop("out.summary.json"))
    for n in (2, 3):
        other = files(tmp_path / f"w{n}")
        assert other.pop("out.parquet") == scores_one, f"scores differ with {n} workers"
        same_summary(json.loads(other.pop("out.summary.json")), summary_one)
        assert other == one, f"rejects differ with {n} workers"
        same_summary(runs[n], runs[1])

    summary = runs[1]
    assert summary["rows_in"] == 1000 == summary["rows_scored"] + summary["rows_rejected"]
    rejects = pd.read_parquet(tmp_path / "w1" / "out.rejects.parquet")
    unique = rejects[rejects["rule"] == "unique"]["row_number"].tolist()
    assert unique == [401, 402, 651, 991]  # within chunk 4 both copies; the later copy across chunks
    scored = pd.read_parquet(tmp_path / "w1" / "out.parquet")["row_number"].to_numpy()
    assert {201, 4, 996} <= set(scored)  # first copies scored, and the copy of a rejected row's id
    assert list(scored) == sorted(scored)
    bad = [6, 301] + ([101, 777] if fmt == "csv" else [])
    assert set(bad) <= set(rejects["row_number"]) and not set(bad) & set(scored)
    assert summary["rows_rejected"] == len(unique) + len(bad)


def test_a_repeated_id_in_every_chunk_is_rejected_as_in_one_process(trained, base, tmp_path):
    """Chunk after chunk repeats earlier ids: each such chunk goes back to a worker, none may slip through."""
    rows = base.head(600).copy()
    rows.loc[100:, "applicant_id"] = rows["applicant_id"].to_numpy()[np.arange(500) % 97]
    inp = write(rows, tmp_path / "in.parquet", "parquet")
    cfg, _, result = trained
    cfg = cfg.model_copy(update={"validation": cfg.validation.model_copy(update={"rejection_budget": 1.0})})
    one = score_file(
        "l", inp, tmp_path / "a.parquet", cfg, chunk_rows=50, scorer=result.scorer, progress=False, workers=1
    )
    two = score_file(
        "l", inp, tmp_path / "b.parquet", cfg, chunk_rows=50, scorer=result.scorer, progress=False, workers=2
    )
    same_summary(one, two)
    assert one["rejected_by_rule"] == {"applicant_id: unique": 500} and one["rows_scored"] == 100
    for name in ("{}.parquet", "{}.rejects.parquet"):
        assert (tmp_path / name.format("a")).read_bytes() == (tmp_path / name.format("b")).read_bytes()


def test_the_budget_and_all_rejected_fail_alike_with_workers(trained, base, tmp_path):
    over = base.head(400).astype({"age": object}).copy()
    over.loc[::10, "age"] = "old"  # 10% > the 5% budget, in every chunk
    inp = write(over, tmp_path / "over.csv", "csv")
    errors = {}
    for n in (1, 2):
        with pytest.raises(RejectionBudgetExceeded) as caught:
            run(trained, inp, tmp_path / f"over{n}", n, chunk_rows=64)
        errors[n] = str(caught.value)
        assert not (tmp_path / f"over{n}" / "out.parquet").exists()
    assert errors[1].replace("over1", "over2") == errors[2]
    a, b = files(tmp_path / "over1"), files(tmp_path / "over2")
    assert a["out.rejects.parquet"] == b["out.rejects.parquet"]
    same_summary(json.loads(a["out.summary.json"]), json.loads(b["out.summary.json"]))
    assert json.loads(a["out.summary.json"])["status"] == "rejection_budget_exceeded"

    bad = base.head(300).astype({"age": object}).copy()
    bad["age"] = "none"
    inp = write(bad, tmp_path / "bad.parquet", "parquet")
    for n in (1, 2):
        with pytest.raises(DataContractError, match="every one of 300 rows was rejected"):
            run(trained, inp, tmp_path / f"bad{n}", n, chunk_rows=64)
    a, b = files(tmp_path / "bad1"), files(tmp_path / "bad2")
    assert set(a) == set(b) == {"out.rejects.parquet", "out.summary.json"}
    assert a["out.rejects.parquet"] == b["out.rejects.parquet"]
    assert json.loads(b["out.summary.json"])["status"] == "all_rows_rejected"


def test_one_worker_or_one_chunk_starts_no_process(trained, base, tmp_path, monkeypatch):
    def no_pool(*args, **kwargs):
        raise AssertionError("a worker pool was started")

    monkeypatch.setattr(job, "WorkerPool", no_pool)
    inp = write(base.head(300), tmp_path / "in.csv", "csv")
    assert run(trained, inp, tmp_path / "one", 1, chunk_rows=64)["workers"] == 1
    assert run(trained, inp, tmp_path / "single", 4, chunk_rows=1000)["workers"] == 1  # one chunk
    with pytest.raises(AssertionError, match="a worker pool was started"):
        run(trained, inp, tmp_path / "two", 2, chunk_rows=64)


# ------------------------------------------------------------------ failures


@dataclass
class FailingScorer(Scorer):
    """Fails validation of the chunks starting at the given row offsets (pickled into the workers by reference)."""

    fail_at: tuple = ()

    def validate(self, df, origin, row_offset=0, **kw):
        if row_offset in self.fail_at:
            kind = DataContractError if row_offset == self.fail_at[0] else ValueError
            raise kind(f"chunk at row {row_offset} is broken")
        return super().validate(df, origin, row_offset=row_offset, **kw)


def test_a_worker_exception_is_raised_here_with_its_type_in_input_order(trained, base, tmp_path):
    cfg, _, result = trained
    inp = write(base.head(600), tmp_path / "in.csv", "csv")
    before = run(trained, inp, tmp_path, 1, chunk_rows=600)  # a previous complete set
    previous = files(tmp_path)
    fields = {f.name: getattr(result.scorer, f.name) for f in dataclasses.fields(Scorer)}
    failing = FailingScorer(**fields, fail_at=(320, 448))  # DataContractError in chunk 5; chunk 7's ValueError later
    raised = {}
    for n in (1, 2, 3):
        with pytest.raises(DataContractError, match="chunk at row 320 is broken") as caught:
            score_file(
                "local", inp, tmp_path / "out.parquet", cfg, chunk_rows=64, scorer=failing, progress=False, workers=n
            )
        raised[n] = caught.value
        assert files(tmp_path) == previous, "a failed run must leave the previous set as it was"
    assert isinstance(raised[2].__cause__, RemoteTraceback) and "validate" in str(raised[2].__cause__)
    assert before["status"] == "scored" and not worker_processes()


def test_a_killed_worker_fails_the_job_and_publishes_nothing(trained, base, tmp_path):
    inp = write(
        pd.concat([base] * 4, ignore_index=True).assign(applicant_id=lambda d: [f"Q{i}" for i in range(len(d))]),
        tmp_path / "in.parquet",
        "parquet",
    )
    outcome: dict = {}

    def job_thread():
        try:
            outcome["summary"] = run(trained, inp, tmp_path / "out", 2, chunk_rows=40)
        except BaseException as err:  # noqa: BLE001 - inspected below
            outcome["error"] = err

    thread = threading.Thread(target=job_thread)
    thread.start()
    deadline = time.monotonic() + 120
    while not list((tmp_path / "out").glob(".out.parquet.tmp-*")):  # the first chunks are written
        assert time.monotonic() < deadline and thread.is_alive(), outcome
        time.sleep(0.02)
    victims = worker_processes()
    assert len(victims) == 2
    os.kill(victims[0].pid, signal.SIGKILL)
    thread.join(120)
    assert isinstance(outcome.get("error"), WorkerLost), outcome
    assert "SIGKILL" in str(outcome["error"])
    assert list((tmp_path / "out").iterdir()) == [], "nothing published, no temporary file left"
    assert not worker_processes() and not victims[1].is_alive()


def test_an_interrupt_here_kills_the_workers_and_publishes_nothing(trained, base, tmp_path, monkeypatch):
    inp = write(base.head(800), tmp_path / "in.parquet", "parquet")
    append, calls = job._Output.append, []

    def interrupted(self, result, n_rows):
        calls.append(worker_processes())
        if len(calls) == 3:
            raise KeyboardInterrupt
        append(self, result, n_rows)

    monkeypatch.setattr(job._Output, "append", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(trained, inp, tmp_path / "out", 2, chunk_rows=50)
    assert len(calls[-1]) == 2, "the workers were running"
    assert list((tmp_path / "out").iterdir()) == []
    assert not worker_processes() and not any(p.is_alive() for p in calls[-1])


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_job_leaves_no_worker_process(model_folder, base, tmp_path, signum):
    """SIGTERM: exit 143, the workers killed, nothing published. SIGKILL (uncatchable): the workers end anyway."""
    import psutil

    big = pd.concat([base] * 20, ignore_index=True).assign(applicant_id=lambda d: [f"S{i}" for i in range(len(d))])
    inp = write(big, tmp_path / "in.parquet", "parquet")
    out = tmp_path / "out.parquet"
    cmd = [sys.executable, "-m", "pipeline", "score", "--model", str(model_folder), "--input", str(inp)]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'unused.db'}"}
    proc = subprocess.Popen(
        [*cmd, "--output", str(out), "--chunk-rows", "500", "--workers", "2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 180
    while not list(tmp_path.glob(".out.parquet.tmp-*")):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()[-2000:] if proc.stderr else ""
        time.sleep(0.05)
    server = [c for c in psutil.Process(proc.pid).children() if "forkserver" in " ".join(c.cmdline())]
    assert len(server) == 1
    workers = server[0].children()  # forked by the fork server
    assert len(workers) == 2
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    if signum == signal.SIGTERM:
        assert proc.returncode == 143, err.decode()[-2000:]
        assert not list(tmp_path.glob(".*tmp-*")) and not out.exists()
    else:
        assert proc.returncode == -signal.SIGKILL and not out.exists()
    _, alive = psutil.wait_procs([*workers, *server], timeout=15)
    assert not alive, f"left running: {alive}"


def thread_settings(scorer, _):
    """Run in a worker: the thread counts it scores with."""
    import numba
    from numba.core.registry import cpu_target
    from threadpoolctl import threadpool_info

    engines = [m.engine(scorer.compiled) for m in (scorer.pd_model, scorer.limit_model) if m is not None]
    return {
        "numba": numba.get_num_threads(),
        "pools": sorted({p["num_threads"] for p in threadpool_info()}),
        "compiled": [getattr(e, "threads", None) for e in engines],
        "omp_wait": os.environ.get("OMP_WAIT_POLICY"),
        "pid": os.getpid(),
        "numba_types_ready": numba_types_ready(cpu_target),
    }


def numba_types_ready(cpu_target) -> bool:
    """Whether numba's type registries were installed before this worker's first kernel (by the fork server)."""
    before = len(cpu_target.typing_context._globals)
    cpu_target.typing_context.refresh()
    return before > 0 and len(cpu_target.typing_context._globals) == before


def test_a_worker_scores_on_one_thread(trained):
    """numba, every BLAS and OpenMP runtime, and the compiled forests' pool: one thread in each worker."""
    import copy
    import pickle

    from pipeline.batch.workers import WorkerPool
    from pipeline.config import ScoringConfig

    _, _, result = trained
    scorer = copy.deepcopy(result.scorer)
    scorer.compile(ScoringConfig())  # the forests as registration ships them
    with WorkerPool(2, job.worker_scorer, preload=job.WORKER_PRELOAD) as pool:
        pool.setup(pickle.dumps(scorer, protocol=5))
        for key in range(4):
            pool.submit(key, thread_settings, key)
        seen = dict(pool.get() for _ in range(4))
    settings_ = [outcome.result() for outcome in seen.values()]
    assert {s["pid"] for s in settings_} <= set(pool.pids) and os.getpid() not in {s["pid"] for s in settings_}
    for s in settings_:
        assert s["numba"] == 1 and s["pools"] == [1] and s["omp_wait"] == "PASSIVE"
        assert s["compiled"] == [1, 1]
        assert s["numba_types_ready"]  # so a worker's first kernel call does not spend ~0.45 s on it


def no_state(*args):
    return None


def logging_task(state, n: int) -> int:
    """Logs at every level, with a traceback and with an unpicklable extra, then fails on n == 2."""
    log = logging.getLogger("pipeline.test_worker_logs")
    log.info("info from task %d", n)
    log.debug("debug from task %d", n)  # below the job's level: never sent
    try:
        raise ValueError("boom")
    except ValueError:
        log.warning("warning from task %d", n, exc_info=True)
    log.warning("extra from task %d", n, extra={"thing": threading.Lock()})
    if n == 2:
        raise RuntimeError("task 2 failed")
    return n


def test_worker_log_records_reach_the_job_log(caplog):
    """A worker's records come back with its results (a failed task's too) and are handled by the job's loggers
    at the job's level, tracebacks as text, marked with the worker's process name."""
    from pipeline.batch.workers import WorkerPool

    caplog.set_level(logging.INFO)
    with WorkerPool(2, no_state) as pool:
        pool.setup()
        for key in range(3):
            pool.submit(key, logging_task, key)
        outcomes = dict(pool.get() for _ in range(3))
    assert [outcomes[k].result() for k in (0, 1)] == [0, 1]
    with pytest.raises(RuntimeError, match="task 2 failed"):
        outcomes[2].result()
    mine = [r for r in caplog.records if r.name == "pipeline.test_worker_logs"]
    messages = sorted(r.getMessage() for r in mine)
    expected = [f"{kind} from task {k}" for kind in ("extra", "info", "warning") for k in range(3)]
    assert messages == sorted(expected)  # no debug record, none lost, none twice
    assert all("ValueError: boom" in r.exc_text for r in mine if r.getMessage().startswith("warning"))
    assert all(r.processName.startswith("score-worker-") and r.process in pool.pids for r in mine)


def test_workers_option_is_checked(trained, base, tmp_path):
    inp = write(base.head(50), tmp_path / "in.csv", "csv")
    with pytest.raises(ConfigError, match="--workers"):
        run(trained, inp, tmp_path / "neg", -1)
    assert resolve_workers(0) == resolve_workers(None) == len(os.sched_getaffinity(0))
    assert resolve_workers(3) == 3
    from pipeline.config import parse_config

    with pytest.raises(ConfigError, match="scoring.workers"):
        parse_config({"name": "x", "source": {"kind": "synthetic"}, "scoring": {"workers": -2}})


# ------------------------------------------------------------------ repeated ids: vectorised and exact


@settings(max_examples=examples(100), deadline=None)
@given(st.lists(st.text(max_size=40), max_size=50), st.integers(0, 10))
def test_id_hashes_depend_only_on_the_text(values, start):
    arr = pa.array(values, pa.string())
    hashes = id_hashes(arr)
    for i, v in enumerate(values):
        for j, w in enumerate(values):
            if v == w:
                assert hashes[i] == hashes[j]
    sliced = arr.slice(min(start, len(values)))
    assert (id_hashes(sliced) == hashes[min(start, len(values)) :]).all()
    assert id_array(pd.Series(values, dtype=object)).equals(arr)
    assert len(set(hashes.tolist())) == len(set(values))  # 64 bits: no collision among a few dozen ids


def test_ids_that_are_not_text_are_compared_as_their_text():
    assert id_array(pd.Series([12, "12", 1.5], dtype=object)).to_pylist() == ["12", "12", "1.5"]


# ------------------------------------------------------------------ drift counts: vectorised and mergeable


def searchsorted_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The previous implementation, per column: the reference."""
    idx = np.searchsorted(edges, values, side="right") - 1
    idx[values == edges[-1]] = len(edges) - 2
    return np.bincount(idx, minlength=len(edges))[: len(edges)]


finite_or_special = st.one_of(st.floats(-5, 5), st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0]))


@settings(max_examples=examples(100), deadline=None)
@given(
    st.lists(st.lists(finite_or_special, min_size=3, max_size=3), min_size=1, max_size=60),
    st.lists(st.lists(st.floats(-3, 3), min_size=1, max_size=30), min_size=3, max_size=3),
    st.integers(1, 12),
)
def test_bin_counts_match_searchsorted(rows, samples, bins):
    X = np.array(rows, dtype=float)
    edges = [_edges(np.array(s), bins) for s in samples]
    for j, e in enumerate(edges):
        X[j % len(X), j] = e[len(e) // 2]  # a value exactly on an inner edge
    counts = bin_counts_columns(X, edges)
    for j, e in enumerate(edges):
        assert counts[j].tolist() == searchsorted_counts(X[:, j], e).tolist()
        assert counts[j].sum() == len(X) and counts[j].dtype == np.int64
    finite = np.array([-1.0, 0.0, 1.0])  # not -inf..inf: the searchsorted path
    v = np.clip(X[:, 0], -1, None)
    assert bin_counts(v, finite).tolist() == searchsorted_counts(v, finite).tolist()
    assert np.allclose(bin_shares(X[:, 1], edges[1]) * len(X), searchsorted_counts(X[:, 1], edges[1]))


def test_tallies_of_chunks_merge_into_the_tally_of_all(trained):
    _, valid, result = trained
    scorer = result.scorer
    rows = valid.drop(columns=["defaulted", "granted_limit"]).head(600).reset_index(drop=True)
    X = scorer.matrix(rows)
    scored = scorer.score_valid(rows, X)
    whole = Tally()
    whole.add_scored(scored, X, scorer)
    parts = Tally()
    for chunk in np.array_split(np.arange(len(rows)), 7):
        part = Tally.counts_only()
        part.add_scored(scored.iloc[chunk], X[chunk], scorer)
        assert part.values == {}
        parts.merge(part)
        parts.add_values({k: scored[k].to_numpy()[chunk] for k in parts.values})
    assert parts.approved == whole.approved > 0
    assert list(parts.drift_counts) == list(whole.drift_counts)
    for name, counts in whole.drift_counts.items():
        assert counts.tolist() == parts.drift_counts[name].tolist() and counts.sum() == 600
    assert parts.values["pd"].summary() == pytest.approx(whole.values["pd"].summary())


def test_tables_travel_uncopied_and_slices_travel_with_only_their_rows():
    """A table that spans its buffers is pickled as itself, its buffers out of band; a slice (whose buffers hold
    every row of the table it was cut from), or chunks sliced from one buffer, travel as an IPC stream of their
    own rows. All come back equal."""
    from pipeline.batch.chunks import from_wire, to_wire
    from pipeline.batch.frames import pack

    table = pa.table({"x": np.arange(200_000, dtype=np.float64), "s": pa.array([f"id{i}" for i in range(200_000)])})
    part = table.slice(1_000, 10_000)
    shared = pa.concat_tables([table.slice(i * 25_000, 25_000) for i in range(8)])  # 8 chunks over one buffer
    whole_wire, part_wire, shared_wire = to_wire(table), to_wire(part), to_wire(shared)
    assert whole_wire is table and isinstance(part_wire, pa.Buffer) and isinstance(shared_wire, pa.Buffer)
    assert part_wire.size < table.nbytes / 10  # the slice's rows, not the buffers under it
    assert shared_wire.size < 1.1 * table.nbytes  # not 8 copies of the buffer
    for original, wire in ((table, whole_wire), (part, part_wire), (shared, shared_wire)):
        frame = pack(wire)
        body, buffers = frame[1], [bytearray(memoryview(b).cast("B")) for b in frame[2:]]
        assert from_wire(pickle.loads(body, buffers=buffers)).equals(original)
    assert sum(memoryview(p).nbytes for p in pack(whole_wire)[:2]) < 2000  # the data is out of band


def test_frames_carry_large_buffers_out_of_band_through_a_pipe():
    """Arrow IPC streams and numpy arrays travel beside the pickle, and come back equal; a writer that closes
    mid-frame is an end of file, not a hang or a half-read object."""
    from pipeline.batch.chunks import from_ipc, to_ipc
    from pipeline.batch.frames import pack, read_frame, write_frame

    table = pa.table({"x": np.arange(200_000, dtype=np.int64), "s": pa.array([f"id{i}" for i in range(200_000)])})
    hashes = np.arange(200_000, dtype=np.uint64) * 7
    frame = pack({"scores": to_ipc(table), "hashes": hashes, "small": "text"})
    assert len(frame) >= 4  # header, pickle and the two large buffers
    assert sum(memoryview(p).nbytes for p in frame[:2]) < 1000  # the pickle itself holds no data

    read_end, write_end = os.pipe()
    writer = threading.Thread(target=lambda: (write_frame(write_end, frame), os.close(write_end)))
    writer.start()
    got = read_frame(read_end)
    writer.join()
    assert from_ipc(got["scores"]).equals(table) and np.array_equal(got["hashes"], hashes) and got["small"] == "text"
    with pytest.raises(EOFError):
        read_frame(read_end)  # the writer closed after one frame
    os.close(read_end)

    read_end, write_end = os.pipe()
    cut = b"".join(bytes(memoryview(p).cast("B")) for p in frame)[:5000]
    writer = threading.Thread(target=lambda: (os.write(write_end, cut), os.close(write_end)))
    writer.start()
    with pytest.raises(EOFError):
        read_frame(read_end)
    writer.join()
    os.close(read_end)


def test_thread_and_worker_counts_follow_the_cpu_affinity(monkeypatch):
    """A container's cpuset (or `taskset`) bounds LightGBM's threads and the workers (and the compiled forests'
    pool, which counts the same way: `pipeline.cores`), however many cores the machine has."""
    from pipeline.model.boosters import threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert threads() == 1 and resolve_workers(0) == 1


def test_without_unix_pipes_the_job_scores_in_its_own_process(monkeypatch):
    """The worker message frames read pipes with os.readv; where it is missing (Windows) the job uses one process."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert resolve_workers(0) == 4 and resolve_workers(3) == 3
    monkeypatch.delattr(os, "readv")
    assert resolve_workers(0) == 1 and resolve_workers(3) == 1 and resolve_workers(1) == 1
    with pytest.raises(ConfigError, match="--workers"):
        resolve_workers(-1)


def test_bin_counts_of_chosen_columns_with_edges_of_any_length():
    """The compiled pass reads X's `columns` in place, each against its own number of edges; inf and NaN included."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(500, 4))
    X[::7, 1], X[::11, 2], X[::13, 3] = np.inf, -np.inf, np.nan
    edges = [_edges(rng.normal(size=200), bins) for bins in (3, 10, 1)]
    columns = [3, 1, 2]
    counts = bin_counts_columns(X, edges, columns)
    for j, e in zip(columns, edges, strict=True):
        assert counts.pop(0).tolist() == searchsorted_counts(X[:, j], e).tolist()
    with pytest.raises(ValueError, match="3 columns"):
        bin_counts_columns(X, edges[:2], columns)


@settings(max_examples=examples(100), deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 3 * _BLOCK),
    st.lists(st.integers(0, 12), min_size=1, max_size=6),
)
@example(seed=1, rows=_BLOCK, inner=[0, 9, 3])  # whole blocks only, then one row past them
@example(seed=2, rows=2 * _BLOCK + 1, inner=[9, 0])
def test_bin_counts_with_many_nan_inf_and_edge_values_match_searchsorted(seed, rows, inner):
    """Columns with their own number of inner edges (0: edges -inf, inf only), chosen in any order and
    repeated, of values often NaN, +-inf, +-0 or exactly on an edge; blocks of rows whole and partial."""
    rng = np.random.default_rng(seed)
    edges = [np.r_[-np.inf, np.unique(rng.normal(size=k).round(1)), np.inf] for k in inner]
    width = len(edges) + 2
    X = rng.normal(size=(rows, width)).round(1)  # on an edge now and then
    special = rng.random((rows, width)) < rng.random()
    pool = np.concatenate([[np.nan, np.inf, -np.inf, 0.0, -0.0], *(e[1:-1] for e in edges)])
    X[special] = rng.choice(pool, size=int(special.sum()))
    if rng.random() < 0.5:
        X = np.asfortranarray(X)
    columns = rng.integers(0, width, size=len(edges)).tolist()
    counts = bin_counts_columns(X, edges, columns)
    assert len(counts) == len(edges)
    for j, e, c in zip(columns, edges, counts, strict=True):
        assert c.dtype == np.int64 and len(c) == len(e)
        assert c.tolist() == searchsorted_counts(X[:, j], e).tolist()
