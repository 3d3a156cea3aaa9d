"""The monthly review job: every row accounted for, a portfolio-wide rank however the file is chunked,
guard rails holding on the written output, and the end-to-end train -> register -> review from the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import cli
from pipeline.accounts.behaviour import available_specs, compute_behaviour
from pipeline.accounts.model import fit_accounts
from pipeline.accounts.report import render_review
from pipeline.accounts.review import early_warning_rank
from pipeline.accounts.synthetic import synthetic_portfolio
from pipeline.batch.review import report_path, review_file
from pipeline.config import parse_config
from pipeline.errors import ConfigError, RejectionBudgetExceeded

EPS = 1e-6
COLUMNS = ["row_number", "account_id", "pd", "expected_loss", "early_warning", "early_warning_rank", "limit_action",
           "credit_limit", "new_limit", "limit_effective_date", "treatment", "reasons", "plan_outcome",
           "plan_term_months", "plan_payment", "plan_total", "affordable_payment"]  # fmt: skip
# Thresholds low enough that the small book has increases, decreases and plans: the checks below can fail.
SETTINGS = {
    "portfolio": {"accounts": 1500, "seed": 11},
    "early_warning": {"pd_threshold": 0.2, "rank_share": 0.05},
    "limits": {"increase": {"max_pd": 0.02}, "decrease": {"trigger_pd": 0.1}},
}


def account_config(tmp, **extra) -> dict:
    return {
        "name": "acct",
        "kind": "accounts",
        "output_dir": str(tmp / "output"),
        "source": {"kind": "synthetic"},
        "registry": {"model_name": "test-acct", "experiment": "test-acct"},
        "pd_model": {
            "num_boost_round": 150,
            "early_stopping_rounds": 20,
            "monotone": "prior",
            "calibration": "isotonic",
        },
        "accounts": SETTINGS,
        **extra,
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A behaviour scorer trained in-process on the small book, and the book as a CSV file."""
    tmp = tmp_path_factory.mktemp("review")
    cfg = parse_config(account_config(tmp))
    book = synthetic_portfolio(cfg.accounts.portfolio)
    specs = available_specs(book.columns, cfg.accounts.history)
    out = fit_accounts(book, compute_behaviour(book, cfg.accounts.history, specs), specs, cfg)
    path = tmp / "book.csv"
    book.drop(columns=["defaulted_next", "job_loss"]).to_csv(path, index=False)
    return cfg, out.scorer, path


def check_guard_rails(out: pd.DataFrame, book: pd.DataFrame, cfg) -> None:
    """The review's promises, on the written file joined back to its input rows."""
    s = cfg.accounts
    rows = book.iloc[out["row_number"].to_numpy() - 1].reset_index(drop=True)
    limit, new = rows["credit_limit"].to_numpy(float), out["new_limit"].to_numpy(float)
    owed = np.maximum(rows["balance"].to_numpy(float), 0)
    down, up = (out["limit_action"] == "decrease").to_numpy(), (out["limit_action"] == "increase").to_numpy()
    assert set(out["limit_action"]) <= {"keep", "increase", "decrease"}
    assert down.any() and up.any()  # both guard rails are exercised
    assert (new[down] < limit[down]).all() and (new[down] >= owed[down] - EPS).all()
    assert (new[down] >= limit[down] * (1 - s.limits.decrease.max_share) - EPS).all()
    inc = s.limits.increase
    income, debts = rows["monthly_income"].to_numpy(float), np.nan_to_num(rows["monthly_debt_payments"].to_numpy(float))
    assert (out["pd"].to_numpy()[up] <= inc.max_pd).all() and (income[up] > 0).all()
    assert ((inc.min_payment_rate * new[up] + debts[up]) / income[up] <= inc.max_payment_to_income + EPS).all()
    assert not (up & out["early_warning"].to_numpy()).any()
    plan = (out["treatment"] == "repayment_plan").to_numpy()
    assert (out.loc[plan, "plan_payment"] <= out.loc[plan, "affordable_payment"] + EPS).all()
    contacted = (out["treatment"] != "none").to_numpy()
    assert (rows["contacts_this_month"].to_numpy()[contacted] < s.treatments.max_contacts_per_month).all()


