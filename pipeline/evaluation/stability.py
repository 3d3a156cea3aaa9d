"""Population stability: PSI of a sample against a reference, on quantile bins of the reference.

The same binning serves training (the reference distribution the artifact keeps), the report
(train vs test per feature) and batch scoring (drift against the artifact's reference), so all
three read drift alike. Separate from `metrics` (how well the model ranks and calibrates) because
drift compares two samples of inputs or scores and needs no outcomes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _edges(reference: np.ndarray, bins: int) -> np.ndarray:
    ref = reference[~np.isnan(reference)]
    if not len(ref):
        return np.array([-np.inf, np.inf])
    qs = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.r_[-np.inf, qs, np.inf]


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of values per bin ([a, b), the last closed, as np.histogram), plus a last bin for missing values.

    One searchsorted and one bincount: NaN sorts past every edge, straight into the missing bin.
    """
    values = np.asarray(values, dtype=float)
    edges = np.asarray(edges, dtype=float)
    idx = np.searchsorted(edges, values, side="right") - 1
    idx[values == edges[-1]] = len(edges) - 2  # the last bin is closed on the right
    counts = np.bincount(idx, minlength=len(edges))[: len(edges)]
    return counts / max(len(values), 1)


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
