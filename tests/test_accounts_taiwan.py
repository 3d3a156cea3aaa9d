"""Taiwan card accounts as an existing-account portfolio: contract, behaviour PD, early warning, review.

Slow (trains LightGBM on 30,000 accounts). The loader below applies configs/taiwan_accounts.yaml with
plain pandas, because the top-level Config cannot read an `accounts` config yet.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.accounts.behaviour import available_specs, compute_behaviour
from pipeline.accounts.contract import validate_accounts
from pipeline.accounts.model import evaluate, fit_behaviour_pd, split_parts
from pipeline.accounts.plans import required_income
from pipeline.accounts.review import review_accounts
from pipeline.accounts.settings import AccountSettings

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "taiwan_accounts.yaml"
DATA = ROOT.parent / "shared" / "data" / "taiwan_credit_card_default.csv.gz"


def load_taiwan_accounts(config: Path = CONFIG) -> tuple[pd.DataFrame, AccountSettings]:
    """Read the CSV and map it onto the account contract exactly as the YAML says (source or constant)."""
    cfg = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw = pd.read_csv(ROOT / cfg["source"]["path"] if (ROOT / cfg["source"]["path"]).exists() else DATA)
    out = {"account_id": raw[cfg["source"]["id_column"]].astype(str)}
    for target, spec in cfg["source"]["columns"].items():
        spec = {"source": spec} if isinstance(spec, str) else spec
        out[target] = raw[spec["source"]] if "source" in spec else pd.Series(spec["constant"], index=raw.index)
    return pd.DataFrame(out), AccountSettings.model_validate(cfg["accounts"])


def measure() -> dict:
    """Every number of the report, from one seeded 60/20/20 split; review and plans on the test part."""
    frame, settings = load_taiwan_accounts()
    result = validate_accounts(frame, settings.history.months, "taiwan")
    valid = result.valid
    specs = available_specs(valid.columns, settings.history)
    features = compute_behaviour(valid, settings.history, specs)
    y = valid["defaulted_next"].to_numpy(float)
    parts = split_parts(y, settings.model)
    model = fit_behaviour_pd(features, y, parts["train"], parts["validation"], specs, settings.model)
    test = valid.iloc[parts["test"]].reset_index(drop=True)
    pd_test = model.predict(features.iloc[parts["test"]])
    review = review_accounts(test, pd_test, settings)
    y_test = y[parts["test"]]
    rule = test["repayment_status_m1"].to_numpy(float) >= 1
    rank = review.frame["early_warning_rank"].to_numpy()
    metrics = evaluate(y_test, pd_test, rank, rule, settings.model, test["repayment_status_m1"].to_numpy(float))
    candidates = review.frame["plan_outcome"].notna()
    known_income = test["monthly_income"].notna() if "monthly_income" in test else pd.Series(False, index=test.index)
    need = required_income(test["balance"].clip(lower=0), np.full(len(test), np.nan), settings.plans)[candidates]
    return {
        "validation": result.summary(),
        "features": [s.name for s in specs],
        "trees": model.booster.current_iteration(),
        "test": metrics,
        "review": {
            "accounts": len(test),
            "counts": review.counts(),
            "decreases_wanted": int((pd_test >= settings.limits.decrease.trigger_pd).sum()),
            "softened_decreases": review.softened_decreases,
            "softened_by": review.softened_by,
            "early_warning_flagged": int(review.frame["early_warning"].sum()),
            "plan_candidates": int(candidates.sum()),
            "plan_candidates_with_known_income": int((candidates & known_income).sum()),
            "required_income_36m_median": float(np.median(need)) if len(need) else float("nan"),
        },
    }


@pytest.mark.slow
@pytest.mark.skipif(not DATA.exists(), reason="shared Taiwan data not present")
def test_taiwan_accounts_review_beats_the_simple_rule():
    m = measure()
    print(json.dumps(m, indent=1, default=str))
    v = m["validation"]
    assert v["rows_in"] == v["rows_valid"] + v["rows_rejected"] == 30_000
    assert "limit_to_income" not in m["features"]  # no income column: skipped, not invented
    t = m["test"]
    assert t["auc"] > 0.75
    assert t["ece"] < 0.03
    # At the rule's own alert volume, the ranking finds at least as many defaults as "late last month".
    assert t["top_same_volume_as_rule"]["defaults_captured"] >= t["rule"]["defaults_captured"]
    # Against "most months late last month" cut at the same volume: clearly better in the top 5%; level in
    # the top 10% (measured 32.0% vs 31.9% of defaults), where the late accounts are most of both lists.
    assert t["top_5%"]["defaults_captured"] > t["rule_top_5%"]["defaults_captured"] + 0.01
    assert t["top_10%"]["defaults_captured"] >= t["rule_top_10%"]["defaults_captured"] - 0.01
    r = m["review"]
    assert r["counts"]["limit_action"].get("increase", 0) == 0  # no income: ability to pay cannot be shown
    assert r["plan_candidates_with_known_income"] == 0
    assert r["counts"]["treatment"].get("repayment_plan", 0) == 0  # every candidate goes to a hardship review
    assert r["softened_decreases"] <= r["decreases_wanted"]


if __name__ == "__main__":
    print(json.dumps(measure(), indent=1, default=str))
