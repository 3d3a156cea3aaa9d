"""Train / validation / calibration / test splits, out-of-time when dates exist."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from pipeline.config import SplitConfig

PARTS = ("train", "validation", "calibration", "test")


def stratified_split(idx: np.ndarray, y: np.ndarray, sizes: list[float], seed: int) -> list[np.ndarray]:
    """Split idx into len(sizes) stratified parts with the given fractions of idx."""
    parts = []
    rest, rest_y, rest_share = idx, y, 1.0
    for size in sizes[:-1]:
        share = size / rest_share
        take, keep, take_y, keep_y = train_test_split(
            rest, rest_y, train_size=share, stratify=rest_y, random_state=seed
        )
        parts.append(np.sort(take))
        rest, rest_y, rest_share = keep, keep_y, rest_share - size
    parts.append(np.sort(rest))
    return parts


def make_splits(frame: pd.DataFrame, target: str, cfg: SplitConfig) -> tuple[dict[str, np.ndarray], str]:
    """Positional indices per part, and how they were made.

    With `application_date` present and `out_of_time` on, the latest `test` share of
    applications is the test set (a later period, as in production) and the rest is
    split at random, stratified by outcome; otherwise all four parts are stratified.
    """
    y = frame[target].to_numpy()
    idx = np.arange(len(frame))
    dates = frame["application_date"] if "application_date" in frame else None
    if cfg.out_of_time and dates is not None and dates.notna().all() and dates.nunique() > 1:
        order = np.argsort(dates.to_numpy(), kind="stable")
        n_test = int(round(cfg.test * len(frame)))
        test, early = np.sort(order[-n_test:]), order[:-n_test]
        shares = [cfg.train, cfg.validation, cfg.calibration]
        total = sum(shares)
        train, val, cal = stratified_split(early, y[early], [s / total for s in shares], cfg.seed)
        cutoff = dates.iloc[order[-n_test]]
        return {
            "train": train,
            "validation": val,
            "calibration": cal,
            "test": test,
        }, f"out-of-time (test from {cutoff:%Y-%m-%d})"
    parts = stratified_split(idx, y, [cfg.train, cfg.validation, cfg.calibration, cfg.test], cfg.seed)
    return dict(zip(PARTS, parts, strict=True)), "stratified random"


def cv_folds(y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
