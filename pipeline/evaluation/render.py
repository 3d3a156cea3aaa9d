"""The evaluation report as one self-contained HTML page, filled from `templates/report.html.j2`.

The page embeds every plot as base64 and carries its own CSS: one file that can be mailed,
archived with the approval minutes or opened from MLflow with no network. This module only
turns numbers into display strings (the view); the template holds the markup and the prose,
and jinja2's autoescaping makes sure no value (a model name, a group label) becomes markup.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from pipeline.evaluation.formatting import auto, fmt
from pipeline.evaluation.model_card import NOT_APPLICABLE, air_screen

PCT = ".1%"
MAX_ROWS = {"psi": 40, "importance": 40}
# Column formats per table (the CSVs keep full precision); a fairness_<attr> table uses "fairness".
TABLE_FORMATS: dict[str, dict[str, str]] = {
    "calibration": {"count": ",.0f", "bin": ".0f"},
    "score_bands": {
        "band": ".0f",
        "count": ",.0f",
        "defaults": ",.0f",
        "min_score": ".1f",
        "max_score": ".1f",
        "bad_rate": ".2%",
        "cum_count_share": PCT,
        "cum_bad_share": PCT,
        "cum_good_share": PCT,
        "cum_bad_rate": ".2%",
        "lift": ".2f",
        "cum_lift": ".2f",
    },
    "decision_reasons": {"count": ",.0f", "share_of_applicants": PCT},
    "cutoffs": {"pd_cutoff": ".2f", "approval_rate": PCT, "approved_bad_rate": ".2%", "declined_bad_share": PCT},
    "grades": {
        "count": ",.0f",
        "defaults": ",.0f",
        "bad_rate": ".2%",
        "mean_pd": ".2%",
        "approval_rate": PCT,
        "mean_limit": ",.0f",
        "median_limit": ",.0f",
        "total_limit": ",.0f",
    },
    "psi": {"psi": ".4f"},
    "fairness": {
        "count": ",.0f",
        "approved": ",.0f",
        "approval_rate": PCT,
        "bad_rate": ".2%",
        "mean_pd": ".2%",
        "auc": ".3f",
        "mean_limit_approved": ",.0f",
        "adverse_impact_ratio": ".3f",
    },
    "importance": {"gain": ",.1f", "gain_share": PCT, "direction": "+d"},
    "offer_mix": {"count": ",.0f", "approve_share": PCT, "counter_offer_share": PCT, "decline_share": PCT},
    "counter_offers": {
        "approved": ",.0f",
        "approval_rate": PCT,
        "approved_bad_rate": ".2%",
        "approved_volume": ",.0f",
        "expected_loss": ",.0f",
        "expected_loss_rate": ".2%",
    },
    "payment_to_income": {
        "pti_from": ".2f",
        "pti_to": ".2f",
        "approve": ",.0f",
        "counter_offer": ",.0f",
        "count": ",.0f",
        "share": PCT,
        "cum_share": PCT,
    },
}


@dataclass(frozen=True)
class Card:
    """A summary tile; `verdict` is "pass", "fail", "not applicable" or None (no gate on this number)."""

    label: str
    value: str
    verdict: str | None = None

    @property
    def css(self) -> str:
        return {"pass": "pass", "fail": "fail"}.get(self.verdict or "", "na")


@dataclass(frozen=True)
class TableView:
    """A table as display strings; `shown` < `total` makes the page say the CSV holds the rest."""

    columns: list[str]
    rows: list[list[str]]
    shown: int
    total: int


def table_view(df: pd.DataFrame, formats: Mapping[str, str] | None = None, max_rows: int = 60) -> TableView:
    formats = formats or {}
    records = df.head(max_rows).to_dict("records")  # keeps each column's own type (ints stay ints)
    rows = [[fmt(r[c], formats.get(c)) for c in df.columns] for r in records]
    return TableView([str(c) for c in df.columns], rows, len(rows), len(df))


def pairs(mapping: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Label/value rows; the label is the key with spaces, the value formatted by the key's meaning."""
    return [(k.replace("_", " "), auto(k, v)) for k, v in mapping.items()]


def image_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _verdict(passed: bool | None) -> str:
    return NOT_APPLICABLE if passed is None else ("pass" if passed else "fail")


def summary_cards(m: Mapping[str, float], gate: Mapping[str, Any], thresholds: Mapping[str, float]) -> list[Card]:
    """Headline numbers; the gated ones carry a verdict against the configured threshold."""
    min_air = gate.get("min_air")
    air_limit = thresholds["min_adverse_impact_ratio"]
    return [
        Card("ROC AUC (test)", f"{m['test_roc_auc']:.3f}"),
        Card("Gini", f"{m['test_gini']:.3f}"),
        Card("KS", f"{m['test_ks']:.3f}"),
        Card(
            f"ECE (gate ≤ {thresholds['max_ece']})",
            f"{m['test_ece']:.4f}",
            _verdict(gate["ece"] <= thresholds["max_ece"]),
        ),
        Card(
            f"Score PSI (gate ≤ {thresholds['max_score_psi']})",
            f"{m['score_psi']:.3f}",
            _verdict(gate["score_psi"] <= thresholds["max_score_psi"]),
        ),
        Card(
            f"Min adverse impact ratio (gate ≥ {air_limit})",
            fmt(min_air, ".3f"),
            _verdict(None if min_air is None else min_air >= air_limit),
        ),
        Card("Approval rate", format(m["approval_rate"], PCT)),
        Card("Bad rate of approved", fmt(m["approved_bad_rate"], ".2%")),
    ]


