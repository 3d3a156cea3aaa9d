"""Batch scoring job: stream a file through the registered artifact, account for every row.

Reads in chunks, validates each chunk (bad rows go to `<stem>.rejects.parquet` with
reasons), scores the rest, writes Parquet through a temporary file renamed at the end
(a killed job leaves nothing at the final path), and writes `<stem>.summary.json`
with rows_in = rows_scored + rows_rejected, drift against the training reference and
timings. Memory is bounded by the chunk size, not the file size.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import Config, FileSource
from pipeline.errors import DataContractError, ModelNotFoundError, RejectionBudgetExceeded
from pipeline.io import atomic_write_text, csv_row_bytes, detect_format, iter_csv_text, iter_parquet
from pipeline.metrics import bin_shares, psi_from_shares
from pipeline.scorer import Scorer
from pipeline.sources.file import apply_mapping
from pipeline.validate import REJECT_COLUMNS, ValidationResult

log = logging.getLogger(__name__)
TARGETS = ("defaulted", "granted_limit")


def output_paths(output: Path) -> tuple[Path, Path]:
    stem = output.name[: -len(".parquet")] if output.name.endswith(".parquet") else output.name
    return output.with_name(f"{stem}.rejects.parquet"), output.with_name(f"{stem}.summary.json")


def load_scorer(model_uri: str) -> tuple[Scorer, str | None]:
    """Load the artifact by registry URI or local folder; returns the scorer and its registry version."""
    import mlflow

    from pipeline.registry import resolve_uri

    uri, version = resolve_uri(model_uri)
    if not model_uri.startswith("models:/") and not Path(model_uri).exists() and "://" not in model_uri:
        raise ModelNotFoundError(f"model folder {model_uri} not found")
    try:
        scorer = mlflow.pyfunc.load_model(uri).unwrap_python_model().scorer
    except (OSError, mlflow.exceptions.MlflowException) as err:
        raise ModelNotFoundError(f"cannot load model {model_uri}: {err}") from None
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


@dataclass
class Tally:
    """Running totals across chunks, so the summary needs no second pass over the data."""

    rows_in: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    approved: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    seen_ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))  # sorted id hashes
    drift_counts: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, Reservoir] = field(
        default_factory=lambda: {k: Reservoir() for k in ("pd", "score", "credit_limit")}
    )
    seconds: dict[str, float] = field(
        default_factory=lambda: {"read": 0.0, "validate": 0.0, "score": 0.0, "write": 0.0}
    )

    def add_drift(self, name: str, values: np.ndarray, reference: dict) -> None:
        counts = bin_shares(values, np.asarray(reference["edges"])) * len(values)
        self.drift_counts[name] = self.drift_counts.get(name, 0) + counts


def reject_repeated_ids(checked: ValidationResult, seen: np.ndarray) -> tuple[ValidationResult, np.ndarray]:
    """Quarantine rows whose applicant_id was already seen in an earlier chunk.

    Within a chunk the contract's uniqueness rule rejects every copy; across chunks the
    earlier copy is already written, so later copies are rejected with rule `unique`.
    Ids are kept as 64-bit hashes (80 MB for 10M rows), not strings.
    """
    valid = checked.valid
    if not len(valid):
        return checked, seen
    hashes = pd.util.hash_array(valid["applicant_id"].astype(str).to_numpy())
    pos = np.searchsorted(seen, hashes)
    repeated = (
        (pos < len(seen)) & (seen[np.minimum(pos, len(seen) - 1)] == hashes)
        if len(seen)
        else np.zeros(len(valid), bool)
    )
    fresh = np.unique(hashes[~repeated])
    seen = np.concatenate([seen, fresh])
    seen.sort(kind="stable")  # two sorted runs: timsort merges them in linear time
    if not repeated.any():
        return checked, seen
    dupes = valid.loc[repeated]
    extra = pd.DataFrame(
        {
            "row_number": dupes["row_number"].to_numpy(),
            "applicant_id": dupes["applicant_id"].to_numpy(),
            "column": "applicant_id",
            "rule": "unique",
            "value": dupes["applicant_id"].astype(str).to_numpy(),
        }
    )
    rejects = pd.concat([checked.rejects, extra], ignore_index=True).sort_values(
        "row_number", kind="stable", ignore_index=True
    )
    return replace(checked, valid=valid.loc[~repeated].reset_index(drop=True), rejects=rejects), seen


QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


class Reservoir:
    """Exact mean, min and max plus quantiles from a uniform sample of at most `size` values.

    Keeps memory flat however many rows a job scores; below `size` rows the quantiles are exact.
    """

    def __init__(self, size: int = 200_000, seed: int = 0) -> None:
        self.size, self.rng = size, np.random.default_rng(seed)
        self.sample = np.empty(0)
        self.seen, self.total = 0, 0.0
        self.low, self.high = np.inf, -np.inf

    def add(self, values: np.ndarray) -> None:
        if not len(values):
            return
        self.total += float(values.sum())
        self.low, self.high = min(self.low, float(values.min())), max(self.high, float(values.max()))
        room = self.size - len(self.sample)
        if room > 0:
            self.sample = np.concatenate([self.sample, values[:room]])
        rest = values[max(room, 0) :]
        if len(rest):  # algorithm R, vectorised: value i replaces a random slot with probability size / (index + 1)
            index = self.seen + max(room, 0) + np.arange(len(rest))
            slots = (self.rng.random(len(rest)) * (index + 1)).astype(np.int64)
            keep = slots < self.size
            self.sample[slots[keep]] = rest[keep]
        self.seen += len(values)

    def summary(self) -> dict:
        if not self.seen:
            return {}
        qs = np.quantile(self.sample, QUANTILES)
        return {
            "mean": self.total / self.seen,
            "min": self.low,
            "max": self.high,
            **{f"p{int(q * 100):02d}": float(x) for q, x in zip(QUANTILES, qs, strict=True)},
        }


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
            chunk = apply_mapping(chunk, source, str(input_path), optional=TARGETS, row_offset=offset)
        t = time.perf_counter()
        checked = scorer.validate(chunk, str(input_path), row_offset=offset, allow_all_rejected=True)
        checked, tally.seen_ids = reject_repeated_ids(checked, tally.seen_ids)
        X = scorer.matrix(checked.valid) if checked.rows_valid else None
        tally.seconds["validate"] += time.perf_counter() - t
        yield len(chunk), checked, X
        t = time.perf_counter()


def prefetch(items: Iterator, depth: int = 1) -> Iterator:
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


def score_file(
    model_uri: str,
    input_path: str | Path,
    output_path: str | Path,
    config: Config | None = None,
    chunk_rows: int | None = None,
    progress: bool | None = None,
    scorer: Scorer | None = None,
) -> dict:
    """Score a CSV/Parquet file; returns (and writes) the summary. Raises PipelineError subclasses."""
    started = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    cfg = config or Config()
    chunk_rows = chunk_rows or cfg.scoring.chunk_rows
    source = cfg.source if isinstance(cfg.source, FileSource) and (cfg.source.columns or cfg.source.id_column) else None
    if scorer is None:
        scorer, _ = load_scorer(model_uri)
    rejects_path, summary_path = output_paths(output_path)
    tmp_out = output_path.with_name(f".{output_path.name}.tmp-{os.getpid()}")
    tmp_rej = rejects_path.with_name(f".{rejects_path.name}.tmp-{os.getpid()}")
    output_path.parent.mkdir(parents=True, exist_ok=True)
    tally = Tally()
    show = sys.stderr.isatty() if progress is None else progress
    bar = _progress(show)
    try:
        with ExitStack() as stack:
            writer = rej_writer = None
            if bar is not None:
                stack.enter_context(bar)
                task = bar.add_task("score", total=None)
            chunks = stack.enter_context(closing(prefetch(_prepared(input_path, chunk_rows, source, scorer, tally))))
            for n_rows, checked, X in chunks:
                t = time.perf_counter()
                scored = None
                if checked.rows_valid:
                    scored = scorer.score_valid(checked.valid, X)
                    scored.insert(0, "row_number", checked.valid["row_number"].to_numpy())
                    for i, name in enumerate(scorer.feature_names):
                        if name in scorer.reference:
                            tally.add_drift(name, X[:, i], scorer.reference[name])
                    tally.add_drift("__score__", scored["score"].to_numpy(), scorer.reference["__score__"])
                    for key, reservoir in tally.values.items():
                        reservoir.add(scored[key].to_numpy(dtype=float))
                    tally.approved += int((scored["decision"] == "approve").sum())
                tally.seconds["score"] += time.perf_counter() - t
                t = time.perf_counter()
                if scored is not None:
                    table = pa.Table.from_pandas(scored, preserve_index=False)
                    if writer is None:
                        writer = stack.enter_context(pq.ParquetWriter(tmp_out, table.schema))
                    writer.write_table(table.cast(writer.schema))
                    tally.rows_scored += len(scored)
                if len(checked.rejects):
                    table = pa.Table.from_pandas(checked.rejects.astype({"applicant_id": object}), preserve_index=False)
                    table = table.cast(
                        pa.schema(
                            [
                                ("row_number", pa.int64()),
                                ("applicant_id", pa.string()),
                                ("column", pa.string()),
                                ("rule", pa.string()),
                                ("value", pa.string()),
                            ]
                        )
                    )
                    if rej_writer is None:
                        rej_writer = stack.enter_context(pq.ParquetWriter(tmp_rej, table.schema))
                    rej_writer.write_table(table)
                    tally.rows_rejected += checked.rows_rejected
                    for key, count in checked.rejected_by_rule().items():
                        tally.by_rule[key] = tally.by_rule.get(key, 0) + count
                tally.seconds["write"] += time.perf_counter() - t
                if bar is not None:
                    bar.update(task, advance=n_rows)
        if tally.rows_in == 0:
            raise DataContractError(f"{input_path}: no data rows (the input is empty or has only a header)")
        _publish(tmp_rej, rejects_path, REJECT_COLUMNS)
        summary = _summary(tally, scorer, model_uri, input_path, output_path, rejects_path, started, cfg)
        atomic_write_text(json.dumps(summary, indent=2), summary_path)
        if tally.rows_scored == 0:
            raise DataContractError(
                f"{input_path}: every one of {tally.rows_in} rows was rejected; "
                f"see {rejects_path}; top failures: {dict(list(summary['rejected_by_rule'].items())[:3])}"
            )
        budget = cfg.validation.rejection_budget
        if tally.rows_rejected > budget * tally.rows_in:
            raise RejectionBudgetExceeded(
                f"{input_path}: {tally.rows_rejected} of {tally.rows_in} rows rejected "
                f"({tally.rows_rejected / tally.rows_in:.1%}), above the budget of {budget:.1%}; "
                f"no scores published; see {rejects_path}"
            )
        os.replace(tmp_out, output_path)
        return summary
    finally:
        tmp_out.unlink(missing_ok=True)
        tmp_rej.unlink(missing_ok=True)


def _publish(tmp: Path, final: Path, columns: list[str]) -> None:
    """Rejects are always written, empty when none, so a job's consumers can rely on the file."""
    if tmp.exists():
        os.replace(tmp, final)
    else:
        empty = pa.table({c: pa.array([], pa.int64() if c == "row_number" else pa.string()) for c in columns})
        tmp.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(empty, tmp)
        os.replace(tmp, final)