def test_every_row_accounted_for_and_the_rank_is_portfolio_wide_in_any_chunking(trained, tmp_path):
    cfg, scorer, book_csv = trained
    book = pd.read_csv(book_csv)
    bad = book.astype({"repayment_status_m1": object})
    bad.loc[3, "credit_limit"] = -5  # below the contract's minimum
    bad.loc[10, "repayment_status_m1"] = "late"  # not a number
    bad = pd.concat([bad, bad.iloc[[20]]], ignore_index=True)  # the same key again, in a later chunk
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    small = review_file("local", path, tmp_path / "a.parquet", cfg, chunk_rows=97, scorer=scorer)
    assert small["rows_in"] == len(bad) == small["rows_scored"] + small["rows_rejected"]
    assert small["rows_rejected"] == 3
    rejects = pd.read_parquet(tmp_path / "a.rejects.parquet")
    assert set(rejects["row_number"]) == {4, 11, len(bad)}
    assert {"credit_limit: min(0)", "account_id: unique(account_id, snapshot_month)"} <= set(small["rejected_by_rule"])
    a = pd.read_parquet(tmp_path / "a.parquet")
    assert set(COLUMNS) <= set(a.columns)
    assert sorted(set(a["row_number"]) | set(rejects["row_number"])) == list(range(1, len(bad) + 1))
    # Without the repeated key (one chunk rejects both copies, later chunks only the later one, as `score` does),
    # 16 chunks or one give the same ranks, actions and reasons.
    bad.iloc[:-1].to_csv(path, index=False)
    review_file("local", path, tmp_path / "c.parquet", cfg, chunk_rows=97, scorer=scorer)
    review_file("local", path, tmp_path / "d.parquet", cfg, chunk_rows=100_000, scorer=scorer)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "c.parquet"), pd.read_parquet(tmp_path / "d.parquet"))
    assert (a["early_warning_rank"] == early_warning_rank(a["pd"].to_numpy(), a["expected_loss"].to_numpy())).all()
    top = int(np.floor(cfg.accounts.early_warning.rank_share * len(a)))
    flagged = (a["pd"] >= cfg.accounts.early_warning.pd_threshold) | (a["early_warning_rank"] <= top)
    assert (a["early_warning"] == flagged).all()
    check_guard_rails(a, pd.read_csv(path), cfg)
    assert small["portfolio"]["accounts"] == small["rows_scored"]
    assert sum(small["portfolio"]["counts"]["limit_action"].values()) == small["rows_scored"]


def test_optional_columns_may_be_absent_and_then_count_as_unknown(trained, tmp_path):
    cfg, scorer, book_csv = trained
    optional = ["monthly_debt_payments", "last_limit_change_month", "last_limit_change_direction",
                "contacts_this_month", "product"]  # fmt: skip
    lean = pd.read_csv(book_csv).drop(columns=optional).assign(monthly_income=np.nan)  # a model input: kept, unknown
    lean.to_csv(tmp_path / "lean.csv", index=False)
    summary = review_file("local", tmp_path / "lean.csv", tmp_path / "r.parquet", cfg, scorer=scorer)
    out = pd.read_parquet(tmp_path / "r.parquet")
    assert summary["rows_scored"] == len(out) == 1500
    assert "increase" not in set(out["limit_action"])  # income unknown: ability to pay cannot be shown
    assert summary["portfolio"]["at_risk_with_affordable_plan"] == 0 < summary["portfolio"]["at_risk"]


