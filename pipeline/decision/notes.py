"""Reason codes and texts per row, filled from str.format templates without a Python string per row.

Rows share few distinct figures (grid amounts, terms, rates), so each template field is formatted once
per distinct value and Arrow joins the pieces; the result equals `template.format(...)` row by row. The
spec "money" prints whole amounts without decimals and others to the cent, with thousands separators.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.decision import pricing
from pipeline.decision.textcols import TEXT_TYPE, strings


def _money(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"


@dataclass(frozen=True)
class Choice:
    """A per-row pick among a few values: formatted once per value, without hashing a Python object per row."""

    index: np.ndarray
    labels: tuple

    def __getitem__(self, rows: np.ndarray) -> Choice:
        return Choice(self.index[rows], self.labels)


def _distinct(values: np.ndarray | Choice) -> tuple[list, np.ndarray]:
    """The distinct values as `tolist` gives them, and each row's index into them (numbers by bit pattern:
    0.0 and -0.0 print differently)."""
    if isinstance(values, Choice):
        return list(values.labels), values.index
    if values.dtype == object:
        index, uniques = pd.factorize(values, use_na_sentinel=False)
        return list(uniques), index
    first, index = pricing.distinct_rows(values)
    return values[first].tolist(), index


def _printed_alike(values: np.ndarray, decimals: int) -> np.ndarray:
    """Numbers that print as `values` do with `decimals` fixed decimals, rounded to them so that rows share them.

    Exact: below 1e9 x * 10^d is within 1e-7 of the true product, so a product more than 1e-6 from a tie
    rounds to the integer Python's correctly rounded formatting gives, and that integer / 10^d prints as it.
    Near-ties (Python rounds the exact binary value half to even), large and non-finite values stay as given.
    """
    scale = 10.0**decimals
    with np.errstate(invalid="ignore", over="ignore"):
        y = values * scale
        safe = (np.abs(y) < 1e9) & (np.abs(y - np.floor(y) - 0.5) > 1e-6)
        return np.where(safe, np.copysign(np.floor(y + 0.5) / scale, values), values)


_FIXED = re.compile(r",?\.(\d)f")  # fixed-point specs `_printed_alike` serves: .3f, ,.2f


def formatted(values: np.ndarray | Choice, spec: str, conversion: str | None) -> pa.Array:
    """One template field per row; each distinct value is formatted once (few distinct: grids, terms, rates)."""
    fixed = _FIXED.fullmatch(spec)
    if fixed and not conversion and isinstance(values, np.ndarray) and values.dtype.kind == "f":
        values = _printed_alike(values, int(fixed.group(1)))
    uniques, index = _distinct(values)
    field = "{0" + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
    texts = [_money(v) if spec == "money" else field.format(v) for v in uniques]
    return strings(texts).take(pa.array(index))


def _fill(template: str, rows: np.ndarray, values: dict[str, Any]) -> pa.Array:
    """`template` for `rows`, as str.format would give it row by row (ndarray values are per row)."""
    scalars = {k: v for k, v in values.items() if not isinstance(v, np.ndarray | Choice)}
    parts: list[Any] = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        parts.append(literal)
        if name is None:
            continue
        value = values.get(name)
        if isinstance(value, np.ndarray | Choice):
            parts.append(formatted(value[rows], spec or "", conversion))
        elif spec == "money":
            parts.append(_money(value))  # type: ignore[arg-type]
        else:
            field = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            parts.append(field.format(**scalars))
    return _concat(parts, len(rows))


def _concat(parts: list[Any], n: int) -> pa.Array:
    """Strings and Arrow string arrays of n rows, concatenated row by row."""
    merged: list[Any] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif not (isinstance(part, str) and part == ""):
            merged.append(part)
    if not any(isinstance(p, pa.Array) for p in merged):
        return strings(["".join(merged)]).take(pa.array(np.zeros(n, dtype=np.int64)))
    if len(merged) == 1:
        return merged[0]
    args = [pa.scalar(p, TEXT_TYPE) if isinstance(p, str) else p for p in merged]
    return pc.binary_join_element_wise(*args, pa.scalar("", TEXT_TYPE))


class Notes:
    """Reason codes and texts per row, added rule by rule; a text is formatted only where its rule applies.

    Templates are str.format strings over per-row arrays and scalars; the spec "money" prints whole amounts
    without decimals and others to the cent, with thousands separators. Why not one str.format per row: rows
    share few distinct figures, so each field is formatted once per distinct value and Arrow joins the pieces.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.noted = np.zeros(n, dtype=bool)  # rows with at least one note
        self._rows: list[np.ndarray] = []
        self._codes: list[str] = []
        self._texts: list[pa.Array] = []

    def add(self, mask: np.ndarray, code: str, template: str, **values: object) -> None:
        rows = np.flatnonzero(mask)
        if not len(rows):
            return
        self.noted[rows] = True
        self._rows.append(rows)
        self._codes.append(code)
        self._texts.append(_fill(template, rows, values))

    def joined(self) -> tuple[pa.Array, pa.Array]:
        """Per row, its codes joined by ";" and its texts by "; ", in the order they were added ("" for none)."""
        rows = np.concatenate([np.zeros(0, dtype=np.intp), *self._rows])
        rule = np.repeat(np.arange(len(self._rows)), [len(r) for r in self._rows])
        order = pa.array(np.argsort(rows, kind="stable"))
        offsets = pa.array(np.r_[0, np.cumsum(np.bincount(rows, minlength=self.n))].astype(np.int64))
        codes = strings(self._codes).take(pa.array(rule)).take(order)
        texts = pa.concat_arrays([strings([]), *self._texts]).take(order)
        return (
            pc.binary_join(pa.LargeListArray.from_arrays(offsets, codes), pa.scalar(";", TEXT_TYPE)),
            pc.binary_join(pa.LargeListArray.from_arrays(offsets, texts), pa.scalar("; ", TEXT_TYPE)),
        )
