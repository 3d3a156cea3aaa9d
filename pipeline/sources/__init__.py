"""Sources turn raw data into contract columns: the seeded generator or a mapped file."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pipeline.config import Config, FileSource, SyntheticSource
from pipeline.io import file_digest, frame_digest, read_table
from pipeline.sources.file import apply_mapping
from pipeline.sources.synthetic import generate


@dataclass(frozen=True)
class SourceData:
    frame: pd.DataFrame
    origin: str
    digest: str


def load_source(cfg: Config) -> SourceData:
    """Read or generate the configured source, mapped onto the contract, with a digest of its data."""
    src = cfg.source
    if isinstance(src, SyntheticSource):
        frame = generate(src, cfg.contract.history_months, cfg.features)
        return SourceData(frame, f"synthetic(seed={src.seed}, rows={src.rows})", frame_digest(frame))
    assert isinstance(src, FileSource)
    raw = read_table(src.path, src.format, src.delimiter, src.encoding)
    frame = apply_mapping(raw, src, src.path)
    return SourceData(frame, src.path, file_digest(src.path))
