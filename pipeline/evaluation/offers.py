"""The offers part of a holdout evaluation: offer mix by grade, counter-offers' effect on loss and volume,
and the payment-to-income of approved offers.

A scorer trained before offers existed (no `products`) makes no offer columns: every part is then
skipped with a note, so an old artifact still gets its report. Computes and returns; writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.evaluation.policy_metrics import counter_offer_scenarios, offer_mix, payment_to_income, pti_distribution

NO_OFFERS = (
    "This scorer makes no offers (trained before products were configured): the offer mix, the effect of "
    "counter-offers and the payment-to-income of offers are not applicable."
)
NO_INCOME = (
    "Payment-to-income of approved offers: not applicable, no holdout applicant with an offer has a known income."
)


@dataclass(frozen=True)
class OfferSection:
    """Tables by name (each goes to tables/<name>.csv), flat metrics, the PTI values and notes for the page."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    pti: pd.DataFrame | None = None
    cap: float | None = None
    notes: list[str] = field(default_factory=list)


def _mix_metrics(mix: pd.DataFrame) -> dict[str, float]:
    total = mix.loc[mix["grade"] == "all"].iloc[0]
    return {
        "offer_share_approve": float(total["approve_share"]),
        "offer_share_counter": float(total["counter_offer_share"]),
        "offer_share_decline": float(total["decline_share"]),
    }


def _scenario_metrics(scenarios: pd.DataFrame) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in scenarios.to_dict("records"):
        s = row["scenario"]
        for key in ("approval_rate", "approved_volume", "expected_loss", "expected_loss_rate"):
            out[f"{key}_{s}"] = float(row[key])
    return out


def _pti_metrics(pti: pd.DataFrame, cap: float) -> dict[str, float]:
    values = pti["pti"].to_numpy(dtype=float)
    return {
        "offer_pti_n": float(len(values)),
        "offer_pti_median": float(np.median(values)),
        "offer_pti_p90": float(np.quantile(values, 0.9)),
        "offer_pti_max": float(values.max()),
        "offer_pti_share_above_cap": float(np.mean(values > cap + 1e-9)),
    }


def offer_section(
    scored: pd.DataFrame | None,
    test: pd.DataFrame,
    y: np.ndarray,
    grade_order: list[str],
    *,
    lgd: float,
    ccf: float,
    cap: float,
    pti_width: float = 0.05,
) -> OfferSection:
    """Everything the report says about offers; `scored` holds the holdout's offer columns, or None without them.

    `cap` is `policy.max_payment_to_income`, the cap the offers were searched under; `pti_width` the
    width of the report's payment-to-income bands.
    """
    if scored is None or "offer_type" not in scored:
        return OfferSection(notes=[NO_OFFERS])
    kind = scored["offer_type"].to_numpy(dtype=object)
    amount = scored["offer_amount"].to_numpy(dtype=float)
    pd_ = scored["pd"].to_numpy(dtype=float)
    mix = offer_mix(scored["grade"].to_numpy(), kind, grade_order)
    scenarios = counter_offer_scenarios(y, pd_, kind, amount, lgd, ccf)
    tables = {"offer_mix": mix, "counter_offers": scenarios}
    metrics = {**_mix_metrics(mix), **_scenario_metrics(scenarios)}
    n = len(test)
    income = test["monthly_income"].to_numpy(dtype=float) if "monthly_income" in test else np.full(n, np.nan)
    debt = test["monthly_debt_payments"].to_numpy(dtype=float) if "monthly_debt_payments" in test else np.zeros(n)
    pti = payment_to_income(income, debt, scored["monthly_payment"].to_numpy(dtype=float), kind)
    if not len(pti):
        return OfferSection(tables, metrics, None, cap, [NO_INCOME])
    tables["payment_to_income"] = pti_distribution(pti, cap, pti_width)
    metrics.update(_pti_metrics(pti, cap))
    return OfferSection(tables, metrics, pti, cap, [])
