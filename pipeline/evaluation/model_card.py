"""The model card: the regulatory wording about a model, as data (JSON) and as Markdown.

`build_model_card` turns the facts `pipeline.evaluation.holdout` gathered into the sections a
validator expects (details, data, intended use, limitations, metrics, fairness findings). Every
threshold quoted comes from the facts (the config), so the wording never contradicts the gate.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from pipeline.evaluation.fairness import adverse_impact_flags
from pipeline.evaluation.formatting import auto, fmt

FOUR_FIFTHS_NAME = 0.8  # the ratio the US EEOC "four-fifths rule" names; only used to choose the wording
NOT_APPLICABLE = "not applicable"
NO_FAIRNESS = "not applicable: no protected attribute was assessed"
CARD_METRICS = (
    "test_roc_auc",
    "test_gini",
    "test_ks",
    "test_brier",
    "test_log_loss",
    "test_ece",
    "score_psi",
    "approval_rate",
    "approved_bad_rate",
    "expected_loss_rate",
    "min_adverse_impact_ratio",
    "limit_mae",
    "limit_pinball",
)


def _is_four_fifths(threshold: float) -> bool:
    return math.isclose(threshold, FOUR_FIFTHS_NAME)


def air_rule(threshold: float) -> str:
    """Legend of the screen line: the rule's name only when the configured value is the rule's 0.8."""
    return (
        f"four-fifths rule ({threshold:g})"
        if _is_four_fifths(threshold)
        else f"adverse impact threshold ({threshold:g})"
    )


def air_screen(threshold: float) -> str:
    """How the screen is called in prose: 'below 0.8 fails the four-fifths screen'."""
    return "four-fifths screen" if _is_four_fifths(threshold) else "adverse impact screen"


def limitations(facts: dict[str, Any]) -> list[str]:
    """Plain statements a validator would otherwise have to dig out: data caveats and any failed checks."""
    out = []
    gate = facts["gate_thresholds"]
    m = facts["metrics"]
    if facts.get("synthetic"):
        out.append(
            "Trained and tested on seeded synthetic applicants: the numbers demonstrate the pipeline, "
            "not the performance on any real portfolio."
        )
    if not facts.get("period"):
        out.append(
            "The data has no application date: the holdout is a random split, so there is no "
            "out-of-time test and drift over time is untested."
        )
    if facts["n_test_defaults"] < 100:
        out.append(
            f"Only {facts['n_test_defaults']} defaults in the test holdout: AUC and bad rates have wide "
            f"uncertainty (AUC 95% interval {fmt(m.get('test_roc_auc_ci_low'), '.3f')}-"
            f"{fmt(m.get('test_roc_auc_ci_high'), '.3f')})."
        )
    if m.get("test_ece", 0) > gate["max_ece"]:
        out.append(
            f"Calibration error {m['test_ece']:.4f} exceeds the gate's {gate['max_ece']}: PDs are biased in part "
            "of the range (see the reliability diagram)."
        )
    if m.get("score_psi", 0) > gate["max_score_psi"]:
        out.append(
            f"Score PSI {m['score_psi']:.3f} between train and test exceeds {gate['max_score_psi']}: "
            "the test population differs from the training population."
        )
    shifted = facts.get("shifted_features", [])
    if shifted:
        out.append(f"Features with PSI above {facts['psi_alert']} (train vs test): {', '.join(shifted)}.")
    if not facts.get("limit_model"):
        out.append("No limit model: limits come from the grade limit table and the affordability cap.")
    out.append(
        "Outcomes are only observed for applicants who were granted credit in the source data: the model "
        "has not been corrected for reject inference."
    )
    out.append(
        f"PDs are calibrated to the development default rate ({facts['train_default_rate']:.1%} on training "
        "data); recalibrate if the portfolio's default rate moves."
    )
    return out


def _attribute_finding(attr: str, t: pd.DataFrame, min_air: float) -> str:
    """One protected attribute: its worst reliable group against the best, judged against `min_air`."""
    reliable = t[t["reliable"]]
    worst = reliable.loc[reliable["adverse_impact_ratio"].idxmin()]
    best = reliable.loc[reliable["approval_rate"].idxmax()]
    verdict = "FAILS" if adverse_impact_flags(t, min_air).any() else "passes"
    text = (
        f"{attr}: lowest adverse impact ratio {worst['adverse_impact_ratio']:.3f} for group "
        f"'{worst['group']}' (approval {worst['approval_rate']:.1%} vs {best['approval_rate']:.1%} for "
        f"'{best['group']}'); {verdict} the {min_air} threshold."
    )
    aucs = reliable["auc"].dropna()
    if len(aucs) > 1:
        text += f" AUC ranges {aucs.min():.3f}-{aucs.max():.3f} across groups."
    small = t.loc[~t["reliable"], "group"].tolist()
    if small:
        text += f" Too small to judge (excluded from the screen): {', '.join(map(str, small))}."
    return text


def fairness_findings(tables: dict[str, pd.DataFrame], min_air: float) -> list[str]:
    """A sentence per protected attribute; `min_air` is the gate's `min_adverse_impact_ratio`."""
    if not tables:
        return ["No protected attributes are declared in the config: fairness was not assessed."]
    out = [_attribute_finding(attr, t, min_air) for attr, t in tables.items()]
    out.append("Protected attributes are never model inputs; they are used only for this report.")
    return out


