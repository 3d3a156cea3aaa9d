"""The fast validation engine (`validate_frame(engine="fast")`, the default): the contract as vectorised checks.

`validate_frame` runs on every chunk of a batch (100k rows in the scoring job). The pandera
schema (`contract.build_schema`) stays the contract, the docs and the test oracle
(`engine="pandera"`), but per chunk it costs more than the checks themselves: per column it
copies the frame, wraps every check in a Series and reshapes the failure cases. This module
compiles the same `ContractColumn`s into one `Plan` per present column and runs it on the
coerced frame with plain numpy/Arrow operations, giving the failures the schema gives, row
for row and under the same rule names:

- `not_null`: the value is missing (NaN, None, NaT); non-nullable columns only.
- `unique` (the id): the value is not missing and occurs more than once in the frame, every
  such row (`unique=True, report_duplicates="all"`; pandera drops null failure cases too).
- `finite`: the number is +inf or -inf.
- `range(a..b)`, `min(a)`, `greater_than(a)`, `max(b)` (named by `contract.range_rule`):
  the number is finite and outside the range.
- `integer`: the number is finite and not whole.
- `allowed_values`: the value is not missing and not one of the allowed spellings.

A plan runs only on the dtypes coercion produces (float64, datetime64[ns], object); any other
(`supports` is False) goes to pandera, which then reports what it would have reported.

The fast engine also coerces with Arrow where the input allows it, each with the reference
path as the fallback, so the result is the same and only the cost differs:
- text columns that arrive as text (`coerce_text`): strip, blanks to missing, the `encoding`
  and `max_length(64)` rules and the canonical category spelling as whole-column kernels (the
  ones pandas' Arrow string methods call), instead of a Python dict lookup per cell;
- dates written as plain ISO 8601 without an offset (`parse_plain_dates`): Arrow's parser
  reads a subset of what pandas reads, and the same instants; anything else (offsets, other
  forms, impossible dates) goes to pandas;
- numbers (`validate._coerce_number(fast=True)`): cast as written first, stripping only when
  that fails.

Seconds per 1M rows of both engines: docs/operations.md (batch scoring). On clean Parquet
input what is left is mostly making the text columns Python strings (the valid frame keeps
them as object, as the pandera path does), the id's duplicate check and pandas' per-column
overhead; on CSV text, parsing numbers and dates. tests/test_fastcheck.py holds the engines
together: the same rejects and valid frame on generated frames with faults of every rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.data.contract import (
    MAX_ID_LENGTH,
    RULE_ALLOWED,
    RULE_ENCODING,
    RULE_FINITE,
    RULE_INTEGER,
    RULE_MAX_LENGTH,
    RULE_NOT_NULL,
    RULE_UNIQUE,
    ContractColumn,
    range_rule,
)

Kind = Literal["number", "date", "text"]
_DTYPES: dict[Kind, str] = {"number": "float64", "date": "datetime64[ns]", "text": "object"}


@dataclass(frozen=True)
class Plan:
    """One column's rules, as the schema would check them (see the table in the module docstring)."""

    column: str
    kind: Kind
    not_null: bool
    unique: bool
    range_rule: str | None = None
    lo: float = -np.inf
    hi: float = np.inf
    lo_exclusive: bool = False
    integer: bool = False
    allowed: tuple[str, ...] | None = None

    @property
    def rules(self) -> list[str]:
        """The rules this plan enforces, by name (the schema's checks and constraints for the same column)."""
        numeric = self.kind == "number"
        named = [
            (self.not_null, RULE_NOT_NULL),
            (self.unique, RULE_UNIQUE),
            (numeric, RULE_FINITE),
            (numeric and self.range_rule is not None, self.range_rule),
            (self.integer, RULE_INTEGER),
            (self.allowed is not None, RULE_ALLOWED),
        ]
        return [str(rule) for on, rule in named if on]

    def failures(self, series: pd.Series, arrow: pa.Array | None = None) -> Iterator[tuple[np.ndarray, str]]:
        """(mask of failing rows, rule) for each rule; `arrow` is the text column as Arrow (same values), if known."""
        values = series.to_numpy()
        if self.kind == "number":
            missing = np.isnan(values)
        elif arrow is not None:
            missing = _flags(pc.is_null(arrow))
        else:
            missing = pd.isna(values)
        if self.not_null:
            yield missing, RULE_NOT_NULL
        if self.unique:
            if arrow is not None and len(pc.unique(arrow)) == len(arrow):  # all distinct: the common case
                yield np.zeros(len(values), dtype=bool), RULE_UNIQUE
            else:
                yield series.duplicated(keep=False).to_numpy() & ~missing, RULE_UNIQUE
        if self.kind == "number":
            finite = np.isfinite(values)
            yield np.isinf(values), RULE_FINITE
            if self.range_rule is not None:
                with np.errstate(invalid="ignore"):
                    above = values > self.lo if self.lo_exclusive else values >= self.lo
                    yield finite & ~(above & (values <= self.hi)), self.range_rule
            if self.integer:
                with np.errstate(invalid="ignore"):
                    yield finite & (values != np.floor(values)), RULE_INTEGER
        if self.allowed is not None:
            if arrow is not None:
                known = _flags(pc.is_in(arrow, value_set=pa.array(self.allowed, pa.string())))
            else:
                known = series.isin(self.allowed).to_numpy()
            yield ~missing & ~known, RULE_ALLOWED


def _kind(col: ContractColumn) -> Kind:
    if col.dtype in ("float", "int"):
        return "number"
    return "date" if col.dtype == "date" else "text"


