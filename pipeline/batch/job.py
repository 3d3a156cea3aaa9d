"""Batch scoring job: stream a file through the registered artifact, account for every row.

Reads in chunks, validates each chunk (bad rows, malformed lines included, go to
`<stem>.rejects.parquet` with reasons), scores the rest, and writes scores, rejects and
`<stem>.summary.json` (rows_in = rows_scored + rows_rejected, drift against the training
reference, timings) to temporary files published together at the end, so the three are
always from one run. Memory is bounded by the chunk size, not the file size.

With `workers` > 1 (default: one per core) the chunks are validated and scored in worker
processes (`pipeline.batch.workers`) and this process reads, checks repeated ids and writes, in
input order: the same files, byte for byte, as one process writes (docs/operations.md).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import pickle
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.batch import tallies
from pipeline.batch.chunks import (
    REJECTS_SCHEMA,
    WORKER_PRELOAD,
    ChunkResult,
    ChunkTask,
    prepare,
    score_prepared,
    score_task,
    scores_writer,
    worker_scorer,
)
from pipeline.batch.tallies import SeenIds, Tally
from pipeline.batch.workers import Outcome, WorkerPool, resolve_workers
from pipeline.config import Config, FileSource
from pipeline.data.io import (
    arrow_frame,
    atomic_write_text,
    clean_stale_temps,
    csv_row_bytes,
    detect_format,
    discard,
    iter_csv_tables,
    iter_parquet_tables,
    make_parent,
    storage_errors,
    temp_path,
)
from pipeline.decision.scorer import Scorer
from pipeline.errors import ConfigError, DataContractError, ModelNotFoundError, PipelineError, RejectionBudgetExceeded

log = logging.getLogger(__name__)


def output_paths(output: Path) -> tuple[Path, Path]:
    stem = output.name[: -len(".parquet")] if output.name.endswith(".parquet") else output.name
    return output.with_name(f"{stem}.rejects.parquet"), output.with_name(f"{stem}.summary.json")


def load_scorer(model_uri: str) -> tuple[Scorer, str | None]:
    """Load the artifact by registry URI (verified against its recorded sha256) or local folder.

    Returns the scorer and its registry version; the version is stamped from the registry,
    which is the authority on which number this artifact is.
    """
    from pipeline.mlops.artifact import load_model_scorer
    from pipeline.mlops.registry import resolve_uri

    uri, version = resolve_uri(model_uri)
    if not model_uri.startswith("models:/") and not Path(model_uri).exists() and "://" not in model_uri:
        raise ModelNotFoundError(f"model folder {model_uri} not found")
    scorer = load_model_scorer(uri, version)
    if version is not None:
        scorer.meta["model_version"] = version
    return scorer, version


def read_tables(path: Path, chunk_rows: int, source: FileSource | None) -> Iterator[pa.Table]:
    """Exactly `chunk_rows` rows per chunk (the last may be shorter), as Arrow: text columns for CSV, the file's
    types for Parquet. Chunks stay in Arrow until the process that scores them makes a frame of them: the job's
    own process reads, cuts and hands them on, and a worker pays for its own pandas conversion."""
    fmt = detect_format(path, source.format if source else "auto")
    delimiter = source.delimiter if source else ","
    encoding = source.encoding if source else "utf-8"
    if fmt == "parquet":
        yield from iter_parquet_tables(path, chunk_rows)
        return
    approx_row_bytes = csv_row_bytes(path, delimiter, encoding)
    buffer: list[pa.Table] = []
    held = 0
    for block in iter_csv_tables(path, max(chunk_rows * approx_row_bytes, 1 << 16), delimiter, encoding):
        buffer.append(block)
        held += block.num_rows
        while held >= chunk_rows:
            joined = pa.concat_tables(buffer, promote_options="default") if len(buffer) > 1 else buffer[0]
            yield joined.slice(0, chunk_rows)
            rest = joined.slice(chunk_rows)
            buffer, held = ([rest] if rest.num_rows else []), rest.num_rows
    if held:
        yield pa.concat_tables(buffer, promote_options="default") if len(buffer) > 1 else buffer[0]


def read_chunks(path: Path, chunk_rows: int, source: FileSource | None) -> Iterator[pd.DataFrame]:
    """`read_tables` as frames."""
    for table in read_tables(path, chunk_rows, source):
        yield arrow_frame(table)


def _progress(enabled: bool):
    if not enabled:
        return None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("scoring"), BarColumn(), TextColumn("{task.completed:,} rows"), TimeElapsedColumn(), transient=True
    )


def _tasks(input_path: Path, chunk_rows: int, source: FileSource | None, scorer: Scorer, tally: Tally):
    """The chunks of the input in order, counted in `tally.rows_in` as they are read."""
    t = time.perf_counter()
    for index, chunk in enumerate(read_tables(input_path, chunk_rows, source)):
        tally.seconds["read"] += time.perf_counter() - t
        offset = tally.rows_in
        tally.rows_in += len(chunk)
        if offset == 0 and source is not None and set(scorer.required_columns) <= set(chunk.column_names):
            log.info("%s is already in contract columns: the source mapping is not applied", input_path)
            source = None
        yield ChunkTask(index, offset, chunk, source, str(input_path))
        t = time.perf_counter()


@dataclass(frozen=True)
class Outputs:
    """The three files a job publishes together; the summary is the set's marker (removed first, renamed last)."""

    scores: Path
    rejects: Path
    summary: Path

    @classmethod
    def beside(cls, output: Path) -> Outputs:
        return cls(output, *output_paths(output))

    def all(self) -> tuple[Path, Path, Path]:
        return self.scores, self.rejects, self.summary


