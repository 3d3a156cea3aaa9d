"""Lazy validation against the contract: every failure is collected, bad rows are quarantined.

Row-level failures (a value of the wrong type, out of range, an unknown category, a
duplicated id) send the row to the rejects table with its row number, id, column,
rule and offending value; the other rows go on. Table-level failures (no rows, a
required column missing, every row rejected) stop the stage with `DataContractError`.
Nothing is dropped silently: rows_in == rows_valid + rows_rejected, always.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pa

from pipeline.config import ContractConfig
from pipeline.contract import ContractColumn, build_schema, contract_columns
from pipeline.errors import DataContractError, RejectionBudgetExceeded
from pipeline.sources.file import delimiter_hint

REJECT_COLUMNS = ["row_number", "applicant_id", "column", "rule", "value"]
MAX_ID_LENGTH = 64
MAX_VALUE_CHARS = 200


@dataclass
class ValidationResult:
    valid: pd.DataFrame
    rejects: pd.DataFrame
    rows_in: int
    absent_columns: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def rows_valid(self) -> int:
        return len(self.valid)

    @property
    def rows_rejected(self) -> int:
        return int(self.rejects["row_number"].nunique()) if len(self.rejects) else 0

    def rejected_by_rule(self) -> dict[str, int]:
        """Rows rejected per (column: rule); a row failing two rules counts under both."""
        if not len(self.rejects):
            return {}
        keys = self.rejects["column"].astype(str) + ": " + self.rejects["rule"].astype(str)
        counts = self.rejects.assign(key=keys).groupby("key")["row_number"].nunique()
        return {k: int(v) for k, v in counts.sort_values(ascending=False).items()}

    def summary(self) -> dict:
        return {
            "rows_in": self.rows_in,
            "rows_valid": self.rows_valid,
            "rows_rejected": self.rows_rejected,
            "rejected_by_rule": self.rejected_by_rule(),
            "absent_columns": self.absent_columns,
            "ignored_columns": self.ignored_columns,
        }


class _Failures:
    """Collects (position, column, rule, value) before they become the rejects table."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def add(self, positions: np.ndarray, column: str, rule: str, values: Iterable) -> None:
        if len(positions):
            self.parts.append(pd.DataFrame({"pos": positions, "column": column, "rule": rule, "value": list(values)}))

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame({"pos": pd.Series(dtype="int64"), "column": [], "rule": [], "value": []})
        return pd.concat(self.parts, ignore_index=True)


def _short(value) -> str:
    text = repr(value) if isinstance(value, bytes) else str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + f"...({len(text)} chars)"


def _as_text(series: pd.Series, lower: bool) -> pd.Series:
    present = series.notna()
    text = series.astype(object).where(~present, series[present].astype(str).str.strip() if present.any() else series)
    if lower:
        text = text.where(~present, text[present].str.lower() if present.any() else text)
    text = text.where(text != "", None)
    return text.astype(object)


