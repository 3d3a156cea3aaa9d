"""Population stability: PSI of a sample against a reference, on quantile bins of the reference.

The same binning serves training (the reference distribution the artifact keeps), the report
(train vs test per feature) and batch scoring (drift against the artifact's reference), so all
three read drift alike. Separate from `metrics` (how well the model ranks and calibrates) because
drift compares two samples of inputs or scores and needs no outcomes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.decision.forest import _jit


def _edges(reference: np.ndarray, bins: int) -> np.ndarray:
    ref = reference[~np.isnan(reference)]
    if not len(ref):
        return np.array([-np.inf, np.inf])
    qs = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.r_[-np.inf, qs, np.inf]


def _standard(edges: np.ndarray) -> bool:
    """Edges from -inf to +inf, strictly increasing: what `_edges` makes and the artifacts keep."""
    return len(edges) >= 2 and edges[0] == -np.inf and edges[-1] == np.inf and bool((edges[1:] > edges[:-1]).all())


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Values per bin ([a, b), the last closed, as np.histogram), plus a last bin for missing values.

    Integer counts: they add up exactly across chunks and processes, in any order.
    """
    return bin_counts_columns(np.asarray(values, dtype=float).reshape(-1, 1), [edges])[0]


def bin_counts_columns(X: np.ndarray, edges: list, columns: list[int] | None = None) -> list[np.ndarray]:
    """`bin_counts` of the `columns` of X (default: all, in order), each against its own edges.

    For edges from -inf to +inf the bin of a value is the number of inner edges at or below it, and
    NaN goes to the missing bin. One compiled pass over X, copied a block of rows at a time, counts per
    column the values at or above each inner edge and the values that are not NaN; the bin counts are
    the differences of those counts. Counting is a branch-free sum over a block of a column's values, which
    vectorizes, with no per-value bin and no histogram increments. A 100,000-row chunk's drift tally,
    29 features of 3-11 edges, CPU time over 41 interleaved repeats on a shared 2-core machine: min
    4.4-5.8 ms, median 5.5-7.2 ms (four runs), against min 10.0-11.0 ms, median 11.5-19 ms for the
    earlier loop (a bin per value, then a histogram increment) and 32 ms for a column copy and
    whole-column comparisons; searchsorted on unsorted values mispredicts its way to ~5 ms a column.
    Other edges fall back to searchsorted, column by column.
    """
    X = np.asarray(X, dtype=float)
    columns = list(range(X.shape[1] if X.ndim == 2 else 0)) if columns is None else list(columns)
    if X.ndim != 2 or len(columns) != len(edges):
        raise ValueError(f"{X.shape} values ({len(columns)} columns) for {len(edges)} edge lists")
    edges = [np.asarray(e, dtype=float) for e in edges]
    if edges and all(_standard(e) for e in edges):
        sizes = np.array([len(e) - 2 for e in edges], dtype=np.int64)  # inner edges per column
        inner = np.zeros((len(edges), int(sizes.max())))
        for j, e in enumerate(edges):
            inner[j, : sizes[j]] = e[1:-1]
        counts = np.zeros((len(edges), inner.shape[1] + 2), dtype=np.int64)
        _count_columns(np.ascontiguousarray(X), np.asarray(columns, dtype=np.int64), inner, sizes, counts)
        return [counts[j, : len(e)].copy() for j, e in enumerate(edges)]
    out = []
    for j, e in zip(columns, edges, strict=True):
        idx = _bin_index_searchsorted(X[:, j], e)
        out.append(np.bincount(idx, minlength=len(e))[: len(e)].astype(np.int64))
    return out


_BLOCK = 256  # rows copied at a time, column by column: 29 columns' blocks stay in L1/L2
_PAD = 8  # a block of columns is _BLOCK + _PAD values apart, so the columns do not alias in the cache