def _summary(
    tally: Tally,
    scorer: Scorer,
    model_uri: str,
    input_path: Path,
    output_path: Path,
    rejects_path: Path,
    started: float,
    cfg: Config,
) -> dict:
    drift = {}
    for name, counts in tally.drift_counts.items():
        ref = scorer.reference[name]
        value = psi_from_shares(np.asarray(ref["shares"]), counts / max(counts.sum(), 1))
        drift["score" if name == "__score__" else name] = round(value, 5)
    warn, alert = cfg.scoring.psi_warn, cfg.scoring.psi_alert
    total = time.perf_counter() - started
    return {
        "rows_in": tally.rows_in,
        "rows_scored": tally.rows_scored,
        "rows_rejected": tally.rows_rejected,
        "rejected_by_rule": dict(sorted(tally.by_rule.items(), key=lambda kv: -kv[1])),
        "approval_rate": tally.approved / tally.rows_scored if tally.rows_scored else None,
        "pd": tally.values["pd"].summary(),
        "score": tally.values["score"].summary(),
        "credit_limit": tally.values["credit_limit"].summary(),
        "drift_psi": drift,
        "drift_warnings": sorted(k for k, v in drift.items() if warn < v <= alert),
        "drift_alerts": sorted(k for k, v in drift.items() if v > alert),
        "model_uri": model_uri,
        "model_name": scorer.meta.get("model_name"),
        "model_version": scorer.meta.get("model_version"),
        "input": str(input_path),
        "output": str(output_path),
        "rejects": str(rejects_path),
        "seconds": {**{k: round(v, 3) for k, v in tally.seconds.items()}, "total": round(total, 3)},
        "rows_per_second": round(tally.rows_in / total, 1) if total > 0 else None,
    }
