"""Evaluation of a trained scorer on its holdout: the numbers a risk committee reads.

Writes tables (CSV/JSON) into the report folder and returns the metrics and the
promotion gate's inputs; `pipeline.report` renders plots and the HTML report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import Config
from pipeline.metrics import discrimination, fairness, policy_simulation, psi, score_bands
from pipeline.scorer import Scorer

TARGET = "defaulted"


def evaluate_holdout(scorer: Scorer, valid: pd.DataFrame, splits: dict[str, np.ndarray], cfg: Config, out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    train, test = valid.iloc[splits["train"]].reset_index(drop=True), valid.iloc[splits["test"]].reset_index(drop=True)
    X_train, X_test = scorer.matrix(train), scorer.matrix(test)
    s_train, s_test = scorer.score_valid(train, X_train), scorer.score_valid(test, X_test)
    y = test[TARGET].to_numpy(dtype=int)
    p = s_test["pd"].to_numpy()
    metrics = {f"test_{k}": v for k, v in discrimination(y, p, cfg.evaluation.calibration_bins).items()}
    metrics.update(policy_simulation(y, p, s_test["decision"].to_numpy(), s_test["credit_limit"].to_numpy(),
                                     cfg.evaluation.lgd, cfg.evaluation.ccf))
    feature_psi = {name: psi(X_train[:, i], X_test[:, i], cfg.evaluation.psi_bins) for i, name in enumerate(scorer.feature_names)}
    score_psi = psi(s_train["score"].to_numpy(), s_test["score"].to_numpy(), cfg.evaluation.psi_bins)
    metrics["score_psi"] = score_psi
    metrics["max_feature_psi"] = max(feature_psi.values()) if feature_psi else 0.0

    bands = score_bands(y, s_test["score"].to_numpy())
    bands.to_csv(out_dir / "score_bands.csv", index=False)
    pd.Series(feature_psi, name="psi").rename_axis("feature").to_csv(out_dir / "feature_psi.csv")
    fairness_tables = {}
    min_air = 1.0
    for attr in cfg.contract.protected:
        if attr in test:
            table = fairness(test[attr], y, p, s_test["decision"].to_numpy(), s_test["credit_limit"].to_numpy())
            table.to_csv(out_dir / f"fairness_{attr}.csv", index=False)
            fairness_tables[attr] = table.to_dict(orient="records")
            air = float(table["adverse_impact_ratio"].min())
            metrics[f"air_{attr}"] = air
            min_air = min(min_air, air)
    metrics["min_adverse_impact_ratio"] = min_air
    return {
        "metrics": metrics,
        "gate": {"roc_auc": metrics["test_roc_auc"], "ece": metrics["test_ece"], "score_psi": score_psi, "min_air": min_air},
        "feature_psi": feature_psi,
        "fairness": fairness_tables,
        "score_bands": bands.to_dict(orient="records"),
    }
