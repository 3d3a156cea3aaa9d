"""Exact duplicate rows: the same application written twice, which no id rule catches when ids are
row numbers or differ. Counted in every validation summary; rejected only when the config says so.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from pipeline.data.validate import ValidationResult

RULE_DUPLICATE = "duplicate_row"
NOT_COMPARED = ("row_number", "applicant_id")


def compared_columns(valid: pd.DataFrame) -> list[str]:
    return [c for c in valid.columns if c not in NOT_COMPARED]


def row_hashes(valid: pd.DataFrame) -> np.ndarray:
    """One 64-bit hash per row of the compared columns (callers check there is one): equal rows, equal
    hashes, in any process."""
    return pd.util.hash_pandas_object(valid[compared_columns(valid)], index=False).to_numpy()


def duplicate_of(valid: pd.DataFrame) -> np.ndarray:
    """Per row, the row_number of the first identical earlier row (every column but the id), else 0."""
    if not len(valid) or not compared_columns(valid):
        return np.zeros(len(valid), dtype=np.int64)
    hashes = row_hashes(valid)
    first_pos = pd.Series(np.arange(len(valid))).groupby(hashes).transform("first").to_numpy()
    rows = valid["row_number"].to_numpy(dtype=np.int64)
    return np.where(first_pos != np.arange(len(valid)), rows[first_pos], 0)


def handle_duplicates(result: ValidationResult, policy: str) -> tuple[ValidationResult, int]:
    """Count exact duplicates; with policy "reject", quarantine all but the first of each group."""
    return apply_duplicates(result, duplicate_of(result.valid), policy)


def apply_duplicates(result: ValidationResult, first: np.ndarray, policy: str) -> tuple[ValidationResult, int]:
    """`handle_duplicates` given each valid row's first identical row (0 if none): the Dask engine finds
    those across partitions and applies them to each one."""
    repeated = first > 0
    count = int(repeated.sum())
    if policy != "reject" or not count:
        return result, count
    dupes = result.valid.loc[repeated]
    extra = pd.DataFrame(
        {
            "row_number": dupes["row_number"].to_numpy(dtype=np.int64),
            "applicant_id": dupes["applicant_id"].astype(object).to_numpy(),
            "column": "<row>",
            "rule": RULE_DUPLICATE,
            "value": [f"same as row {n}" for n in first[repeated]],
        }
    )
    rejects = pd.concat([result.rejects, extra], ignore_index=True).sort_values("row_number", kind="stable")
    valid = result.valid.loc[~repeated].reset_index(drop=True)
    return replace(result, valid=valid, rejects=rejects.reset_index(drop=True)), count
