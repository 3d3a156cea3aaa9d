"""The monthly portfolio review job: stream snapshots through the account model, rank the whole book, review it.

Why two passes: the early-warning rank is portfolio-wide, so no account's review is final before every
PD is known. Pass 1 reads, validates and scores chunk by chunk, writing the valid rows' review inputs
and PD to a temporary Parquet file and keeping only PD and expected loss in memory (16 bytes a row);
the rank is then taken over the whole book; pass 2 streams the temporary file back and reviews each
chunk with its slice of the global rank. Every row is accounted for as the score job does it
(rows_in = rows_scored + rows_rejected, a rejects file, row_number kept), using that job's output
paths, reader, verdict and atomic publish; a `<stem>.html` page shows the watch list and offers.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.accounts.contract import ID, RULE_KEY
from pipeline.accounts.model import TARGET, review_numbers
from pipeline.accounts.review import early_warning_rank, expected_loss, review_accounts
from pipeline.accounts.scorer import AccountScorer
from pipeline.batch.chunks import REJECTS_SCHEMA
from pipeline.batch.job import (
    Outputs,
    _verdict,
    check_chunk_rows,
    check_output_paths,
    load_scorer,
    publish,
    read_chunks,
)
from pipeline.batch.tallies import Reservoir, Tally
from pipeline.config import Config, FileSource
from pipeline.data.io import (
    atomic_write_text,
    clean_stale_temps,
    iter_parquet,
    make_parent,
    map_source,
    storage_errors,
    temp_path,
)
from pipeline.data.sources import as_accounts
from pipeline.data.validate import ValidationResult
from pipeline.errors import ConfigError, DataContractError

log = logging.getLogger(__name__)
REJECTS = pa.schema([pa.field(ID, pa.string()) if f.name == "applicant_id" else f for f in REJECTS_SCHEMA])
TS = pa.timestamp("ns")
NUMBERS: tuple[str, ...] = (
    "credit_limit",
    "balance",
    "months_on_book",
    "monthly_income",
    "monthly_debt_payments",
    "contacts_this_month",
)


def stage_schema(months: int) -> pa.Schema:
    """The review inputs kept between the passes, with fixed types so every chunk appends to one file."""
    status = [(f"repayment_status_m{m}", pa.float64()) for m in range(1, months + 1)]
    return pa.schema(
        [("row_number", pa.int64()), (ID, pa.string()), ("snapshot_month", TS)]
        + [(c, pa.float64()) for c in NUMBERS]
        + status
        + [("last_limit_change_month", TS), ("last_limit_change_direction", pa.string()), ("pd", pa.float64())]
    )


OUTPUT = pa.schema(
    [("row_number", pa.int64()), (ID, pa.string()), ("snapshot_month", TS)]
    + [(c, pa.float64()) for c in ("pd", "exposure_at_default", "expected_loss")]
    + [("early_warning", pa.bool_()), ("early_warning_rank", pa.int64()), ("limit_action", pa.string())]
    + [("credit_limit", pa.float64()), ("new_limit", pa.float64()), ("limit_effective_date", TS)]
    + [("treatment", pa.string()), ("treatment_deferred", pa.bool_()), ("plan_outcome", pa.string())]
    + [(c, pa.float64()) for c in ("plan_term_months", "plan_payment", "plan_total", "affordable_payment")]
    + [("reasons", pa.string()), ("model_name", pa.string()), ("model_version", pa.string())]
)


_MISSING_DTYPES = {pa.string(): "object", TS: "datetime64[ns]"}


def _stage_frame(valid: pd.DataFrame, pd_: np.ndarray, schema: pa.Schema) -> pa.Table:
    """Only what the review reads; an absent optional column is missing (the review treats it as unknown)."""
    cols: dict[str, object] = {}
    for f in schema:
        if f.name == "pd":
            cols[f.name] = pd_
        elif f.name not in valid:
            missing = {pa.string(): None, TS: pd.NaT}.get(f.type, np.nan)
            cols[f.name] = pd.Series(missing, index=valid.index, dtype=_MISSING_DTYPES.get(f.type, "float64"))
        elif f.type == TS:
            cols[f.name] = pd.to_datetime(valid[f.name])
        elif f.type == pa.string():
            cols[f.name] = (
                valid[f.name]
                .astype(object)
                .where(valid[f.name].notna(), None)
                .map(lambda v: None if v is None else str(v))
            )
        else:
            cols[f.name] = pd.to_numeric(valid[f.name], errors="coerce")
    return pa.Table.from_pandas(pd.DataFrame(cols), schema=schema, preserve_index=False)


def reject_repeated_keys(checked: ValidationResult, seen: np.ndarray) -> tuple[ValidationResult, np.ndarray]:
    """Quarantine a row whose (account_id, snapshot_month) an earlier chunk already had (within a chunk the
    contract rejects every copy); keys are kept as sorted 64-bit hashes, not strings."""
    from dataclasses import replace

    valid = checked.valid
    if not len(valid):
        return checked, seen
    keys = pd.util.hash_pandas_object(valid[[ID, "snapshot_month"]].astype(str), index=False).to_numpy()
    repeated = np.isin(keys, seen, assume_unique=False)
    seen = np.union1d(seen, keys[~repeated])
    if not repeated.any():
        return checked, seen
    dupes = valid.loc[repeated]
    extra = pd.DataFrame(
        {"row_number": dupes["row_number"].to_numpy(), ID: dupes[ID].astype(str).to_numpy(), "column": ID,
         "rule": RULE_KEY, "value": dupes[ID].astype(str).to_numpy()}
    )  # fmt: skip
    rejects = pd.concat([checked.rejects, extra], ignore_index=True).sort_values("row_number", ignore_index=True)
    return replace(checked, valid=valid.loc[~repeated].reset_index(drop=True), rejects=rejects), seen


def _mapped(chunk: pd.DataFrame, source: FileSource | None, origin: str, offset: int) -> pd.DataFrame:
    """Source columns mapped onto the account contract; a file already in contract columns as it is (an
    ingested file may still name the id `applicant_id`, as the generic mapping does)."""
    if source is None:
        return as_accounts(chunk)
    return as_accounts(map_source(chunk, source, origin, optional=(TARGET,), row_offset=offset))


def _score_pass(scorer, input_path: Path, stage: Path, temps: Outputs, cfg: Config, chunk_rows: int, tally: Tally):
    """Pass 1: validate and score every chunk; valid rows' review inputs to `stage`, rejects to their file.

    Returns the PD and expected loss of every scored row, in output order: all the ranking needs.
    """
    source = cfg.source if isinstance(cfg.source, FileSource) and (cfg.source.columns or cfg.source.id_column) else None
    schema, seen = stage_schema(cfg.accounts.history.months), np.empty(0, dtype=np.uint64)
    pds, els = [], []
    with ExitStack() as stack:
        writer = rejects = None
        for chunk in read_chunks(input_path, chunk_rows, source):
            offset = tally.rows_in
            tally.rows_in += len(chunk)
            if offset == 0 and source is not None and set(scorer.required_columns) <= set(as_accounts(chunk)):
                log.info("%s is already in contract columns: the source mapping is not applied", input_path)
                source = None
            checked = scorer.validate(_mapped(chunk, source, str(input_path), offset), str(input_path), offset)
            checked, seen = reject_repeated_keys(checked, seen)
            if checked.rows_valid:
                pd_ = scorer.predict(checked.valid)
                pds.append(pd_)
                els.append(expected_loss(checked.valid, pd_, cfg.accounts.loss)[1])
                writer = writer or stack.enter_context(pq.ParquetWriter(stage, schema))
                writer.write_table(_stage_frame(checked.valid, pd_, schema))
                tally.rows_scored += checked.rows_valid
            if len(checked.rejects):
                rejects = rejects or stack.enter_context(pq.ParquetWriter(temps.rejects, REJECTS))
                rej = checked.rejects.astype({ID: object})
                rejects.write_table(pa.Table.from_pandas(rej, preserve_index=False).cast(REJECTS))
                tally.add_rejected(checked)
    empty = np.empty(0)
    return (np.concatenate(pds) if pds else empty), (np.concatenate(els) if els else empty)


class ReviewTally:
    """Running totals of pass 2, and the bounded lists the HTML page shows."""

    def __init__(self, watch_rows: int, offer_rows: int) -> None:
        self.numbers: dict = {}
        self.watch_rows, self.offer_rows = watch_rows, offer_rows
        self.watch = pd.DataFrame()
        self.offers = pd.DataFrame()
        self.pd = Reservoir()

    def add(self, reviewed: pd.DataFrame, numbers: dict) -> None:
        self.numbers = _merge(self.numbers, numbers)
        self.pd.add(reviewed["pd"].to_numpy(float))
        top = reviewed[reviewed["early_warning_rank"] <= self.watch_rows]
        self.watch = _riskiest(self.watch, top, self.watch_rows)
        self.offers = _riskiest(self.offers, reviewed[reviewed["plan_outcome"].notna()], self.offer_rows)

    def summary(self) -> dict:
        n = dict(self.numbers)
        n.pop("affordable_plan_share", None)
        at_risk = n.get("at_risk", 0)
        n["affordable_plan_share"] = n.get("at_risk_with_affordable_plan", 0) / at_risk if at_risk else None
        n["pd"] = self.pd.summary()
        return n


def _merge(total: dict, part: dict) -> dict:
    """Sum counts key by key (nested dicts too); shares are recomputed from the sums at the end."""
    out = dict(total)
    for key, value in part.items():
        if isinstance(value, dict):
            out[key] = _merge(out.get(key, {}), value)
        elif isinstance(value, int | np.integer):
            out[key] = int(out.get(key, 0)) + int(value)
    return out


def _riskiest(kept: pd.DataFrame, new: pd.DataFrame, rows: int) -> pd.DataFrame:
    if not len(new):
        return kept
    both = pd.concat([kept, new], ignore_index=True) if len(kept) else new
    return both.sort_values("early_warning_rank", kind="stable").head(rows).reset_index(drop=True)


def _review_pass(stage: Path, pd_: np.ndarray, el: np.ndarray, out: Path, scorer, cfg: Config, chunk_rows: int):
    """Pass 2: the portfolio-wide rank, then each chunk reviewed with its slice of it and appended to `out`."""
    rank = early_warning_rank(pd_, el)
    s = cfg.accounts
    tally = ReviewTally(s.report.watch_list_rows, s.report.plan_offers_rows)
    start = 0
    with pq.ParquetWriter(out, OUTPUT) as writer:
        for chunk in iter_parquet(stage, chunk_rows):
            ranks = rank[start : start + len(chunk)]
            start += len(chunk)
            result = review_accounts(chunk, chunk["pd"].to_numpy(float), s, rank=ranks, portfolio_size=len(rank))
            reviewed = result.frame
            reviewed.insert(0, "row_number", chunk["row_number"].to_numpy())
            reviewed["model_name"] = scorer.meta.get("model_name", "")
            reviewed["model_version"] = str(scorer.meta.get("model_version", ""))
            writer.write_table(pa.Table.from_pandas(reviewed[OUTPUT.names], schema=OUTPUT, preserve_index=False))
            income = chunk["monthly_income"]
            tally.add(reviewed, review_numbers(result, reviewed["pd"].to_numpy(), s.limits.decrease.trigger_pd, income))
    return tally


def _summary(tally: Tally, review: ReviewTally | None, scorer, model_uri: str, paths: dict, started: float) -> dict:
    total = time.perf_counter() - started
    return {
        **tally.accounting(),
        "portfolio": review.summary() if review is not None else {},
        "model_uri": model_uri,
        "model_name": scorer.meta.get("model_name"),
        "model_version": scorer.meta.get("model_version"),
        **{k: str(v) for k, v in paths.items()},
        "seconds": round(total, 3),
        "rows_per_second": round(tally.rows_in / total, 1) if total > 0 else None,
    }


def _load(model_uri: str, scorer: AccountScorer | None) -> AccountScorer:
    loaded = scorer if scorer is not None else load_scorer(model_uri)[0]
    if not isinstance(loaded, AccountScorer):
        raise ConfigError(f"{model_uri} is an applicant model: the review needs an account model (kind: accounts)")
    return loaded


def report_path(output: Path) -> Path:
    stem = output.name[: -len(".parquet")] if output.name.endswith(".parquet") else output.name
    return output.with_name(f"{stem}.html")


def review_file(
    model_uri: str,
    input_path: str | Path,
    output_path: str | Path,
    config: Config,
    chunk_rows: int | None = None,
    scorer: AccountScorer | None = None,
) -> dict:
    """Review a CSV/Parquet portfolio; returns (and writes) the summary. Raises PipelineError subclasses.

    Publishing follows the score job: review, rejects and summary appear together or not at all; rows that
    fail validation beyond the budget publish rejects and summary only (exit 3 or 4).
    """
    started = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    if config.kind != "accounts":
        raise ConfigError(f"config {config.name!r} is kind {config.kind!r}: the review needs kind: accounts")
    chunk_rows = check_chunk_rows(chunk_rows, config.scoring.chunk_rows)
    outputs, html = Outputs.beside(output_path), report_path(output_path)
    check_output_paths(input_path, outputs)
    scorer = _load(model_uri, scorer)
    make_parent(output_path)
    stage_file = output_path.with_name(f"{output_path.name}.stage")
    for path in (*outputs.all(), stage_file):
        clean_stale_temps(path)
    temps, stage = Outputs(*(temp_path(p) for p in outputs.all())), temp_path(stage_file)
    tally, review = Tally(), None
    try:
        with storage_errors(output_path):
            pd_, el = _score_pass(scorer, input_path, stage, temps, config, chunk_rows, tally)
            if tally.rows_in == 0:
                raise DataContractError(f"{input_path}: no data rows (the input is empty or has only a header)")
            if tally.rows_scored:
                review = _review_pass(stage, pd_, el, temps.scores, scorer, config, chunk_rows)
        files = {"input": input_path, "output": output_path, "rejects": outputs.rejects, "report": html}
        summary = _summary(tally, review, scorer, model_uri, files, started)
        failure = _verdict(tally, summary, config, input_path, outputs.rejects)
        summary.update(status="reviewed" if failure is None else "rejected", scores_published=failure is None)
        with storage_errors(output_path):
            if not temps.rejects.exists():
                pq.write_table(REJECTS.empty_table(), temps.rejects)
            atomic_write_text(json.dumps(summary, indent=2, default=str), temps.summary)
        html.unlink(missing_ok=True)  # never a page describing an earlier run beside this run's files
        publish(outputs, temps, with_scores=failure is None)
        if failure is not None:
            raise failure
        _write_page(html, summary, review)
        return summary
    finally:
        for tmp in (*temps.all(), stage):
            tmp.unlink(missing_ok=True)


def _write_page(path: Path, summary: dict, review: ReviewTally | None) -> None:
    from pipeline.accounts.report import render_review

    watch = review.watch if review is not None else pd.DataFrame()
    offers = review.offers if review is not None else pd.DataFrame()
    atomic_write_text(render_review(summary, watch, offers), path)