def check_output_paths(input_path: Path, outputs: Outputs) -> None:
    """Refuse an output that is the input (or whose rejects or summary would land on it): exit 2, input intact."""
    inp = input_path.resolve()
    for path in outputs.all():
        same = path.resolve() == inp or (path.exists() and inp.exists() and os.path.samefile(path, inp))
        if same:
            raise ConfigError(
                f"--output {outputs.scores} would overwrite the input {input_path} (as {path.name}); "
                "write the scores elsewhere"
            )


def check_chunk_rows(chunk_rows: int | None, default: int) -> int:
    if chunk_rows is None:
        return default
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ConfigError(f"--chunk-rows must be a positive integer, got {chunk_rows!r}")
    return chunk_rows


def publish(outputs: Outputs, temps: Outputs, with_scores: bool) -> None:
    """Replace the previous set with this run's: old summary out first, new summary in last.

    A crash between the steps leaves files without a summary: an incomplete set, never
    scores that a summary from another run describes.
    """
    with storage_errors(outputs.scores.parent, "publish the output"):
        for final in (outputs.summary, outputs.scores, outputs.rejects):
            final.unlink(missing_ok=True)
        os.replace(temps.rejects, outputs.rejects)
        if with_scores:
            os.replace(temps.scores, outputs.scores)
        os.replace(temps.summary, outputs.summary)
        _fsync_folder(outputs.scores.parent)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Output:
    """Appends chunk results, in order, to the temporary scores and rejects files, and tallies them."""

    def __init__(self, stack: ExitStack, temps: Outputs, tally: Tally, bar) -> None:
        self.stack, self.temps, self.tally, self.bar = stack, temps, tally, bar
        self.writer: pq.ParquetWriter | None = None
        self.rej_writer: pq.ParquetWriter | None = None
        self.task = None
        if bar is not None:
            stack.enter_context(bar)
            self.task = bar.add_task("score", total=None)

    def append(self, result: ChunkResult, n_rows: int) -> None:
        t = time.perf_counter()
        if result.scores is not None:
            table = result.scores
            if self.writer is None:
                self.writer = self.stack.enter_context(scores_writer(self.temps.scores, table.schema))
            self.writer.write_table(table.cast(self.writer.schema))
            self.tally.add_values({key: table.column(key).to_numpy() for key in self.tally.values})
        if result.rejects is not None:
            if self.rej_writer is None:
                self.rej_writer = self.stack.enter_context(pq.ParquetWriter(self.temps.rejects, result.rejects.schema))
            self.rej_writer.write_table(result.rejects)
        self.tally.merge(result.tally)
        self.tally.seconds["write"] += time.perf_counter() - t
        if self.bar is not None:
            self.bar.update(self.task, advance=n_rows)


