"""Text output columns built from codes, without a Python string per row.

pandas 3 keeps text in Arrow; turning an object array of Python strings into such a column costs
~30 ms per 200k rows and column, a large share of a scoring chunk with a dozen text columns. Here a
column is `labels[index]` taken inside Arrow, then handed to pandas as the same dtype it would infer
from the Python strings (object before pandas 3), so outputs are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

TEXT_TYPE = pa.large_string()  # the storage of pandas' Arrow-backed "str" columns


@cache
def text_dtype() -> Any:
    """The dtype pandas gives a column of Python strings when it stores them in Arrow, else None."""
    dtype = pd.Series(["x"]).dtype
    return dtype if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow" else None


def arrow_text(values: pa.Array) -> Any:
    """Arrow strings as the column pandas makes of the same Python strings: its Arrow-backed "str" on pandas 3,
    object before (and for no rows, as pandas infers no string type from an empty object array)."""
    dtype = text_dtype()
    return pd.array(values, dtype=dtype) if len(values) and dtype is not None else values.to_numpy(zero_copy_only=False)


def labels_column(labels: Sequence[object], index: np.ndarray) -> Any:
    """labels[index] as a text column; index -1 (and None labels) give missing values."""
    index = np.asarray(index, dtype=np.int64)
    table = strings(labels)
    return arrow_text(table.take(pa.array(index, mask=index < 0)))


def repeated_text(value: str, n: int) -> Any:
    """One text repeated n times (model name and version on every row)."""
    return labels_column([value], np.zeros(n, dtype=np.int64))


def strings(values: Sequence[object]) -> pa.Array:
    """Python strings as Arrow strings (NaN and None as null)."""
    return pa.array(list(values), type=TEXT_TYPE, from_pandas=True)


def object_text(values: np.ndarray) -> Any:
    """An object array as pandas makes it a column; Python strings go through Arrow's converter when pandas
    stores them in Arrow anyway (twice as fast as its own inference). No string at all, or another type: as is."""
    if len(values) and text_dtype() is not None:
        try:
            converted = pa.array(values, type=TEXT_TYPE)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return values
        if converted.null_count < len(converted):
            return arrow_text(converted)
    return values