def _card_metrics(m: dict[str, float], fairness_assessed: bool) -> dict[str, Any]:
    """The card's headline metrics; an unassessed fairness screen says so rather than vanishing or passing."""
    shown: dict[str, Any] = m if fairness_assessed else {**m, "min_adverse_impact_ratio": NO_FAIRNESS}
    return {k: shown[k] for k in CARD_METRICS if k in shown}


def _refit_words(facts: dict[str, Any]) -> str:
    refit = facts.get("pd_refit") or {}
    if not refit.get("refit"):
        return ""
    return f" (refitted on training + validation rows; early stopping chose {refit['trees_early_stopped']})"


def build_model_card(facts: dict[str, Any]) -> dict[str, Any]:
    """The model card as data (JSON in MLflow; rendered in the HTML and as Markdown)."""
    policy = facts["policy"]
    return {
        "model_details": {
            "name": facts["meta"].get("model_name", ""),
            "config": facts["meta"].get("config", facts.get("config_name", "")),
            "mlflow_run_id": facts["meta"].get("run_id", ""),
            "git_commit": facts["meta"].get("git_commit", ""),
            "data_sha256": facts["meta"].get("data_sha256", ""),
            "pd_model": f"LightGBM binary classifier, {facts['pd_trees']} trees{_refit_words(facts)}, "
            f"monotone constraints, {facts['calibration']} calibration",
            "limit_model": "LightGBM quantile regression on log granted limit (good payers)"
            if facts.get("limit_model")
            else "none",
            "features": facts["n_features"],
            "evaluated_at": facts["evaluated_at"],
        },
        "data": {
            "source": facts["source"],
            "period": facts.get("period") or "no application date in the data",
            "rows_train": facts["n_train"],
            "rows_test": facts["n_test"],
            "default_rate_train": facts["train_default_rate"],
            "default_rate_test": facts["test_default_rate"],
            "split": facts["split"],
        },
        "intended_use": [
            "Estimate each applicant's probability of default (PD) at application time and map it to a score "
            "and grade, to support approve/decline and credit limit decisions under the configured policy "
            f"(decline above PD {policy['pd_cutoff']}, payment-to-income at most {policy['max_payment_to_income']}, "
            f"limits {policy['min_limit']:,.0f}-{policy['max_limit']:,.0f}).",
            "Users: credit risk analysts and automated batch scoring, with human review of declines and appeals.",
            "Not intended for: pricing, collections, marketing, populations or products unlike the development "
            "data, or any decision based on protected attributes.",
        ],
        "limitations": limitations(facts),
        "metrics": _card_metrics(facts["metrics"], bool(facts["fairness"])),
        "fairness_findings": fairness_findings(facts["fairness"], facts["gate_thresholds"]["min_adverse_impact_ratio"]),
    }


def model_card_markdown(card: dict[str, Any]) -> str:
    """The card for people reading it in MLflow or a notebook."""
    lines = [f"# Model card: {card['model_details']['name']}", "", "## Model details"]
    lines += [f"- **{k.replace('_', ' ')}**: {v}" for k, v in card["model_details"].items()]
    lines += ["", "## Data and period"] + [
        f"- **{k.replace('_', ' ')}**: {auto(k, v)}" for k, v in card["data"].items()
    ]
    lines += ["", "## Intended use"] + [f"- {t}" for t in card["intended_use"]]
    lines += ["", "## Limitations"] + [f"- {t}" for t in card["limitations"]]
    lines += ["", "## Metrics (test holdout)"] + [f"- **{k}**: {auto(k, v)}" for k, v in card["metrics"].items()]
    lines += ["", "## Fairness findings"] + [f"- {t}" for t in card["fairness_findings"]]
    return "\n".join(lines) + "\n"
