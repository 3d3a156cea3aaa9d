"""Ingest, validate and features on a Dask cluster: the one-process functions, partition by partition.

Each partition runs the same pure functions as the local engine (`map_source`, `validate_frame`,
`compute_features` and the feature schema) with its row offset, so row numbers, generated ids and
rejects read as in one process. What one partition cannot see is done across all of them, on the
cluster: ids repeated in different partitions (every occurrence rejected under `unique`, as pandera
does in one frame), exact duplicate rows (`validation.duplicate_rows`), the rejection budget and
"every row rejected" (on the summed counts), and which columns are missing everywhere (the feature
choice). The outputs are the local engine's files (`frames.write_parquet`), so rows in = rows kept
+ rows rejected holds file for file and every later stage reads them unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from pipeline.compute.cluster import session
from pipeline.compute.frames import (
    Partitioned,
    dataset_files,
    read_csv_dataset,
    read_parquet_dataset,
    write_parquet,
)
from pipeline.config import Config, ContractConfig, FileSource, SyntheticSource
from pipeline.data.contract import RULE_UNIQUE
from pipeline.data.csv_records import MALFORMED_COLUMNS, MALFORMED_RULE
from pipeline.data.duplicates import apply_duplicates, compared_columns, row_hashes
from pipeline.data.io import file_digest, map_source
from pipeline.data.validate import ValidationResult, _as_text, _short, validate_frame
from pipeline.errors import DataContractError, RejectionBudgetExceeded
from pipeline.features import FeatureSpec, categories, compute_features, feature_dictionary, feature_schema
from pipeline.features.dictionary import assumptions, select_features
from pipeline.stages.data import TARGET, _parquet_safe, paths, write_json
from pipeline.stages.files import read_json

if TYPE_CHECKING:
    from distributed import Client, Future

log = logging.getLogger(__name__)
ID = "applicant_id"


# ---------------------------------------------------------------- ingest


def ingest(cfg: Config, config_path: str | None = None) -> dict:
    """The source mapped onto the contract, partition by partition; the report of the local engine."""
    p, started = paths(cfg), time.perf_counter()
    with session(cfg.compute) as client:
        assert client is not None
        if isinstance(cfg.source, SyntheticSource):
            report = _ingest_synthetic(client, cfg)
        else:
            report = _ingest_file(client, cfg, cfg.source)
    report["seconds"] = round(time.perf_counter() - started, 3)
    write_json(report, p.ingest_report)
    log.info("ingest (dask): %d rows in %d partition(s) -> %s", report["rows"], report["partitions"], p.ingested)
    return report


def _ingest_synthetic(client: Client, cfg: Config) -> dict:
    """The seeded generator makes the whole frame at once (in the client); it is written in partitions."""
    import dask.dataframe as dd

    from pipeline.data.sources import load_source

    source = load_source(cfg)
    frame = dd.from_pandas(_parquet_safe(source.frame), chunksize=cfg.compute.partition_rows, sort=False)
    parts = client.compute(frame.to_delayed())
    rows = write_parquet(client, parts, paths(cfg).ingested)
    return {
        "origin": source.origin,
        "data_sha256": source.digest,
        "rows": rows,
        "columns": [str(c) for c in source.frame.columns],
        "engine": "dask",
        "partitions": len(parts),
    }


def map_partition(raw: pd.DataFrame, src: FileSource, offsets: list[int], origins: list[str], partition_info=None):
    """One partition of the source mapped onto the contract, numbered from its offset in the dataset."""
    i = partition_info["number"] if partition_info else 0
    return _parquet_safe(map_source(raw, src, origins[i], row_offset=offsets[i]))


def _ingest_file(client: Client, cfg: Config, src: FileSource) -> dict:
    from pipeline.data.contract import contract_columns
    from pipeline.data.headers import ignored_columns
    from pipeline.data.sources import check_targets

    check_targets(cfg)
    files, fmt = dataset_files(src.path, src.format)
    rows = cfg.compute.partition_rows
    if fmt == "parquet":
        data = read_parquet_dataset(files, rows)
    else:
        data = read_csv_dataset(client, files, src.delimiter, src.encoding, rows)
    if data.rows == 0:
        raise DataContractError(f"{src.path}: no data rows (the file has only a header)")
    origins = [src.path] * len(data.offsets) if len(files) == 1 else data.origins
    mapped = data.frame.map_partitions(
        map_partition, src, data.offsets, origins, partition_info=True, meta=data.frame._meta, enforce_metadata=False
    )
    parts = client.compute(mapped.to_delayed())
    written = write_parquet(client, parts, paths(cfg).ingested)
    malformed = sum(client.gather(client.map(_malformed, parts, pure=False)))
    names = [c for c in map(str, data.frame.columns) if c not in MALFORMED_COLUMNS]
    used = [s.source for s in src.columns.values() if s.source] if src.columns else []
    used += [c.name for c in contract_columns(cfg.contract)] if not src.columns else []
    used += [src.id_column or ID, *src.passthrough]
    columns = pq.read_schema(paths(cfg).ingested).names
    return {
        "origin": src.path,
        "data_sha256": _dataset_digest(files),
        "rows": written,
        "columns": [c for c in columns if c not in MALFORMED_COLUMNS],
        "header": data.header.report if data.header else None,
        "ignored_columns": ignored_columns(names, used),
        "malformed_lines": malformed,
        "engine": "dask",
        "partitions": len(parts),
        "files": len(files),
    }


def _malformed(frame: pd.DataFrame) -> int:
    return int(frame[MALFORMED_RULE].notna().sum()) if MALFORMED_RULE in frame else 0


def _dataset_digest(files: list) -> str:
    """A file's sha256 (as the local engine records it); a folder's: over its files' names and digests."""
    if len(files) == 1:
        return file_digest(files[0])
    lines = "".join(f"{f.name}\t{file_digest(f)}\n" for f in files)
    return hashlib.sha256(lines.encode()).hexdigest()


