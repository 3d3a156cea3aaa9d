"""Per-feature contributions to the PD model's log-odds, for reason codes.

`exact` is LightGBM's TreeSHAP (`pred_contrib`), the reference.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from pipeline.models import threads


def exact(booster: lgb.Booster, X: np.ndarray) -> np.ndarray:
    """TreeSHAP values (n, features), without the bias column."""
    return booster.predict(X, pred_contrib=True, num_threads=threads())[:, :-1]


def contributions(booster: lgb.Booster, X: np.ndarray) -> np.ndarray:
    return exact(booster, X)
