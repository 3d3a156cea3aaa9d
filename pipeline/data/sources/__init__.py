"""Sources turn raw data into contract columns: the seeded generator or a mapped file."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pipeline.config import Config, FileSource, SyntheticSource
from pipeline.data.contract import contract_columns
from pipeline.data.io import file_digest, frame_digest, read_table
from pipeline.data.sources.file import apply_mapping
from pipeline.data.sources.synthetic import generate
from pipeline.errors import ConfigError, DataContractError


@dataclass(frozen=True)
class SourceData:
    frame: pd.DataFrame
    origin: str
    digest: str


def check_targets(cfg: Config) -> None:
    """Every mapped or passed-through column must be a contract column, else validation would drop it unseen."""
    src = cfg.source
    if not isinstance(src, FileSource):
        return
    known = {c.name for c in contract_columns(cfg.contract)}
    unknown = [name for name in [*src.columns, *src.passthrough] if name not in known]
    if unknown:
        raise ConfigError(
            f"source maps to column(s) the contract does not know: {', '.join(unknown)}; "
            "declare them under contract.extras or contract.protected"
        )


def load_source(cfg: Config) -> SourceData:
    """Read or generate the configured source, mapped onto the contract, with a digest of its data."""
    src = cfg.source
    if isinstance(src, SyntheticSource):
        frame = generate(src, cfg.contract.history_months, cfg.features)
        return SourceData(frame, f"synthetic(seed={src.seed}, rows={src.rows})", frame_digest(frame))
    assert isinstance(src, FileSource)
    check_targets(cfg)
    raw = read_table(src.path, src.format, src.delimiter, src.encoding)
    if len(raw) == 0:
        raise DataContractError(f"{src.path}: no data rows (the file has only a header)")
    frame = apply_mapping(raw, src, src.path)
    return SourceData(frame, src.path, file_digest(src.path))
