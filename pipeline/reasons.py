"""Reason codes: the k features that push an applicant's risk up the most, in plain words.

Contributions come from the PD model on the log-odds scale (see `pipeline.attribution`
for how they are computed and how they relate to exact TreeSHAP). Only positive
contributions are reasons; a row with fewer than k risk-raising features has blanks.
"""

from __future__ import annotations

import numpy as np


def top_reasons(contrib: np.ndarray, reason_texts: list[str], k: int) -> np.ndarray:
    """(n, k) array of reason texts, strongest first; None where fewer than k features raise risk."""
    n, f = contrib.shape
    k_eff = min(k, f)
    out = np.full((n, k), None, dtype=object)
    if n == 0 or k_eff == 0:
        return out
    if k_eff < f:
        part = np.argpartition(-contrib, k_eff - 1, axis=1)[:, :k_eff]
    else:
        part = np.tile(np.arange(f), (n, 1))
    vals = np.take_along_axis(contrib, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    texts = np.asarray(reason_texts, dtype=object)[idx]
    out[:, :k_eff] = np.where(vals > 0, texts, None)
    return out