def test_page_lists_the_watch_list_and_escapes_data(trained, tmp_path):
    cfg, scorer, book_csv = trained
    summary = review_file("local", book_csv, tmp_path / "r.parquet", cfg, scorer=scorer)
    page = report_path(tmp_path / "r.parquet").read_text()
    out = pd.read_parquet(tmp_path / "r.parquet")
    first = out.loc[out["early_warning_rank"] == 1, "account_id"].iloc[0]
    assert "Watch list" in page and first in page and "Plan offers" in page
    assert f"{summary['rows_in']:,}" in page
    watch = out.nsmallest(3, "early_warning_rank").assign(account_id=["<script>x</script>", "a&b", "ok"])
    html = render_review(summary, watch, out.head(0))
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html and "a&amp;b" in html


def test_over_budget_publishes_no_review_and_an_applicant_config_is_refused(trained, tmp_path):
    cfg, scorer, book_csv = trained
    book = pd.read_csv(book_csv)
    book = book.astype({"balance": object})
    book.loc[: len(book) // 5, "balance"] = "n/a"
    path = tmp_path / "worse.csv"
    book.to_csv(path, index=False)
    with pytest.raises(RejectionBudgetExceeded):
        review_file("local", path, tmp_path / "r.parquet", cfg, scorer=scorer)
    assert not (tmp_path / "r.parquet").exists() and not (tmp_path / "r.html").exists()
    summary = json.loads((tmp_path / "r.summary.json").read_text())
    assert summary["scores_published"] is False and summary["rows_in"] == len(book)
    with pytest.raises(ConfigError, match="needs kind: accounts"):
        review_file("local", book_csv, tmp_path / "x.parquet", parse_config({}), scorer=scorer)


@pytest.mark.slow
def test_train_register_review_from_the_cli(tmp_path):
    """The whole path as an operator runs it: stages through `run --to register`, then `review` with the champion."""
    config = tmp_path / "acct.yaml"
    config.write_text(yaml.safe_dump(account_config(tmp_path)))
    # the run's own store, whatever an earlier test left in the environment: artifacts land beside it
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'output' / 'mlflow.db'}"}
    cli("run", "--config", str(config), "--to", "register", cwd=tmp_path, env=env)
    run_dir = tmp_path / "output" / "acct"
    evaluation = json.loads((run_dir / "evaluate" / "evaluation.json").read_text())
    assert evaluation["gate"]["fairness_assessed"] is False and evaluation["gate"]["min_air"] is None
    assert evaluation["metrics"]["test_roc_auc"] > 0.8
    registration = json.loads((run_dir / "register" / "registration.json").read_text())
    assert registration["promoted"] and registration["model_name"] == "test-acct"
    assert any("not applicable (no protected attribute)" in r for r in registration["gate"])
    out = tmp_path / "review" / "out.parquet"
    args = ("review", "--config", str(config), "--output", str(out), "--chunk-rows", "400")
    # the champion, loaded from the registry with its digests checked
    proc = cli(*args, cwd=tmp_path, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["model_name"] == "test-acct" and summary["model_version"] == "1"
    assert summary["rows_in"] == 1500 == summary["rows_scored"] + summary["rows_rejected"]
    review = pd.read_parquet(out)
    assert len(review) == summary["rows_scored"] and set(COLUMNS) <= set(review.columns)
    assert sorted(review["early_warning_rank"]) == list(range(1, len(review) + 1))
    book = pd.read_parquet(run_dir / "ingest" / "applicants.parquet")
    check_guard_rails(review, book, parse_config(account_config(tmp_path)))
    assert (tmp_path / "review" / "out.rejects.parquet").exists() and (tmp_path / "review" / "out.html").exists()
    # a second registration scores the champion on its holdout: loaded only after its digests check out
    (pickled,) = [p for p in (tmp_path / "output" / "mlartifacts").rglob("*.joblib") if "scorer" in p.name]
    pickled.write_bytes(pickled.read_bytes() + b"\0")
    proc = cli("register", "--config", str(config), cwd=tmp_path, env=env, check=False)
    assert proc.returncode == 8, proc.stderr[-2000:]
    assert pickled.name in proc.stderr
