"""Taiwan card accounts as an existing-account portfolio, through the real stages and the review job.

Slow (trains on 30,000 accounts with the full PD recipe). `python tests/test_accounts_taiwan.py` prints every
number docs/accounts.md quotes.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import joblib
import pytest
import yaml

from pipeline.batch.review import review_file
from pipeline.config import parse_config
from pipeline.stages.runner import run_until

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "taiwan_accounts.yaml"
DATA = ROOT.parent / "shared" / "data" / "taiwan_credit_card_default.csv.gz"


def measure(tmp: Path) -> dict:
    """ingest .. evaluate on the config as committed (output in `tmp`), then the review of the whole book."""
    data = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    cfg = parse_config({**data, "output_dir": str(tmp / "output")}, str(CONFIG), CONFIG.parent)
    results = run_until("evaluate", cfg, str(CONFIG))
    run_dir = tmp / "output" / cfg.name
    scorer = joblib.load(run_dir / "train" / "scorer.joblib")  # the trained artifact's scorer, without a registry
    review = review_file(
        "trained", run_dir / "ingest" / "applicants.parquet", tmp / "review.parquet", cfg, scorer=scorer
    )
    return {
        "validation": results["validate"],
        "features": results["features"],
        "train": {k: results["train"][k] for k in ("metrics", "notes", "split_method")},
        "evaluate": results["evaluate"],
        "review_job": {k: review[k] for k in ("rows_in", "rows_scored", "rows_rejected", "portfolio", "seconds")},
    }


@pytest.mark.slow
def test_taiwan_accounts_review_beats_the_simple_rule(tmp_path, monkeypatch):
    assert DATA.exists(), f"{DATA} missing: the shared data sets are part of the checkout (tests/test_contract.py)"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    m = measure(tmp_path)
    print(json.dumps(m, indent=1, default=str))
    v = m["validation"]
    assert v["rows_in"] == v["rows_valid"] + v["rows_rejected"] == 30_000
    assert "limit_to_income" not in m["features"]["features"]  # no income column: skipped, not invented
    e = m["evaluate"]
    assert e["metrics"]["test_roc_auc"] > 0.75 and e["metrics"]["test_ece"] < 0.03
    assert e["gate"]["fairness_assessed"] is False and e["gate"]["min_air"] is None
    ew = e["early_warning"]
    # At the rule's own alert volume, the ranking finds at least as many defaults as "late last month".
    assert ew["top_same_volume_as_rule"]["defaults_captured"] >= ew["rule"]["defaults_captured"]
    # Against the rule cut at the same volume (most months late first): better in the top 5%, level in the top 10%.
    assert ew["top_5%"]["defaults_captured"] > ew["rule_top_5%"]["defaults_captured"]
    assert ew["top_10%"]["defaults_captured"] >= ew["rule_top_10%"]["defaults_captured"] - 0.01
    r = m["evaluate"]["review"]
    assert r["counts"]["limit_action"].get("increase", 0) == 0  # no income: ability to pay cannot be shown
    assert r["at_risk_with_known_income"] == 0 and r["at_risk_with_affordable_plan"] == 0
    assert r["counts"]["treatment"].get("repayment_plan", 0) == 0  # every at-risk account goes to a hardship review
    assert 0 <= r["softened_decreases"] <= r["decreases_wanted"]
    job = m["review_job"]
    assert job["rows_in"] == 30_000 == job["rows_scored"] + job["rows_rejected"]
    assert job["portfolio"]["softened_decreases"] <= job["portfolio"]["decreases_wanted"]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        json.dump(measure(Path(folder)), sys.stdout, indent=1, default=str)