@_jit(nogil=True)
def _count_columns(X, columns, inner, sizes, counts):  # pragma: no cover - compiled
    """counts[j, :sizes[j] + 2] = the values of X[:, columns[j]] in each bin, then the NaNs.

    The bin of a value is the number of its column's sizes[j] inner edges (inner[j, :sizes[j]], increasing
    and finite) at or below it. Per block of rows the columns are copied contiguous, and for each column the
    non-NaN values and the values at or above each inner edge are summed (NaN compares false): bin b holds
    the values at or above edge b - 1 but not edge b."""
    n, m = X.shape[0], len(columns)
    block = np.empty((m, _BLOCK + _PAD))
    present = np.zeros(m, dtype=np.int64)
    above = np.zeros(inner.shape, dtype=np.int64)
    for start in range(0, n, _BLOCK):
        rows = min(_BLOCK, n - start)
        for i in range(rows):
            for j in range(m):
                block[j, i] = X[start + i, columns[j]]
        for j in range(m):
            values = block[j, :rows]
            s = 0
            for i in range(rows):
                s += values[i] == values[i]
            present[j] += s
            for k in range(sizes[j]):
                edge = inner[j, k]
                s = 0
                for i in range(rows):
                    s += values[i] >= edge
                above[j, k] += s
    for j in range(m):
        below = present[j]  # values at or above the edge before bin b (-inf for bin 0)
        for b in range(sizes[j]):
            counts[j, b] = below - above[j, b]
            below = above[j, b]
        counts[j, sizes[j]] = below
        counts[j, sizes[j] + 1] = n - present[j]


def _bin_index_searchsorted(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Any sorted edges: NaN (and a value above a finite last edge) sorts past every edge, into the missing bin."""
    idx = np.searchsorted(edges, values, side="right") - 1
    idx[values == edges[-1]] = len(edges) - 2  # the last bin is closed on the right
    return idx


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of values per bin ([a, b), the last closed, as np.histogram), plus a last bin for missing values."""
    values = np.asarray(values, dtype=float)
    return bin_counts(values, edges) / max(len(values), 1)


def psi_from_shares(expected: np.ndarray, actual: np.ndarray, eps: float = 1e-4) -> float:
    """sum (a - e) ln(a / e) over bins; empty bins are floored at `eps` so one empty bin is not infinite."""
    e = np.clip(np.asarray(expected, float), eps, None)
    a = np.clip(np.asarray(actual, float), eps, None)
    keep = (np.asarray(expected) > 0) | (np.asarray(actual) > 0)
    return float(np.sum(((a - e) * np.log(a / e))[keep]))


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `actual` against `expected`, on quantile bins of `expected`."""
    edges = _edges(np.asarray(expected, float), bins)
    return psi_from_shares(bin_shares(expected, edges), bin_shares(actual, edges))


def psi_status(value: float, warn: float, alert: float) -> str:
    """Reading of a PSI value: stable below `warn`, watch below `alert`, shifted from `alert` up.

    The thresholds are the config's `scoring.psi_warn` / `scoring.psi_alert` (the industry's rule of
    thumb is 0.1 / 0.25), so the report reads drift exactly as batch scoring monitors it.
    """
    if not value == value:
        return "n/a"
    return "stable" if value < warn else ("watch" if value < alert else "shifted")


def psi_table(
    expected: np.ndarray, actual: np.ndarray, names: list[str], bins: int = 10, *, warn: float, alert: float
) -> pd.DataFrame:
    """PSI per column of two matrices (train vs test), worst first, with its reading (see `psi_status`)."""
    expected = np.asarray(expected, dtype=float)
    actual = np.asarray(actual, dtype=float)
    values = [psi(expected[:, i], actual[:, i], bins) for i in range(len(names))]
    table = pd.DataFrame({"feature": names, "psi": values})
    table["status"] = table["psi"].map(lambda v: psi_status(v, warn, alert))
    return table.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)


def reference_distribution(values: np.ndarray, bins: int = 10) -> dict:
    """Bin edges and shares of a training sample: what the artifact keeps to measure drift later."""
    values = np.asarray(values, dtype=float)
    edges = _edges(values, bins)
    return {"edges": edges.tolist(), "shares": bin_shares(values, edges).tolist()}
