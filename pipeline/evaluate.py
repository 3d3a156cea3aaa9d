"""Evaluation of a trained scorer on its holdout: the numbers a risk committee reads.

Computes every metric and table from `pipeline.metrics`, writes them into the report folder
(tables as CSV, metrics and model card as JSON, plots as PNG, one self-contained
`report.html`) and returns the flat metrics, the promotion gate's inputs and the report's
path. The stage runner logs the folder to the training run in MLflow.

Layout of `out_dir`::

    report.html  metrics.json  model_card.json  model_card.md
    plots/*.png  tables/*.csv
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import report
from pipeline.config import Config, SyntheticSource
from pipeline.metrics import (
    PSI_SHIFT,
    auc_confidence_interval,
    calibration_table,
    cutoff_table,
    decision_reason_counts,
    discrimination,
    fairness,
    gains_curve,
    grade_table,
    ks_curve,
    limit_coverage,
    limit_errors,
    policy_simulation,
    psi,
    psi_status,
    psi_table,
    roc_points,
    score_bands,
)
from pipeline.scorecard import pd_to_score
from pipeline.scorer import Scorer

log = logging.getLogger(__name__)
TARGET, LIMIT, DATE = "defaulted", "granted_limit", "application_date"
# Groups smaller than this are shown but neither set nor fail the adverse impact screen.
MIN_FAIRNESS_GROUP = 30
CUTOFFS = [0.02, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.40, 0.50]


def importance_table(scorer: Scorer) -> pd.DataFrame:
    """Gain importance of the PD booster, with each feature's risk direction and reason text."""
    booster = scorer.pd_model.booster
    gain = booster.feature_importance("gain").astype(float)
    names = list(booster.feature_name())
    specs = {s.name: s for s in scorer.specs}
    table = pd.DataFrame(
        {
            "feature": names,
            "gain": gain,
            "gain_share": gain / gain.sum() if gain.sum() > 0 else np.zeros(len(gain)),
            "direction": [int(specs[n].direction) if n in specs else 0 for n in names],
            "reason": [specs[n].reason if n in specs else "" for n in names],
        }
    )
    return table.sort_values("gain", ascending=False, kind="stable").reset_index(drop=True)


def _period(frame: pd.DataFrame) -> str | None:
    if DATE not in frame:
        return None
    dates = pd.to_datetime(frame[DATE], errors="coerce").dropna()
    return f"{dates.min():%Y-%m-%d} to {dates.max():%Y-%m-%d}" if len(dates) else None


def _split_description(train: pd.DataFrame, test: pd.DataFrame) -> str:
    tr, te = _period(train), _period(test)
    if tr is None or te is None:
        return "random stratified split (no application date)"
    later = pd.to_datetime(test[DATE]).min() >= pd.to_datetime(train[DATE]).max()
    kind = "out-of-time" if later else "random stratified"
    return f"{kind}: train {tr}, test {te}"


def _clear(folder: Path, pattern: str) -> None:
    """Remove what an earlier evaluation wrote, so a rerun never logs a stale plot or table."""
    for old in folder.glob(pattern):
        old.unlink()