def discrimination_rows(m: Mapping[str, float]) -> list[tuple[str, str]]:
    return pairs(
        {
            "ROC AUC": m["test_roc_auc"],
            "AUC 95% interval (Hanley-McNeil)": f"{m['test_roc_auc_ci_low']:.3f} - {m['test_roc_auc_ci_high']:.3f}",
            "Gini (2 AUC - 1)": m["test_gini"],
            "KS": m["test_ks"],
            "Brier score": m["test_brier"],
            "Log loss": m["test_log_loss"],
        }
    )


def policy_rows(m: Mapping[str, float]) -> list[tuple[str, str]]:
    return pairs(
        {
            "approval rate": format(m["approval_rate"], PCT),
            "bad rate of approved": fmt(m["approved_bad_rate"], ".2%"),
            "total limit approved": f"{m['total_exposure']:,.0f}",
            "expected loss (PD x LGD x EAD)": f"{m['expected_loss']:,.0f}",
            "expected loss / EAD": fmt(m["expected_loss_rate"], ".2%"),
            "realised loss on defaulted approved (LGD x EAD)": f"{m['realised_bad_exposure']:,.0f}",
            "LGD, CCF (config)": f"{m['lgd']:.2f}, {m['ccf']:.2f}",
        }
    )


def offer_rows(m: Mapping[str, float]) -> list[tuple[str, str]]:
    """Headline offer numbers; empty when the scorer made no offers (the page then shows the note)."""
    if "offer_share_approve" not in m:
        return []
    with_c, without_c = m["expected_loss_rate_with_counter"], m["expected_loss_rate_without_counter"]
    rows = {
        "approved as asked": format(m["offer_share_approve"], PCT),
        "counter-offer": format(m["offer_share_counter"], PCT),
        "declined": format(m["offer_share_decline"], PCT),
        "approved volume with / without counter-offers": (
            f"{m['approved_volume_with_counter']:,.0f} / {m['approved_volume_without_counter']:,.0f}"
        ),
        "expected loss / EAD with / without counter-offers": f"{fmt(with_c, '.2%')} / {fmt(without_c, '.2%')}",
    }
    if "offer_pti_median" in m:
        rows["payment-to-income of approved offers: median, 90th percentile, max"] = (
            f"{m['offer_pti_median']:.3f}, {m['offer_pti_p90']:.3f}, {m['offer_pti_max']:.3f}"
        )
    return pairs(rows)


def limit_error_rows(m: Mapping[str, float]) -> list[tuple[str, str]]:
    """Empty when the run has no limit model: the page then says the error is not applicable."""
    if "limit_mae" not in m:
        return []
    return pairs(
        {
            "rows": f"{int(m['limit_n']):,}",
            "mean absolute error": f"{m['limit_mae']:,.0f}",
            "pinball loss (log limit)": m["limit_pinball"],
            "share of granted limits at or below the estimate": f"{m['limit_coverage']:.1%} "
            f"(target quantile {m['limit_alpha']:.2f})",
        }
    )


def _tables(tables: Mapping[str, pd.DataFrame]) -> dict[str, TableView]:
    def formats(name: str) -> dict[str, str] | None:
        return TABLE_FORMATS.get("fairness" if name.startswith("fairness_") else name)

    return {name: table_view(t, formats(name), MAX_ROWS.get(name, 60)) for name, t in tables.items()}


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.evaluation", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template("report.html.j2")


def render_html(
    card: dict[str, Any],
    metrics: Mapping[str, float],
    tables: Mapping[str, pd.DataFrame],
    plots: Mapping[str, Path],
    gate: Mapping[str, Any],
    gate_thresholds: Mapping[str, float],
    title: str,
    *,
    psi_warn: float,
    psi_alert: float,
    offer_notes: list[str] | None = None,
) -> str:
    """One page: summary cards, model card, then a section per question a committee asks."""
    d = card["model_details"]
    views = _tables(tables)
    min_air = gate_thresholds["min_adverse_impact_ratio"]
    return _template().render(
        title=title,
        details={
            "name": str(d["name"]),
            "run_id": str(d["mlflow_run_id"]) or "n/a",
            "commit": str(d["git_commit"])[:12] or "n/a",
            "evaluated_at": d["evaluated_at"],
        },
        cards=summary_cards(metrics, gate, gate_thresholds),
        card={k: pairs(v) if isinstance(v, dict) else v for k, v in card.items()},
        discrimination=discrimination_rows(metrics),
        policy=policy_rows(metrics),
        limit_errors=limit_error_rows(metrics),
        offers=offer_rows(metrics),
        offer_notes=list(offer_notes or []),
        figures={name: image_uri(path) for name, path in plots.items()},
        tables=views,
        fairness_tables=[(n.removeprefix("fairness_"), v) for n, v in views.items() if n.startswith("fairness_")],
        psi_warn=psi_warn,
        psi_alert=psi_alert,
        min_air=min_air,
        air_screen=air_screen(min_air),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
