"""Reason codes: which features push an applicant's risk up the most, and how that is computed.

`contributions` is path (Saabas) attribution from the compiled forest
(`pipeline.decision.forest`): each split on a row's path credits its feature with
value(child) - value(node), node values being training-count-weighted leaf means. It is
exactly additive (bias + sum = log-odds, the bias equal to TreeSHAP's) and ~100x+ faster
than TreeSHAP; its top reasons agree with TreeSHAP's on most but not all rows (measured in
docs/reason-codes.md). `exact` is LightGBM's TreeSHAP (`pred_contrib`), the reference.
`top_reasons` turns contributions into the k reason texts: only positive contributions are
reasons; a row with fewer than k risk-raising features has blanks. The scorer uses exact
TreeSHAP (`pipeline.decision.treeshap`, equal to `pred_contrib`) for adverse decisions by
default (`scoring.exact_reasons`), path attribution for the others.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import cast

import lightgbm as lgb
import numpy as np

from pipeline.decision.forest import Forest
from pipeline.decision.treeshap import top_k_exact
from pipeline.model.boosters import threads

# Forests built for bare boosters, so repeated calls never re-flatten the same model.
# Boosters are not mutated after training in this pipeline; a retrained booster is a new object.
_FORESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def exact(booster: lgb.Booster, X: np.ndarray) -> np.ndarray:
    """TreeSHAP values (n, features), without the bias column."""
    contrib = cast(np.ndarray, booster.predict(X, pred_contrib=True, num_threads=threads()))  # dense X: an array
    return contrib[:, :-1]


def forest_of(model) -> Forest:
    """The compiled forest of a PDModel/LimitModel (its cached one), a Forest, or a bare Booster (cached here)."""
    if isinstance(model, Forest):
        return model
    if hasattr(model, "forest"):
        return model.forest
    forest = _FORESTS.get(model)
    if forest is None:
        forest = _FORESTS[model] = Forest.from_booster(model)
    return forest


def contributions(model, X: np.ndarray) -> np.ndarray:
    """Path attribution (n, features) on the log-odds scale; `model` is a PDModel, Forest or Booster."""
    return forest_of(model).margin_and_contrib(X)[1]


def agreement(fast: np.ndarray, reference: np.ndarray, k: int = 3) -> dict[str, float]:
    """How often reason codes from `fast` attributions match those from `reference` (e.g. TreeSHAP).

    Reasons are the up-to-k features with the largest positive contribution (as
    `pipeline.decision.reasons.top_reasons` picks them). Returns the share of rows whose first
    reason is the same (`top1`), whose top-k reasons are the same set (`topk_set`), in
    the same order (`topk_order`), and whose reference first reason is among the fast top k
    (`top1_in_topk`).
    """
    names = list(range(fast.shape[1]))
    a, b = top_reasons(fast, names, k), top_reasons(reference, names, k)
    same_set = np.array([set(x) == set(y) for x, y in zip(a.tolist(), b.tolist(), strict=True)])
    first_in = np.array([y[0] in x for x, y in zip(a.tolist(), b.tolist(), strict=True)])
    return {
        "rows": float(len(a)),
        "top1": float(np.mean(a[:, 0] == b[:, 0])) if len(a) else float("nan"),
        "topk_set": float(same_set.mean()) if len(a) else float("nan"),
        "topk_order": float(np.mean((a == b).all(axis=1))) if len(a) else float("nan"),
        "top1_in_topk": float(first_in.mean()) if len(a) else float("nan"),
    }


def top_reasons(contrib: np.ndarray, reason_texts: Sequence[object], k: int) -> np.ndarray:
    """(n, k) array of reason texts, strongest first; None where fewer than k features raise risk.

    Selection is `treeshap.top_k_exact`'s, so path and exact attributions share one tie rule
    (larger value first, equal values to the lower feature index; only positive values count):
    the same contributions always give the same reasons, whichever method produced them.
    """
    n = len(contrib)
    out = np.full((n, k), None, dtype=object)
    if n == 0 or k == 0 or contrib.shape[1] == 0:
        return out
    idx = top_k_exact(contrib, k)
    texts = np.asarray([*reason_texts, None], dtype=object)  # index -1 (padding) maps to None
    return texts[idx]