def _score_here(scorer: Scorer, tasks: Iterator[ChunkTask], out: _Output) -> None:
    """Every chunk in this process, one after the other: read, validate, score, write.

    No thread reads ahead any more: the forests' own threads already use every core while a
    chunk scores, and a prefetch thread beside them contended for the cores (1M rows on 2 shared
    cores: 33.5 s and 54 CPU-seconds with it, 28.5-31.4 s and 44-48 CPU-seconds without, measured
    in similar load); more cores are used by worker processes instead.
    """
    seen = SeenIds()
    for task in tasks:
        out.append(score_prepared(scorer, prepare(scorer, task, seen)), task.table.num_rows)


def _score_in_workers(scorer: Scorer, tasks: Iterator[ChunkTask], n: int, out: _Output) -> None:
    """Chunks scored by `n` worker processes, appended here in input order.

    A worker checks no ids against earlier chunks (it has not seen them); this process does, when
    a chunk's turn comes. If some of its ids were seen before, the chunk goes back to a worker with
    those rows to reject (`drop`) and is scored again: what one process does, at the cost of
    scoring such a chunk twice. A read error is raised after the chunks before it, as in one process.
    """
    seen = SeenIds()
    in_flight: dict[int, ChunkTask] = {}
    done: dict[int, Outcome] = {}
    read_error: Exception | None = None
    exhausted, turn = False, 0
    with WorkerPool(n, worker_scorer, preload=WORKER_PRELOAD) as pool:
        pool.setup(pickle.dumps(scorer, protocol=5))
        while True:
            while not exhausted and len(in_flight) < pool.capacity:
                try:
                    task = next(tasks)
                except StopIteration:
                    exhausted = True
                    break
                except Exception as err:  # noqa: BLE001 - raised in order, after the chunks read before it
                    read_error, exhausted = err, True
                    break
                in_flight[task.index] = task
                pool.submit(task.index, score_task, task)
            if turn not in in_flight:
                break
            while turn not in done:
                key, outcome = pool.get()
                done[key] = outcome
            result: ChunkResult = done.pop(turn).result()
            repeated = seen.repeated(result.ids, result.hashes)
            if repeated.any() and result.scores is not None:  # ids are those of the scored rows, in order
                rows = result.scores.column("row_number").to_numpy()[repeated]
                pool.submit(turn, score_task, replace(in_flight[turn], drop=rows))
                continue
            seen.add(result.ids, result.hashes)
            out.append(result, in_flight.pop(turn).table.num_rows)
            turn += 1
    if read_error is not None:
        raise read_error


def _peek(items: Iterator, n: int) -> tuple[int, Iterator]:
    """How many of the first `n` items there are (up to n), and an iterator over all of them again.

    An error while peeking is raised where that item would have been, after the ones before it.
    """
    head: list = []
    failure: Exception | None = None
    try:
        for _ in range(n):
            head.append(next(items))
    except StopIteration:
        return len(head), iter(head)
    except Exception as err:  # noqa: BLE001 - re-raised in its place
        failure = err
    if failure is None:
        return len(head), itertools.chain(head, items)
    return len(head), itertools.chain(head, _raising(failure))


def _raising(err: Exception) -> Iterator:
    raise err
    yield  # pragma: no cover - makes this a generator


def _stream(scorer: Scorer, tasks: Iterable[ChunkTask], workers: int, temps: Outputs, tally: Tally, bar) -> int:
    """Score every chunk, in worker processes when there are several workers and chunks; returns the workers used."""
    with ExitStack() as stack:
        out = _Output(stack, temps, tally, bar)
        chunks = stack.enter_context(closing(iter(tasks)))  # type: ignore[type-var]
        if workers > 1:
            count, chunks = _peek(chunks, 2)
            workers = workers if count > 1 else 1  # one chunk: nothing to share, no process to start
        if workers > 1:
            _score_in_workers(scorer, chunks, workers, out)
        else:
            _score_here(scorer, chunks, out)
    return workers


