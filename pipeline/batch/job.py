"""Batch scoring job: stream a file through the registered artifact, account for every row.

Reads in chunks, validates each chunk (bad rows, malformed lines included, go to
`<stem>.rejects.parquet` with reasons), scores the rest, and writes scores, rejects and
`<stem>.summary.json` (rows_in = rows_scored + rows_rejected, drift against the training
reference, timings) to temporary files published together at the end, so the three are
always from one run. Memory is bounded by the chunk size, not the file size.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.batch import tallies
from pipeline.batch.tallies import Tally, reject_repeated_ids
from pipeline.config import Config, FileSource
from pipeline.data.io import (
    atomic_write_text,
    clean_stale_temps,
    csv_row_bytes,
    detect_format,
    discard,
    iter_csv_text,
    iter_parquet,
    make_parent,
    map_source,
    storage_errors,
    temp_path,
)
from pipeline.data.validate import REJECT_COLUMNS
from pipeline.decision.scorer import Scorer
from pipeline.errors import ConfigError, DataContractError, ModelNotFoundError, PipelineError, RejectionBudgetExceeded

log = logging.getLogger(__name__)
TARGETS = ("defaulted", "granted_limit")


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


def read_chunks(path: Path, chunk_rows: int, source: FileSource | None) -> Iterator[pd.DataFrame]:
    """Exactly `chunk_rows` rows per chunk (the last may be shorter), as raw text or Parquet types."""
    fmt = detect_format(path, source.format if source else "auto")
    delimiter = source.delimiter if source else ","
    encoding = source.encoding if source else "utf-8"
    if fmt == "parquet":
        yield from iter_parquet(path, chunk_rows)
        return
    approx_row_bytes = csv_row_bytes(path, delimiter, encoding)
    buffer: list[pd.DataFrame] = []
    held = 0
    for block in iter_csv_text(path, max(chunk_rows * approx_row_bytes, 1 << 16), delimiter, encoding):
        buffer.append(block)
        held += len(block)
        while held >= chunk_rows:
            joined = pd.concat(buffer, ignore_index=True) if len(buffer) > 1 else buffer[0]
            yield joined.iloc[:chunk_rows].reset_index(drop=True)
            rest = joined.iloc[chunk_rows:].reset_index(drop=True)
            buffer, held = ([rest] if len(rest) else []), len(rest)
    if held:
        yield pd.concat(buffer, ignore_index=True)


def _progress(enabled: bool):
    if not enabled:
        return None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("scoring"), BarColumn(), TextColumn("{task.completed:,} rows"), TimeElapsedColumn(), transient=True
    )


def _prepared(input_path: Path, chunk_rows: int, source: FileSource | None, scorer: Scorer, tally: Tally):
    """Read, map, validate and build the feature matrix of each chunk, in order (the producer side)."""
    t = time.perf_counter()
    for chunk in read_chunks(input_path, chunk_rows, source):
        tally.seconds["read"] += time.perf_counter() - t
        offset = tally.rows_in
        tally.rows_in += len(chunk)
        if offset == 0 and source is not None and set(scorer.required_columns) <= set(chunk.columns):
            log.info("%s is already in contract columns: the source mapping is not applied", input_path)
            source = None
        if source is not None:
            chunk = map_source(chunk, source, str(input_path), optional=TARGETS, row_offset=offset)
        t = time.perf_counter()
        checked = scorer.validate(chunk, str(input_path), row_offset=offset, allow_all_rejected=True)
        checked, tally.seen_ids = reject_repeated_ids(checked, tally.seen_ids)
        X = scorer.matrix(checked.valid) if checked.rows_valid else None
        tally.seconds["validate"] += time.perf_counter() - t
        yield len(chunk), checked, X
        t = time.perf_counter()


def prefetch(items: Iterator, depth: int = 1) -> Generator:
    """Produce the next item in a background thread while the caller works on this one.

    The tree kernels release the GIL, so validating chunk i+1 overlaps with scoring chunk i.
    Exceptions from the producer are raised in the caller, in order; closing the iterator
    (the caller failed or stopped) stops the producer.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((done, None))
        except BaseException as err:  # noqa: BLE001 - handed to the consumer
            q.put((done, err))

    worker = threading.Thread(target=produce, name="score-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, err = q.get()
            if err is not None:
                raise err
            if item is done:
                return
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


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


def _stream(scorer: Scorer, chunks: Generator, temps: Outputs, tally: Tally, bar) -> None:
    """Score each prepared chunk and append it to the temporary scores and rejects files."""
    with ExitStack() as stack:
        writer = rej_writer = None
        task = None
        if bar is not None:
            stack.enter_context(bar)
            task = bar.add_task("score", total=None)
        chunks = stack.enter_context(closing(chunks))
        for n_rows, checked, X in chunks:
            t = time.perf_counter()
            scored = None
            if checked.rows_valid:
                scored = scorer.score_valid(checked.valid, X)
                scored.insert(0, "row_number", checked.valid["row_number"].to_numpy())
                tally.add_scored(scored, X, scorer)
            tally.seconds["score"] += time.perf_counter() - t
            t = time.perf_counter()
            if scored is not None:
                table = pa.Table.from_pandas(scored, preserve_index=False)
                if writer is None:
                    writer = stack.enter_context(pq.ParquetWriter(temps.scores, table.schema))
                writer.write_table(table.cast(writer.schema))
                tally.rows_scored += len(scored)
            if len(checked.rejects):
                table = _rejects_table(checked.rejects)
                if rej_writer is None:
                    rej_writer = stack.enter_context(pq.ParquetWriter(temps.rejects, table.schema))
                rej_writer.write_table(table)
                tally.add_rejected(checked)
            tally.seconds["write"] += time.perf_counter() - t
            if bar is not None:
                bar.update(task, advance=n_rows)


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
) -> dict:
    """Score a CSV/Parquet file; returns (and writes) the summary. Raises PipelineError subclasses.

    Scores, rejects and summary are written to temporary names and published together at
    the end: a run that fails leaves the previous set as it was, except a run whose rows
    fail validation (exit 3 or 4), which replaces it with its rejects and summary and no scores.
    """
    started = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    cfg = config or Config()
    chunk_rows = check_chunk_rows(chunk_rows, cfg.scoring.chunk_rows)
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
        chunks = prefetch(_prepared(input_path, chunk_rows, source, scorer, tally))
        with storage_errors(output_path):
            _stream(scorer, chunks, temps, tally, bar)
        if tally.rows_in == 0:
            raise DataContractError(f"{input_path}: no data rows (the input is empty or has only a header)")
        summary = tallies.summary(tally, scorer, model_uri, input_path, output_path, outputs.rejects, started, cfg)
        failure = _verdict(tally, summary, cfg, input_path, outputs.rejects)
        summary.update(status=_status(failure), scores_published=failure is None)
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


REJECTS_SCHEMA = pa.schema(
    [
        ("row_number", pa.int64()),
        ("applicant_id", pa.string()),
        ("column", pa.string()),
        ("rule", pa.string()),
        ("value", pa.string()),
    ]
)


def _rejects_table(rejects: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(rejects.astype({"applicant_id": object}), preserve_index=False).cast(REJECTS_SCHEMA)


def _write_empty_rejects(tmp: Path) -> None:
    """Rejects are always published, empty when none, so a job's consumers can rely on the file."""
    if not tmp.exists():
        empty = pa.table({c: pa.array([], pa.int64() if c == "row_number" else pa.string()) for c in REJECT_COLUMNS})
        pq.write_table(empty, tmp)
