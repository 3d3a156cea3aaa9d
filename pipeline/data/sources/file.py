"""The generic source: a CSV or Parquet file mapped onto the contract by YAML alone.

Each contract column comes from one source column (copied, special codes made missing,
recoded from codes to values, parsed from text such as "13.5%", scaled to the contract's unit,
or parsed as a date), from an expression over several source columns, or is a constant. Mapping is
deliberately forgiving: a value it cannot convert (text where a number is expected, a
code the recode table does not list) is passed through untouched, so that validation
quarantines that row with the offending value instead of the mapping failing the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import ColumnMap, FileSource
from pipeline.data.sources.expr import parse as parse_expression
from pipeline.data.sources.parsers import apply_na_values, parse_numbers
from pipeline.errors import DataContractError


def _text_key(value: Any) -> str:
    """Normalise a code so that 1, 1.0, "1" and " 1 " recode alike, and "Own" like "own"."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip().lower()
    if text.endswith(".0") and text[:-2].lstrip("-").isdigit():
        return text[:-2]
    return text


def recode(series: pd.Series, mapping: dict[Any, Any]) -> pd.Series:
    """Replace codes by their values (case-insensitive); codes not in the mapping are kept as they are."""
    table = {_text_key(k): v for k, v in mapping.items()}
    present = series.notna()
    keys = series[present].map(_text_key)
    hit = keys.isin(list(table))
    out = series.astype(object).copy()
    out.loc[keys.index[hit]] = keys[hit].map(table).to_numpy()
    return out


def scale(series: pd.Series, factor: float) -> pd.Series:
    """Multiply numbers by factor; unparseable values stay as they are for validation to report."""
    numbers = pd.to_numeric(series, errors="coerce")
    unparsed = numbers.isna() & series.notna()
    if not unparsed.any():
        return numbers.astype(float) * factor
    out = (numbers * factor).astype(object)
    out[unparsed] = series[unparsed]
    return out


def parse_dates(series: pd.Series, fmt: str) -> pd.Series:
    dates = pd.to_datetime(series, format=fmt, errors="coerce", utc="%z" in fmt)  # offsets -> UTC, never a mix
    unparsed = dates.isna() & series.notna()
    if not unparsed.any():
        return dates
    out = dates.astype(object)
    out[unparsed] = series[unparsed]
    return out


def _prepare(series: pd.Series, spec: ColumnMap, target: str) -> pd.Series:
    """Special codes to missing, then codes to values, then text to numbers."""
    if spec.na_values:
        series = apply_na_values(series, spec.na_values)
    if spec.recode:
        series = recode(series, spec.recode)
    if spec.parse:
        series = parse_numbers(series, spec.parse, spec.decimal, column=target)
    return series


def map_column(raw: pd.DataFrame, spec: ColumnMap, target: str = "") -> pd.Series | Any:
    """One contract column: prepared source column(s), then scale, then dates."""
    if spec.constant is not None:
        return spec.constant
    if spec.expr is not None:
        expression = parse_expression(spec.expr, target)
        inputs = pd.DataFrame({c: _prepare(raw[c], spec, target) for c in expression.columns}, index=raw.index)
        series = expression.evaluate(inputs, unparsed="keep")
    else:
        series = _prepare(raw[spec.source], spec, target)
    if spec.scale != 1.0:
        series = scale(series, spec.scale)
    if spec.parse_date:
        series = parse_dates(series, spec.parse_date)
    return series


def source_columns(spec: ColumnMap) -> list[str]:
    """The source columns a mapping reads."""
    if spec.expr is not None:
        return list(parse_expression(spec.expr).columns)
    return [spec.source] if spec.source is not None else []


def used_columns(source: FileSource) -> list[str]:
    """Every source column the config reads; the rest of the file is listed as ignored at ingest."""
    used = [c for spec in source.columns.values() for c in source_columns(spec)]
    return used + ([source.id_column] if source.id_column else []) + list(source.passthrough)


def apply_mapping(
    raw: pd.DataFrame, source: FileSource, origin: str, optional: Iterable[str] = (), row_offset: int = 0
) -> pd.DataFrame:
    """Turn raw source columns into contract columns.

    `optional` names contract columns whose source column may be absent (the targets,
    when scoring); any other absent source column stops the stage, naming the file.
    """
    optional = set(optional)
    needed = [(target, column) for target, spec in source.columns.items() for column in source_columns(spec)]
    if source.id_column:
        needed.append(("applicant_id", source.id_column))
    needed += [(name, name) for name in source.passthrough]
    missing = [(t, s) for t, s in needed if s not in raw.columns and t not in optional]
    if missing:
        listed = ", ".join(f"'{s}' (for contract column '{t}')" for t, s in missing)
        raise DataContractError(
            f"{origin}: required source column(s) missing: {listed}; the file has columns: "
            f"{', '.join(map(str, raw.columns[:40]))}{delimiter_hint(raw)}"
        )
    if not source.columns:  # already in contract columns: keep them all, naming the id column
        return raw.rename(columns={source.id_column: "applicant_id"}) if source.id_column else raw
    out = pd.DataFrame(index=raw.index)
    if source.id_column:
        out["applicant_id"] = raw[source.id_column]
    else:
        out["applicant_id"] = (np.arange(len(raw)) + 1 + row_offset).astype(str)
    for target, spec in source.columns.items():
        if any(c not in raw.columns for c in source_columns(spec)):
            continue  # an optional column (a target, when scoring) that this file lacks
        out[target] = map_column(raw, spec, target)
    for name in source.passthrough:
        out[name] = raw[name]
    return out


def delimiter_hint(raw: pd.DataFrame) -> str:
    if len(raw.columns) == 1:
        header = str(raw.columns[0])
        for sep in (";", "\t", "|"):
            if sep in header:
                return f" (one column whose name contains {sep!r}: is the delimiter right?)"
    return ""
