"""Applicant statements for a scored batch: one JSON and one HTML file per applicant.

Built from the published scores file, batch by batch, so memory stays bounded however many
applicants were scored; the wording and costs come from the products the model was trained with.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from pipeline.decision.products import ProductsConfig
from pipeline.decision.statement import write_statements
from pipeline.errors import ConfigError


def write_batch_statements(
    scores: Path, directory: Path, products: ProductsConfig | None, batch_rows: int = 10_000
) -> int:
    """Statements for every scored applicant in `scores`; returns how many were written."""
    if products is None:
        raise ConfigError("--statements: this model makes no offers (registered before products existed)")
    count = 0
    for batch in pq.ParquetFile(scores).iter_batches(batch_size=batch_rows):
        frame = batch.to_pandas()
        write_statements(frame, directory, products)
        count += len(frame)
    return count