# ---------------------------------------------------------------- validate


def present_ids(raw: pd.DataFrame) -> pd.Series:
    """The ids as validation compares them (stripped text), missing ones dropped."""
    if ID not in raw:
        return pd.Series([], dtype=object, name=ID)
    return _as_text(raw[ID]).dropna().astype(object).rename(ID)


def repeated_ids(client: Client, raw_parts: list[Future], partitions: int) -> frozenset:
    """Ids that occur more than once in the whole dataset (counted on the cluster; only these reach the client)."""
    import dask.dataframe as dd

    ids = dd.from_delayed(client.map(present_ids, raw_parts, pure=False), meta=present_ids(pd.DataFrame()))
    counts = ids.value_counts(split_out=max(1, partitions // 8))
    return frozenset(client.compute(counts[counts > 1]).result().index)


def validate_partition(
    raw: pd.DataFrame, offset: int, contract: ContractConfig, origin: str, required: list[str], repeated: frozenset
) -> ValidationResult:
    """`validate_frame` on one partition (budget and "all rejected" are judged on the sums), plus repeated ids."""
    result = validate_frame(raw, contract, origin, required=required, row_offset=offset, allow_all_rejected=True)
    if not repeated or ID not in raw:
        return result
    ids = _as_text(raw[ID].reset_index(drop=True))
    pos = np.flatnonzero(ids.isin(repeated).fillna(False).to_numpy(dtype=bool))
    if not len(pos):
        return result
    rows = pos + 1 + offset
    flagged = result.rejects[(result.rejects["column"] == ID) & (result.rejects["rule"] == RULE_UNIQUE)]
    new = ~np.isin(rows, flagged["row_number"].to_numpy())
    lines = pd.DataFrame(
        {
            "row_number": rows[new],
            ID: pd.array([_short(v) for v in ids.to_numpy(dtype=object)[pos[new]]], dtype=object),
            "column": ID,
            "rule": RULE_UNIQUE,
            "value": pd.array([_short(v) for v in raw[ID].to_numpy(dtype=object)[pos[new]]], dtype=object),
        }
    )
    rejects = pd.concat([result.rejects, lines], ignore_index=True)
    rejects = rejects.sort_values(["row_number", "column", "rule"], kind="stable", ignore_index=True)
    valid = result.valid[~result.valid["row_number"].isin(rows)].reset_index(drop=True)
    return replace(result, valid=valid, rejects=rejects)


def hashes_of(result: ValidationResult) -> pd.DataFrame:
    valid = result.valid
    hashes = row_hashes(valid) if len(valid) and compared_columns(valid) else np.array([], dtype=np.uint64)
    rows = valid["row_number"].to_numpy(dtype=np.int64) if len(hashes) else np.array([], dtype=np.int64)
    return pd.DataFrame({"hash": hashes, "row_number": rows})


def first_of_repeats(client: Client, results: list[Future], partitions: int) -> pd.Series:
    """hash -> first row_number, for rows identical (but for the id) to another row in any partition."""
    import dask.dataframe as dd

    frame = dd.from_delayed(client.map(hashes_of, results, pure=False), meta=hashes_of(_EMPTY_RESULT))
    agg = frame.groupby("hash")["row_number"].agg(["min", "count"], split_out=max(1, partitions // 8))
    return client.compute(agg[agg["count"] > 1]["min"]).result()


def dedupe_partition(result: ValidationResult, first: pd.Series, policy: str) -> tuple[ValidationResult, int]:
    """`apply_duplicates` with the first identical row found across all partitions."""
    hashes = hashes_of(result)
    found = first.reindex(hashes["hash"].to_numpy()).fillna(0).to_numpy(dtype=np.int64)
    first_rows = np.where(found == hashes["row_number"].to_numpy(), 0, found)
    if not len(first_rows):
        first_rows = np.zeros(len(result.valid), dtype=np.int64)
    return apply_duplicates(result, first_rows, policy)


_EMPTY_RESULT = ValidationResult(pd.DataFrame({"row_number": pd.Series(dtype="int64")}), pd.DataFrame(), 0)


def summed(summaries: list[dict], budget: float | None) -> dict:
    """The partitions' summaries as one: counts added (row numbers never repeat across partitions)."""
    by_rule: dict[str, int] = {}
    for s in summaries:
        for key, count in s["rejected_by_rule"].items():
            by_rule[key] = by_rule.get(key, 0) + count
    rows_in = sum(s["rows_in"] for s in summaries)
    rejected = sum(s["rows_rejected"] for s in summaries)
    return {
        "rows_in": rows_in,
        "rows_valid": sum(s["rows_valid"] for s in summaries),
        "rows_rejected": rejected,
        "rejected_share": round(rejected / rows_in, 6) if rows_in else 0.0,
        "rejection_budget": budget,
        "rejected_by_rule": dict(sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0]))),
        "absent_columns": summaries[0]["absent_columns"],
        "ignored_columns": summaries[0]["ignored_columns"],
    }


def _check_totals(summary: dict, origin: str) -> None:
    """The local engine's table-level failures, on the summed counts: every row rejected, or over budget."""
    rows_in, rejected, budget = summary["rows_in"], summary["rows_rejected"], summary["rejection_budget"]
    if summary["rows_valid"] == 0:
        key, count = next(iter(summary["rejected_by_rule"].items()))
        column, rule = key.split(": ", 1)
        raise DataContractError(
            f"{origin}: every one of {rows_in} rows was rejected; most common failure: column '{column}' "
            f"rule '{rule}' ({count} rows)"
        )
    if budget is not None and rejected > budget * rows_in:
        raise RejectionBudgetExceeded(
            f"{origin}: {rejected} of {rows_in} rows rejected ({rejected / rows_in:.1%}), above the rejection budget "
            f"of {budget:.1%}; top failures: {dict(list(summary['rejected_by_rule'].items())[:3])}"
        )


def _part(pair: tuple[ValidationResult, int], what: str) -> Any:
    """One field of a deduplicated partition: its valid rows, rejects, summary or duplicate count."""
    if what == "duplicates":
        return pair[1]
    return pair[0].summary() if what == "summary" else getattr(pair[0], what)


def validate(cfg: Config, config_path: str | None = None) -> dict:
    """Validate the ingested file partition by partition; write valid rows, rejects and the summed summary."""
    p = paths(cfg)
    origin = read_json(p.ingest_report)["origin"]
    required = ["applicant_id", TARGET] if cfg.contract.training_targets_required else ["applicant_id"]
    budget, policy = cfg.validation.rejection_budget, cfg.validation.duplicate_rows
    with session(cfg.compute) as client:
        assert client is not None
        data: Partitioned = read_parquet_dataset([p.ingested], cfg.compute.partition_rows)
        raw = client.compute(data.frame.to_delayed())
        repeated = client.scatter([repeated_ids(client, raw, len(raw))], broadcast=True, hash=False)[0]
        results = [
            client.submit(validate_partition, part, offset, cfg.contract, origin, required, repeated, pure=False)
            for part, offset in zip(raw, data.offsets, strict=True)
        ]
        del raw
        summary = summed(client.gather(client.map(ValidationResult.summary, results, pure=False)), budget)
        try:
            _check_totals(summary, origin)
        except (DataContractError, RejectionBudgetExceeded):
            write_parquet(client, client.map(getattr, results, ["rejects"] * len(results), pure=False), p.rejects)
            raise
        first = client.scatter(first_of_repeats(client, results, len(results)), broadcast=True, hash=False)
        deduped = client.map(dedupe_partition, results, first=first, policy=policy, pure=False)
        duplicates = sum(client.gather(client.map(_part, deduped, what="duplicates", pure=False)))
        write_parquet(client, client.map(_part, deduped, what="valid", pure=False), p.valid)
        write_parquet(client, client.map(_part, deduped, what="rejects", pure=False), p.rejects)
        if duplicates:
            summary = summed(client.gather(client.map(_part, deduped, what="summary", pure=False)), budget)
    if duplicates:
        log.warning(
            "validate: %d exact duplicate row(s) (identical but for the id): %s (validation.duplicate_rows)",
            duplicates,
            "rejected all but the first" if policy == "reject" else "kept",
        )
    report = {
        "origin": origin,
        **summary,
        "duplicate_rows": duplicates,
        "duplicate_rows_policy": policy,
        "rejects_file": str(p.rejects),
    }
    write_json(report, p.validation_report)
    return report


# ---------------------------------------------------------------- features


def features_partition(
    valid: pd.DataFrame, specs: list[FeatureSpec], cfg: Config, keep: list[str], cats: dict[str, list[str]]
) -> pd.DataFrame:
    """The local engine's feature table for one partition: kept columns, then the checked features."""
    table = compute_features(valid, specs, cfg.features, cats)
    feature_schema(specs).validate(table, lazy=True)
    return pd.concat([valid[keep], table], axis=1)


def features(cfg: Config, config_path: str | None = None) -> dict:
    """Features partition by partition; the choice of features sees every partition (all-missing columns)."""
    p, started = paths(cfg), time.perf_counter()
    with session(cfg.compute) as client:
        assert client is not None
        data = read_parquet_dataset([p.valid], cfg.compute.partition_rows)
        valid = client.persist(data.frame)
        missing = client.compute(valid.isna().all()).result()
        columns = [str(c) for c in valid.columns]
        empty = {c for c in columns if bool(missing.get(c, True))}
        dictionary = feature_dictionary(cfg.contract, cfg.features.history_passthrough)
        selection = select_features(set(columns), dictionary, empty)
        specs, skipped = selection.used, selection.skipped
        keep = [c for c in ("row_number", ID, "application_date", TARGET, "granted_limit", *cfg.contract.protected)]
        keep = [c for c in keep if c in columns]
        cats = categories(cfg.contract)
        meta = pd.concat([valid._meta[keep], _features_meta(specs, cats)], axis=1)
        table = valid.map_partitions(features_partition, specs, cfg, keep, cats, meta=meta, enforce_metadata=False)
        parts = client.compute(table.to_delayed())
        rows = write_parquet(client, parts, p.features)
    report = {
        "rows": rows,
        "features": [s.name for s in specs],
        "skipped": skipped,
        "assumptions": assumptions(specs, set(columns), cfg.features),
        "uses_limit": [s.name for s in specs if s.uses_limit],
        "seconds": round(time.perf_counter() - started, 3),
        "engine": "dask",
        "partitions": len(parts),
    }
    write_json(report, p.features_report)
    for name, why in skipped.items():
        log.warning("feature skipped: %s: %s", name, why)
    return report


def _features_meta(specs: list[FeatureSpec], cats: dict[str, list[str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            s.name: pd.Categorical([], categories=cats.get(s.name)) if s.categorical else pd.Series([], dtype=float)
            for s in specs
        }
    )
