"""PD -> points -> grade, on the classic odds scale: score = base + pdo / ln 2 x ln(odds / base_odds)."""

from __future__ import annotations

import numpy as np

from pipeline.config import ScorecardConfig


def pd_to_score(pd_: np.ndarray, cfg: ScorecardConfig) -> np.ndarray:
    """Points on the odds scale; the PD is bounded only for this conversion (odds are infinite at 0 and 1)."""
    p = np.clip(np.asarray(pd_, dtype=float), cfg.score_pd_bound, 1 - cfg.score_pd_bound)
    odds = (1 - p) / p
    return np.round(cfg.base_score + cfg.pdo / np.log(2) * np.log(odds / cfg.base_odds), 1)


def score_to_grade_index(score: np.ndarray, cfg: ScorecardConfig) -> np.ndarray:
    """0 for the best grade; grades are ordered by descending minimum score."""
    mins = np.array([g.min_score for g in cfg.grades])  # descending, last is -inf
    return np.searchsorted(-mins, -np.asarray(score, dtype=float), side="left")  # = count of mins above the score


def grade_names(index: np.ndarray, cfg: ScorecardConfig) -> np.ndarray:
    return np.array([g.name for g in cfg.grades], dtype=object)[index]
