"""Data stages: ingest, validate, features. Each reads the previous stage's files and writes its own.

Files are read and written here, at the edge; the transforms they call are pure functions.
This module stays free of MLflow and LightGBM so the data stages start fast.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pandas as pd

from pipeline.config import Config
from pipeline.data.duplicates import handle_duplicates
from pipeline.data.io import atomic_write_parquet, atomic_write_text, read_parquet
from pipeline.data.sources import load_source
from pipeline.data.validate import validate_frame
from pipeline.features import categories, choose_features, compute_features, feature_schema
from pipeline.features.dictionary import assumptions
from pipeline.stages.files import Paths, read_json

TARGET = "defaulted"

log = logging.getLogger(__name__)


def paths(cfg: Config) -> Paths:
    return Paths(cfg.run_dir)


def write_json(data: dict, path: Path) -> None:
    atomic_write_text(json.dumps(data, indent=2, default=str), path)


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Mixed-type text columns (a raw file's bad values) are stored as text for validation to judge."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object:
            present = out[col].notna()
            out[col] = out[col].where(~present, out[col][present].astype(str)).astype(object)
    return out


# ---------------------------------------------------------------- stages


def ingest(cfg: Config, config_path: str | None = None) -> dict:
    """Read the source onto the contract; the report says what the header needed and what is not used.

    A file source is read here rather than by `load_source`, so the header report (blank and
    repeated names) reaches `ingest.json` and malformed lines reach validation as rows.
    """
    from pipeline.config import FileSource
    from pipeline.data.contract import contract_columns
    from pipeline.data.headers import ignored_columns
    from pipeline.data.io import (
        MALFORMED_COLUMNS,
        MALFORMED_RULE,
        detect_format,
        file_digest,
        map_source,
        read_csv_with_header,
    )
    from pipeline.data.sources import SourceData, check_targets
    from pipeline.errors import DataContractError

    if cfg.compute.engine == "dask":  # partition by partition on a Dask cluster: pipeline/compute/data.py
        from pipeline.compute import data as on_cluster

        return on_cluster.ingest(cfg, config_path)
    p = paths(cfg)
    started = time.perf_counter()
    src, header, extra = cfg.source, None, {}
    if isinstance(src, FileSource):
        check_targets(cfg)
        if detect_format(src.path, src.format) == "parquet":
            raw = read_parquet(src.path)
        else:
            raw, header = read_csv_with_header(src.path, src.delimiter, src.encoding)
        if len(raw) == 0:
            raise DataContractError(f"{src.path}: no data rows (the file has only a header)")
        source = SourceData(map_source(raw, src, src.path), src.path, file_digest(src.path))
        used = [s.source for s in src.columns.values() if s.source] if src.columns else []
        used += [c.name for c in contract_columns(cfg.contract)] if not src.columns else []
        used += [src.id_column or "applicant_id", *src.passthrough]
        names = [c for c in map(str, raw.columns) if c not in MALFORMED_COLUMNS]
        malformed = int(raw[MALFORMED_RULE].notna().sum()) if MALFORMED_RULE in raw else 0
        extra = {
            "header": header.report if header else None,
            "ignored_columns": ignored_columns(names, used),
            "malformed_lines": malformed,
        }
        for name, where in (header.report["duplicates"] if header else {}).items():
            log.warning("ingest: column %r appears %d times in the header; renamed %s", name, len(where), where)
    else:
        source = load_source(cfg)
    atomic_write_parquet(_parquet_safe(source.frame), p.ingested)
    report = {
        "origin": source.origin,
        "data_sha256": source.digest,
        "rows": len(source.frame),
        "columns": [c for c in map(str, source.frame.columns) if c not in MALFORMED_COLUMNS],
        **extra,
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_json(report, p.ingest_report)
    log.info("ingest: %d rows from %s -> %s", len(source.frame), source.origin, p.ingested)
    return report


def validate(cfg: Config, config_path: str | None = None) -> dict:
    if cfg.kind == "accounts":  # account snapshots: pipeline/stages/accounts.py
        from pipeline.stages import accounts

        return accounts.validate(cfg, config_path)
    if cfg.compute.engine == "dask":
        from pipeline.compute import data as on_cluster

        return on_cluster.validate(cfg, config_path)
    p = paths(cfg)
    origin = read_json(p.ingest_report)["origin"]
    frame = read_parquet(p.ingested)
    required = ["applicant_id", TARGET] if cfg.contract.training_targets_required else ["applicant_id"]
    try:
        result = validate_frame(
            frame, cfg.contract, origin, required=required, rejection_budget=cfg.validation.rejection_budget
        )
    except Exception as err:
        partial = getattr(err, "result", None)
        if partial is not None:
            atomic_write_parquet(partial.rejects, p.rejects)
        raise
    result, duplicates = handle_duplicates(result, cfg.validation.duplicate_rows)
    if duplicates:
        log.warning(
            "validate: %d exact duplicate row(s) (identical but for the id): %s (validation.duplicate_rows)",
            duplicates,
            "rejected all but the first" if cfg.validation.duplicate_rows == "reject" else "kept",
        )
    atomic_write_parquet(result.valid, p.valid)
    atomic_write_parquet(result.rejects, p.rejects)
    summary = {
        "origin": origin,
        **result.summary(),
        "duplicate_rows": duplicates,
        "duplicate_rows_policy": cfg.validation.duplicate_rows,
        "rejects_file": str(p.rejects),
    }
    write_json(summary, p.validation_report)
    return summary


def features(cfg: Config, config_path: str | None = None) -> dict:
    if cfg.kind == "accounts":  # account snapshots: pipeline/stages/accounts.py
        from pipeline.stages import accounts

        return accounts.features(cfg, config_path)
    if cfg.compute.engine == "dask":
        from pipeline.compute import data as on_cluster

        return on_cluster.features(cfg, config_path)
    p = paths(cfg)
    valid = read_parquet(p.valid)
    started = time.perf_counter()
    specs, skipped = choose_features(valid, cfg)
    table = compute_features(valid, specs, cfg.features, categories(cfg.contract))
    feature_schema(specs).validate(table, lazy=True)
    keep = [
        c
        for c in (
            "row_number",
            "applicant_id",
            "application_date",
            "defaulted",
            "granted_limit",
            *cfg.contract.protected,
        )
        if c in valid
    ]
    atomic_write_parquet(pd.concat([valid[keep], table], axis=1), p.features)
    report = {
        "rows": len(table),
        "features": [s.name for s in specs],
        "skipped": skipped,
        "assumptions": assumptions(specs, set(valid.columns), cfg.features),
        "uses_limit": [s.name for s in specs if s.uses_limit],
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_json(report, p.features_report)
    for name, why in skipped.items():
        log.warning("feature skipped: %s: %s", name, why)
    return report
