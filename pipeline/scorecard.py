"""PD -> points -> grade, on the classic odds scale: score = base + pdo / ln 2 x ln(odds / base_odds)."""

from __future__ import annotations

import numpy as np

from pipeline.config import ScorecardConfig

PD_FLOOR = 1e-6


def pd_to_score(pd_: np.ndarray, cfg: ScorecardConfig) -> np.ndarray:
    p = np.clip(np.asarray(pd_, dtype=float), PD_FLOOR, 1 - PD_FLOOR)
    odds = (1 - p) / p
    return np.round(cfg.base_score + cfg.pdo / np.log(2) * np.log(odds / cfg.base_odds), 1)


def score_to_grade_index(score: np.ndarray, cfg: ScorecardConfig) -> np.ndarray:
    """0 for the best grade; grades are ordered by descending minimum score."""
    mins = np.array([g.min_score for g in cfg.grades])  # descending, last is -inf
    return np.searchsorted(-mins, -np.asarray(score, dtype=float), side="left")  # = count of mins above the score


def grade_names(index: np.ndarray, cfg: ScorecardConfig) -> np.ndarray:
    return np.array([g.name for g in cfg.grades], dtype=object)[index]