def evaluate_holdout(
    scorer: Scorer, valid: pd.DataFrame, splits: dict[str, np.ndarray], cfg: Config, out_dir: Path
) -> dict:
    out_dir = Path(out_dir)
    plots_dir, tables_dir = out_dir / "plots", out_dir / "tables"
    for folder, pattern in ((plots_dir, "*.png"), (tables_dir, "*.csv")):
        folder.mkdir(parents=True, exist_ok=True)
        _clear(folder, pattern)
    ev = cfg.evaluation
    quiet = dataclasses.replace(scorer, reason_k=0)  # reason codes are not needed here and are the slow part
    train, test = valid.iloc[splits["train"]].reset_index(drop=True), valid.iloc[splits["test"]].reset_index(drop=True)
    X_train, X_test = scorer.matrix(train), scorer.matrix(test)
    train_score = pd_to_score(scorer.pd_model.predict(X_train), scorer.scorecard)
    s_test = quiet.score_valid(test, X_test)
    y = test[TARGET].to_numpy(dtype=int)
    y_train = train[TARGET].to_numpy(dtype=int)
    p, score = s_test["pd"].to_numpy(dtype=float), s_test["score"].to_numpy(dtype=float)
    decision, limit = s_test["decision"].to_numpy(), s_test["credit_limit"].to_numpy(dtype=float)
    grade = s_test["grade"].to_numpy()
    grade_order = [g.name for g in scorer.scorecard.grades]

    # --- discrimination, calibration, policy
    metrics = {f"test_{k}": v for k, v in discrimination(y, p, ev.calibration_bins).items()}
    low, high = auc_confidence_interval(metrics["test_roc_auc"], int(y.sum()), int((1 - y).sum()))
    metrics.update(
        {
            "test_roc_auc_ci_low": low,
            "test_roc_auc_ci_high": high,
            "n_test": float(len(y)),
            "n_train": float(len(y_train)),
            "test_default_rate": float(y.mean()),
            "train_default_rate": float(y_train.mean()),
            "test_mean_pd": float(p.mean()),
        }
    )
    metrics.update(policy_simulation(y, p, decision, limit, ev.lgd, ev.ccf))
    metrics.update({"lgd": ev.lgd, "ccf": ev.ccf})

    # --- stability
    psi_features = psi_table(X_train, X_test, scorer.feature_names, ev.psi_bins)
    score_psi = psi(train_score, score, ev.psi_bins)
    psi_all = pd.concat(
        [pd.DataFrame({"feature": ["(score)"], "psi": [score_psi], "status": [psi_status(score_psi)]}), psi_features],
        ignore_index=True,
    ).sort_values("psi", ascending=False, kind="stable")
    metrics["score_psi"] = score_psi
    metrics["max_feature_psi"] = float(psi_features["psi"].max()) if len(psi_features) else 0.0
    metrics["n_features_shifted"] = float((psi_features["psi"] >= PSI_SHIFT).sum())

    # --- limit model error on good payers
    limit_fit = None
    if scorer.limit_model is not None and LIMIT in test:
        granted = test[LIMIT].to_numpy(dtype=float)
        good = (y == 0) & (granted > 0) & ~np.isnan(granted)
        if good.any():
            cols = [scorer.feature_names.index(n) for n in scorer.limit_model.names]
            estimate = scorer.limit_model.predict(X_test[np.ix_(good, cols)])
            metrics.update(limit_errors(granted[good], estimate, scorer.limit_model.alpha))
            metrics.update(
                {
                    "limit_coverage": limit_coverage(granted[good], estimate),
                    "limit_n": float(good.sum()),
                    "limit_alpha": scorer.limit_model.alpha,
                }
            )
            limit_fit = (granted[good], estimate)

    # --- fairness
    fairness_tables: dict[str, pd.DataFrame] = {}
    min_air = 1.0
    for attr in cfg.contract.protected:
        if attr not in test:
            log.warning("protected attribute %s is not in the data: no fairness table", attr)
            continue
        table = fairness(test[attr], y, p, decision, limit, min_count=MIN_FAIRNESS_GROUP)
        fairness_tables[attr] = table
        air = float(table.loc[table["reliable"], "adverse_impact_ratio"].min())
        air = air if air == air else 1.0  # nobody approved anywhere: the ratio is undefined, not a disparity
        metrics[f"air_{attr}"] = air
        aucs = table.loc[table["reliable"], "auc"].dropna()
        if len(aucs) > 1:
            metrics[f"auc_gap_{attr}"] = float(aucs.max() - aucs.min())
        min_air = min(min_air, air)
    metrics["min_adverse_impact_ratio"] = min_air
    metrics = {k: float(v) for k, v in metrics.items()}

    # --- tables
    tables = {
        "score_bands": score_bands(y, score, 10),
        "calibration": calibration_table(y, p, ev.calibration_bins),
        "grades": grade_table(y, p, grade, decision, limit, grade_order),
        "cutoffs": cutoff_table(y, p, sorted(set(CUTOFFS) | {scorer.policy.pd_cutoff})),
        "decision_reasons": decision_reason_counts(decision, s_test["decision_reasons"].to_numpy()),
        "psi": psi_all.reset_index(drop=True),
        "importance": importance_table(scorer),
        **{f"fairness_{attr}": t for attr, t in fairness_tables.items()},
    }
    for name, table in tables.items():
        table.to_csv(tables_dir / f"{name}.csv", index=False)
    gains = gains_curve(y, p)

    # --- plots
    cuts = {g.name: g.min_score for g in scorer.scorecard.grades if np.isfinite(g.min_score)}
    plots = {
        "roc": report.plot_roc(roc_points(y, p), metrics["test_roc_auc"], metrics["test_gini"], plots_dir / "roc.png"),
        "ks": report.plot_ks(ks_curve(y, score), plots_dir / "ks.png"),
        "calibration": report.plot_calibration(
            tables["calibration"], metrics["test_ece"], p, plots_dir / "calibration.png"
        ),
        "score_distribution": report.plot_score_distribution(
            score,
            y,
            cuts,
            float(pd_to_score(np.array([scorer.policy.pd_cutoff]), scorer.scorecard)[0]),
            plots_dir / "score_distribution.png",
            extremes=tuple(pd_to_score(np.array([1.0, 0.0]), scorer.scorecard)),
        ),
        "gains": report.plot_gains(gains, tables["score_bands"], plots_dir / "gains.png"),
        "importance": report.plot_importance(tables["importance"], plots_dir / "feature_importance.png"),
        "psi": report.plot_psi(tables["psi"], plots_dir / "psi.png"),
        "limits_by_grade": report.plot_limits_by_grade(
            tables["grades"], grade, limit, decision, grade_order, plots_dir / "limits_by_grade.png"
        ),
    }
    if limit_fit is not None:
        plots["limit_fit"] = report.plot_limit_fit(*limit_fit, scorer.limit_model.alpha, plots_dir / "limit_fit.png")
    if fairness_tables:
        plots["fairness"] = report.plot_fairness(fairness_tables, plots_dir / "fairness.png")

    # --- model card and report
    gate = {"roc_auc": metrics["test_roc_auc"], "ece": metrics["test_ece"], "score_psi": score_psi, "min_air": min_air}
    thresholds = cfg.registry.gate.model_dump()
    source = cfg.source
    facts = {
        "meta": {**scorer.meta, "config": scorer.meta.get("config", cfg.name)},
        "metrics": metrics,
        "policy": scorer.policy.model_dump(),
        "gate_thresholds": thresholds,
        "synthetic": isinstance(source, SyntheticSource),
        "source": f"synthetic generator (seed {source.seed}, {source.rows:,} rows)"
        if isinstance(source, SyntheticSource)
        else str(source.path),
        "period": _period(valid),
        "split": _split_description(train, test),
        "n_train": len(train),
        "n_test": len(test),
        "n_test_defaults": int(y.sum()),
        "train_default_rate": float(y_train.mean()),
        "test_default_rate": float(y.mean()),
        "shifted_features": psi_features.loc[psi_features["psi"] >= PSI_SHIFT, "feature"].tolist(),
        "limit_model": scorer.limit_model is not None,
        "n_features": len(scorer.feature_names),
        "pd_trees": scorer.pd_model.best_iteration,
        "calibration": scorer.pd_model.calibrator.method,
        "fairness": fairness_tables,
        "evaluated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    card = report.build_model_card(facts)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out_dir / "model_card.json").write_text(json.dumps(card, indent=2, default=str))
    (out_dir / "model_card.md").write_text(report.model_card_markdown(card))
    title = f"Credit model evaluation: {card['model_details']['name'] or cfg.name} ({cfg.name})"
    page = report.render_html(card, metrics, tables, plots, gate, thresholds, title)
    report_path = out_dir / "report.html"
    report_path.write_text(page, encoding="utf-8")
    log.info("evaluation report: %s (%.0f kB)", report_path, report_path.stat().st_size / 1024)
    return {
        "metrics": metrics,
        "gate": gate,
        "report": str(report_path),
        "plots": {k: str(v.relative_to(out_dir)) for k, v in plots.items()},
        "tables": {k: f"tables/{k}.csv" for k in tables},
        "model_card": card,
        "feature_psi": dict(zip(psi_features["feature"], psi_features["psi"], strict=True)),
        "fairness": {attr: t.to_dict(orient="records") for attr, t in fairness_tables.items()},
        "score_bands": tables["score_bands"].to_dict(orient="records"),
    }