def compile_plan(columns: list[ContractColumn], present: list[str]) -> list[Plan]:
    """One plan per contract column present in the frame, as `build_schema` builds one pandera column."""
    plans = []
    for col in columns:
        if col.name not in present:
            continue
        kind = _kind(col)
        numeric = kind == "number"
        plans.append(
            Plan(
                column=col.name,
                kind=kind,
                not_null=not col.nullable,
                unique=col.role == "id",
                range_rule=range_rule(col) if numeric else None,
                lo=-np.inf if col.min is None else float(col.min),
                hi=np.inf if col.max is None else float(col.max),
                lo_exclusive=col.min_exclusive,
                integer=numeric and col.dtype == "int",
                allowed=col.allowed,
            )
        )
    return plans


def supports(typed: pd.DataFrame, plans: list[Plan]) -> bool:
    """True when every planned column has the dtype coercion gives it (otherwise pandera decides)."""
    if not typed.columns.is_unique:
        return False
    return all(str(typed[p.column].dtype) == _DTYPES[p.kind] for p in plans if p.column in typed.columns)


def run_plan(
    typed: pd.DataFrame, plans: list[Plan], arrow: dict[str, pa.Array] | None = None
) -> Iterator[tuple[np.ndarray, str, str]]:
    """(positions of failing rows, column, rule) for every rule that fails somewhere.

    `arrow` holds text columns as `coerce_text` left them in Arrow (the same values as the
    object columns of `typed`), so their checks run as Arrow kernels.
    """
    arrow = arrow or {}
    for plan in plans:
        for mask, rule in plan.failures(typed[plan.column], arrow.get(plan.column)):
            positions = np.flatnonzero(mask)
            if len(positions):
                yield positions, plan.column, rule


# ------------------------------------------------------------------ text coercion


@dataclass
class Text:
    """A text column coerced: object values (str or None), the same as Arrow, and the rows failing text rules."""

    values: pd.Series
    arrow: pa.Array
    missing: np.ndarray
    failures: list[tuple[np.ndarray, str]]


def _flags(result: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(result, False).to_numpy(zero_copy_only=False), dtype=bool)


def _canonical(text: pa.Array, allowed: tuple[str, ...]) -> tuple[pa.Array, np.ndarray]:
    """Categories matched ignoring case take the contract's spelling (as `validate._canonical`), Arrow and object.

    The object values of matched cells are taken from the few spellings instead of being
    made one Python string per cell; unmatched cells keep their text.
    """
    lookup = {a.strip().lower(): a for a in allowed}  # as validate._canonical: the last spelling wins
    spellings = list(lookup.values())
    found = pc.index_in(pc.utf8_lower(text), value_set=pa.array(list(lookup), pa.string()))
    canonical = pc.coalesce(pc.take(pa.array(spellings, pa.string()), found), text)
    index = np.asarray(pc.fill_null(found, len(spellings)).to_numpy(zero_copy_only=False), dtype=np.intp)
    values = np.array([*spellings, None], dtype=object)[index]
    kept = np.flatnonzero((index == len(spellings)) & ~_flags(pc.is_null(text)))
    values[kept] = text.take(pa.array(kept)).to_numpy(zero_copy_only=False)
    return canonical, values


def _stripped(raw: pd.Series) -> pa.Array | None:
    """Text cells stripped, blanks as null (as `validate._as_text`); None when the column is not text already."""
    if pd.api.types.infer_dtype(raw, skipna=True) not in ("string", "empty"):
        return None
    try:
        arr = pa.array(raw, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    text = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def coerce_text(raw: pd.Series, col: ContractColumn) -> Text | None:
    """Strip, blank to missing, flag bad bytes (and long ids), take the canonical category spelling.

    None when the column is not text already (numbers read as ids, bytes, mixed objects):
    the caller then uses the reference path, which renders such values as text first.
    """
    text = _stripped(raw)
    if text is None:
        return None
    failures = [(_flags(pc.match_substring(text, "\ufffd")), RULE_ENCODING)]
    if col.role == "id":
        failures.append((_flags(pc.greater(pc.utf8_length(text), MAX_ID_LENGTH)), RULE_MAX_LENGTH))
    if col.allowed is None:
        values = text.to_numpy(zero_copy_only=False)
    else:
        text, values = _canonical(text, col.allowed)
    missing = _flags(pc.is_null(text))
    series = pd.Series(values, index=raw.index, dtype=object)
    return Text(series, text, missing, [(np.flatnonzero(mask), rule) for mask, rule in failures])


# Plain ISO dates and times without an offset, the text Arrow's parser and pandas' ISO 8601 parser
# read alike (Arrow accepts fewer: 9 fraction digits at most, no `Z`, no offset, two-digit fields).
_PLAIN_ISO = r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}(?::\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?)?$"


def parse_plain_dates(raw: pd.Series) -> pd.Series | None:
    """Dates as datetime64[ns] when every text cell is a plain ISO date Arrow can read; else None.

    None sends the column to the reference parser (`validate._parse_dates`, pandas), which also
    handles offsets, other ISO forms and cells that are not dates; where Arrow reads the whole
    column, pandas reads the same instants.
    """
    text = _stripped(raw)
    if text is None or pc.any(pc.invert(pc.match_substring_regex(text, _PLAIN_ISO))).as_py():
        return None
    try:
        dates = text.cast(pa.timestamp("ns"))
    except pa.ArrowInvalid:  # e.g. 2024-02-30: the reference parser makes it missing, to be reported
        return None
    return pd.Series(dates.to_numpy(zero_copy_only=False), index=raw.index, dtype="datetime64[ns]")
