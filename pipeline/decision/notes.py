"""Reason codes and texts per row, filled from str.format templates without a Python string per row.

Rows share few distinct figures (grid amounts, terms, rates), so each template field is formatted once
per distinct value, and a row's text is a few ids of such distinct texts until `Notes.joined` copies its
bytes once into the Arrow strings; the result equals `template.format(...)` row by row. The spec "money"
prints whole amounts without decimals and others to the cent, with thousands separators.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.data.fastcheck import string_layout
from pipeline.decision import pricing
from pipeline.decision.forest import _jit
from pipeline.decision.textcols import strings


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
    if values.dtype == np.float64:  # the usual case: one hash pass over the bits
        index, bits = pd.factorize(values.view(np.int64))
        return bits.view(np.float64).tolist(), index
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


def _distinct_texts(values: np.ndarray | Choice, spec: str, conversion: str | None) -> tuple[list[str], np.ndarray]:
    """A template field's distinct texts and each row's index into them; each distinct value is formatted once."""
    fixed = _FIXED.fullmatch(spec)
    if fixed and not conversion and isinstance(values, np.ndarray) and values.dtype.kind == "f":
        values = _printed_alike(values, int(fixed.group(1)))
    uniques, index = _distinct(values)
    if spec == "money":
        return [_money(v) for v in uniques], index
    field = "{0" + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
    return [field.format(v) for v in uniques], index


def formatted(values: np.ndarray | Choice, spec: str, conversion: str | None) -> pa.Array:
    """One template field per row; each distinct value is formatted once (few distinct: grids, terms, rates)."""
    texts, index = _distinct_texts(values, spec, conversion)
    return strings(texts).take(pa.array(index))


Field = tuple[list[str], np.ndarray]  # distinct texts, and each row's index into them


def _fields(template: str, rows: np.ndarray, values: dict[str, Any]) -> str | list[Field]:
    """`template` for `rows` as str.format fills it row by row (ndarray and Choice values are per row): the text
    when no field is per row, else the per-row fields with the literal text around them folded into their distinct
    texts, so that a row is a few pieces (one per field) and each literal is joined once per distinct text."""
    scalars = {k: v for k, v in values.items() if not isinstance(v, np.ndarray | Choice)}
    fields: list[Field] = []
    text = ""  # the literal text since the last per-row field
    for literal, name, spec, conversion in string.Formatter().parse(template):
        text += literal
        if name is None:
            continue
        value = values.get(name)
        if isinstance(value, np.ndarray | Choice):
            texts, index = _distinct_texts(value[rows], spec or "", conversion)
            fields.append(([text + t for t in texts] if text else texts, index))
            text = ""
        elif spec == "money":
            text += _money(value)  # type: ignore[arg-type]
        else:
            field = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            text += field.format(**scalars)
    if not fields:
        return text
    if text:
        texts, index = fields[-1]
        fields[-1] = ([t + text for t in texts], index)
    return fields


@_jit()
def _put(data, pos, pool, starts, piece):  # pragma: no cover - compiled
    """Copy piece `piece`, the bytes pool[starts[piece]:starts[piece + 1]], to data[pos:]; the position after it."""
    start, size = starts[piece], starts[piece + 1] - starts[piece]
    for b in range(size):
        data[pos + b] = pool[start + b]
    return pos + size


@_jit()
def _join_rows(n, rows, notes, pieces, starts, pool, sep):  # pragma: no cover - compiled
    """Arrow string offsets and UTF-8 data: per row, the pieces of its notes in note order, apart by piece `sep`.

    Note k covers the rows rows[first:first + count] and gives its i-th row the pieces pieces[at:at + width],
    at = start + i * stride, with (first, count, start, stride, width) = notes[k]; piece p is the bytes
    pool[starts[p]:starts[p + 1]]. One pass sizes the rows, one copies the bytes. Byte positions are unsigned
    (`starts` is uint64): with signed ones numba checks every index for wraparound, and the copy took twice as long.
    """
    size = np.zeros(n + 1, np.uint64)
    seen = np.zeros(n, np.bool_)
    later = np.zeros(len(rows), np.bool_)  # an entry after the first of its row: a separator before it
    for k in range(len(notes)):
        first, count, start, stride, width = notes[k, 0], notes[k, 1], notes[k, 2], notes[k, 3], notes[k, 4]
        for i in range(count):
            r = rows[first + i]
            later[first + i] = seen[r]
            seen[r] = True
            total = starts[sep + 1] - starts[sep] if later[first + i] else np.uint64(0)
            for j in range(start + i * stride, start + i * stride + width):
                total += starts[pieces[j] + 1] - starts[pieces[j]]
            size[r + 1] += total
    offsets = np.cumsum(size)
    data = np.empty(offsets[n], np.uint8)
    at = offsets[:n].copy()
    for k in range(len(notes)):
        first, count, start, stride, width = notes[k, 0], notes[k, 1], notes[k, 2], notes[k, 3], notes[k, 4]
        for i in range(count):
            r = rows[first + i]
            pos = _put(data, at[r], pool, starts, sep) if later[first + i] else at[r]
            for j in range(start + i * stride, start + i * stride + width):
                pos = _put(data, pos, pool, starts, pieces[j])
            at[r] = pos
    return offsets.view(np.int64), data


class Notes:
    """Reason codes and texts per row, added rule by rule; a text is formatted only where its rule applies.

    Templates are str.format strings over per-row arrays and scalars; the spec "money" prints whole amounts
    without decimals and others to the cent, with thousands separators. Why not one str.format per row: rows
    share few distinct figures, so each field is formatted once per distinct value. A note keeps, per row, ids
    of distinct texts (its pieces), and `joined` copies each row's bytes once, straight into the Arrow strings.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.noted = np.zeros(n, dtype=bool)  # rows with at least one note
        self._notes: list[tuple[np.ndarray, int, np.ndarray]] = []  # rows, code piece, text pieces (a row per row)
        self._pool: list[str] = []  # the text of each piece
        self._literals: dict[str, int] = {}  # the piece of each code and constant text

    def _literal(self, text: str) -> int:
        if text not in self._literals:
            self._literals[text] = len(self._pool)
            self._pool.append(text)
        return self._literals[text]

    def add(self, mask: np.ndarray, code: str, template: str, **values: object) -> None:
        rows = np.flatnonzero(mask)
        if not len(rows):
            return
        self.noted[rows] = True
        fields = _fields(template, rows, values)
        if isinstance(fields, str):
            pieces = np.array([[self._literal(fields)]], dtype=np.int64)  # one row: the same on every row
        else:
            pieces = np.empty((len(rows), len(fields)), dtype=np.int64)
            for j, (texts, index) in enumerate(fields):
                pieces[:, j] = index + len(self._pool)
                self._pool.extend(texts)
        self._notes.append((rows, self._literal(code), pieces))

    def joined(self) -> tuple[pa.Array, pa.Array]:
        """Per row, its codes joined by ";" and its texts by "; ", in the order they were added ("" for none)."""
        semicolon, separator = self._literal(";"), self._literal("; ")
        pool = pa.array(self._pool, type=pa.large_string())  # UTF-8: byte lengths are Arrow's
        starts, pool_bytes = string_layout(pool)
        starts = starts.view(np.uint64)
        rows = np.concatenate([np.zeros(0, dtype=np.int64), *(r for r, _, _ in self._notes)], dtype=np.int64)
        counts = np.array([len(r) for r, _, _ in self._notes], dtype=np.int64)
        first = np.cumsum(counts) - counts
        sizes = np.array([p.size for _, _, p in self._notes], dtype=np.int64)
        widths = np.array([p.shape[1] for _, _, p in self._notes], dtype=np.int64)
        strides = np.array([p.shape[1] if len(p) > 1 else 0 for _, _, p in self._notes], dtype=np.int64)
        ones = np.ones(len(counts), dtype=np.int64)
        codes = np.array([c for _, c, _ in self._notes], dtype=np.int64)
        texts = np.concatenate([np.zeros(0, dtype=np.int64), *(p.ravel() for _, _, p in self._notes)])
        # per note (first, count, start, stride, width), as _join_rows reads them
        code_notes = np.column_stack([first, counts, np.arange(len(counts)), np.zeros_like(ones), ones])
        text_notes = np.column_stack([first, counts, np.cumsum(sizes) - sizes, strides, widths])
        return (
            _arrow_text(*_join_rows(self.n, rows, code_notes, codes, starts, pool_bytes, semicolon)),
            _arrow_text(*_join_rows(self.n, rows, text_notes, texts, starts, pool_bytes, separator)),
        )


def _arrow_text(offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    """Offsets and UTF-8 bytes as Arrow strings of TEXT_TYPE (large_string: 64-bit offsets), without a copy."""
    return pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data), null_count=0)