def _coerce_number(series: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        return series.astype(float)
    if pd.api.types.is_numeric_dtype(series):
        return series.astype("float64")
    try:
        return series.astype("float64")
    except (ValueError, TypeError):
        return pd.to_numeric(series, errors="coerce").astype("float64")


def _coerce(col: ContractColumn, series: pd.Series) -> pd.Series:
    if col.dtype in ("float", "int"):
        return _coerce_number(series)
    if col.dtype == "date":
        if pd.api.types.is_datetime64_any_dtype(series):
            return series.astype("datetime64[ns]")
        return pd.to_datetime(series, errors="coerce", format="ISO8601").astype("datetime64[ns]")
    return _as_text(series, lower=col.dtype == "category")


def coerce_frame(df: pd.DataFrame, columns: list[ContractColumn], failures: _Failures) -> pd.DataFrame:
    """Cast present contract columns to their types; a value that cannot be cast is a row failure."""
    out = {}
    for col in columns:
        if col.name not in df.columns:
            continue
        raw = df[col.name]
        typed = _coerce(col, raw)
        lost = (typed.isna() & raw.notna()).to_numpy()
        if lost.any():
            pos = np.flatnonzero(lost)
            failures.add(pos, col.name, f"type:{col.dtype}", raw.iloc[pos].map(_short))
        if col.role == "id":
            too_long = (typed.str.len() > MAX_ID_LENGTH).fillna(False).to_numpy()
            if too_long.any():
                pos = np.flatnonzero(too_long)
                failures.add(pos, col.name, f"max_length({MAX_ID_LENGTH})", typed.iloc[pos].map(_short))
                typed = typed.mask(too_long, "<too long>")
        out[col.name] = typed
    return pd.DataFrame(out, index=df.index)


def _schema_failures(typed: pd.DataFrame, columns: list[ContractColumn], origin: str, failures: _Failures) -> None:
    schema = build_schema(columns, list(typed.columns))
    try:
        schema.validate(typed, lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
        table_level = cases[cases["index"].isna()]
        if len(table_level):
            first = table_level.iloc[0]
            raise DataContractError(
                f"{origin}: column '{first['column']}' fails rule '{first['check']}' as a whole "
                f"(value {first['failure_case']!r})"
            ) from None
        for (column, check), group in cases.groupby(["column", "check"], sort=False):
            failures.add(group["index"].astype("int64").to_numpy(), str(column), str(check), group["failure_case"].map(_short))


def validate_frame(
    df: pd.DataFrame,
    contract: ContractConfig,
    origin: str,
    *,
    required: Iterable[str] = ("applicant_id",),
    rejection_budget: float | None = None,
    row_offset: int = 0,
    allow_all_rejected: bool = False,
) -> ValidationResult:
    """Validate one frame (a whole file or one chunk of a stream) against the contract.

    Row numbers in the rejects are 1-based data rows of the input (the header is not a
    row), offset by `row_offset` when validating a chunk of a larger stream.
    """
    if len(df) == 0:
        raise DataContractError(f"{origin}: no data rows (the input is empty or has only a header)")
    columns = contract_columns(contract)
    known = {c.name for c in columns}
    missing = [name for name in required if name not in df.columns]
    if missing:
        raise DataContractError(
            f"{origin}: required column(s) missing: {', '.join(missing)}; the input has columns: "
            f"{', '.join(map(str, df.columns[:40]))}{delimiter_hint(df)}"
        )
    df = df.reset_index(drop=True)
    failures = _Failures()
    typed = coerce_frame(df, columns, failures)
    _schema_failures(typed, columns, origin, failures)

    found = failures.frame()
    bad = np.zeros(len(df), dtype=bool)
    bad[found["pos"].to_numpy(dtype="int64")] = True
    ids = typed["applicant_id"] if "applicant_id" in typed else pd.Series([None] * len(df))
    rejects = pd.DataFrame(
        {
            "row_number": (found["pos"].to_numpy(dtype="int64") + 1 + row_offset),
            "applicant_id": ids.iloc[found["pos"].to_numpy(dtype="int64")].astype(object).to_numpy(),
            "column": found["column"].astype(str).to_numpy(),
            "rule": found["rule"].astype(str).to_numpy(),
            "value": found["value"].astype(str).to_numpy(),
        },
        columns=REJECT_COLUMNS,
    ).sort_values(["row_number", "column"], kind="stable", ignore_index=True)

    valid = typed.loc[~bad].reset_index(drop=True)
    valid.insert(0, "row_number", np.flatnonzero(~bad) + 1 + row_offset)
    result = ValidationResult(
        valid=valid,
        rejects=rejects,
        rows_in=len(df),
        absent_columns=[c.name for c in columns if c.name not in df.columns],
        ignored_columns=[c for c in map(str, df.columns) if c not in known],
    )
    if result.rows_valid == 0 and not allow_all_rejected:
        top = next(iter(result.rejected_by_rule().items()), ("?", 0))
        raise DataContractError(
            f"{origin}: every one of {len(df)} rows was rejected; most common failure: {top[0]} ({top[1]} rows)"
        )
    if rejection_budget is not None and result.rows_rejected > rejection_budget * result.rows_in:
        raise RejectionBudgetExceeded(
            f"{origin}: {result.rows_rejected} of {result.rows_in} rows rejected "
            f"({result.rows_rejected / result.rows_in:.1%}), above the rejection budget of {rejection_budget:.1%}; "
            f"top failures: {dict(list(result.rejected_by_rule().items())[:3])}",
            result,
        )
    return result
