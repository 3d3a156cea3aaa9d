"""Evaluation of a trained scorer on its holdout: the numbers a risk committee reads.

Computes every metric and table from `pipeline.evaluation.metrics`, writes them into the report folder
(tables as CSV, metrics and model card as JSON, plots as PNG, one self-contained
`report.html`) and returns the flat metrics, the promotion gate's inputs and the report's
path. The stage runner logs the folder to the training run in MLflow.

Every threshold comes from the config: PSI readings from `scoring.psi_warn` / `psi_alert` (as
batch scoring monitors drift), the adverse impact screen from `registry.gate.min_adverse_impact_ratio`
(as the registry gate judges it), the fairness group size and the cutoff table from `evaluation`.

Layout of `out_dir`::

    report.html  metrics.json  model_card.json  model_card.md
    plots/*.png  tables/*.csv
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import Config, SyntheticSource
from pipeline.decision.scorecard import pd_to_score
from pipeline.decision.scorer import Scorer
from pipeline.evaluation import plots as draw
from pipeline.evaluation.metrics import gains_curve, ks_curve, roc_points
from pipeline.evaluation.model_card import build_model_card, model_card_markdown
from pipeline.evaluation.offers import OfferSection, offer_section
from pipeline.evaluation.render import render_html
from pipeline.evaluation.sections import (
    FairnessScreen,
    Holdout,
    Stability,
    build_tables,
    fairness_screen,
    headline_metrics,
    limit_model_fit,
    score_holdout,
    stability,
)

log = logging.getLogger(__name__)
DATE = "application_date"


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


def draw_plots(
    h: Holdout,
    scorer: Scorer,
    cfg: Config,
    metrics: dict[str, float],
    tables: dict[str, pd.DataFrame],
    limit_fit: tuple[np.ndarray, np.ndarray] | None,
    fair: FairnessScreen,
    plots_dir: Path,
    offers: OfferSection | None = None,
) -> dict[str, Path]:
    """Every figure of the report, drawn from the same tables that go to CSV so a plot never disagrees with them."""
    card = scorer.scorecard
    cuts = {g.name: g.min_score for g in card.grades if np.isfinite(g.min_score)}
    cutoff_score = float(pd_to_score(np.array([scorer.policy.pd_cutoff]), card)[0])
    plots = {
        "roc": draw.plot_roc(
            roc_points(h.y, h.p), metrics["test_roc_auc"], metrics["test_gini"], plots_dir / "roc.png"
        ),
        "ks": draw.plot_ks(ks_curve(h.y, h.score), plots_dir / "ks.png"),
        "calibration": draw.plot_calibration(
            tables["calibration"], metrics["test_ece"], h.p, plots_dir / "calibration.png"
        ),
        "score_distribution": draw.plot_score_distribution(
            h.score,
            h.y,
            cuts,
            cutoff_score,
            plots_dir / "score_distribution.png",
            extremes=tuple(pd_to_score(np.array([1.0, 0.0]), card)),
        ),
        "gains": draw.plot_gains(gains_curve(h.y, h.p), tables["score_bands"], plots_dir / "gains.png"),
        "importance": draw.plot_importance(tables["importance"], plots_dir / "feature_importance.png"),
        "psi": draw.plot_psi(tables["psi"], plots_dir / "psi.png", cfg.scoring.psi_warn, cfg.scoring.psi_alert),
        "limits_by_grade": draw.plot_limits_by_grade(
            tables["grades"],
            h.grade,
            h.limit,
            h.decision,
            [g.name for g in card.grades],
            plots_dir / "limits_by_grade.png",
        ),
    }
    if limit_fit is not None:
        assert scorer.limit_model is not None  # limit_model_fit gives a fit only for a limit model
        plots["limit_fit"] = draw.plot_limit_fit(*limit_fit, scorer.limit_model.alpha, plots_dir / "limit_fit.png")
    if fair.tables:
        min_ratio = cfg.registry.gate.min_adverse_impact_ratio
        plots["fairness"] = draw.plot_fairness(fair.tables, plots_dir / "fairness.png", min_ratio)
    if offers is not None:
        plots.update(offer_plots(offers, plots_dir))
    return plots


def offer_plots(offers: OfferSection, plots_dir: Path) -> dict[str, Path]:
    """The offer mix and the payment-to-income histogram, each only when its table exists."""
    plots: dict[str, Path] = {}
    if "offer_mix" in offers.tables:
        plots["offer_mix"] = draw.plot_offer_mix(offers.tables["offer_mix"], plots_dir / "offer_mix.png")
    if offers.pti is not None and offers.cap is not None:
        path = plots_dir / "payment_to_income.png"
        plots["payment_to_income"] = draw.plot_payment_to_income(offers.pti, offers.cap, path)
    return plots


def offers_of(h: Holdout, scorer: Scorer, cfg: Config) -> OfferSection:
    """The offer section under the cap the scorer searched its offers with (the policy's when it has no products)."""
    products = scorer.products
    cap = products.search.max_payment_to_income if products is not None else scorer.policy.max_payment_to_income
    grades = [g.name for g in scorer.scorecard.grades]
    return offer_section(h.offers, h.test, h.y, grades, lgd=cfg.evaluation.lgd, ccf=cfg.evaluation.ccf, cap=cap)


def gate_inputs(metrics: dict[str, float], min_air: float | None) -> dict[str, Any]:
    """What the registry gate judges. `min_air` is None (and `fairness_assessed` False) when no protected
    attribute was assessed: a missing screen must read "not applicable", never as a perfect 1.0 that passes."""
    return {
        "roc_auc": metrics["test_roc_auc"],
        "ece": metrics["test_ece"],
        "score_psi": metrics["score_psi"],
        "min_air": min_air,
        "fairness_assessed": min_air is not None,
    }


def model_card_facts(
    scorer: Scorer,
    cfg: Config,
    valid: pd.DataFrame,
    h: Holdout,
    metrics: dict[str, float],
    st: Stability,
    fair: FairnessScreen,
) -> dict[str, Any]:
    """Everything the model card's wording draws on, thresholds included, in one plain dict."""
    source = cfg.source
    synthetic = isinstance(source, SyntheticSource)
    alert = cfg.scoring.psi_alert
    return {
        "meta": {**scorer.meta, "config": scorer.meta.get("config", cfg.name)},
        "metrics": metrics,
        "policy": scorer.policy.model_dump(),
        "gate_thresholds": cfg.registry.gate.model_dump(),
        "psi_alert": alert,
        "synthetic": synthetic,
        "source": (
            f"synthetic generator (seed {source.seed}, {source.rows:,} rows)"
            if isinstance(source, SyntheticSource)
            else str(source.path)
        ),
        "period": _period(valid),
        "split": _split_description(h.train, h.test),
        "n_train": len(h.train),
        "n_test": len(h.test),
        "n_test_defaults": int(h.y.sum()),
        "train_default_rate": float(h.y_train.mean()),
        "test_default_rate": float(h.y.mean()),
        "shifted_features": st.features.loc[st.features["psi"] >= alert, "feature"].tolist(),
        "limit_model": scorer.limit_model is not None,
        "n_features": len(scorer.feature_names),
        "pd_trees": scorer.pd_model.best_iteration,
        "pd_refit": scorer.pd_model.report.get("refit", {}),
        "calibration": scorer.pd_model.calibrator.method,
        "fairness": fair.tables,
        "evaluated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _prepare(out_dir: Path) -> tuple[Path, Path]:
    plots_dir, tables_dir = out_dir / "plots", out_dir / "tables"
    for folder, pattern in ((plots_dir, "*.png"), (tables_dir, "*.csv")):
        folder.mkdir(parents=True, exist_ok=True)
        _clear(folder, pattern)
    return plots_dir, tables_dir


def write_report(
    out_dir: Path,
    cfg: Config,
    metrics: dict[str, float],
    card: dict[str, Any],
    tables: dict[str, pd.DataFrame],
    plots: dict[str, Path],
    gate: dict[str, Any],
    notes: list[str] | None = None,
) -> Path:
    """metrics.json, the model card as JSON and Markdown, and the HTML page; returns the page's path."""
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out_dir / "model_card.json").write_text(json.dumps(card, indent=2, default=str))
    (out_dir / "model_card.md").write_text(model_card_markdown(card))
    title = f"Credit model evaluation: {card['model_details']['name'] or cfg.name} ({cfg.name})"
    thresholds = cfg.registry.gate.model_dump()
    psi_levels = {"psi_warn": cfg.scoring.psi_warn, "psi_alert": cfg.scoring.psi_alert}
    page = render_html(card, metrics, tables, plots, gate, thresholds, title, **psi_levels, offer_notes=notes or [])
    report_path = out_dir / "report.html"
    report_path.write_text(page, encoding="utf-8")
    log.info("evaluation report: %s (%.0f kB)", report_path, report_path.stat().st_size / 1024)
    return report_path


def evaluate_holdout(
    scorer: Scorer, valid: pd.DataFrame, splits: dict[str, np.ndarray], cfg: Config, out_dir: Path
) -> dict:
    """Evaluate, write the report folder and return what the stage logs and the gate reads."""
    out_dir = Path(out_dir)
    plots_dir, tables_dir = _prepare(out_dir)
    h = score_holdout(scorer, valid, splits)
    st = stability(h, scorer, cfg)
    limit_metrics, limit_fit = limit_model_fit(h, scorer)
    fair = fairness_screen(h, cfg.contract.protected, cfg.evaluation.min_fairness_group)
    offers = offers_of(h, scorer, cfg)
    metrics = {**headline_metrics(h, cfg), **st.metrics, **limit_metrics, **fair.metrics, **offers.metrics}
    if fair.min_air is not None:  # absent, not 1.0, when fairness was not assessed (see gate_inputs)
        metrics["min_adverse_impact_ratio"] = fair.min_air
    metrics = {k: float(v) for k, v in metrics.items()}

    tables = {**build_tables(h, scorer, cfg, st.table, fair), **offers.tables}
    for name, table in tables.items():
        table.to_csv(tables_dir / f"{name}.csv", index=False)
    plots = draw_plots(h, scorer, cfg, metrics, tables, limit_fit, fair, plots_dir, offers)
    gate = gate_inputs(metrics, fair.min_air)
    card = build_model_card(model_card_facts(scorer, cfg, valid, h, metrics, st, fair))
    report_path = write_report(out_dir, cfg, metrics, card, tables, plots, gate, offers.notes)
    return {
        "metrics": metrics,
        "gate": gate,
        "report": str(report_path),
        "plots": {k: str(v.relative_to(out_dir)) for k, v in plots.items()},
        "tables": {k: f"tables/{k}.csv" for k in tables},
        "model_card": card,
        "feature_psi": dict(zip(st.features["feature"], st.features["psi"], strict=True)),
        "fairness": {attr: t.to_dict(orient="records") for attr, t in fair.tables.items()},
        "score_bands": tables["score_bands"].to_dict(orient="records"),
        "offer_notes": offers.notes,
    }
