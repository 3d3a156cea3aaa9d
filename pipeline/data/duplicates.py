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


def duplicate_of(valid: pd.DataFrame) -> np.ndarray:
    """Per row, the row_number of the first identical earlier row (every column but the id), else 0."""
    columns = [c for c in valid.columns if c not in NOT_COMPARED]
    if not len(valid) or not columns:
        return np.zeros(len(valid), dtype=np.int64)
    hashes = pd.util.hash_pandas_object(valid[columns], index=False).to_numpy()
    first_pos = pd.Series(np.arange(len(valid))).groupby(hashes).transform("first").to_numpy()
    rows = valid["row_number"].to_numpy(dtype=np.int64)
    return np.where(first_pos != np.arange(len(valid)), rows[first_pos], 0)


def handle_duplicates(result: ValidationResult, policy: str) -> tuple[ValidationResult, int]:
    """Count exact duplicates; with policy "reject", quarantine all but the first of each group."""
    first = duplicate_of(result.valid)
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