def _verdict(tally: Tally, summary: dict, cfg: Config, input_path: Path, rejects_path: Path) -> PipelineError | None:
    """Whether the scores may be published: not when every row, or more than the budget, was rejected."""
    if tally.rows_scored == 0:
        return DataContractError(
            f"{input_path}: every one of {tally.rows_in} rows was rejected; "
            f"see {rejects_path}; top failures: {dict(list(summary['rejected_by_rule'].items())[:3])}"
        )
    budget = cfg.validation.rejection_budget
    if tally.rows_rejected > budget * tally.rows_in:
        return RejectionBudgetExceeded(
            f"{input_path}: {tally.rows_rejected} of {tally.rows_in} rows rejected "
            f"({tally.rows_rejected / tally.rows_in:.1%}), above the budget of {budget:.1%}; "
            f"no scores published; see {rejects_path}"
        )
    return None


def _status(failure: PipelineError | None) -> str:
    if failure is None:
        return "scored"
    return "rejection_budget_exceeded" if isinstance(failure, RejectionBudgetExceeded) else "all_rows_rejected"


def score_file(
    model_uri: str,
    input_path: str | Path,
    output_path: str | Path,
    config: Config | None = None,
    chunk_rows: int | None = None,
    progress: bool | None = None,
    scorer: Scorer | None = None,
    workers: int | None = None,
) -> dict:
    """Score a CSV/Parquet file; returns (and writes) the summary. Raises PipelineError subclasses.

    `workers`: processes that validate and score chunks (default `scoring.workers`; None or 0: one
    per available core; 1: this process only). The outputs do not depend on it.

    Scores, rejects and summary are written to temporary names and published together at
    the end: a run that fails leaves the previous set as it was, except a run whose rows
    fail validation (exit 3 or 4), which replaces it with its rejects and summary and no scores.
    """
    started = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    cfg = config or Config()
    chunk_rows = check_chunk_rows(chunk_rows, cfg.scoring.chunk_rows)
    n_workers = resolve_workers(cfg.scoring.workers if workers is None else workers)
    outputs = Outputs.beside(output_path)
    check_output_paths(input_path, outputs)
    source = cfg.source if isinstance(cfg.source, FileSource) and (cfg.source.columns or cfg.source.id_column) else None
    if scorer is None:
        scorer, _ = load_scorer(model_uri)
    make_parent(output_path)
    for path in outputs.all():
        clean_stale_temps(path)
    temps = Outputs(*(temp_path(p) for p in outputs.all()))
    tally = Tally()
    bar = _progress(sys.stderr.isatty() if progress is None else progress)
    try:
        tasks = _tasks(input_path, chunk_rows, source, scorer, tally)
        with storage_errors(output_path):
            used = _stream(scorer, tasks, n_workers, temps, tally, bar)
        if tally.rows_in == 0:
            raise DataContractError(f"{input_path}: no data rows (the input is empty or has only a header)")
        summary = tallies.summary(tally, scorer, model_uri, input_path, output_path, outputs.rejects, started, cfg)
        failure = _verdict(tally, summary, cfg, input_path, outputs.rejects)
        summary.update(status=_status(failure), scores_published=failure is None, workers=used)
        with storage_errors(output_path):
            _write_empty_rejects(temps.rejects)
            atomic_write_text(json.dumps(summary, indent=2), temps.summary)
        publish(outputs, temps, with_scores=failure is None)
        if failure is not None:
            raise failure
        return summary
    finally:
        for tmp in temps.all():
            discard(tmp)


def _write_empty_rejects(tmp: Path) -> None:
    """Rejects are always published, empty when none, so a job's consumers can rely on the file."""
    if not tmp.exists():
        pq.write_table(REJECTS_SCHEMA.empty_table(), tmp)
