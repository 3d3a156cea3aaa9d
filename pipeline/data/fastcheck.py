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
  ones pandas' Arrow string methods call), instead of a Python dict lookup per cell; where a
  whole-column look at the bytes shows a kernel cannot change anything (no cell starts or ends
  with a byte that may be whitespace, no replacement character, no cell longer in bytes than
  the limit) it is skipped;
- dates written as plain ISO 8601 without an offset (`parse_plain_dates`): Arrow's parser
  reads a subset of what pandas reads, and the same instants; anything else (offsets, other
  forms, impossible dates) goes to pandas;
- numbers (`validate._coerce_number(fast=True)`): cast as written first, stripping only when
  that fails; a column's smallest and largest number settle `finite` and its range when no
  cell fails them.

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
        missing = np.zeros(0, dtype=bool)
        if self.not_null or self.unique or self.allowed is not None:
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
            yield from self._number_failures(values)
        if self.allowed is not None:
            if arrow is not None:
                known = _flags(pc.is_in(arrow, value_set=pa.array(self.allowed, pa.string())))
            else:
                known = series.isin(self.allowed).to_numpy()
            yield ~missing & ~known, RULE_ALLOWED

    def _number_failures(self, values: np.ndarray) -> Iterator[tuple[np.ndarray, str]]:
        """`finite`, the range and `integer` on float64 values (NaN is missing, never a failure here).

        The column's smallest and largest number (NaN ignored) settle `finite` and the range for
        the common clean column in two reductions; only a column with an inf or an out-of-range
        number is checked cell by cell. `integer` is `values - floor(values) > 0`, which is
        False for NaN and +-inf (inf - inf is NaN) and, for finite values, exactly `values != floor`.
        """
        low = float(np.fmin.reduce(values, initial=np.inf))  # NaN-free: +inf for an empty or all-NaN column
        high = float(np.fmax.reduce(values, initial=-np.inf))
        infinite = low == -np.inf or high == np.inf
        within = (low > self.lo if self.lo_exclusive else low >= self.lo) and high <= self.hi
        clean = np.zeros(len(values), dtype=bool)
        if not infinite and within:
            yield clean, RULE_FINITE
            if self.range_rule is not None:
                yield clean, self.range_rule
        else:
            finite = np.isfinite(values)
            yield np.isinf(values), RULE_FINITE
            if self.range_rule is not None:
                with np.errstate(invalid="ignore"):
                    above = values > self.lo if self.lo_exclusive else values >= self.lo
                    yield finite & ~(above & (values <= self.hi)), self.range_rule
        if self.integer:
            with np.errstate(invalid="ignore"):
                yield values - np.floor(values) > 0, RULE_INTEGER


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
    dtypes = typed.dtypes
    return all(str(dtypes[p.column]) == _DTYPES[p.kind] for p in plans if p.column in typed.columns)


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
    canonical = pc.take(pa.array(spellings, pa.string()), found)
    index = np.asarray(pc.fill_null(found, len(spellings)).to_numpy(zero_copy_only=False), dtype=np.intp)
    values = np.array([*spellings, None], dtype=object)[index]
    if found.null_count == text.null_count:  # every cell matched (or is missing): the common case
        return canonical, values
    kept = np.flatnonzero((index == len(spellings)) & ~_flags(pc.is_null(text)))
    values[kept] = text.take(pa.array(kept)).to_numpy(zero_copy_only=False)
    return pc.coalesce(canonical, text), values


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
    offsets, data = string_layout(arr)
    text = arr if _trimmed(offsets, data) else pc.utf8_trim_whitespace(arr)
    if text is not arr:
        offsets, data = string_layout(text)
    blank = np.diff(offsets) == 0
    if text.null_count and blank.any():
        blank &= ~_flags(pc.is_null(text))
    if not blank.any():
        return text
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def string_layout(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A string (or large_string) array's offsets (one per cell and one past the end; int32, or int64 for
    large_string) and its data bytes, as numpy views of its buffers: whole-column byte work without a copy."""
    width = np.int64 if pa.types.is_large_string(text.type) else np.int32
    _, offsets, data = text.buffers()
    if offsets is None:  # an empty array may come without buffers
        return np.zeros(len(text) + 1, dtype=width), np.empty(0, np.uint8)
    ends = np.frombuffer(offsets, dtype=width)[text.offset : text.offset + len(text) + 1]
    return ends, (np.empty(0, np.uint8) if data is None else np.frombuffer(data, dtype=np.uint8))


def _trimmed(offsets: np.ndarray, data: np.ndarray) -> bool:
    """True when no cell starts or ends with a byte that could be (part of) whitespace: stripping changes nothing.

    Whole-column byte checks (microseconds) let the common clean column skip the per-cell
    Unicode trim; printable ASCII other than space is never whitespace, anything else is
    left to the kernel. Null cells are looked at too, which can only send a column to it.
    """
    starts, ends = offsets[:-1], offsets[1:]
    filled = ends > starts
    first, last = data[starts[filled]], data[ends[filled] - 1]
    return bool(((first > 0x20) & (first < 0x7F)).all() and ((last > 0x20) & (last < 0x7F)).all())


def _contains(text: pa.Array, needle: str) -> np.ndarray:
    """Rows whose text contains `needle`; the per-cell kernel runs only when its bytes occur in the column at all."""
    offsets, data = string_layout(text)
    if data[offsets[0] : offsets[-1]].tobytes().find(needle.encode()) < 0:
        return np.zeros(len(text), dtype=bool)
    return _flags(pc.match_substring(text, needle))


def _longer(text: pa.Array, limit: int) -> np.ndarray:
    """Rows with more than `limit` characters; a cell has no more characters than bytes: short bytes need no count."""
    offsets, _ = string_layout(text)
    if not len(text) or int(np.diff(offsets).max()) <= limit:
        return np.zeros(len(text), dtype=bool)
    return _flags(pc.greater(pc.utf8_length(text), limit))


def coerce_text(raw: pd.Series, col: ContractColumn) -> Text | None:
    """Strip, blank to missing, flag bad bytes (and long ids), take the canonical category spelling.

    None when the column is not text already (numbers read as ids, bytes, mixed objects):
    the caller then uses the reference path, which renders such values as text first.
    """
    text = _stripped(raw)
    if text is None:
        return None
    failures = [(_contains(text, "\ufffd"), RULE_ENCODING)]
    if col.role == "id":
        failures.append((_longer(text, MAX_ID_LENGTH), RULE_MAX_LENGTH))
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
